//! The admin API's answers: how bindings, sessions, invites, exports and counts are shown to
//! operators (sessions without their client secret or token). Fields are named in alphabetical
//! order, so the answers keep the key order they always had.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::service::admin::{
    ImportOutcome, KeyInfo, SourcedBinding, Stats, ThreepidErasure, ThreepidExport, UserErasure,
    UserExport,
};
use crate::store::invites::InviteRecord;
use crate::store::sessions::SessionRecord;
use crate::threepid::Medium;

/// A binding.
#[derive(Serialize)]
pub struct Binding<'a> {
    address: &'a str,
    medium: &'a str,
    mxid: &'a str,
    not_after: u64,
    not_before: u64,
    source: &'a str,
    ts: u64,
}

impl<'a> From<&'a SourcedBinding> for Binding<'a> {
    fn from((source, b): &'a SourcedBinding) -> Binding<'a> {
        Binding {
            address: &b.address,
            medium: &b.medium,
            mxid: &b.mxid,
            not_after: b.not_after,
            not_before: b.not_before,
            source,
            ts: b.ts,
        }
    }
}

fn bindings(list: &[SourcedBinding]) -> Vec<Binding<'_>> {
    list.iter().map(Binding::from).collect()
}

/// `{"bindings": [...]}`.
#[derive(Serialize)]
pub struct Bindings<'a> {
    bindings: Vec<Binding<'a>>,
}

impl<'a> Bindings<'a> {
    /// The answer listing `list`.
    pub fn of(list: &'a [SourcedBinding]) -> Bindings<'a> {
        Bindings {
            bindings: bindings(list),
        }
    }
}

/// A session: no client secret, no token.
#[derive(Serialize)]
pub struct Session<'a> {
    address: &'a str,
    created_ms: u64,
    failed_attempts: u32,
    medium: &'a str,
    messages_sent: bool,
    purge_at_ms: u64,
    sid: &'a str,
    validated_ms: Option<u64>,
}

impl<'a> From<&'a SessionRecord> for Session<'a> {
    fn from(s: &'a SessionRecord) -> Session<'a> {
        Session {
            address: &s.address,
            created_ms: s.created_ms,
            failed_attempts: s.failed_attempts,
            medium: s.medium.as_str(),
            messages_sent: s.send_attempt.is_some(),
            purge_at_ms: s.purge_at_ms,
            sid: &s.sid,
            validated_ms: s.validated_ms,
        }
    }
}

/// `{"sessions": [...]}`.
#[derive(Serialize)]
pub struct Sessions<'a> {
    sessions: Vec<Session<'a>>,
}

impl<'a> Sessions<'a> {
    /// The answer listing `list`.
    pub fn of(list: &'a [SessionRecord]) -> Sessions<'a> {
        Sessions {
            sessions: list.iter().map(Session::from).collect(),
        }
    }
}

/// An invite.
#[derive(Serialize)]
pub struct Invite<'a> {
    address: &'a str,
    created_ms: u64,
    /// `null` for an invite that never expires.
    expires_ms: Option<u64>,
    medium: &'a str,
    room_id: &'a str,
    sender: &'a str,
    /// Only for an invite signed through sign-ed25519.
    #[serde(skip_serializing_if = "Option::is_none")]
    signed_for: Option<&'a str>,
    token: &'a str,
}

impl<'a> From<&'a InviteRecord> for Invite<'a> {
    fn from(i: &'a InviteRecord) -> Invite<'a> {
        Invite {
            address: &i.address,
            created_ms: i.created_ms,
            expires_ms: (i.expires_ms != u64::MAX).then_some(i.expires_ms),
            medium: i.medium.as_str(),
            room_id: &i.room_id,
            sender: &i.sender,
            signed_for: i.signed_for.as_deref(),
            token: &i.token,
        }
    }
}

fn invites(list: &[InviteRecord]) -> Vec<Invite<'_>> {
    list.iter().map(Invite::from).collect()
}

/// `{"invites": [...]}`.
#[derive(Serialize)]
pub struct Invites<'a> {
    invites: Vec<Invite<'a>>,
}

impl<'a> Invites<'a> {
    /// The answer listing `list`.
    pub fn of(list: &'a [InviteRecord]) -> Invites<'a> {
        Invites {
            invites: invites(list),
        }
    }
}

/// A 3PID.
#[derive(Serialize)]
struct Threepid<'a> {
    address: &'a str,
    medium: &'a str,
}

