//! Lookups: 3PID -> Matrix user id, plain (v1, v2 `none`) or by hash (v2 `sha256`), through
//! the identity stores in their configured order, and signed associations for v1 answers.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::bindings::normalise_threepid;
use super::pepper::Peppers;
use super::rate_limit::RateLimiter;
use super::stores::IdentityStore;
use crate::config::AddressBudget;
use crate::crypto::base64;
use crate::crypto::signing::{KeyPair, sign_json};
use crate::error::{Error, ErrorKind, Result};
use crate::store::Store;
use crate::store::bindings::{BindingRecord, Pepper};

/// A 3PID as (medium, address).
pub type ThreePid = (String, String);

/// The lookup service.
pub struct Lookups {
    stores: Vec<Box<dyn IdentityStore>>,
    max_addresses: usize,
    allow_none: bool,
    /// Addresses per client (`lookup.rateLimit.perClient`); `None` when turned off.
    budget: Option<RateLimiter>,
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
            budget: None,
        }
    }

    /// The service with a budget of addresses per client (none when `addresses_per_second`
    /// is 0).
    pub fn with_budget(mut self, budget: AddressBudget) -> Lookups {
        self.budget = (budget.addresses_per_second > 0).then(|| {
            RateLimiter::per_second(
                "addresses looked up",
                budget.burst,
                budget.addresses_per_second,
            )
        });
        self
    }

    /// Admits a lookup of `addresses` addresses by `client` (a rate-limit key) before any of
    /// them is looked at: 413 `M_TOO_LARGE` beyond `lookup.maxAddresses`, else 429
    /// `M_LIMIT_EXCEEDED` (with `retry_after_ms`) beyond the client's budget, and then nothing
    /// is counted. A lookup of nothing counts as one address: it is still a request.
    pub fn admit(&self, client: &str, addresses: usize, now_ms: u64) -> Result<()> {
        self.check_count(addresses)?;
        if let Some(budget) = &self.budget {
            // At most lookup.maxAddresses (100 000), so it fits.
            let n = u32::try_from(addresses.max(1)).unwrap_or(u32::MAX);
            budget.take_many(client, n, now_ms)?;
        }
        Ok(())
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
            // The first store (or one after stores that found nothing) is asked for the whole
            // list as given, without a copy of it.
            let answers = if missing.len() == threepids.len() {
                s.bulk_lookup(store, threepids)?
            } else {
                let ask: Vec<(String, String)> =
                    missing.iter().map(|i| threepids[*i].clone()).collect();
                s.bulk_lookup(store, &ask)?
            };
            for (i, answer) in missing.into_iter().zip(answers) {
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

    /// The parameters of a v2 lookup, checked before anything is counted or looked up: 400
    /// `M_INVALID_PARAM` (unknown algorithm), 400 `M_INVALID_PEPPER` (with the right
    /// `algorithm` and `lookup_pepper`). The current pepper when they are right.
    pub fn check_v2(&self, peppers: &Peppers, algorithm: &str, pepper: &str) -> Result<Pepper> {
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
        Ok(current)
    }

    /// v2 lookup: `{mappings}` keyed by the strings as sent. `none` entries are normalised as
    /// every other path normalises a 3PID (emails case-folded), so `Alice@Example.org email`
    /// finds what v1 finds. The caller checks the client's budget ([`Lookups::admit`]) after
    /// [`Lookups::check_v2`] and before this.
    ///
    /// Errors: those of [`Lookups::check_v2`], 413 `M_TOO_LARGE`.
    pub fn lookup_v2(
        &self,
        store: &Store,
        peppers: &Peppers,
        algorithm: &str,
        pepper: &str,
        addresses: &[String],
        now_ms: u64,
    ) -> Result<Value> {
        let current = self.check_v2(peppers, algorithm, pepper)?;
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
            // The entries that can be 3PIDs: their index in `addresses`, and the 3PID.
            let (mut asked, mut threepids) = (Vec::new(), Vec::new());
            for (i, entry) in addresses.iter().enumerate() {
                let mut parts = entry.split(' ');
                if let (Some(a), Some(m), None) = (parts.next(), parts.next(), parts.next())
                    && !a.is_empty()
                    // Normalised as v1, binds and sessions do (`Alice@Example.org` is
                    // `alice@example.org`); what cannot be a 3PID is simply not found.
                    && let Ok((m, a)) = normalise_threepid(m, a)
                {
                    asked.push(i);
                    threepids.push((m.as_str().to_string(), a));
                }
            }
            for (i, found) in asked
                .into_iter()
                .zip(self.find_many(store, &threepids, now_ms)?)
            {
                if let Some(b) = found {
                    mappings.insert(addresses[i].clone(), Value::String(b.mxid));
                }
            }
        }
        crate::metrics::METRICS.lookups.add(addresses.len() as u64);
        crate::metrics::METRICS
            .lookup_hits
            .add(mappings.len() as u64);
        Ok(json!({ "mappings": mappings }))
    }

    /// v1 bulk lookup of 3PIDs as sent (`sent`) and normalised (`normalised`, in the same
    /// order): the index in `sent` and the user id of each one found, in request order. A 3PID
    /// sent twice (the very same strings) is looked up once, at its first place; spellings
    /// that differ (`Alice@Example.org`, `alice@example.org`) are each looked up and answered.
    ///
    /// Linear in the batch: duplicates are found with a hash set, not by scanning the list
    /// for every address.
    pub fn bulk_lookup_v1(
        &self,
        store: &Store,
        sent: &[ThreePid],
        normalised: &[ThreePid],
        now_ms: u64,
    ) -> Result<Vec<(usize, String)>> {
        self.check_count(sent.len())?;
        let mut seen: HashSet<&ThreePid> = HashSet::with_capacity(sent.len());
        let unique: Vec<usize> = (0..sent.len()).filter(|i| seen.insert(&sent[*i])).collect();
        let found = if unique.len() == normalised.len() {
            self.find_many(store, normalised, now_ms)?
        } else {
            let asked: Vec<ThreePid> = unique.iter().map(|i| normalised[*i].clone()).collect();
            self.find_many(store, &asked, now_ms)?
        };
        crate::metrics::METRICS.lookups.add(unique.len() as u64);
        let hits: Vec<(usize, String)> = unique
            .into_iter()
            .zip(found)
            .filter_map(|(i, b)| b.map(|b| (i, b.mxid)))
            .collect();
        crate::metrics::METRICS.lookup_hits.add(hits.len() as u64);
        Ok(hits)
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
