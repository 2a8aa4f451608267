//! Lookups: 3PID -> Matrix user id, plain (v1, v2 `none`) or by hash (v2 `sha256`), through
//! the identity stores in their configured order, and signed associations for v1 answers.

use serde_json::{Value, json};

use super::bindings::normalise_threepid;
use super::pepper::Peppers;
use super::stores::IdentityStore;
use crate::crypto::base64;
use crate::crypto::signing::{KeyPair, sign_json};
use crate::error::{Error, ErrorKind, Result};
use crate::store::Store;
use crate::store::bindings::BindingRecord;

/// A 3PID as (medium, address).
pub type ThreePid = (String, String);

/// The lookup service.
pub struct Lookups {
    stores: Vec<Box<dyn IdentityStore>>,
    max_addresses: usize,
    allow_none: bool,
}

/// The algorithms of `hash_details`.
pub const SHA256: &str = "sha256";
/// Plain-text lookups.
pub const NONE: &str = "none";

fn valid_now(b: &BindingRecord, now_ms: u64) -> bool {
    b.not_before <= now_ms && now_ms <= b.not_after
}

impl Lookups {
    /// The service over `stores`, asked in the given order.
    pub fn new(
        stores: Vec<Box<dyn IdentityStore>>,
        max_addresses: usize,
        allow_none: bool,
    ) -> Lookups {
        Lookups {
            stores,
            max_addresses,
            allow_none,
        }
    }

