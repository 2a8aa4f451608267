//! Bindings (3PID -> Matrix user id) from every identity store that can list its 3PIDs, and the
//! index of their lookup hashes.
//!
//! Keyspaces:
//! - `threepid_binding`: `medium 0x00 address 0x00 source` -> [`BindingRecord`] as JSON. The
//!   source is the identity store the binding comes from (`builtin` for binds made here,
//!   `static`, `synapse`), so each store keeps its own answer and lookups ask them in order.
//! - `pephash_threepid`: `generation (u32 big-endian) sha256("<address> <medium> <pepper>")`
//!   -> `medium 0x00 address 0x00` followed by every source's binding of the 3PID as
//!   `source 0x00 mxid 0x00 not_before (u64 BE) not_after (u64 BE)`, so a hashed lookup is one
//!   read. One generation per pepper: a pepper rotation fills the next generation in the
//!   background, then switches over in one write, so a lookup always sees a complete index.
//!   Writes of bindings are serialised (`Store::binding_writes`) because each rewrites the hash
//!   entry from all sources' records.
//! - `source_threepid`: `source 0x00 medium 0x00 address` -> empty: which 3PIDs a source binds,
//!   so syncing an identity store reads its own 3PIDs, not every binding.
//! - `meta`: `pepper` -> `generation (u32 BE) pepper`; `pepper_next` while a rotation runs.

use fjall::{Database, Keyspace};
use serde::{Deserialize, Serialize};

use super::{OpenError, Store, open_bulk_keyspace};
use crate::crypto::lookup_hash::lookup_digest;
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

/// One source's binding of a 3PID, as kept in the hash index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedBinding {
    /// The identity store it comes from (`builtin`, `static`, `synapse`).
    pub source: String,
    /// The Matrix user id.
    pub mxid: String,
    /// Valid from, ms.
    pub not_before: u64,
    /// Valid until, ms.
    pub not_after: u64,
}

/// What a lookup hash leads to: the 3PID and every source's binding of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashedThreepid {
    /// `email` or `msisdn`.
    pub medium: String,
    /// The normalised address.
    pub address: String,
    /// The bindings, ordered by source name.
    pub bindings: Vec<IndexedBinding>,
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
    by_source: Keyspace,
}

impl Keyspaces {
    pub(super) fn open(db: &Database) -> std::result::Result<Keyspaces, OpenError> {
        Ok(Keyspaces {
            by_threepid: open_bulk_keyspace(db, "threepid_binding")?,
            by_hash: open_bulk_keyspace(db, "pephash_threepid")?,
            by_source: open_bulk_keyspace(db, "source_threepid")?,
        })
    }

    pub(super) fn all(&self) -> [&Keyspace; 3] {
        [&self.by_threepid, &self.by_hash, &self.by_source]
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

fn source_key(source: &str, medium: &str, address: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(source.len() + medium.len() + address.len() + 2);
    key.extend_from_slice(source.as_bytes());
    key.push(0);
    key.extend_from_slice(medium.as_bytes());
    key.push(0);
    key.extend_from_slice(address.as_bytes());
    key
}

fn binding_key(medium: &str, address: &str, source: &str) -> Vec<u8> {
    let mut key = threepid_prefix(medium, address);
    key.extend_from_slice(source.as_bytes());
    key
}

fn hash_key(generation: u32, digest: &[u8; 32]) -> [u8; 36] {
    let mut key = [0u8; 36];
    key[..4].copy_from_slice(&generation.to_be_bytes());
    key[4..].copy_from_slice(digest);
    key
}

/// The hash entry of a 3PID bound by `bindings` (source, record).
fn hash_value(medium: &str, address: &str, bindings: &[(String, BindingRecord)]) -> Vec<u8> {
    let mut v = threepid_prefix(medium, address);
    let mut sorted: Vec<&(String, BindingRecord)> = bindings.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (source, record) in sorted {
        v.extend_from_slice(source.as_bytes());
        v.push(0);
        v.extend_from_slice(record.mxid.as_bytes());
        v.push(0);
        v.extend_from_slice(&record.not_before.to_be_bytes());
        v.extend_from_slice(&record.not_after.to_be_bytes());
    }
    v
}

fn decode_hash_value(bytes: &[u8]) -> Option<HashedThreepid> {
    fn text(bytes: &[u8]) -> Option<(String, &[u8])> {
        let end = bytes.iter().position(|b| *b == 0)?;
        let s = std::str::from_utf8(&bytes[..end]).ok()?.to_string();
        Some((s, &bytes[end + 1..]))
    }
    fn number(bytes: &[u8]) -> Option<(u64, &[u8])> {
        let n = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        Some((n, &bytes[8..]))
    }
    let (medium, rest) = text(bytes)?;
    let (address, mut rest) = text(rest)?;
    let mut bindings = Vec::new();
    while !rest.is_empty() {
        let (source, r) = text(rest)?;
        let (mxid, r) = text(r)?;
        let (not_before, r) = number(r)?;
        let (not_after, r) = number(r)?;
        bindings.push(IndexedBinding {
            source,
            mxid,
            not_before,
            not_after,
        });
        rest = r;
    }
    Some(HashedThreepid {
        medium,
        address,
        bindings,
    })
}

/// 3PIDs indexed under one lock hold by [`Store::index_all`].
const CHUNK: usize = 1000;

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
    pub(super) fn bindings_keyspace(&self) -> &Keyspace {
        &self.bindings.by_threepid
    }

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
        let _serial = self.lock_binding_writes();
        let mut batch = self.db.batch();
        self.add_binding_to(&mut batch, source, record, peppers)?;
        batch.commit()?;
        Ok(())
    }

