//! Operator queries: listings, everything stored about a 3PID or a user (export and erasure),
//! counts, and a consistent copy of the whole store while it serves. These scan keyspaces, so
//! they serve the admin API only, never a user's request.

use fjall::{Database, Readable};

use super::accounts::AccountRecord;
use super::bindings::BindingRecord;
use super::invites::InviteRecord;
use super::sessions::SessionRecord;
use super::{SCHEMA_VERSION, Store};
use crate::error::{Error, ErrorKind, Result};
use crate::threepid::Medium;

/// Counts of the store, for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStats {
    /// The layout version.
    pub schema_version: u32,
    /// Size on disk.
    pub disk_bytes: u64,
    /// Journal files.
    pub journal_count: usize,
    /// Records per keyspace (approximate for large ones), by keyspace name.
    pub records: Vec<(String, usize)>,
    /// `onbind` calls waiting.
    pub outbox_depth: usize,
    /// When the oldest waiting `onbind` call was queued.
    pub outbox_oldest_created_ms: Option<u64>,
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::internal(format_args!("corrupt {what}: {e}")))
}

impl Store {
    /// Bindings in 3PID order, as (source, record), starting after the 3PID `after` (medium,
    /// address), at most `limit`.
    pub fn list_bindings(
        &self,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<(String, BindingRecord)>> {
        let start: Vec<u8> = match after {
            Some((m, a)) => [m.as_bytes(), b"\0", a.as_bytes(), b"\x01"].concat(),
            None => Vec::new(),
        };
        let mut out = Vec::new();
        for item in self.bindings_keyspace().range(start..) {
            let (k, v) = item.into_inner()?;
            let source = k
                .rsplit(|b| *b == 0)
                .next()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .unwrap_or_default();
            out.push((source, decode(&v, "binding record")?));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Every binding to `mxid`, as (source, record).
    pub fn bindings_of_user(&self, mxid: &str) -> Result<Vec<(String, BindingRecord)>> {
        let mut out = Vec::new();
        for item in self.bindings_keyspace().iter() {
            let (k, v) = item.into_inner()?;
            let record: BindingRecord = decode(&v, "binding record")?;
            if record.mxid == mxid {
                let source = k
                    .rsplit(|b| *b == 0)
                    .next()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .unwrap_or_default();
                out.push((source, record));
            }
        }
        Ok(out)
    }

    /// Validation sessions, at most `limit`, optionally only those of (medium, address).
    pub fn list_sessions(
        &self,
        threepid: Option<(Medium, &str)>,
        limit: usize,
    ) -> Result<Vec<SessionRecord>> {
        let mut out = Vec::new();
        for item in self.sessions_keyspace().iter() {
            let (_, v) = item.into_inner()?;
            let record: SessionRecord = decode(&v, "session record")?;
            if threepid.is_none_or(|(m, a)| record.medium == m && record.address == a) {
                out.push(record);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Invites, at most `limit`, optionally only those to (medium, address) or from `sender`.
    pub fn list_invites(
        &self,
        to: Option<(Medium, &str)>,
        from: Option<&str>,
        limit: usize,
    ) -> Result<Vec<InviteRecord>> {
        let mut out = Vec::new();
        for item in self.invites_keyspace().iter() {
            let (_, v) = item.into_inner()?;
            let record: InviteRecord = decode(&v, "invite record")?;
            if to.is_none_or(|(m, a)| record.medium == m && record.address == a)
                && from.is_none_or(|s| record.sender == s)
            {
                out.push(record);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// The access tokens of `user_id` (their records: the tokens themselves are not stored),
    /// with the keys to delete them.
    pub fn tokens_of_user(&self, user_id: &str) -> Result<Vec<(Vec<u8>, AccountRecord)>> {
        let mut out = Vec::new();
        for item in self.tokens_keyspace().iter() {
            let (k, v) = item.into_inner()?;
            let record: AccountRecord = decode(&v, "account record")?;
            if record.user_id == user_id {
                out.push((k.to_vec(), record));
            }
        }
        Ok(out)
    }

    /// Forgets a user: access tokens and accepted terms; returns how many tokens went. Durable
    /// when this returns.
    pub fn erase_account(&self, user_id: &str) -> Result<usize> {
        let tokens = self.tokens_of_user(user_id)?;
        let mut batch = self.db.batch();
        for (key, _) in &tokens {
            batch.remove(self.tokens_keyspace(), key.clone());
        }
        batch.remove(self.terms_keyspace(), user_id.as_bytes().to_vec());
        batch.commit()?;
        self.durable()?;
        Ok(tokens.len())
    }

    /// The store's size on disk.
    pub fn disk_bytes(&self) -> Result<u64> {
        Ok(self.db.disk_space()?)
    }

    /// Record counts per keyspace (approximate for large ones), disk use and the outbox.
    pub fn stats(&self) -> Result<StoreStats> {
        let records = self
            .keyspaces()
            .into_iter()
            .map(|ks| (ks.name().to_string(), ks.approximate_len()))
            .collect();
        let outbox = self.outbox()?;
        Ok(StoreStats {
            schema_version: SCHEMA_VERSION,
            disk_bytes: self.db.disk_space()?,
            journal_count: self.db.journal_count(),
            records,
            outbox_depth: outbox.len(),
            outbox_oldest_created_ms: outbox.iter().map(|(_, e)| e.created_ms).min(),
        })
    }

    /// Writes a consistent copy of every keyspace, as of one moment, into a new store at
    /// `dir` (which must not hold a store yet); returns how many records were copied.
    pub fn backup(&self, dir: &std::path::Path) -> Result<u64> {
        let path = dir.join("db");
        if path.exists() {
            return Err(Error::new(
                ErrorKind::InvalidParam,
                format!(
                    "{} exists already: back up into a new directory",
                    path.display()
                ),
            ));
        }
        std::fs::create_dir_all(&path).map_err(|e| {
            let message = format!("cannot create {}: {e}", path.display());
            match e.kind() {
                // The operator's choice of directory: a read-only place, or a file on the way.
                std::io::ErrorKind::PermissionDenied
                | std::io::ErrorKind::ReadOnlyFilesystem
                | std::io::ErrorKind::NotADirectory
                | std::io::ErrorKind::AlreadyExists => Error::new(ErrorKind::InvalidParam, message),
                _ => Error::new(ErrorKind::Internal, message),
            }
        })?;
        let copy = Database::builder(&path)
            .open()
            .map_err(|e| Error::internal(format_args!("cannot create the copy: {e}")))?;
        let snapshot = self.db.snapshot();
        let mut copied = 0u64;
        for ks in self.keyspaces() {
            let target = copy.keyspace(ks.name(), fjall::KeyspaceCreateOptions::default)?;
            let mut ingestion = target.start_ingestion()?;
            for item in snapshot.iter(ks) {
                let (k, v) = item.into_inner()?;
                ingestion.write(k, v)?;
                copied += 1;
            }
            ingestion.finish()?;
        }
        copy.persist(fjall::PersistMode::SyncAll)?;
        Ok(copied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_is_a_store_with_the_same_records() {
        let dir = std::env::temp_dir().join(format!("oxisd-backup-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir.join("live")).unwrap();
        let record = BindingRecord {
            medium: "email".into(),
            address: "a@example.org".into(),
            mxid: "@a:example.org".into(),
            ts: 1,
            not_before: 1,
            not_after: 2,
        };
        store.put_binding("builtin", &record, &[]).unwrap();
        store.durable().unwrap();
        let copied = store.backup(&dir.join("copy")).unwrap();
        assert!(copied >= 3, "{copied}");
        assert!(store.backup(&dir.join("copy")).is_err());
        drop(store);
        let copy = Store::open(&dir.join("copy")).unwrap();
        assert_eq!(
            copy.binding("email", "a@example.org", "builtin").unwrap(),
            Some(record.clone())
        );
        assert_eq!(copy.bindings_of_user("@a:example.org").unwrap().len(), 1);
        assert_eq!(copy.list_bindings(None, 10).unwrap().len(), 1);
        assert_eq!(
            copy.list_bindings(Some(("email", "a@example.org")), 10)
                .unwrap()
                .len(),
            0
        );
        drop(copy);
        std::fs::remove_dir_all(dir).ok();
    }
}