    /// Names of the stores, in order (for the start-up log).
    pub fn store_names(&self) -> Vec<&'static str> {
        self.stores.iter().map(|s| s.name()).collect()
    }

    /// The algorithms offered.
    pub fn algorithms(&self) -> Vec<&'static str> {
        if self.allow_none {
            vec![SHA256, NONE]
        } else {
            vec![SHA256]
        }
    }

    /// The first valid binding of (medium, address) in store order.
    pub fn find(
        &self,
        store: &Store,
        medium: &str,
        address: &str,
        now_ms: u64,
    ) -> Result<Option<BindingRecord>> {
        first_valid(self.stores.iter(), store, medium, address, now_ms)
    }

    /// Bindings of many 3PIDs, asking each store only for what earlier stores did not know.
    pub fn find_many(
        &self,
        store: &Store,
        threepids: &[(String, String)],
        now_ms: u64,
    ) -> Result<Vec<Option<BindingRecord>>> {
        let mut found: Vec<Option<BindingRecord>> = vec![None; threepids.len()];
        for s in &self.stores {
            let missing: Vec<usize> = (0..threepids.len())
                .filter(|i| found[*i].is_none())
                .collect();
            if missing.is_empty() {
                break;
            }
            let ask: Vec<(String, String)> =
                missing.iter().map(|i| threepids[*i].clone()).collect();
            for (i, answer) in missing.into_iter().zip(s.bulk_lookup(store, &ask)?) {
                found[i] = answer.filter(|b| valid_now(b, now_ms));
            }
        }
        Ok(found)
    }

    fn check_count(&self, n: usize) -> Result<()> {
        if n > self.max_addresses {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!(
                    "Too many addresses: at most {} per request",
                    self.max_addresses
                ),
            ));
        }
        Ok(())
    }

    /// v2 lookup: `{mappings}` keyed by the strings as sent. `none` entries are normalised as
    /// every other path normalises a 3PID (emails case-folded), so `Alice@Example.org email`
    /// finds what v1 finds.
    ///
    /// Errors: 400 `M_INVALID_PEPPER` (with the right `algorithm` and `lookup_pepper`), 400
    /// `M_INVALID_PARAM` (unknown algorithm), 413 `M_TOO_LARGE`.
    pub fn lookup_v2(
        &self,
        store: &Store,
        peppers: &Peppers,
        algorithm: &str,
        pepper: &str,
        addresses: &[String],
        now_ms: u64,
    ) -> Result<Value> {
        let current = peppers.current();
        if !self.algorithms().contains(&algorithm) {
            return Err(Error::new(
                ErrorKind::InvalidParam,
                format!("Unsupported algorithm '{algorithm}': use one of /hash_details"),
            ));
        }
        if pepper != current.pepper {
            return Err(Error::new(
                ErrorKind::InvalidPepper,
                "Incorrect value for lookup_pepper: fetch /hash_details again",
            )
            .with_extra("algorithm", algorithm.to_string())
            .with_extra("lookup_pepper", current.pepper.clone()));
        }
        self.check_count(addresses.len())?;
        let mut mappings = serde_json::Map::new();
        if algorithm == SHA256 {
            let order: Vec<&str> = self
                .stores
                .iter()
                .filter(|s| s.is_local())
                .map(|s| s.name())
                .collect();
            for hash in addresses {
                let Some(digest) = decode_hash(hash) else {
                    continue;
                };
                let Some(entry) = store.threepid_of_hash(current.generation, &digest)? else {
                    continue;
                };
                // The first valid binding among the local stores, in store order.
                let found = order.iter().find_map(|name| {
                    entry.bindings.iter().find(|b| {
                        b.source == *name && b.not_before <= now_ms && now_ms <= b.not_after
                    })
                });
                if let Some(b) = found {
                    mappings.insert(hash.clone(), Value::String(b.mxid.clone()));
                }
            }
        } else {
            let parsed: Vec<(usize, (String, String))> = addresses
                .iter()
                .enumerate()
                .filter_map(|(i, entry)| {
                    let mut parts = entry.split(' ');
                    match (parts.next(), parts.next(), parts.next()) {
                        // Normalised as v1, binds and sessions do (`Alice@Example.org` is
                        // `alice@example.org`); what cannot be a 3PID is simply not found.
                        (Some(a), Some(m), None) if !a.is_empty() => normalise_threepid(m, a)
                            .ok()
                            .map(|(m, a)| (i, (m.as_str().to_string(), a))),
                        _ => None,
                    }
                })
                .collect();
            let threepids: Vec<(String, String)> = parsed.iter().map(|(_, t)| t.clone()).collect();
            for ((i, _), found) in parsed
                .iter()
                .zip(self.find_many(store, &threepids, now_ms)?)
            {
                if let Some(b) = found {
                    mappings.insert(addresses[*i].clone(), Value::String(b.mxid));
                }
            }
        }
        crate::metrics::METRICS.lookups.add(addresses.len() as u64);
        crate::metrics::METRICS
            .lookup_hits
            .add(mappings.len() as u64);
        Ok(json!({ "mappings": mappings }))
    }

    /// v1 bulk lookup of `(as sent, normalised)` 3PID pairs: the found
    /// `[medium, address, mxid]` triples, with the 3PIDs as sent and duplicates removed.
    pub fn bulk_lookup_v1(
        &self,
        store: &Store,
        threepids: &[(ThreePid, ThreePid)],
        now_ms: u64,
    ) -> Result<Value> {
        self.check_count(threepids.len())?;
        let mut unique: Vec<&(ThreePid, ThreePid)> = Vec::with_capacity(threepids.len());
        for t in threepids {
            if !unique.iter().any(|u| u.0 == t.0) {
                unique.push(t);
            }
        }
        let normalised: Vec<(String, String)> = unique.iter().map(|t| t.1.clone()).collect();
        let found = self.find_many(store, &normalised, now_ms)?;
        let triples: Vec<Value> = unique
            .into_iter()
            .zip(found)
            .filter_map(|(((m, a), _), b)| b.map(|b| json!([m, a, b.mxid])))
            .collect();
        crate::metrics::METRICS.lookups.add(normalised.len() as u64);
        crate::metrics::METRICS
            .lookup_hits
            .add(triples.len() as u64);
        Ok(json!({ "threepids": triples }))
    }
}

/// The first valid answer of `stores`, asked in order.
fn first_valid<'a>(
    stores: impl Iterator<Item = &'a Box<dyn IdentityStore>>,
    store: &Store,
    medium: &str,
    address: &str,
    now_ms: u64,
) -> Result<Option<BindingRecord>> {
    for s in stores {
        if let Some(b) = s.lookup(store, medium, address)?
            && valid_now(&b, now_ms)
        {
            return Ok(Some(b));
        }
    }
    Ok(None)
}

/// A sha256 lookup hash (URL-safe unpadded base64 of 32 bytes; either alphabet accepted).
fn decode_hash(hash: &str) -> Option<[u8; 32]> {
    if hash.len() > 64 {
        return None;
    }
    base64::decode(hash)?.try_into().ok()
}

/// The signed association of a binding (bind answers, v1 lookups).
pub fn signed_association(b: &BindingRecord, server_name: &str, key: &KeyPair) -> Result<Value> {
    let mut assoc = json!({
        "address": b.address,
        "medium": b.medium,
        "mxid": b.mxid,
        "not_before": b.not_before,
        "not_after": b.not_after,
        "ts": b.ts,
    });
    sign_json(&mut assoc, server_name, key).map_err(Error::internal)?;
    Ok(assoc)
}
