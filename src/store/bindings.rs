//! Bindings (3PID -> Matrix user id) from every identity store that can list its 3PIDs, and the
//! index of their lookup hashes.
//!
//! Keyspaces:
//! - `threepid_binding`: `medium 0x00 address 0x00 source` -> [`BindingRecord`] as JSON. The
//!   source is the identity store the binding comes from (`builtin` for binds made here,
//!   `static`, `synapse`), so each store keeps its own answer and lookups ask them in order.
//! - `pephash_threepid`: `generation (u32 big-endian) sha256("<address> <medium> <pepper>")`
//!   -> `medium 0x00 address`. One generation per pepper: a pepper rotation fills the next
//!   generation in the background, then switches over in one write, so a lookup always sees a
//!   complete index.
//! - `meta`: `pepper` -> `generation (u32 BE) pepper`; `pepper_next` while a rotation runs.

use fjall::{Database, Keyspace};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{OpenError, Store, open_keyspace};
use crate::error::{Error, Result};

/// One binding of a 3PID to a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingRecord {
    /// `email` or `msisdn`.
    pub medium: String,
    /// The normalised address.
    pub address: String,
    /// The Matrix user id.
    pub mxid: String,
    /// When the binding was made, ms since the epoch.
    pub ts: u64,
    /// Valid from, ms.
    pub not_before: u64,
    /// Valid until, ms.
    pub not_after: u64,
}

/// A pepper and the generation of hash entries made with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pepper {
    /// Prefix of this pepper's hash entries.
    pub generation: u32,
    /// The pepper (`[a-zA-Z0-9]+`).
    pub pepper: String,
}

/// The binding keyspaces.
pub(super) struct Keyspaces {
    by_threepid: Keyspace,
    by_hash: Keyspace,
}

impl Keyspaces {
    pub(super) fn open(db: &Database) -> std::result::Result<Keyspaces, OpenError> {
        Ok(Keyspaces {
            by_threepid: open_keyspace(db, "threepid_binding")?,
            by_hash: open_keyspace(db, "pephash_threepid")?,
        })
    }

    pub(super) fn all(&self) -> [&Keyspace; 2] {
        [&self.by_threepid, &self.by_hash]
    }
}

fn threepid_prefix(medium: &str, address: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(medium.len() + address.len() + 2);
    key.extend_from_slice(medium.as_bytes());
    key.push(0);
    key.extend_from_slice(address.as_bytes());
    key.push(0);
    key
}

fn binding_key(medium: &str, address: &str, source: &str) -> Vec<u8> {
    let mut key = threepid_prefix(medium, address);
    key.extend_from_slice(source.as_bytes());
    key
}

/// The raw SHA-256 of the lookup string `"<address> <medium> <pepper>"`.
pub fn lookup_digest(address: &str, medium: &str, pepper: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(address.as_bytes());
    h.update(b" ");
    h.update(medium.as_bytes());
    h.update(b" ");
    h.update(pepper.as_bytes());
    h.finalize().into()
}

fn hash_key(generation: u32, digest: &[u8; 32]) -> [u8; 36] {
    let mut key = [0u8; 36];
    key[..4].copy_from_slice(&generation.to_be_bytes());
    key[4..].copy_from_slice(digest);
    key
}

fn encode_pepper(p: &Pepper) -> Vec<u8> {
    let mut v = p.generation.to_be_bytes().to_vec();
    v.extend_from_slice(p.pepper.as_bytes());
    v
}

fn decode_pepper(bytes: &[u8]) -> Option<Pepper> {
    let generation = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?);
    let pepper = std::str::from_utf8(bytes.get(4..)?).ok()?.to_string();
    Some(Pepper { generation, pepper })
}

fn decode_binding(bytes: &[u8]) -> Result<BindingRecord> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::internal(format_args!("corrupt binding record: {e}")))
}

impl Store {
    /// The current pepper, and the next one while a rotation runs.
    pub fn peppers(&self) -> Result<(Option<Pepper>, Option<Pepper>)> {
        let current = self.meta.get("pepper")?.and_then(|v| decode_pepper(&v));
        let next = self
            .meta
            .get("pepper_next")?
            .and_then(|v| decode_pepper(&v));
        Ok((current, next))
    }

    /// Starts a rotation to `next` (written durably before any entry of its generation).
    pub fn begin_pepper(&self, next: &Pepper) -> Result<()> {
        self.meta.insert("pepper_next", encode_pepper(next))?;
        self.durable()
    }

    /// Makes `next` the current pepper, in one write.
    pub fn switch_pepper(&self, next: &Pepper) -> Result<()> {
        let mut batch = self.db.batch();
        batch.insert(&self.meta, "pepper", encode_pepper(next));
        batch.remove(&self.meta, "pepper_next");
        batch.commit()?;
        self.durable()
    }

