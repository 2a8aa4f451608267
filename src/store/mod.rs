//! The store: one fjall database in the data directory, opened once, with one keyspace per kind
//! of record. Only this module (and its children) mention fjall.
//!
//! Keyspaces and their key layouts:
//! - `meta`: `schema_version` -> u32 big-endian; `public_keys` -> JSON list of every signing
//!   key's public half, `[{"id": "ed25519:0", "public_key": "...", "lost": false}]` (see
//!   [`Store::record_public_keys`]); `ack_mark` -> the mark of the last group commit (32 bytes,
//!   see [`durability`]); other single values of the server.
//!
//! Next to fjall's files, `oxisd-acknowledged` holds the mark of the last acknowledged group
//! commit; a store holding an older mark lost acknowledged writes (see [`durability`]).
//! - `sid_session`, `triple_sid`, `purge_sid`: validation sessions (see [`sessions`]).
//! - `tokenhash_account`, `user_terms`: accounts and accepted terms (see [`accounts`]).
//! - `threepid_binding`, `pephash_threepid`: bindings and lookup hashes (see [`bindings`]).
//! - `token_invite`, `threepid_invite`, `ephemeral_invite`, `expiry_invite`, `onbind_outbox`:
//!   3PID invites and their deliveries (see [`invites`]).
//! - `remote_outbox`, `remote_binding`: binds and unbinds forwarded to upstream identity
//!   servers (see [`remote`]).
//!
//! Writes that a response acknowledges must be on disk first: call [`Store::durable`] after
//! writing. Concurrent callers share one `fdatasync` (see [`durability`]).

pub mod accounts;
pub mod admin;
pub mod bindings;
mod bulk;
#[cfg(test)]
mod disk_tests;
mod durability;
pub mod invites;
pub mod remote;
pub mod sessions;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use crate::error::{Error, Result};
use bulk::open_bulk_keyspace;
use durability::{AckMark, GroupSync, Mark};

/// The layout version this build writes. A store with a higher version is refused; a lower one
/// is migrated at open.
pub const SCHEMA_VERSION: u32 = 2;

const SCHEMA_KEY: &[u8] = b"schema_version";

const ACK_KEY: &[u8] = b"ack_mark";

/// Written by [`Store::collect_old_versions`] only to give `meta` a memtable to rotate.
const VERSION_GC_KEY: &[u8] = b"version_gc";

/// The opened store.
pub struct Store {
    db: Database,
    meta: Keyspace,
    sessions: sessions::Keyspaces,
    accounts: accounts::Keyspaces,
    bindings: bindings::Keyspaces,
    invites: invites::Keyspaces,
    remote: remote::Keyspaces,
    sync: GroupSync,
    /// The high-water mark of acknowledged writes, outside the journal (see [`durability`]).
    ack: AckMark,
    path: PathBuf,
    /// When a write was last made durable (ms since the epoch; 0 once flushed while idle).
    last_write_ms: AtomicU64,
    /// Serialises binding writes: each rewrites a 3PID's hash entry from all its sources.
    binding_writes: std::sync::Mutex<()>,
    /// True when this start created the store (it held no schema version yet).
    created: bool,
}

const PUBLIC_KEYS_KEY: &[u8] = b"public_keys";

/// The public half of a signing key, as recorded in the store.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RecordedKey {
    /// `ed25519:0`.
    pub id: String,
    /// Unpadded base64.
    pub public_key: String,
    /// The key file lost its private half: it answers isvalid but signs no more.
    #[serde(default)]
    pub lost: bool,
}

/// Memtable size of the keyspaces other than the bindings' (see `bulk.rs`). Small: memory
/// stays low on a small box (1 MiB instead of 2 took the peak RSS of the benchmark's 8-client
/// requestToken load from 24 - 27 MiB to 20 - 21 MiB, for up to about 13 % of that load's
/// throughput, from more frequent flushes), and a restart after a crash replays at most this
/// much journal per keyspace. fjall fixes it when a keyspace is created: stores made before
/// keep their 2 MiB.
const MEMTABLE_BYTES: u64 = 1024 * 1024;