/// Where a 3PID was published, in the export of the 3PID.
#[derive(Serialize)]
struct PublishedAt<'a> {
    mxid: &'a str,
    server: &'a str,
}

/// Everything stored about a 3PID.
#[derive(Serialize)]
pub struct ExportedThreepid<'a> {
    bindings: Vec<Binding<'a>>,
    invites_received: Vec<Invite<'a>>,
    published_upstream: Vec<PublishedAt<'a>>,
    sessions: Vec<Session<'a>>,
    threepid: Threepid<'a>,
}

impl<'a> ExportedThreepid<'a> {
    /// The export of the 3PID (medium, address).
    pub fn of(medium: Medium, address: &'a str, e: &'a ThreepidExport) -> ExportedThreepid<'a> {
        ExportedThreepid {
            bindings: bindings(&e.bindings),
            invites_received: invites(&e.invites_received),
            published_upstream: e
                .published_upstream
                .iter()
                .map(|b| PublishedAt {
                    mxid: &b.mxid,
                    server: &b.server,
                })
                .collect(),
            sessions: e.sessions.iter().map(Session::from).collect(),
            threepid: Threepid {
                address,
                medium: medium.as_str(),
            },
        }
    }
}

/// A 3PID published upstream for a user, in the export of the user.
#[derive(Serialize)]
struct Published<'a> {
    address: &'a str,
    medium: &'a str,
    server: &'a str,
}

/// An access token (when it was made; the token itself is not stored).
#[derive(Serialize)]
struct AccessToken {
    created_ms: u64,
}

/// An accepted policy version.
#[derive(Serialize)]
struct Accepted<'a> {
    policy: &'a str,
    version: &'a str,
}

/// Everything stored about a user.
#[derive(Serialize)]
pub struct ExportedUser<'a> {
    accepted_terms: Vec<Accepted<'a>>,
    access_tokens: Vec<AccessToken>,
    bindings: Vec<Binding<'a>>,
    invites_sent: Vec<Invite<'a>>,
    mxid: &'a str,
    published_upstream: Vec<Published<'a>>,
}

impl<'a> ExportedUser<'a> {
    /// The export of the user `mxid`.
    pub fn of(mxid: &'a str, e: &'a UserExport) -> ExportedUser<'a> {
        ExportedUser {
            accepted_terms: e
                .accepted_terms
                .iter()
                .map(|(policy, version)| Accepted { policy, version })
                .collect(),
            access_tokens: e
                .access_tokens
                .iter()
                .map(|a| AccessToken {
                    created_ms: a.created_ms,
                })
                .collect(),
            bindings: bindings(&e.bindings),
            invites_sent: invites(&e.invites_sent),
            mxid,
            published_upstream: e
                .published_upstream
                .iter()
                .map(|(medium, address, b)| Published {
                    address,
                    medium,
                    server: &b.server,
                })
                .collect(),
        }
    }
}

/// The onbind outbox in `/stats`.
#[derive(Serialize)]
struct Outbox {
    depth: usize,
    oldest_created_ms: Option<u64>,
}

/// `/stats`.
#[derive(Serialize)]
pub struct StatsAnswer<'a> {
    disk_bytes: u64,
    journal_count: usize,
    onbind_outbox: Outbox,
    records: BTreeMap<&'a str, usize>,
    schema_version: u32,
    uptime_seconds: u64,
    version: &'static str,
}