    /// The binding of a 3PID from one source.
    pub fn binding(
        &self,
        medium: &str,
        address: &str,
        source: &str,
    ) -> Result<Option<BindingRecord>> {
        self.bindings
            .by_threepid
            .get(binding_key(medium, address, source))?
            .map(|v| decode_binding(&v))
            .transpose()
    }

    /// Every source's binding of a 3PID, as (source, record).
    pub fn bindings_of(&self, medium: &str, address: &str) -> Result<Vec<(String, BindingRecord)>> {
        let prefix = threepid_prefix(medium, address);
        let mut out = Vec::new();
        for item in self.bindings.by_threepid.prefix(&prefix) {
            let (k, v) = item.into_inner()?;
            let source = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            out.push((source, decode_binding(&v)?));
        }
        Ok(out)
    }

    /// Stores (or replaces) `record` for `source` and indexes its hash under every pepper in
    /// `peppers`. Not yet durable.
    pub fn put_binding(
        &self,
        source: &str,
        record: &BindingRecord,
        peppers: &[Pepper],
    ) -> Result<()> {
        let json = serde_json::to_vec(record).map_err(Error::internal)?;
        let mut batch = self.db.batch();
        batch.insert(
            &self.bindings.by_threepid,
            binding_key(&record.medium, &record.address, source),
            json,
        );
        let target = [record.medium.as_bytes(), b"\0", record.address.as_bytes()].concat();
        for p in peppers {
            let digest = lookup_digest(&record.address, &record.medium, &p.pepper);
            batch.insert(
                &self.bindings.by_hash,
                hash_key(p.generation, &digest),
                target.clone(),
            );
        }
        batch.commit()?;
        Ok(())
    }

    /// Stores many bindings of one source at once (imports, benchmarks), in batches, then
    /// makes them durable. Returns how many were written.
    pub fn put_bindings(
        &self,
        source: &str,
        records: impl IntoIterator<Item = BindingRecord>,
        peppers: &[Pepper],
    ) -> Result<usize> {
        let mut written = 0;
        let mut batch = self.db.batch();
        for record in records {
            let json = serde_json::to_vec(&record).map_err(Error::internal)?;
            let target = [record.medium.as_bytes(), b"\0", record.address.as_bytes()].concat();
            for p in peppers {
                let digest = lookup_digest(&record.address, &record.medium, &p.pepper);
                batch.insert(
                    &self.bindings.by_hash,
                    hash_key(p.generation, &digest),
                    target.clone(),
                );
            }
            batch.insert(
                &self.bindings.by_threepid,
                binding_key(&record.medium, &record.address, source),
                json,
            );
            written += 1;
            if batch.len() >= 20_000 {
                std::mem::replace(&mut batch, self.db.batch()).commit()?;
            }
        }
        batch.commit()?;
        self.durable()?;
        Ok(written)
    }

    /// Compacts the binding keyspaces into sorted runs. After a bulk import the data sits in
    /// many overlapping tables and each lookup would check them all; call this once the import
    /// is done.
    pub fn compact_bindings(&self) -> Result<()> {
        for keyspace in self.bindings.all() {
            keyspace.major_compact()?;
        }
        Ok(())
    }

    /// Removes the binding of `source`; the hash entries go too when no other source still
    /// binds the 3PID. Returns the removed record. Not yet durable.
    pub fn delete_binding(
        &self,
        source: &str,
        medium: &str,
        address: &str,
        peppers: &[Pepper],
    ) -> Result<Option<BindingRecord>> {
        let Some(record) = self.binding(medium, address, source)? else {
            return Ok(None);
        };
        let others = self
            .bindings_of(medium, address)?
            .into_iter()
            .any(|(s, _)| s != source);
        let mut batch = self.db.batch();
        batch.remove(
            &self.bindings.by_threepid,
            binding_key(medium, address, source),
        );
        if !others {
            for p in peppers {
                batch.remove(
                    &self.bindings.by_hash,
                    hash_key(p.generation, &lookup_digest(address, medium, &p.pepper)),
                );
            }
        }
        batch.commit()?;
        Ok(Some(record))
    }