fn open_keyspace(db: &Database, name: &str) -> std::result::Result<Keyspace, OpenError> {
    db.keyspace(name, || {
        KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES)
    })
    .map_err(|e| OpenError(describe_open_error(&format!("keyspace {name}"), &e)))
}

/// What an error of `Database::open` (or of opening a keyspace) means for the operator: the
/// lock hint only when another process holds the lock; damage and permissions named as such.
fn describe_open_error(what: &str, e: &fjall::Error) -> String {
    use fjall::Error as F;
    let io_kind = match e {
        F::Io(io) => Some(io.kind()),
        F::Storage(fjall::LsmError::Io(io)) => Some(io.kind()),
        _ => None,
    };
    match (e, io_kind) {
        (F::Locked, _) => {
            format!("cannot open {what}: it is locked (is another oxisd running on it?): {e}")
        }
        (_, Some(std::io::ErrorKind::PermissionDenied)) => format!(
            "cannot open {what}: permission denied; the user oxisd runs as must own (or be able to read and write) every file below it: {e}"
        ),
        (_, Some(std::io::ErrorKind::StorageFull)) => {
            format!("cannot open {what}: the disk is full: {e}")
        }
        (_, Some(_)) => format!("cannot open {what}: I/O error: {e}"),
        (F::InvalidVersion(Some(v)), _) => format!(
            "cannot open {what}: it was written in format version {v:?}, which this oxisd cannot read: {e}"
        ),
        _ => format!(
            "cannot open {what}: the store is damaged ({e}); restore the data directory from a backup (see 'oxisd admin backup' in docs/TROUBLESHOOTING.md)"
        ),
    }
}

impl From<fjall::Error> for Error {
    fn from(e: fjall::Error) -> Self {
        Error::internal(format_args!("store: {e}"))
    }
}

/// Why the store could not be opened.
#[derive(Debug)]
pub struct OpenError(pub String);

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OpenError {}

impl Store {
    /// Opens (or creates) the database at `dir`, checks and records the schema version.
    pub fn open(dir: &Path) -> std::result::Result<Store, OpenError> {
        Store::open_with_cache(dir, 4)
    }

    /// Opens the store with a block cache of `cache_mib` MiB.
    pub fn open_with_cache(dir: &Path, cache_mib: u64) -> std::result::Result<Store, OpenError> {
        Store::open_with_options(dir, cache_mib, false)
    }

    /// Opens the store with a block cache of `cache_mib` MiB. A store that lost acknowledged
    /// writes (a damaged journal) is refused unless `accept_data_loss`; then the loss is logged
    /// and the store opens as it is.
    pub fn open_with_options(
        dir: &Path,
        cache_mib: u64,
        accept_data_loss: bool,
    ) -> std::result::Result<Store, OpenError> {
        let path = dir.join("db");
        std::fs::create_dir_all(&path).map_err(|e| {
            OpenError(format!(
                "cannot create data directory {}: {e}",
                path.display()
            ))
        })?;
        let db = Database::builder(&path)
            .cache_size(cache_mib.max(1) * 1024 * 1024)
            .open()
            .map_err(|e| {
                OpenError(describe_open_error(
                    &format!("the store at {}", path.display()),
                    &e,
                ))
            })?;
        let meta = open_keyspace(&db, "meta")?;
        let sessions = sessions::Keyspaces::open(&db)?;
        let accounts = accounts::Keyspaces::open(&db)?;
        let bindings = bindings::Keyspaces::open(&db)?;
        let invites = invites::Keyspaces::open(&db)?;
        let remote = remote::Keyspaces::open(&db)?;
        let (ack, acknowledged) = AckMark::open(&path).map_err(|e| {
            OpenError(format!(
                "cannot open the mark of acknowledged writes in {}: {e}",
                path.display()
            ))
        })?;
        let mut store = Store {
            db,
            meta,
            sessions,
            accounts,
            bindings,
            invites,
            remote,
            sync: GroupSync::default(),
            ack,
            path,
            last_write_ms: AtomicU64::new(0),
            binding_writes: std::sync::Mutex::new(()),
            created: false,
        };
        store.created = store.check_schema()?;
        store.check_acknowledged(acknowledged, accept_data_loss)?;
        Ok(store)
    }