    /// Adds to `batch` the binding record and the hash entries rewritten from every source's
    /// binding of the 3PID (as committed, plus `record`). Callers hold `binding_writes`.
    fn add_binding_to(
        &self,
        batch: &mut fjall::OwnedWriteBatch,
        source: &str,
        record: &BindingRecord,
        peppers: &[Pepper],
    ) -> Result<()> {
        let json = serde_json::to_vec(record).map_err(Error::internal)?;
        batch.insert(
            &self.bindings.by_threepid,
            binding_key(&record.medium, &record.address, source),
            json,
        );
        batch.insert(
            &self.bindings.by_source,
            source_key(source, &record.medium, &record.address),
            b"".to_vec(),
        );
        let mut all = self.bindings_of(&record.medium, &record.address)?;
        all.retain(|(s, _)| s != source);
        all.push((source.to_string(), record.clone()));
        let value = hash_value(&record.medium, &record.address, &all);
        for p in peppers {
            let digest = lookup_digest(&record.address, &record.medium, &p.pepper);
            batch.insert(
                &self.bindings.by_hash,
                hash_key(p.generation, &digest),
                value.clone(),
            );
        }
        Ok(())
    }

    /// Stores many bindings of one source at once (imports, benchmarks) and returns how many
    /// were written. A later record of the same 3PID replaces an earlier one.
    ///
    /// The records are sorted in memory and written as tables (fjall's ingestion), not through
    /// the journal: a journal full of imported entries would be replayed at every start until
    /// it rotates (at 64 MB). Memory use is about 350 bytes per record while it runs.
    pub fn put_bindings(
        &self,
        source: &str,
        records: impl IntoIterator<Item = BindingRecord>,
        peppers: &[Pepper],
    ) -> Result<usize> {
        let _serial = self.lock_binding_writes();
        let mut by_threepid: std::collections::BTreeMap<Vec<u8>, BindingRecord> =
            std::collections::BTreeMap::new();
        for record in records {
            by_threepid.insert(binding_key(&record.medium, &record.address, source), record);
        }
        let mut by_hash: Vec<([u8; 36], Vec<u8>)> =
            Vec::with_capacity(by_threepid.len() * peppers.len());
        let mut rows: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(by_threepid.len());
        let mut sources: Vec<Vec<u8>> = Vec::with_capacity(by_threepid.len());
        for (key, record) in by_threepid {
            let mut all = self.bindings_of(&record.medium, &record.address)?;
            all.retain(|(s, _)| s != source);
            all.push((source.to_string(), record.clone()));
            let value = hash_value(&record.medium, &record.address, &all);
            for p in peppers {
                let digest = lookup_digest(&record.address, &record.medium, &p.pepper);
                by_hash.push((hash_key(p.generation, &digest), value.clone()));
            }
            sources.push(source_key(source, &record.medium, &record.address));
            rows.push((key, serde_json::to_vec(&record).map_err(Error::internal)?));
        }
        by_hash.sort_unstable_by_key(|e| e.0);
        let written = rows.len();
        let mut ingestion = self.bindings.by_threepid.start_ingestion()?;
        for (k, v) in rows {
            ingestion.write(k, v)?;
        }
        ingestion.finish()?;
        let mut ingestion = self.bindings.by_hash.start_ingestion()?;
        for (k, v) in by_hash {
            ingestion.write(k.to_vec(), v)?;
        }
        ingestion.finish()?;
        sources.sort_unstable();
        let mut ingestion = self.bindings.by_source.start_ingestion()?;
        for k in sources {
            ingestion.write(k, b"".to_vec())?;
        }
        ingestion.finish()?;
        // Durable too: the group commit is part of it.
        self.release_replaced_tables()?;
        Ok(written)
    }