impl<'a> From<&'a Stats> for StatsAnswer<'a> {
    fn from(s: &'a Stats) -> StatsAnswer<'a> {
        let store = &s.store;
        StatsAnswer {
            disk_bytes: store.disk_bytes,
            journal_count: store.journal_count,
            onbind_outbox: Outbox {
                depth: store.outbox_depth,
                oldest_created_ms: store.outbox_oldest_created_ms,
            },
            records: store
                .records
                .iter()
                .map(|(name, n)| (name.as_str(), *n))
                .collect(),
            schema_version: store.schema_version,
            uptime_seconds: s.uptime_seconds,
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// A key of `/keys`.
#[derive(Serialize)]
struct Key<'a> {
    id: &'a str,
    /// Only for a lost key.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    lost: bool,
    public_key: &'a str,
    signing: bool,
}

/// `/keys`.
#[derive(Serialize)]
pub struct Keys<'a> {
    keys: Vec<Key<'a>>,
}

impl<'a> Keys<'a> {
    /// The answer listing `keys`.
    pub fn of(keys: &'a [KeyInfo]) -> Keys<'a> {
        Keys {
            keys: keys
                .iter()
                .map(|k| Key {
                    id: &k.id,
                    lost: k.lost,
                    public_key: &k.public_key,
                    signing: k.signing,
                })
                .collect(),
        }
    }
}

/// `{"deleted": n, "ok": true}`.
#[derive(Serialize)]
pub struct Deleted {
    deleted: usize,
    ok: bool,
}

impl Deleted {
    /// `n` records deleted.
    pub fn of(n: usize) -> Deleted {
        Deleted {
            deleted: n,
            ok: true,
        }
    }
}

/// What an erasure removed.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Erased {
    /// Of a 3PID.
    Threepid {
        /// Bindings.
        bindings: usize,
        /// Invites to it.
        invites_received: usize,
        /// Validation sessions.
        sessions: usize,
        /// Unbinds queued for upstream identity servers.
        upstream_unbinds: usize,
    },
    /// Of a user.
    User {
        /// Access tokens.
        access_tokens: usize,
        /// Bindings to it.
        bindings: usize,
        /// Invites it sent.
        invites_sent: usize,
        /// Unbinds queued for upstream identity servers.
        upstream_unbinds: usize,
    },
}

impl From<ThreepidErasure> for Erased {
    fn from(e: ThreepidErasure) -> Erased {
        Erased::Threepid {
            bindings: e.bindings,
            invites_received: e.invites_received,
            sessions: e.sessions,
            upstream_unbinds: e.upstream_unbinds,
        }
    }
}

impl From<UserErasure> for Erased {
    fn from(e: UserErasure) -> Erased {
        Erased::User {
            access_tokens: e.access_tokens,
            bindings: e.bindings,
            invites_sent: e.invites_sent,
            upstream_unbinds: e.upstream_unbinds,
        }
    }
}

impl std::fmt::Display for Erased {
    /// As JSON, for the log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let json = serde_json::to_string(self).map_err(|_| std::fmt::Error)?;
        f.write_str(&json)
    }
}

/// `{"erased": {...}, "ok": true}`.
#[derive(Serialize)]
pub struct Erasure {
    erased: Erased,
    ok: bool,
}

impl Erasure {
    /// The answer of an erasure.
    pub fn of(erased: Erased) -> Erasure {
        Erasure { erased, ok: true }
    }
}

/// `{"ok": true, "signing_key": id}`.
#[derive(Serialize)]
pub struct Rotated<'a> {
    ok: bool,
    signing_key: &'a str,
}

impl<'a> Rotated<'a> {
    /// The new signing key `id`.
    pub fn of(id: &'a str) -> Rotated<'a> {
        Rotated {
            ok: true,
            signing_key: id,
        }
    }
}

/// `{"dir": dir, "ok": true, "records": n}`.
#[derive(Serialize)]
pub struct BackedUp<'a> {
    dir: &'a std::path::Path,
    ok: bool,
    records: u64,
}

impl<'a> BackedUp<'a> {
    /// `records` copied into `dir`.
    pub fn of(dir: &'a std::path::Path, records: u64) -> BackedUp<'a> {
        BackedUp {
            dir,
            ok: true,
            records,
        }
    }
}

/// A record an import refused.
#[derive(Serialize)]
struct Rejected<'a> {
    index: usize,
    reason: &'a str,
}

/// The answer of an import batch.
#[derive(Serialize)]
pub struct Imported<'a> {
    kept_newer: usize,
    ok: bool,
    received: usize,
    rejected: Vec<Rejected<'a>>,
    unchanged: usize,
    written: usize,
}

impl<'a> Imported<'a> {
    /// The outcome of a batch of `received` bindings.
    pub fn of(received: usize, outcome: &'a ImportOutcome) -> Imported<'a> {
        Imported {
            kept_newer: outcome.kept_newer,
            ok: true,
            received,
            rejected: outcome
                .rejected
                .iter()
                .map(|(index, reason)| Rejected {
                    index: *index,
                    reason,
                })
                .collect(),
            unchanged: outcome.unchanged,
            written: outcome.written,
        }
    }
}
