//! The integration test binary: every test starts a real oxisd process on 127.0.0.1 port 0 and
//! talks HTTP to it. One module per endpoint family.

// Test code: a failed unwrap or expect is a failed check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

/// v2 accounts: register with OpenID, whoami, logout, the address guard, token checks.
mod account;
/// The admin listener and CLI: auth, bindings, export and erasure, keys, backups, metrics.
mod admin;
/// Background tasks: panics caught and survived, late tasks make /health answer 503.
mod background;
/// Bind, unbind (session, X-Matrix, forged), lookups v1 and v2, pepper rotation, static store.
mod bind;
/// Command line: check-config, --version, --help, defaults with no config.
mod cli;
/// The LDAP identity store and check_credentials against a real slapd (tests/support/slapd.rs).
mod directory;
/// Email validation sessions: requestToken, sending, policy, rate limits.
mod email;
/// Completing email sessions: submitToken (JSON and pages), getValidated3pid, expiry.
mod email_validation;
/// Federated lookups: SRV discovery, remote signatures, caches, the address guard.
mod federation;
/// The HTTP layer: routing errors, CORS, limits, timeouts, client IP, shutdown.
mod http_layer;
/// Imports: bindings from sydent, ma1sd and mxisd databases, reports, re-imports, bad files.
mod import;
/// 3PID invites: store-invite, the invite mail, ephemeral keys, sign-ed25519, onbind delivery.
mod invite;
/// The LDAP client against a real slapd: binds, paged searches, StartTLS and ldaps, failures.
mod ldap_client;
/// Lookups under load: duplicates in bulk lookups, the per-client budget of addresses.
mod lookup;
/// Phone validation sessions over the Twilio stand-in: normalisation, errors, abuse limits.
mod msisdn;
/// Public keys: pubkey, isvalid, ephemeral isvalid, key persistence.
mod pubkey;
/// Remote 3PID sessions with two servers: offer, start, check, forwarded binds, remote-only.
mod remote_sessions;
/// The rest identity store against the REST backend stand-in: lookups, id types, failures.
mod rest_store;
/// Session disk space: after a flood of sessions expired, the sweeper gives the space back.
mod session_space;
/// The SMTP connector against the sink: TLS modes, authentication, failures.
mod smtp_connector;
/// Starting after a loss: a missing signing key file, a damaged journal, store-open errors.
mod store_start;
/// The synapse identity store against the admin API stand-in: sync, reconcile, failures.
mod synapse_store;
/// Terms of service: listing, acceptance, versions, the gate on v2 endpoints.
mod terms;
/// The HTTPS listener: TLS next to plain HTTP, SIGHUP reload, slow clients, config errors.
mod tls_listener;
/// The transport under hostile traffic: huge Content-Length, endless heads, idle floods, slowloris, fd exhaustion, slow homeservers, TLS floods.
mod transport;
/// The Twilio connector against the stand-in: form, auth, error classes, timeouts, limits.
mod twilio_connector;
/// Discovery: versions, status, health.
mod versions;
