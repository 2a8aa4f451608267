//! Lookups: 3PID -> Matrix user id, plain (v1, v2 `none`) or by hash (v2 `sha256`), through
//! the identity stores in their configured order, and signed associations for v1 answers.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Value, json};

use super::bindings::normalise_threepid;
use super::federation::Federation;
use super::pepper::Peppers;
use super::rate_limit::RateLimiter;
use super::stores::IdentityStore;
use crate::config::{AddressBudget, LookupConfig};
use crate::crypto::base64;
use crate::crypto::signing::{KeyPair, sign_json};
use crate::error::{Error, ErrorKind, Result};
use crate::homeserver::HomeserverClient;
use crate::keys::KeyRing;
use crate::metrics::METRICS;
use crate::store::Store;
use crate::store::bindings::{BindingRecord, Pepper};
use crate::threepid::Medium;

/// A 3PID as (medium, address).
pub type ThreePid = (Medium, String);

/// The lookup service.
pub struct Lookups {
    stores: Vec<Box<dyn IdentityStore>>,
    max_addresses: usize,
    allow_none: bool,
    /// Addresses per client (`lookup.rateLimit.perClient`); `None` when turned off.
    budget: Option<RateLimiter>,
    store: Arc<Store>,
    peppers: Arc<Peppers>,
    keys: Arc<KeyRing>,
    server_name: String,
    /// The identity servers of other email domains (`lookup.federation`), when enabled.
    federation: Option<Federated>,
}

/// Lookups at the identity servers of other email domains.
struct Federated {
    federation: Federation,
    homeserver: Arc<HomeserverClient>,
    /// Also for v1 bulk lookups (`lookup.federation.bulk`).
    bulk: bool,
}

/// What `hash_details` offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashDetails {
    /// The pepper clients must hash with.
    pub lookup_pepper: String,
    /// The algorithms offered.
    pub algorithms: Vec<&'static str>,
}

/// A 3PID a lookup found: its place in the request, and its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The index of the entry in the request.
    pub index: usize,
    /// The Matrix user id it is bound to.
    pub mxid: String,
}

/// The algorithms of `hash_details`.
pub const SHA256: &str = "sha256";
/// Plain-text lookups.
pub const NONE: &str = "none";

fn valid_now(b: &BindingRecord, now_ms: u64) -> bool {
    b.not_before <= now_ms && now_ms <= b.not_after
}

impl Lookups {
    /// The service over `stores`, asked in the given order, as `config` limits it (its
    /// federation part aside: see [`Lookups::with_federation`]). Hashes are looked up in
    /// `store` under the current pepper of `peppers`; v1 answers are signed with the signing
    /// key of `keys` as `server_name`.
    pub fn new(
        config: &LookupConfig,
        stores: Vec<Box<dyn IdentityStore>>,
        store: Arc<Store>,
        peppers: Arc<Peppers>,
        keys: Arc<KeyRing>,
        server_name: &str,
    ) -> Lookups {
        Lookups {
            stores,
            max_addresses: config.max_addresses,
            allow_none: config.allow_none,
            budget: budget(config.rate_limit.per_client),
            store,
            peppers,
            keys,
            server_name: server_name.to_string(),
            federation: None,
        }
    }

    /// The service asking `federation` (through `homeserver`) for emails of other domains
    /// that no store here knows: in v1 lookups, and in v1 bulk lookups too when `bulk`.
    pub fn with_federation(
        mut self,
        federation: Federation,
        homeserver: Arc<HomeserverClient>,
        bulk: bool,
    ) -> Lookups {
        self.federation = Some(Federated {
            federation,
            homeserver,
            bulk,
        });
        self
    }