    /// Compares the mark of the last acknowledged group commit (from the file) with the last
    /// one the store holds: an older one in the store means the journal lost writes it had
    /// acknowledged. Then writes a fresh mark in both places.
    fn check_acknowledged(
        &self,
        acknowledged: Option<Mark>,
        accept_data_loss: bool,
    ) -> std::result::Result<(), OpenError> {
        let stored = self
            .meta
            .get(ACK_KEY)
            .map_err(|e| OpenError(format!("cannot read the mark of acknowledged writes: {e}")))?
            .and_then(|v| Mark::decode(&v))
            .unwrap_or_default();
        if let Some(acked) = acknowledged.filter(|a| a.n > stored.n) {
            let when =
                |ms: u64| crate::util::time::utc_timestamp(crate::util::time::from_epoch_ms(ms));
            let recovered = self.db.seqno();
            let batches = if acked.seqno > recovered {
                format!(
                    ", about {} write batches (sequence numbers {recovered} to {})",
                    acked.seqno - recovered,
                    acked.seqno - 1
                )
            } else {
                String::new()
            };
            let since = if stored.n == 0 {
                "since the store was created".to_string()
            } else {
                format!("after group commit #{} of {}", stored.n, when(stored.ms))
            };
            let what = format!(
                "the store at {} lost writes it had acknowledged (its journal is damaged): {} group commits of one or more acknowledged writes each{batches}, made {since} up to #{} of {}, are gone",
                self.path.display(),
                acked.n - stored.n,
                acked.n,
                when(acked.ms)
            );
            if !accept_data_loss {
                return Err(OpenError(format!(
                    "{what}. Restore the data directory from a backup ('oxisd admin backup' makes them; see docs/TROUBLESHOOTING.md), or start with 'oxisd serve --accept-data-loss' to go on without those writes"
                )));
            }
            log::error!("{what}; starting anyway (--accept-data-loss)");
        }
        self.ack
            .continue_after(stored.n.max(acknowledged.map_or(0, |a| a.n)));
        if stored.n > 0 && acknowledged == Some(stored) {
            // Both places agree (a clean stop, or a crash after the file caught up): nothing
            // to write, and a start costs no flush.
            return Ok(());
        }
        self.commit_mark().map_err(|e| {
            OpenError(format!(
                "cannot record the mark of acknowledged writes: {e}"
            ))
        })
    }

    /// One group commit: the mark into the journal after the writes it covers, the journal
    /// synced, then the mark into its file: at once at open, by the mark's writer thread after
    /// an ordinary commit (the acknowledgement does not wait for a second flush).
    fn commit_mark(&self) -> std::result::Result<(), String> {
        let mark = self.group_commit()?;
        self.ack.record(&mark).map_err(|e| {
            format!(
                "cannot write the mark of acknowledged writes to {}: {e}",
                self.ack.path().display()
            )
        })
    }

    /// The journal part of [`Store::commit_mark`]; the mark goes to the writer thread.
    fn group_commit(&self) -> std::result::Result<Mark, String> {
        let mark = self.ack.next_mark(self.db.seqno() + 1);
        self.meta
            .insert(ACK_KEY, mark.encode())
            .and_then(|_| self.db.persist(PersistMode::SyncData))
            .map_err(|e| e.to_string())?;
        Ok(mark)
    }

    /// True when this start created the store: it held nothing before.
    pub fn created(&self) -> bool {
        self.created
    }