    /// Compacts the binding keyspaces into sorted runs. After a bulk import the data sits in
    /// many overlapping tables and each lookup would check them all; call this once the import
    /// is done.
    pub fn compact_bindings(&self) -> Result<()> {
        // The compactions that the last writes started finish first: beside a major compaction
        // their output was a third copy of part of the tables (and their buffers more memory).
        self.wait_for_compactions(std::time::Duration::from_secs(600));
        self.release_replaced_tables()?;
        // One keyspace at a time, each giving back its old tables before the next is copied:
        // the disk holds one keyspace twice at most, not the whole store.
        for keyspace in self.bindings.all() {
            keyspace.major_compact()?;
            self.release_replaced_tables()?;
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
        let _serial = self.lock_binding_writes();
        let Some(record) = self.binding(medium, address, source)? else {
            return Ok(None);
        };
        let mut others = self.bindings_of(medium, address)?;
        others.retain(|(s, _)| s != source);
        let mut batch = self.db.batch();
        batch.remove(
            &self.bindings.by_threepid,
            binding_key(medium, address, source),
        );
        batch.remove(
            &self.bindings.by_source,
            source_key(source, medium, address),
        );
        let value = hash_value(medium, address, &others);
        for p in peppers {
            let key = hash_key(p.generation, &lookup_digest(address, medium, &p.pepper));
            if others.is_empty() {
                batch.remove(&self.bindings.by_hash, key);
            } else {
                batch.insert(&self.bindings.by_hash, key, value.clone());
            }
        }
        batch.commit()?;
        Ok(Some(record))
    }

    /// The 3PID behind a lookup hash in `generation`, with its bindings.
    pub fn threepid_of_hash(
        &self,
        generation: u32,
        digest: &[u8; 32],
    ) -> Result<Option<HashedThreepid>> {
        let Some(v) = self.bindings.by_hash.get(hash_key(generation, digest))? else {
            return Ok(None);
        };
        decode_hash_value(&v)
            .map(Some)
            .ok_or_else(|| Error::internal("corrupt lookup hash entry"))
    }

    /// Indexes every bound 3PID under `pepper` (a rotation's background work, a schema
    /// upgrade), in chunks; returns how many entries were written.
    ///
    /// Binds and unbinds go on meanwhile and write this generation themselves. So each chunk
    /// is written under the binding-write lock from the bindings as they are then, never from
    /// the older view the scan started with: an entry a bind just wrote is never replaced by a
    /// stale one, and a 3PID unbound since the scan began gets no entry.
    pub fn index_all(&self, pepper: &Pepper) -> Result<usize> {
        let mut written = 0;
        let mut chunk: Vec<(String, String)> = Vec::with_capacity(CHUNK);
        // Keys are medium\0address\0source, so a 3PID's sources are adjacent.
        for item in self.bindings.by_threepid.iter() {
            let key = item.key()?;
            let mut parts = key.splitn(3, |b| *b == 0);
            let (Some(medium), Some(address)) = (parts.next(), parts.next()) else {
                continue;
            };
            let threepid = (
                String::from_utf8_lossy(medium).into_owned(),
                String::from_utf8_lossy(address).into_owned(),
            );
            if chunk.last() == Some(&threepid) {
                continue;
            }
            chunk.push(threepid);
            if chunk.len() >= CHUNK {
                written += self.index_chunk(pepper, &chunk)?;
                chunk.clear();
            }
        }
        written += self.index_chunk(pepper, &chunk)?;
        self.durable()?;
        Ok(written)
    }

    /// Writes the hash entries of `threepids` under `pepper` from their current bindings.
    fn index_chunk(&self, pepper: &Pepper, threepids: &[(String, String)]) -> Result<usize> {
        let _serial = self.lock_binding_writes();
        let mut batch = self.db.batch();
        let mut written = 0;
        for (medium, address) in threepids {
            let key = hash_key(
                pepper.generation,
                &lookup_digest(address, medium, &pepper.pepper),
            );
            let bound = self.bindings_of(medium, address)?;
            if bound.is_empty() {
                batch.remove(&self.bindings.by_hash, key);
            } else {
                batch.insert(
                    &self.bindings.by_hash,
                    key,
                    hash_value(medium, address, &bound),
                );
                written += 1;
            }
        }
        batch.commit()?;
        Ok(written)
    }

    /// Rewrites the hash entries of the current and the next pepper (schema upgrades).
    pub(super) fn reindex_hashes(&self) -> Result<()> {
        let (current, next) = self.peppers()?;
        for p in current.iter().chain(next.iter()) {
            self.index_all(p)?;
        }
        Ok(())
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
        let prefix = [source.as_bytes(), b"\0"].concat();
        let mut out = Vec::new();
        for item in self.bindings.by_source.prefix(&prefix) {
            let key = item.key()?;
            let mut parts = key[prefix.len()..].splitn(2, |b| *b == 0);
            if let (Some(m), Some(a)) = (parts.next(), parts.next()) {
                out.push((
                    String::from_utf8_lossy(m).into_owned(),
                    String::from_utf8_lossy(a).into_owned(),
                ));
            }
        }
        Ok(out)
    }

    /// Fills `source_threepid` from the bindings (schema upgrades).
    pub(super) fn index_sources(&self) -> Result<()> {
        let mut batch = self.db.batch();
        for item in self.bindings.by_threepid.iter() {
            let key = item.key()?;
            let mut parts = key.splitn(3, |b| *b == 0);
            if let (Some(m), Some(a), Some(s)) = (parts.next(), parts.next(), parts.next()) {
                batch.insert(
                    &self.bindings.by_source,
                    [s, b"\0", m, b"\0", a].concat(),
                    b"".to_vec(),
                );
            }
            if batch.len() >= 10_000 {
                std::mem::replace(&mut batch, self.db.batch()).commit()?;
            }
        }
        batch.commit()?;
        Ok(())
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
        let entry = store.threepid_of_hash(1, &digest).unwrap().unwrap();
        assert_eq!(
            (entry.medium.as_str(), entry.address.as_str()),
            ("email", "alice@example.com")
        );
        let mxids: Vec<(&str, &str)> = entry
            .bindings
            .iter()
            .map(|b| (b.source.as_str(), b.mxid.as_str()))
            .collect();
        assert_eq!(
            mxids,
            [
                ("builtin", "@alice:example.org"),
                ("static", "@other:example.org")
            ]
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
        assert_eq!(store.threepid_of_hash(2, &d2).unwrap(), Some(entry));
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
        let left = store.threepid_of_hash(2, &d2).unwrap().unwrap();
        assert_eq!(left.bindings.len(), 1);
        assert_eq!(left.bindings[0].mxid, "@other:example.org");
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

    #[test]
    fn a_version_1_store_gets_bindings_in_its_hash_entries() {
        let dir = std::env::temp_dir().join(format!("oxisd-upgrade-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let pepper = Pepper {
            generation: 1,
            pepper: "pepper".into(),
        };
        let digest = lookup_digest("bob@example.com", "email", "pepper");
        {
            let store = Store::open(&dir).unwrap();
            store.begin_pepper(&pepper).unwrap();
            store.switch_pepper(&pepper).unwrap();
            store
                .put_binding(
                    "builtin",
                    &record("bob@example.com", "@bob:example.org"),
                    std::slice::from_ref(&pepper),
                )
                .unwrap();
            // What version 1 wrote: the 3PID only.
            store
                .bindings
                .by_hash
                .insert(hash_key(1, &digest), b"email\0bob@example.com".to_vec())
                .unwrap();
            store
                .meta
                .insert(b"schema_version", 1u32.to_be_bytes())
                .unwrap();
            store.durable().unwrap();
            store.close().unwrap();
        }
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.schema_version().unwrap(), 2);
        let entry = store.threepid_of_hash(1, &digest).unwrap().unwrap();
        assert_eq!(entry.bindings.len(), 1);
        assert_eq!(entry.bindings[0].mxid, "@bob:example.org");
        assert_eq!(
            store.threepids_of_source("builtin").unwrap(),
            [("email".to_string(), "bob@example.com".to_string())]
        );
        drop(store);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn bulk_imports_are_stored_indexed_and_replace_earlier_ones() {
        let dir = std::env::temp_dir().join(format!("oxisd-bulk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let pepper = Pepper {
            generation: 1,
            pepper: "pepper".into(),
        };
        let peppers = std::slice::from_ref(&pepper);
        {
            let store = Store::open(&dir).unwrap();
            store
                .put_binding(
                    "builtin",
                    &record("a@example.com", "@own:example.org"),
                    peppers,
                )
                .unwrap();
            let first =
                (0..3).map(|i| record(&format!("{}@example.com", (b'a' + i) as char), "@old:x"));
            assert_eq!(store.put_bindings("synapse", first, peppers).unwrap(), 3);
            let again = [
                record("c@example.com", "@new:x"),
                record("c@example.com", "@newer:x"),
            ];
            assert_eq!(store.put_bindings("synapse", again, peppers).unwrap(), 1);
            store.close().unwrap();
        }
        let store = Store::open(&dir).unwrap();
        let hashed = |address: &str| {
            let digest = lookup_digest(address, "email", "pepper");
            let entry = store.threepid_of_hash(1, &digest).unwrap().unwrap();
            entry
                .bindings
                .into_iter()
                .map(|b| format!("{} {}", b.source, b.mxid))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            hashed("a@example.com"),
            ["builtin @own:example.org", "synapse @old:x"]
        );
        assert_eq!(hashed("b@example.com"), ["synapse @old:x"]);
        assert_eq!(hashed("c@example.com"), ["synapse @newer:x"]);
        assert_eq!(store.threepids_of_source("synapse").unwrap().len(), 3);
        assert_eq!(store.threepids_of_source("builtin").unwrap().len(), 1);
        assert_eq!(
            store
                .binding("email", "c@example.com", "synapse")
                .unwrap()
                .unwrap()
                .mxid,
            "@newer:x"
        );
        drop(store);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn indexing_during_binds_and_unbinds_never_leaves_stale_entries() {
        let dir = std::env::temp_dir().join(format!("oxisd-index-race-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = std::sync::Arc::new(Store::open(&dir).unwrap());
        let (p1, p2) = (
            Pepper {
                generation: 1,
                pepper: "one".into(),
            },
            Pepper {
                generation: 2,
                pepper: "two".into(),
            },
        );
        let addresses: Vec<String> = (0..300).map(|i| format!("u{i}@example.org")).collect();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // A pepper rotation indexing generation 2 over and over while binds come and go.
        let indexer = {
            let (store, done, p2) = (store.clone(), done.clone(), p2.clone());
            std::thread::spawn(move || {
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    store.index_all(&p2).unwrap();
                }
            })
        };
        let peppers = [p1.clone(), p2.clone()];
        for round in 0..3 {
            for a in &addresses {
                let record = record(a, &format!("@r{round}:example.org"));
                store.put_binding("builtin", &record, &peppers).unwrap();
            }
            for a in &addresses {
                store
                    .delete_binding("builtin", "email", a, &peppers)
                    .unwrap();
            }
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        indexer.join().unwrap();
        // Everything was unbound: no generation may still answer for any address.
        for a in &addresses {
            for p in [&p1, &p2] {
                let digest = lookup_digest(a, "email", &p.pepper);
                assert_eq!(
                    store.threepid_of_hash(p.generation, &digest).unwrap(),
                    None,
                    "{a} still indexed under generation {}",
                    p.generation
                );
            }
        }
        drop(store);
        std::fs::remove_dir_all(dir).ok();
    }
}