    /// Admits a lookup of `addresses` addresses by `client` (a rate-limit key) before any of
    /// them is looked at: 413 `M_TOO_LARGE` beyond `lookup.maxAddresses`, else 429
    /// `M_LIMIT_EXCEEDED` (with `retry_after_ms`) beyond the client's budget, and then nothing
    /// is counted. A lookup of nothing counts as one address: it is still a request.
    fn admit(&self, client: &str, addresses: usize, now_ms: u64) -> Result<()> {
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

    /// `hash_details`: the current pepper and the algorithms.
    pub fn hash_details(&self) -> HashDetails {
        HashDetails {
            lookup_pepper: self.peppers.current().pepper,
            algorithms: self.algorithms(),
        }
    }

    /// The first valid binding of (medium, address) in store order.
    pub fn find(
        &self,
        medium: Medium,
        address: &str,
        now_ms: u64,
    ) -> Result<Option<BindingRecord>> {
        first_valid(self.stores.iter(), &self.store, medium, address, now_ms)
    }

    /// Bindings of many 3PIDs, asking each store only for what earlier stores did not know.
    pub fn find_many(
        &self,
        threepids: &[ThreePid],
        now_ms: u64,
    ) -> Result<Vec<Option<BindingRecord>>> {
        let store = &*self.store;
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
                let ask: Vec<ThreePid> = missing.iter().map(|i| threepids[*i].clone()).collect();
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
    pub fn check_v2(&self, algorithm: &str, pepper: &str) -> Result<Pepper> {
        let current = self.peppers.current();
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

    /// v2 lookup by `client` (a rate-limit key, counted in addresses): the entries of
    /// `addresses` that were found, each distinct entry once, in the order of the entries'
    /// strings. `none` entries are normalised as every other path normalises a 3PID (emails
    /// case-folded), so `Alice@Example.org email` finds what v1 finds.
    ///
    /// Errors: those of [`Lookups::check_v2`] (checked first, without counting anything), 413
    /// `M_TOO_LARGE`, 429 `M_LIMIT_EXCEEDED`.
    pub fn lookup_v2(
        &self,
        client: &str,
        algorithm: &str,
        pepper: &str,
        addresses: &[String],
        now_ms: u64,
    ) -> Result<Vec<Found>> {
        let current = self.check_v2(algorithm, pepper)?;
        self.admit(client, addresses.len(), now_ms)?;
        let mut found = if algorithm == SHA256 {
            self.hashed(&current, addresses, now_ms)?
        } else {
            self.plain(addresses, now_ms)?
        };
        // One mapping per distinct entry (an entry sent twice gives the same user).
        found.sort_unstable_by(|a, b| addresses[a.index].cmp(&addresses[b.index]));
        found.dedup_by(|a, b| addresses[a.index] == addresses[b.index]);
        METRICS.lookups.add(addresses.len() as u64);
        METRICS.lookup_hits.add(found.len() as u64);
        Ok(found)
    }

    /// The hashes of `addresses` found under the `current` pepper: the first valid binding
    /// among the local stores, in store order.
    fn hashed(&self, current: &Pepper, addresses: &[String], now_ms: u64) -> Result<Vec<Found>> {
        let order: Vec<&str> = self
            .stores
            .iter()
            .filter(|s| s.is_local())
            .map(|s| s.name())
            .collect();
        let mut out = Vec::new();
        for (index, hash) in addresses.iter().enumerate() {
            let Some(digest) = decode_hash(hash) else {
                continue;
            };
            let Some(entry) = self.store.threepid_of_hash(current.generation, &digest)? else {
                continue;
            };
            let found = order.iter().find_map(|name| {
                entry
                    .bindings
                    .iter()
                    .find(|b| b.source == *name && b.not_before <= now_ms && now_ms <= b.not_after)
            });
            if let Some(b) = found {
                out.push(Found {
                    index,
                    mxid: b.mxid.clone(),
                });
            }
        }
        Ok(out)
    }

    /// The `"<address> <medium>"` entries of `addresses` found through the stores.
    fn plain(&self, addresses: &[String], now_ms: u64) -> Result<Vec<Found>> {
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
                threepids.push((m, a));
            }
        }
        Ok(asked
            .into_iter()
            .zip(self.find_many(&threepids, now_ms)?)
            .filter_map(|(index, b)| {
                b.map(|b| Found {
                    index,
                    mxid: b.mxid,
                })
            })
            .collect())
    }

    /// v1 lookup of (medium, address) by `client`: the signed association of its binding
    /// here, else for an email of a foreign domain the one its identity server signed
    /// (`lookup.federation`), else `None`.
    ///
    /// Errors: 400 `M_INVALID_PARAM` (medium or address), 429 `M_LIMIT_EXCEEDED` (one address).
    pub fn lookup_v1(
        &self,
        client: &str,
        medium: &str,
        address: &str,
        now_ms: u64,
    ) -> Result<Option<Value>> {
        let (medium, address) = normalise_threepid(medium, address)?;
        self.admit(client, 1, now_ms)?;
        METRICS.lookups.inc();
        if let Some(b) = self.find(medium, &address, now_ms)? {
            METRICS.lookup_hits.inc();
            let signed = signed_association(&b, &self.server_name, &self.keys.signing())?;
            return Ok(Some(signed));
        }
        if medium == Medium::Email
            && let Some(f) = &self.federation
        {
            return Ok(f.federation.lookup_email(&f.homeserver, &address, now_ms));
        }
        Ok(None)
    }

    /// v1 bulk lookup by `client` of `[medium, address]` pairs, answered as sent: the pairs
    /// found, in request order; a pair sent again (the very same strings) is answered once,
    /// at its first place, while spellings that differ (`Alice@Example.org`,
    /// `alice@example.org`) are each looked up and answered. Unknown media and impossible
    /// addresses are simply not found. With `lookup.federation.bulk`, the emails nobody here
    /// knows are then asked at their domain's identity server, each address once, and those
    /// found follow.
    ///
    /// Linear in the batch: duplicates are found with a hash set, not by scanning the list
    /// for every address.
    ///
    /// Errors: 413 `M_TOO_LARGE`, 429 `M_LIMIT_EXCEEDED` (counted in pairs, before any
    /// address is looked at: normalising is work too).
    pub fn bulk_lookup_v1(
        &self,
        client: &str,
        pairs: &[[String; 2]],
        now_ms: u64,
    ) -> Result<Vec<Found>> {
        self.admit(client, pairs.len(), now_ms)?;
        // The pairs that can be 3PIDs (their index in `pairs`), and each normalised.
        let (mut sent, mut normalised): (Vec<usize>, Vec<ThreePid>) = (
            Vec::with_capacity(pairs.len()),
            Vec::with_capacity(pairs.len()),
        );
        for (i, [medium, address]) in pairs.iter().enumerate() {
            if let Ok((m, a)) = normalise_threepid(medium, address) {
                sent.push(i);
                normalised.push((m, a));
            }
        }
        let mut seen: HashSet<&[String; 2]> = HashSet::with_capacity(sent.len());
        let unique: Vec<usize> = (0..sent.len())
            .filter(|i| seen.insert(&pairs[sent[*i]]))
            .collect();
        let found = if unique.len() == normalised.len() {
            self.find_many(&normalised, now_ms)?
        } else {
            let asked: Vec<ThreePid> = unique.iter().map(|i| normalised[*i].clone()).collect();
            self.find_many(&asked, now_ms)?
        };
        METRICS.lookups.add(unique.len() as u64);
        let mut hits: Vec<Found> = unique
            .into_iter()
            .zip(found)
            .filter_map(|(i, b)| {
                b.map(|b| Found {
                    index: sent[i],
                    mxid: b.mxid,
                })
            })
            .collect();
        METRICS.lookup_hits.add(hits.len() as u64);
        if let Some(f) = self.federation.as_ref().filter(|f| f.bulk) {
            let known: HashSet<&[String; 2]> = hits.iter().map(|h| &pairs[h.index]).collect();
            let mut asked: HashSet<&str> = HashSet::new();
            let mut remote = Vec::new();
            for (&index, (m, a)) in sent.iter().zip(&normalised) {
                if *m != Medium::Email || known.contains(&pairs[index]) || !asked.insert(a.as_str())
                {
                    continue;
                }
                if let Some(answer) = f.federation.lookup_email(&f.homeserver, a, now_ms)
                    && let Some(mxid) = answer.get("mxid").and_then(Value::as_str)
                {
                    remote.push(Found {
                        index,
                        mxid: mxid.to_string(),
                    });
                }
            }
            hits.extend(remote);
        }
        Ok(hits)
    }
}

/// The budget of addresses per client (none when `addresses_per_second` is 0).
fn budget(budget: AddressBudget) -> Option<RateLimiter> {
    (budget.addresses_per_second > 0).then(|| {
        RateLimiter::per_second(
            "addresses looked up",
            budget.burst,
            budget.addresses_per_second,
        )
    })
}

/// The first valid answer of `stores`, asked in order.
fn first_valid<'a>(
    stores: impl Iterator<Item = &'a Box<dyn IdentityStore>>,
    store: &Store,
    medium: Medium,
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
