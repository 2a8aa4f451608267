//! What operators do through the admin API: inspect and delete bindings, list sessions and
//! invites, export everything stored about a 3PID or a user (a GDPR access request) and erase it
//! (a GDPR erasure request, forwarded to the upstream identity servers a 3PID was published
//! at), import the bindings of another identity server, manage the signing keys, back up the
//! store, and the counts behind `/stats` and `/metrics`.
//!
//! 3PIDs come in normalised (see [`super::bindings::normalise_threepid`]), user ids as
//! [`UserId`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::bindings::{BUILTIN, check_user_id, normalise_threepid};
use super::pepper::Peppers;
use super::remote::RemoteSessions;
use crate::error::{Error, ErrorKind, Result};
use crate::ids::UserId;
use crate::keys::KeyRing;
use crate::store::Store;
use crate::store::accounts::AccountRecord;
use crate::store::admin::StoreStats;
use crate::store::bindings::BindingRecord;
use crate::store::invites::InviteRecord;
use crate::store::remote::RemoteBinding;
use crate::store::sessions::SessionRecord;
use crate::threepid::Medium;

/// A binding and the identity store it comes from.
pub type SourcedBinding = (String, BindingRecord);

/// Everything stored about a 3PID.
#[derive(Debug)]
pub struct ThreepidExport {
    /// Its bindings, from every source.
    pub bindings: Vec<SourcedBinding>,
    /// Its validation sessions.
    pub sessions: Vec<SessionRecord>,
    /// The invites to it.
    pub invites_received: Vec<InviteRecord>,
    /// Where it was published upstream through us.
    pub published_upstream: Option<RemoteBinding>,
}

/// Everything stored about a Matrix user.
#[derive(Debug)]
pub struct UserExport {
    /// The 3PIDs published upstream through us for it: (medium, address, binding).
    pub published_upstream: Vec<(String, String, RemoteBinding)>,
    /// The bindings to it, from every source.
    pub bindings: Vec<SourcedBinding>,
    /// Its access tokens (their records: the tokens themselves are not stored).
    pub access_tokens: Vec<AccountRecord>,
    /// The (policy, version) pairs it accepted.
    pub accepted_terms: Vec<(String, String)>,
    /// The invites it sent.
    pub invites_sent: Vec<InviteRecord>,
}

/// What erasing a 3PID removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreepidErasure {
    /// Bindings.
    pub bindings: usize,
    /// Validation sessions.
    pub sessions: usize,
    /// Invites to it.
    pub invites_received: usize,
    /// Unbinds queued for upstream identity servers.
    pub upstream_unbinds: usize,
}

/// What erasing a user removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserErasure {
    /// Bindings to it.
    pub bindings: usize,
    /// Access tokens.
    pub access_tokens: usize,
    /// Invites it sent.
    pub invites_sent: usize,
    /// Unbinds queued for upstream identity servers.
    pub upstream_unbinds: usize,
}

/// The store's counts and the server's uptime (`/stats`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// The store's counts.
    pub store: StoreStats,
    /// Seconds since the start.
    pub uptime_seconds: u64,
}

/// The gauges of `/metrics` besides the counters.
#[derive(Debug, Clone, PartialEq)]
pub struct Gauges {
    /// `onbind` calls waiting.
    pub onbind_depth: usize,
    /// Age of the oldest waiting `onbind` call, in ms.
    pub onbind_oldest_ms: u64,
    /// Binds and unbinds waiting to be forwarded upstream.
    pub remote_depth: usize,
    /// Age of the oldest of them, in ms.
    pub remote_oldest_ms: u64,
    /// Size of the store on disk.
    pub disk_bytes: u64,
    /// Seconds since the start.
    pub uptime_seconds: f64,
}

/// A public key the server answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// `ed25519:0`.
    pub id: String,
    /// Unpadded base64.
    pub public_key: String,
    /// The key that signs now.
    pub signing: bool,
    /// The private half is lost: it answers isvalid, signs nothing.
    pub lost: bool,
}

