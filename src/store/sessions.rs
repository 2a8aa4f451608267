//! Validation session records.
//!
//! Keyspaces:
//! - `sid_session`: `sid` -> the [`SessionRecord`] as JSON.
//! - `triple_sid`: `medium 0x00 address 0x00 client_secret` -> `sid`; finds the session a
//!   repeated requestToken belongs to.
//! - `purge_sid`: `purge_at_ms (u64 big-endian) sid` -> empty; the sweeper reads this index from
//!   its start up to "now", so removing expired sessions never scans the live ones.

use fjall::{Database, Keyspace};
use serde::{Deserialize, Serialize};

use super::{OpenError, Store, open_keyspace};

/// The `meta` key of when the session keyspaces were last compacted (ms since the epoch, u64
/// big-endian; see [`Store::compact_sessions`]).
const SESSIONS_COMPACTED_KEY: &[u8] = b"sessions_compacted_ms";
use crate::error::{Error, Result};
use crate::ids::{ClientSecret, SessionId};
use crate::threepid::Medium;

/// One 3PID validation session, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The session id given to the client.
    pub sid: SessionId,
    /// `email` or `msisdn`.
    pub medium: Medium,
    /// The normalised address.
    pub address: String,
    /// The client's secret.
    pub client_secret: ClientSecret,
    /// The validation token sent to the user.
    pub token: String,
    /// The highest `send_attempt` for which a message was actually sent.
    pub send_attempt: Option<u64>,
    /// Where the browser goes after clicking the link (http/https only, checked on input).
    pub next_link: Option<String>,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
    /// Last modification (creation, a message sent, validation), ms since the epoch.
    pub mtime_ms: u64,
    /// When the session was validated.
    pub validated_ms: Option<u64>,
    /// Wrong tokens submitted so far.
    pub failed_attempts: u32,
    /// When the sweeper may delete the record.
    pub purge_at_ms: u64,
    /// The session started for the same 3PID at an upstream identity server, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteSession>,
}

/// A session at an upstream identity server (`session.policy.validation.*.toRemote`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteSession {
    /// The upstream's name in `matrix.identity.servers`.
    pub server: String,
    /// Its session id there.
    pub sid: String,
    /// The client secret we made for it.
    pub client_secret: String,
    /// The last `send_attempt` sent there.
    pub send_attempt: u64,
    /// Whether the upstream said it is validated.
    pub validated: bool,
}

/// The session keyspaces.
pub(super) struct Keyspaces {
    by_sid: Keyspace,
    by_triple: Keyspace,
    by_purge: Keyspace,
}

impl Keyspaces {
    pub(super) fn all(&self) -> [&Keyspace; 3] {
        [&self.by_sid, &self.by_triple, &self.by_purge]
    }

    pub(super) fn open(db: &Database) -> std::result::Result<Keyspaces, OpenError> {
        Ok(Keyspaces {
            by_sid: open_keyspace(db, "sid_session")?,
            by_triple: open_keyspace(db, "triple_sid")?,
            by_purge: open_keyspace(db, "purge_sid")?,
        })
    }
}

fn triple_key(medium: Medium, address: &str, client_secret: &str) -> Vec<u8> {
    [
        medium.as_str().as_bytes(),
        address.as_bytes(),
        client_secret.as_bytes(),
    ]
    .join(&0u8)
}

fn purge_key(purge_at_ms: u64, sid: &str) -> Vec<u8> {
    let mut key = purge_at_ms.to_be_bytes().to_vec();
    key.extend_from_slice(sid.as_bytes());
    key
}

fn decode(bytes: &[u8]) -> Result<SessionRecord> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::internal(format_args!("corrupt session record: {e}")))
}

impl Store {
    pub(super) fn sessions_keyspace(&self) -> &Keyspace {
        &self.sessions.by_sid
    }

    /// The session with this id.
    pub fn session(&self, sid: &str) -> Result<Option<SessionRecord>> {
        self.sessions
            .by_sid
            .get(sid)?
            .map(|v| decode(&v))
            .transpose()
    }

    /// The session of this (medium, address, client_secret).
    pub fn session_by_triple(
        &self,
        medium: Medium,
        address: &str,
        client_secret: &str,
    ) -> Result<Option<SessionRecord>> {
        let Some(sid) = self
            .sessions
            .by_triple
            .get(triple_key(medium, address, client_secret))?
        else {
            return Ok(None);
        };
        let sid = String::from_utf8_lossy(&sid).into_owned();
        self.session(&sid)
    }