    /// The public keys recorded with [`Store::record_public_keys`], in the order recorded.
    pub fn recorded_public_keys(&self) -> Result<Vec<RecordedKey>> {
        match self.meta.get(PUBLIC_KEYS_KEY)? {
            None => Ok(Vec::new()),
            Some(v) => serde_json::from_slice(&v).map_err(|e| {
                Error::internal(format_args!("the public key record is corrupt: {e}"))
            }),
        }
    }

    /// Records the public halves of `keys` (`(id, public key)`) next to those recorded before,
    /// which are kept; the ids in `lost` are marked lost. Durable when it returns.
    pub fn record_public_keys(&self, keys: &[(String, String)], lost: &[String]) -> Result<()> {
        let mut recorded = self.recorded_public_keys()?;
        let before = recorded.clone();
        for (id, public_key) in keys {
            match recorded.iter_mut().find(|r| r.id == *id) {
                // A key file that holds the key again (restored from a backup) revives it.
                Some(r) if r.public_key == *public_key => r.lost = false,
                Some(r) => {
                    // The same id with another key: the key file was replaced on purpose
                    // (say, by the old server's key when migrating). The key file wins; the
                    // replaced key answers no more.
                    log::warn!(
                        "the key file's {id} is not the key the store recorded under that id; recording the key file's, the other one no longer answers /pubkey"
                    );
                    r.public_key = public_key.clone();
                    r.lost = false;
                }
                None => recorded.push(RecordedKey {
                    id: id.clone(),
                    public_key: public_key.clone(),
                    lost: false,
                }),
            }
        }
        for r in recorded.iter_mut() {
            if lost.contains(&r.id) {
                r.lost = true;
            }
        }
        if recorded == before {
            return Ok(());
        }
        let json = serde_json::to_vec(&recorded)
            .map_err(|e| Error::internal(format_args!("public key record: {e}")))?;
        self.meta.insert(PUBLIC_KEYS_KEY, json)?;
        self.durable()
    }

    /// Checks the schema version, recording it in a new store; true when the store was new.
    fn check_schema(&self) -> std::result::Result<bool, OpenError> {
        let found = self
            .meta
            .get(SCHEMA_KEY)
            .map_err(|e| OpenError(format!("cannot read the schema version: {e}")))?;
        match found {
            None => {
                self.meta
                    .insert(SCHEMA_KEY, SCHEMA_VERSION.to_be_bytes())
                    .and_then(|_| self.db.persist(PersistMode::SyncData))
                    .map_err(|e| OpenError(format!("cannot record the schema version: {e}")))?;
                Ok(true)
            }
            Some(v) => {
                let version = <[u8; 4]>::try_from(&*v)
                    .map(u32::from_be_bytes)
                    .map_err(|_| {
                        OpenError("the store's schema version record is corrupt".into())
                    })?;
                if version > SCHEMA_VERSION {
                    return Err(OpenError(format!(
                        "the store at {} has schema version {version}, newer than this oxisd understands ({SCHEMA_VERSION}); run a newer oxisd",
                        self.path.display()
                    )));
                }
                if version < SCHEMA_VERSION {
                    self.upgrade(version).map_err(|e| {
                        OpenError(format!(
                            "cannot upgrade the store from schema version {version}: {e}"
                        ))
                    })?;
                }
                Ok(false)
            }
        }
    }

    /// Brings a store written by an older oxisd to [`SCHEMA_VERSION`], durably.
    fn upgrade(&self, from: u32) -> Result<()> {
        if from < 2 {
            // Version 2 keeps every source's binding in the hash entries, and an index of
            // each source's 3PIDs.
            self.reindex_hashes()?;
            self.index_sources()?;
        }
        self.meta.insert(SCHEMA_KEY, SCHEMA_VERSION.to_be_bytes())?;
        self.db.persist(PersistMode::SyncData)?;
        Ok(())
    }