    /// The 3PID behind a lookup hash in `generation`, as (medium, address).
    pub fn threepid_of_hash(
        &self,
        generation: u32,
        digest: &[u8; 32],
    ) -> Result<Option<(String, String)>> {
        let Some(v) = self.bindings.by_hash.get(hash_key(generation, digest))? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&v);
        Ok(text
            .split_once('\0')
            .map(|(m, a)| (m.to_string(), a.to_string())))
    }

    /// Indexes every bound 3PID under `pepper` (a rotation's background work), in batches;
    /// returns how many entries were written.
    pub fn index_all(&self, pepper: &Pepper) -> Result<usize> {
        let mut written = 0;
        let mut batch = self.db.batch();
        let mut last: Vec<u8> = Vec::new();
        for item in self.bindings.by_threepid.iter() {
            let key = item.key()?;
            // Keys are medium\0address\0source; one hash per 3PID.
            let mut parts = key.splitn(3, |b| *b == 0);
            let (Some(medium), Some(address)) = (parts.next(), parts.next()) else {
                continue;
            };
            let threepid = [medium, b"\0", address].concat();
            if threepid == last {
                continue;
            }
            let (m, a) = (
                String::from_utf8_lossy(medium),
                String::from_utf8_lossy(address),
            );
            batch.insert(
                &self.bindings.by_hash,
                hash_key(pepper.generation, &lookup_digest(&a, &m, &pepper.pepper)),
                threepid.clone(),
            );
            last = threepid;
            written += 1;
            if batch.len() >= 10_000 {
                std::mem::replace(&mut batch, self.db.batch()).commit()?;
            }
        }
        batch.commit()?;
        self.durable()?;
        Ok(written)
    }

    /// Deletes every hash entry of `generation` (after a rotation moved past it).
    pub fn drop_generation(&self, generation: u32) -> Result<usize> {
        let prefix = generation.to_be_bytes();
        let mut removed = 0;
        loop {
            let keys: Vec<Vec<u8>> = self
                .bindings
                .by_hash
                .prefix(prefix)
                .take(10_000)
                .map(|i| i.key().map(|k| k.to_vec()))
                .collect::<std::result::Result<_, _>>()?;
            if keys.is_empty() {
                break;
            }
            let mut batch = self.db.batch();
            for k in &keys {
                batch.remove(&self.bindings.by_hash, k.clone());
            }
            batch.commit()?;
            removed += keys.len();
        }
        self.durable()?;
        Ok(removed)
    }

    /// Every binding of one source, for syncing an identity store: (medium, address) pairs.
    pub fn threepids_of_source(&self, source: &str) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for item in self.bindings.by_threepid.iter() {
            let key = item.key()?;
            let mut parts = key.splitn(3, |b| *b == 0);
            if let (Some(m), Some(a), Some(s)) = (parts.next(), parts.next(), parts.next())
                && s == source.as_bytes()
            {
                out.push((
                    String::from_utf8_lossy(m).into_owned(),
                    String::from_utf8_lossy(a).into_owned(),
                ));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(address: &str, mxid: &str) -> BindingRecord {
        BindingRecord {
            medium: "email".into(),
            address: address.into(),
            mxid: mxid.into(),
            ts: 1,
            not_before: 1,
            not_after: 2,
        }
    }

    #[test]
    fn bindings_hashes_and_generations() {
        let dir = std::env::temp_dir().join(format!("oxisd-bindings-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let p1 = Pepper {
            generation: 1,
            pepper: "matrixrocks".into(),
        };
        store
            .put_binding(
                "builtin",
                &record("alice@example.com", "@alice:example.org"),
                std::slice::from_ref(&p1),
            )
            .unwrap();
        store
            .put_binding(
                "static",
                &record("alice@example.com", "@other:example.org"),
                std::slice::from_ref(&p1),
            )
            .unwrap();
        // The spec's vector: "alice@example.com email matrixrocks".
        let digest =
            crate::crypto::base64::decode("4kenr7N9drpCJ4AfalmlGQVsOn3o2RHjkADUpXJWZUc").unwrap();
        let digest: [u8; 32] = digest.try_into().unwrap();
        assert_eq!(
            lookup_digest("alice@example.com", "email", "matrixrocks"),
            digest
        );
        assert_eq!(
            store.threepid_of_hash(1, &digest).unwrap(),
            Some(("email".into(), "alice@example.com".into()))
        );
        assert_eq!(
            store
                .bindings_of("email", "alice@example.com")
                .unwrap()
                .len(),
            2
        );
        // A rotation indexes everything under the next generation.
        let p2 = Pepper {
            generation: 2,
            pepper: "newpepper".into(),
        };
        assert_eq!(store.index_all(&p2).unwrap(), 1);
        let d2 = lookup_digest("alice@example.com", "email", "newpepper");
        assert!(store.threepid_of_hash(2, &d2).unwrap().is_some());
        assert_eq!(store.drop_generation(1).unwrap(), 1);
        assert!(store.threepid_of_hash(1, &digest).unwrap().is_none());
        // Deleting one source keeps the hash while another source binds the 3PID.
        store
            .delete_binding(
                "builtin",
                "email",
                "alice@example.com",
                std::slice::from_ref(&p2),
            )
            .unwrap();
        assert!(store.threepid_of_hash(2, &d2).unwrap().is_some());
        store
            .delete_binding(
                "static",
                "email",
                "alice@example.com",
                std::slice::from_ref(&p2),
            )
            .unwrap();
        assert!(store.threepid_of_hash(2, &d2).unwrap().is_none());
        assert_eq!(store.threepids_of_source("static").unwrap(), vec![]);
        drop(store);
        std::fs::remove_dir_all(dir).ok();
    }
}