    /// Writes `record` (new or changed) with its indexes, atomically. `previous` is the stored
    /// version it replaces, if any. Not yet durable: call [`Store::durable`] before answering.
    pub fn put_session(
        &self,
        record: &SessionRecord,
        previous: Option<&SessionRecord>,
    ) -> Result<()> {
        let ks = &self.sessions;
        let mut batch = self.db.batch();
        if let Some(old) = previous
            && old.purge_at_ms != record.purge_at_ms
        {
            batch.remove(&ks.by_purge, purge_key(old.purge_at_ms, &old.sid));
        }
        let json = serde_json::to_vec(record).map_err(Error::internal)?;
        batch.insert(&ks.by_sid, record.sid.as_bytes(), json);
        batch.insert(
            &ks.by_triple,
            triple_key(record.medium, &record.address, &record.client_secret),
            record.sid.as_bytes(),
        );
        batch.insert(
            &ks.by_purge,
            purge_key(record.purge_at_ms, &record.sid),
            b"",
        );
        batch.commit()?;
        Ok(())
    }

    /// Deletes a session and its indexes.
    pub fn delete_session(&self, record: &SessionRecord) -> Result<()> {
        let ks = &self.sessions;
        let mut batch = self.db.batch();
        batch.remove(&ks.by_sid, record.sid.as_bytes());
        let triple = triple_key(record.medium, &record.address, &record.client_secret);
        // Only drop the triple if it still points at this session.
        if ks
            .by_triple
            .get(&triple)?
            .is_some_and(|s| *s == *record.sid.as_bytes())
        {
            batch.remove(&ks.by_triple, triple);
        }
        batch.remove(&ks.by_purge, purge_key(record.purge_at_ms, &record.sid));
        batch.commit()?;
        Ok(())
    }