/// What one import batch did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    /// Bindings stored (new, or replacing an older binding to another user).
    pub written: usize,
    /// Bindings already here for the same user: left as they are.
    pub unchanged: usize,
    /// Bindings left alone because the one here, to another user, is newer.
    pub kept_newer: usize,
    /// Records refused: (index in the batch, reason).
    pub rejected: Vec<(usize, String)>,
}

/// The operator's service.
pub struct Admin {
    store: Arc<Store>,
    peppers: Arc<Peppers>,
    keys: Arc<KeyRing>,
    remote: Arc<RemoteSessions>,
    key_path: PathBuf,
    started: Instant,
}

impl Admin {
    /// The service over `store`; the signing keys of `keys` live in `key_path`; erasures are
    /// forwarded through `remote`; `started` is when the server started.
    pub fn new(
        store: Arc<Store>,
        peppers: Arc<Peppers>,
        keys: Arc<KeyRing>,
        remote: Arc<RemoteSessions>,
        key_path: PathBuf,
        started: Instant,
    ) -> Admin {
        Admin {
            store,
            peppers,
            keys,
            remote,
            key_path,
            started,
        }
    }

    /// The store's counts and the uptime.
    pub fn stats(&self) -> Result<Stats> {
        Ok(Stats {
            store: self.store.stats()?,
            uptime_seconds: self.started.elapsed().as_secs(),
        })
    }

    /// The gauges of `/metrics` at `now_ms`.
    pub fn gauges(&self, now_ms: u64) -> Result<Gauges> {
        let outbox = self.store.outbox()?;
        let remote = self.store.remote_outbox()?;
        let age = |created: u64| now_ms.saturating_sub(created);
        Ok(Gauges {
            onbind_depth: outbox.len(),
            onbind_oldest_ms: outbox
                .iter()
                .map(|(_, e)| age(e.created_ms))
                .max()
                .unwrap_or(0),
            remote_depth: remote.len(),
            remote_oldest_ms: remote
                .iter()
                .map(|(_, c)| age(c.created_ms))
                .max()
                .unwrap_or(0),
            disk_bytes: self.store.disk_bytes()?,
            uptime_seconds: self.started.elapsed().as_secs_f64(),
        })
    }

