//! The store: one fjall database in the data directory, opened once, with one keyspace per kind
//! of record. Only this module (and its children) mention fjall.
//!
//! Keyspaces and their key layouts:
//! - `meta`: `schema_version` -> u32 big-endian; other single values of the server.
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
mod durability;
pub mod invites;
pub mod remote;
pub mod sessions;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use crate::error::{Error, Result};
use durability::GroupSync;

/// The layout version this build writes. A store with a higher version is refused; a lower one
/// is migrated at open.
pub const SCHEMA_VERSION: u32 = 2;

const SCHEMA_KEY: &[u8] = b"schema_version";

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
    path: PathBuf,
    /// When a write was last made durable (ms since the epoch; 0 once flushed while idle).
    last_write_ms: AtomicU64,
    /// Serialises binding writes: each rewrites a 3PID's hash entry from all its sources.
    binding_writes: std::sync::Mutex<()>,
}

/// Memtable size of every keyspace. Small: memory stays low on a small box, and a restart
/// after a crash replays at most this much journal per keyspace.
const MEMTABLE_BYTES: u64 = 2 * 1024 * 1024;

fn open_keyspace(db: &Database, name: &str) -> std::result::Result<Keyspace, OpenError> {
    db.keyspace(name, || {
        KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES)
    })
    .map_err(|e| OpenError(format!("cannot open keyspace {name}: {e}")))
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
                OpenError(format!(
                    "cannot open the store at {} (is another oxisd running on it?): {e}",
                    path.display()
                ))
            })?;
        let meta = open_keyspace(&db, "meta")?;
        let sessions = sessions::Keyspaces::open(&db)?;
        let accounts = accounts::Keyspaces::open(&db)?;
        let bindings = bindings::Keyspaces::open(&db)?;
        let invites = invites::Keyspaces::open(&db)?;
        let remote = remote::Keyspaces::open(&db)?;
        let store = Store {
            db,
            meta,
            sessions,
            accounts,
            bindings,
            invites,
            remote,
            sync: GroupSync::default(),
            path,
            last_write_ms: AtomicU64::new(0),
            binding_writes: std::sync::Mutex::new(()),
        };
        store.check_schema()?;
        Ok(store)
    }

    fn check_schema(&self) -> std::result::Result<(), OpenError> {
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
                Ok(())
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
                Ok(())
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
        Ok(true)
    }

    /// Blocks until every write made before this call is on disk. Concurrent callers share
    /// one flush.
    pub fn durable(&self) -> Result<()> {
        self.last_write_ms.store(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(1),
            Ordering::Relaxed,
        );
        self.sync
            .wait_durable(|| self.db.persist(PersistMode::SyncData))
            .map_err(|e| Error::internal(format_args!("store flush failed: {e}")))
    }

    /// Where the database files live.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes everything to disk; called once at shutdown. Memtables are written out as
    /// tables too, so the next start has no journal to replay.
    pub fn close(&self) -> Result<()> {
        self.db.persist(PersistMode::SyncAll)?;
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
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("oxisd-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn schema_version_is_recorded_and_kept() {
        let dir = temp_dir("schema");
        {
            let store = Store::open(&dir).unwrap();
            assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
            store.durable().unwrap();
            store.close().unwrap();
        }
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        drop(store);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = temp_dir("newer");
        {
            let store = Store::open(&dir).unwrap();
            store
                .meta
                .insert(SCHEMA_KEY, (SCHEMA_VERSION + 1).to_be_bytes())
                .unwrap();
            store.close().unwrap();
        }
        let err = Store::open(&dir).err().unwrap().0;
        assert!(err.contains("newer"), "{err}");
        std::fs::remove_dir_all(dir).ok();
    }
}
