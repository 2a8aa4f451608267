//! The lookup hash index: the peppers and their generations, reading an entry, and indexing
//! every bound 3PID under a pepper (rotations, schema upgrades).

use super::encoding::{decode_hash_value, decode_pepper, encode_pepper, hash_key, hash_value};
use super::{HashedThreepid, Pepper};
use crate::crypto::lookup_hash::lookup_digest;
use crate::error::{Error, Result};
use crate::store::Store;

/// 3PIDs indexed under one lock hold by [`Store::index_all`].
const CHUNK: usize = 1000;

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
    pub(in crate::store) fn reindex_hashes(&self) -> Result<()> {
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
}