    /// Bindings in 3PID order, starting after the 3PID `after` (medium, address), at most
    /// `limit`.
    pub fn list_bindings(
        &self,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<SourcedBinding>> {
        self.store.list_bindings(after, limit)
    }

    /// The bindings of a 3PID, from every source.
    pub fn bindings_of_threepid(
        &self,
        medium: Medium,
        address: &str,
    ) -> Result<Vec<SourcedBinding>> {
        self.store.bindings_of(medium.as_str(), address)
    }

    /// The bindings to a user, from every source.
    pub fn bindings_of_user(&self, mxid: &UserId) -> Result<Vec<SourcedBinding>> {
        self.store.bindings_of_user(mxid)
    }

    /// Validation sessions, at most `limit`.
    pub fn list_sessions(&self, limit: usize) -> Result<Vec<SessionRecord>> {
        self.store.list_sessions(None, limit)
    }

    /// Invites, at most `limit`.
    pub fn list_invites(&self, limit: usize) -> Result<Vec<InviteRecord>> {
        self.store.list_invites(None, None, limit)
    }

    /// Deletes the invite with `token`, and returns it: 404 `M_NOT_FOUND` when there is none.
    pub fn delete_invite(&self, token: &str) -> Result<InviteRecord> {
        let invite = self
            .store
            .invite(token)?
            .ok_or_else(|| Error::new(ErrorKind::NotFound, "No invite with this token"))?;
        self.store.delete_invite(&invite)?;
        Ok(invite)
    }

    /// Everything stored about a 3PID.
    pub fn export_threepid(&self, medium: Medium, address: &str) -> Result<ThreepidExport> {
        let store = &self.store;
        Ok(ThreepidExport {
            bindings: store.bindings_of(medium.as_str(), address)?,
            sessions: store.list_sessions(Some((medium, address)), usize::MAX)?,
            invites_received: store.list_invites(Some((medium, address)), None, usize::MAX)?,
            published_upstream: store.remote_binding(medium, address)?,
        })
    }

    /// Everything stored about a Matrix user.
    pub fn export_user(&self, mxid: &UserId) -> Result<UserExport> {
        let store = &self.store;
        Ok(UserExport {
            published_upstream: store.remote_bindings_of_user(mxid)?,
            bindings: store.bindings_of_user(mxid)?,
            access_tokens: store
                .tokens_of_user(mxid)?
                .into_iter()
                .map(|(_, a)| a)
                .collect(),
            accepted_terms: store.accepted_terms(mxid)?,
            invites_sent: store.list_invites(None, Some(mxid), usize::MAX)?,
        })
    }

    /// Removes every binding of a 3PID (all sources); returns how many. Durable when this
    /// returns.
    pub fn delete_threepid_bindings(&self, medium: Medium, address: &str) -> Result<usize> {
        let guard = self.peppers.for_writes();
        let all = guard.all();
        let mut removed = 0;
        for (source, _) in self.store.bindings_of(medium.as_str(), address)? {
            if self
                .store
                .delete_binding(&source, medium.as_str(), address, &all)?
                .is_some()
            {
                removed += 1;
            }
        }
        self.store.durable()?;
        Ok(removed)
    }

    /// Removes every binding to `mxid`; returns how many. Durable when this returns.
    pub fn delete_user_bindings(&self, mxid: &UserId) -> Result<usize> {
        let guard = self.peppers.for_writes();
        let all = guard.all();
        let mut removed = 0;
        for (source, b) in self.store.bindings_of_user(mxid)? {
            if self
                .store
                .delete_binding(&source, &b.medium, &b.address, &all)?
                .is_some()
            {
                removed += 1;
            }
        }
        self.store.durable()?;
        Ok(removed)
    }

    /// Erases a 3PID: its bindings, sessions and the invites to it; a binding published
    /// upstream through us is unbound there too (the outbox keeps the call until then).
    /// Bindings that an identity store syncs in (`synapse`, `static`) come back with the next
    /// sync unless removed there too.
    pub fn erase_threepid(
        &self,
        medium: Medium,
        address: &str,
        now_ms: u64,
    ) -> Result<ThreepidErasure> {
        let store = &self.store;
        let bindings = self.delete_threepid_bindings(medium, address)?;
        let sessions = store.list_sessions(Some((medium, address)), usize::MAX)?;
        for s in &sessions {
            store.delete_session(s)?;
        }
        let invites = store.list_invites(Some((medium, address)), None, usize::MAX)?;
        for i in &invites {
            store.delete_invite(i)?;
        }
        store.durable()?;
        let mut upstream_unbinds = 0;
        if let Some(b) = store.remote_binding(medium, address)?
            && self
                .remote
                .forward_unbind((medium, address, &b.mxid), None, now_ms)?
        {
            upstream_unbinds += 1;
        }
        Ok(ThreepidErasure {
            bindings,
            sessions: sessions.len(),
            invites_received: invites.len(),
            upstream_unbinds,
        })
    }

    /// Erases a user: bindings to it, access tokens, accepted terms and the invites it sent;
    /// the 3PIDs published upstream through us for it are unbound there too.
    pub fn erase_user(&self, mxid: &UserId, now_ms: u64) -> Result<UserErasure> {
        let store = &self.store;
        let bindings = self.delete_user_bindings(mxid)?;
        let access_tokens = store.erase_account(mxid)?;
        let invites = store.list_invites(None, Some(mxid), usize::MAX)?;
        for i in &invites {
            store.delete_invite(i)?;
        }
        let mut upstream_unbinds = 0;
        for (medium, address, _) in store.remote_bindings_of_user(mxid)? {
            let Some(medium) = Medium::parse(&medium) else {
                continue;
            };
            if self
                .remote
                .forward_unbind((medium, &address, mxid), None, now_ms)?
            {
                upstream_unbinds += 1;
            }
        }
        Ok(UserErasure {
            bindings,
            access_tokens,
            invites_sent: invites.len(),
            upstream_unbinds,
        })
    }

    /// The signing key first, then the older keys that still answer, then the lost ones.
    pub fn keys(&self) -> Vec<KeyInfo> {
        let current = self
            .keys
            .all()
            .into_iter()
            .enumerate()
            .map(|(i, k)| KeyInfo {
                id: k.id().to_string(),
                public_key: k.public_key_base64(),
                signing: i == 0,
                lost: false,
            });
        let lost = self
            .keys
            .lost()
            .into_iter()
            .map(|(id, public_key)| KeyInfo {
                id,
                public_key,
                signing: false,
                lost: true,
            });
        current.chain(lost).collect()
    }

    /// Makes a new signing key; older keys keep answering. Returns its id.
    pub fn rotate_keys(&self) -> Result<String> {
        let id = self.keys.rotate().map_err(Error::internal)?;
        // Recorded so that a later loss of the key file can keep the key answering isvalid.
        if let Err(e) = self.store.record_public_keys(&self.keys.public_keys(), &[]) {
            log::error!("admin: cannot record the public key of {id} in the store: {e}");
        }
        Ok(id)
    }

    /// Writes a consistent copy of the store and the key file into `dir` (absolute, holding no
    /// store yet), while serving; returns how many records were copied. A failure says why,
    /// for the operator who runs the command, not only in the server log.
    pub fn backup(&self, dir: &Path) -> Result<u64> {
        if !dir.is_absolute() {
            return Err(Error::new(
                ErrorKind::InvalidParam,
                "'dir' must be an absolute path",
            ));
        }
        let failed = |e: Error| {
            log::error!("admin: backup to {} failed: {e}", dir.display());
            match (e.kind(), e.log_detail()) {
                (ErrorKind::Internal, Some(detail)) => {
                    Error::new(ErrorKind::Internal, format!("backup failed: {detail}"))
                }
                _ => e,
            }
        };
        let records = self.store.backup(dir).map_err(failed)?;
        let key_path = &self.key_path;
        let key_copy = dir.join("signing.key");
        let key_text = std::fs::read(key_path).map_err(|e| {
            failed(Error::new(
                ErrorKind::Internal,
                format!("cannot read the key file {}: {e}", key_path.display()),
            ))
        })?;
        crate::keys::write_private_file(&key_copy, &key_text).map_err(|e| {
            failed(Error::new(
                ErrorKind::Internal,
                format!("cannot copy the key file to {}: {e}", key_copy.display()),
            ))
        })?;
        Ok(records)
    }

    /// Imports bindings from another identity server (`oxisd admin import`) as binds made
    /// here. Each record is checked again (normalised 3PID, valid user id, sane times). A 3PID
    /// this server already binds to the same user keeps its binding untouched, so importing
    /// twice changes nothing; one bound here to another user more recently also stays. The
    /// rest is written in one bulk write, indexed under every pepper in use. `finish` compacts
    /// the binding tables afterwards (the import's last batch). Durable when this returns.
    pub fn import_bindings(
        &self,
        records: Vec<BindingRecord>,
        finish: bool,
    ) -> Result<ImportOutcome> {
        let mut outcome = ImportOutcome::default();
        let mut fresh = Vec::with_capacity(records.len());
        for (i, r) in records.into_iter().enumerate() {
            if let Err(reason) = check_import(&r) {
                outcome.rejected.push((i, reason));
                continue;
            }
            match self.store.binding(&r.medium, &r.address, BUILTIN)? {
                Some(here) if here.mxid == r.mxid => outcome.unchanged += 1,
                Some(here) if here.ts > r.ts => outcome.kept_newer += 1,
                _ => fresh.push(r),
            }
        }
        if !fresh.is_empty() {
            let guard = self.peppers.for_writes();
            outcome.written = self.store.put_bindings(BUILTIN, fresh, &guard.all())?;
        }
        if finish {
            self.store.compact_bindings()?;
        }
        Ok(outcome)
    }
}

/// Why an imported binding is refused, if it is.
fn check_import(r: &BindingRecord) -> std::result::Result<(), String> {
    let (m, a) = normalise_threepid(&r.medium, &r.address).map_err(|e| e.message().to_string())?;
    if m.as_str() != r.medium || a != r.address {
        return Err(format!("the address is not in normal form ('{a}')"));
    }
    check_user_id(&r.mxid).map_err(|e| e.message().to_string())?;
    if r.not_before > r.not_after {
        return Err("not_before is after not_after".into());
    }
    Ok(())
}
