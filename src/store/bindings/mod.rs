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
//!
//! This file reads and writes bindings; `encoding.rs` has the byte layouts above, and
//! `hashes.rs` the peppers and the (re)indexing of the hash entries.

use fjall::{Database, Keyspace};
use serde::{Deserialize, Serialize};

use super::{OpenError, Store, open_bulk_keyspace};
use crate::crypto::lookup_hash::lookup_digest;
use crate::error::{Error, Result};
use encoding::{binding_key, decode_binding, hash_key, hash_value, source_key, threepid_prefix};

mod encoding;
mod hashes;
#[cfg(test)]
mod tests;

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

impl Store {
    pub(super) fn bindings_keyspace(&self) -> &Keyspace {
        &self.bindings.by_threepid
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
        for (key, value) in self.hash_entries(source, record, peppers)? {
            batch.insert(&self.bindings.by_hash, key, value);
        }
        Ok(())
    }

    /// The hash entries of `record`'s 3PID under each of `peppers` once `source` binds it as
    /// `record`: every source's binding of the 3PID, as committed, with `record` for `source`.
    fn hash_entries(
        &self,
        source: &str,
        record: &BindingRecord,
        peppers: &[Pepper],
    ) -> Result<Vec<([u8; 36], Vec<u8>)>> {
        let mut all = self.bindings_of(&record.medium, &record.address)?;
        all.retain(|(s, _)| s != source);
        all.push((source.to_string(), record.clone()));
        let value = hash_value(&record.medium, &record.address, &all);
        Ok(peppers
            .iter()
            .map(|p| {
                let digest = lookup_digest(&record.address, &record.medium, &p.pepper);
                (hash_key(p.generation, &digest), value.clone())
            })
            .collect())
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
            by_hash.extend(self.hash_entries(source, &record, peppers)?);
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
        // Acknowledged only once durable (the group commit records it), then the tables the
        // ingestion replaced are let go.
        self.durable()?;
        self.collect_old_versions()?;
        Ok(written)
    }

    /// Compacts the binding keyspaces into sorted runs. After a bulk import the data sits in
    /// many overlapping tables and each lookup would check them all; call this once the import
    /// is done.
    pub fn compact_bindings(&self) -> Result<()> {
        // The compactions that the last writes started finish first: beside a major compaction
        // their output was a third copy of part of the tables (and their buffers more memory).
        self.wait_for_compactions(std::time::Duration::from_secs(600));
        self.collect_old_versions()?;
        // One keyspace at a time, each giving back its old tables before the next is copied:
        // the disk holds one keyspace twice at most, not the whole store.
        for keyspace in self.bindings.all() {
            keyspace.major_compact()?;
            self.collect_old_versions()?;
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
