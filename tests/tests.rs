//! The integration test binary: every test starts a real oxisd process on 127.0.0.1 port 0 and
//! talks HTTP to it. One module per endpoint family.

mod support;

/// Command line: check-config, --version, --help, defaults with no config.
mod cli;
/// The HTTP layer: routing errors, CORS, limits, timeouts, client IP, shutdown.
mod http_layer;
/// Public keys: pubkey, isvalid, ephemeral isvalid, key persistence.
mod pubkey;
/// Discovery: versions, status, health.
mod versions;