    /// Gives the disk space of removed sessions back. A removal only writes a tombstone, and
    /// the removed record and its tombstone stay on disk until a compaction meets them in one
    /// table: this writes the session memtables out (so their tombstones reach tables; waiting
    /// up to `flush_wait` for that) and then major-compacts the three session keyspaces, which
    /// drops both. Blocks while it works: call it from a background task, never a request.
    pub fn compact_sessions(&self, now_ms: u64, flush_wait: std::time::Duration) -> Result<()> {
        let keyspaces = self.sessions.all();
        for keyspace in keyspaces {
            // Does nothing for an empty memtable.
            keyspace.rotate_memtable()?;
        }
        let deadline = std::time::Instant::now() + flush_wait;
        while keyspaces.iter().any(|k| k.sealed_memtable_count() > 0) {
            if std::time::Instant::now() >= deadline {
                // What is still in a memtable is compacted by a later call.
                log::debug!("session memtables not written out yet; compacting the tables");
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        for keyspace in keyspaces {
            keyspace.major_compact()?;
        }
        // The tables the compaction replaced are deleted once no version of the tree refers
        // to them, and old versions are only let go when the engine's garbage-collection
        // watermark moves past the compaction, which it does when a memtable is written out.
        // A small write to `meta`, written out at once, does that now rather than at some
        // later flush.
        self.meta
            .insert(SESSIONS_COMPACTED_KEY, now_ms.to_be_bytes())?;
        self.meta.rotate_memtable()?;
        Ok(())
    }

    /// Bytes on disk of the session keyspaces' tables (not counting the shared journal).
    pub fn sessions_disk_space(&self) -> u64 {
        self.sessions.all().iter().map(|k| k.disk_space()).sum()
    }

    /// Up to `limit` sessions whose purge time is at or before `now_ms`, oldest first. Index
    /// entries whose record is gone are dropped on the way.
    pub fn sessions_due(&self, now_ms: u64, limit: usize) -> Result<Vec<SessionRecord>> {
        let ks = &self.sessions;
        let end = now_ms.saturating_add(1).to_be_bytes();
        let mut keys = Vec::new();
        for item in ks.by_purge.range(..end.as_slice()).take(limit) {
            keys.push(item.key()?.to_vec());
        }
        let mut due = Vec::with_capacity(keys.len());
        for key in keys {
            let sid = String::from_utf8_lossy(&key[8..]).into_owned();
            match self.session(&sid)? {
                Some(record) => due.push(record),
                None => ks.by_purge.remove(key)?,
            }
        }
        Ok(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(sid: &str, secret: &str, purge_at_ms: u64) -> SessionRecord {
        SessionRecord {
            sid: SessionId::parse(sid).unwrap(),
            medium: Medium::Email,
            address: "a@b.org".into(),
            client_secret: ClientSecret::parse(secret).unwrap(),
            token: "t".into(),
            send_attempt: None,
            next_link: None,
            created_ms: 1,
            mtime_ms: 1,
            validated_ms: None,
            failed_attempts: 0,
            purge_at_ms,
            remote: None,
        }
    }

    fn store(name: &str) -> (Store, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("oxisd-sessions-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (Store::open(&dir).unwrap(), dir)
    }

    /// Bytes allocated on disk below `dir`, without the journal (a sparse file of 64 MiB that
    /// the engine only rotates when it is full).
    fn disk_use_without_journal(dir: &std::path::Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        let mut total = 0;
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let entry = entry.unwrap();
                let meta = entry.metadata().unwrap();
                if meta.is_dir() {
                    stack.push(entry.path());
                } else if entry.path().extension().is_none_or(|x| x != "jnl") {
                    total += meta.blocks() * 512;
                }
            }
        }
        total
    }

    #[test]
    fn compacting_gives_the_space_of_removed_sessions_back() {
        let (s, dir) = store("space");
        let empty = disk_use_without_journal(&dir);
        let records: Vec<_> = (0..5000)
            .map(|i| {
                let mut r = record(&format!("sid{i:06}"), &format!("secret{i}"), 100);
                r.address = format!("user{i}@example.org");
                r.token = "t".repeat(32);
                r.next_link = Some(format!("https://app.example.org/{}", "x".repeat(200)));
                r
            })
            .collect();
        for r in &records {
            s.put_session(r, None).unwrap();
        }
        for r in &records {
            s.delete_session(r).unwrap();
        }
        s.durable().unwrap();
        let swept = disk_use_without_journal(&dir);
        assert!(
            s.sessions_disk_space() > 0 && swept > empty * 2,
            "the removed sessions still take space before compacting: {swept} bytes, {empty} empty"
        );
        s.compact_sessions(1, std::time::Duration::from_secs(5))
            .unwrap();
        assert_eq!(s.sessions_disk_space(), 0, "no session tables are left");
        let compacted = disk_use_without_journal(&dir);
        assert!(
            compacted * 5 <= empty * 6,
            "back within 20% of the empty store: {compacted} bytes, {empty} empty, {swept} swept"
        );
        assert!(s.session("sid000001").unwrap().is_none());
        drop(s);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn sessions_are_found_by_sid_and_by_triple() {
        let (s, dir) = store("find");
        let r = record("s1", "sec", 100);
        s.put_session(&r, None).unwrap();
        assert_eq!(s.session("s1").unwrap(), Some(r.clone()));
        assert_eq!(
            s.session_by_triple(Medium::Email, "a@b.org", "sec")
                .unwrap(),
            Some(r)
        );
        assert_eq!(
            s.session_by_triple(Medium::Email, "a@b.org", "other")
                .unwrap(),
            None
        );
        assert_eq!(s.session("nope").unwrap(), None);
        drop(s);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn only_due_sessions_are_listed_and_updates_move_them() {
        let (s, dir) = store("purge");
        let a = record("a", "x", 100);
        let b = record("b", "y", 200);
        s.put_session(&a, None).unwrap();
        s.put_session(&b, None).unwrap();
        // `a` was touched: its purge time moved past `b`'s.
        let mut a2 = a.clone();
        a2.purge_at_ms = 300;
        s.put_session(&a2, Some(&a)).unwrap();
        assert!(s.sessions_due(150, 100).unwrap().is_empty());
        let due = s.sessions_due(250, 100).unwrap();
        assert_eq!(due, vec![b.clone()]);
        s.delete_session(&b).unwrap();
        assert!(s.session("b").unwrap().is_none());
        assert!(
            s.session_by_triple(Medium::Email, "a@b.org", "y")
                .unwrap()
                .is_none()
        );
        assert!(s.session("a").unwrap().is_some());
        assert_eq!(s.sessions_due(300, 100).unwrap(), vec![a2]);
        drop(s);
        std::fs::remove_dir_all(dir).ok();
    }
}