    /// Serialises writes of bindings (see `bindings`); a poisoned lock is still a lock.
    fn lock_binding_writes(&self) -> std::sync::MutexGuard<'_, ()> {
        self.binding_writes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The schema version recorded in the store.
    pub fn schema_version(&self) -> Result<u32> {
        let v = self
            .meta
            .get(SCHEMA_KEY)?
            .ok_or_else(|| Error::internal("schema missing"))?;
        <[u8; 4]>::try_from(&*v)
            .map(u32::from_be_bytes)
            .map_err(|_| Error::internal("schema version corrupt"))
    }

    /// Writes the memtables of keyspaces that hold data out to tables, when nothing was written
    /// for `quiet_ms`, so an idle server gives their memory back. Returns whether it did.
    pub fn flush_when_idle(&self, now_ms: u64, quiet_ms: u64) -> Result<bool> {
        let last = self.last_write_ms.load(Ordering::Relaxed);
        if last == 0 || now_ms.saturating_sub(last) < quiet_ms {
            return Ok(false);
        }
        // Only once per quiet period.
        self.last_write_ms.store(0, Ordering::Relaxed);
        for keyspace in self.keyspaces() {
            // Does nothing for an empty memtable.
            keyspace.rotate_memtable()?;
        }
        // The flushes run in fjall's workers; what they wrote out is freed by the next version
        // GC, so wait for them (briefly: this is the maintenance thread) before asking for it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while self.db.outstanding_flushes() > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        self.collect_old_versions()?;
        Ok(true)
    }

    /// Frees what fjall still holds for data that is in tables already: memtables that were
    /// written out, and the files of tables that compactions or ingestions replaced (without
    /// this, the tables `compact_bindings` replaced, a second copy of every binding, stayed on
    /// disk until the next flush or start). A tree keeps its old
    /// versions (and with them those memtables and files) until a version GC with a watermark
    /// past them. fjall 3.1 moves that watermark and runs the GC when a keyspace rotates a
    /// memtable that holds data, but not when a flush or compaction ends, so after a burst of
    /// writes an idle server kept the burst's memtables (MiBs of RSS) for good. No call of the
    /// crate asks for that GC; a small write to `meta` and its rotation trigger it. The write
    /// need not be durable: losing it loses nothing.
    pub(super) fn collect_old_versions(&self) -> Result<()> {
        self.meta
            .insert(VERSION_GC_KEY, self.db.seqno().to_be_bytes())?;
        self.meta.rotate_memtable()?;
        Ok(())
    }

    /// Blocks until every write made before this call is on disk. Concurrent callers share
    /// one flush.
    pub fn durable(&self) -> Result<()> {
        // Never 0, which means "no write since the last flush".
        self.last_write_ms
            .store(crate::util::time::now_ms().max(1), Ordering::Relaxed);
        self.sync
            .wait_durable(|| self.group_commit().map(|mark| self.ack.record_soon(mark)))
            .map_err(|e| Error::internal(format_args!("store flush failed: {e}")))
    }

    /// Where the database files live.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes everything to disk; called once at shutdown. Memtables are written out as
    /// tables too, so the next start rebuilds no memtable from the journal (fjall 3.1 still
    /// reads the whole active journal at every open: see docs/PERFORMANCE.md).
    pub fn close(&self) -> Result<()> {
        self.db.persist(PersistMode::SyncAll)?;
        // The mark of the last acknowledged commit, if its writer has not written it yet.
        self.ack.flush_pending();
        for keyspace in self.keyspaces() {
            keyspace.rotate_memtable()?;
        }
        // Give the flushes a moment, but never hang a shutdown on them: what is not flushed
        // is in the journal, which is durable already.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while self.db.outstanding_flushes() > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        self.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }

    fn keyspaces(&self) -> Vec<&Keyspace> {
        let mut all = vec![&self.meta];
        all.extend(self.sessions.all());
        all.extend(self.accounts.all());
        all.extend(self.bindings.all());
        all.extend(self.invites.all());
        all.extend(self.remote.all());
        all
    }
}

#[cfg(test)]
mod tests;
