//! Federated lookups: when a v1 lookup asks for an email whose domain is not ours and nothing
//! local knows it, ask the identity server of that email's domain.
//!
//! The remote identity server is found by DNS SRV `_matrix-identity._tcp.<domain>`; its
//! targets are tried in the order the resolver gives (priority, then weighted draw), at most
//! three of them, until one answers 2xx. Its answer to
//! `GET https://<target>:<port>/_matrix/identity/api/v1/lookup?medium=email&address=...` is
//! used only when it is the signed association of exactly the address asked for (`medium`
//! `email`, `address` equal ignoring case, an `mxid`, `not_before <= now <= not_after`) and
//! carries one valid ed25519 signature by a key that the same server publishes at
//! `/_matrix/identity/api/v1/pubkey/<key id>`. `{}` means "not found there".
//!
//! Every request goes through [`HomeserverClient::get_url_json`], so the SRV targets are
//! resolved through the address guard, with its timeouts, and answers are capped at 16 KiB.
//! Only email is ever federated, never msisdn.
//!
//! Results are cached per address, with the caller's clock: a found association until its
//! `not_after`, at most 10 minutes; "not found" (no SRV record, `{}`, an unusable or badly
//! signed answer) for `lookup.federation.negativeCache` seconds; a failure to reach anyone
//! (DNS error, every target unreachable) for that long too but at most 5 minutes. Public keys
//! are cached per server and key id for an hour. Every cache is bounded in size.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use percent_encoding::{AsciiSet, utf8_percent_encode};
use serde_json::Value;

use crate::config::FederationConfig;
use crate::crypto::base64;
use crate::crypto::signing::verify_json;
use crate::homeserver::HomeserverClient;
use crate::homeserver::discovery::https_url;
use crate::homeserver::srv::SrvResolver;
use crate::http::paths;
use crate::threepid::params::{COMPONENT, url_encode};

/// The SRV service label of identity servers.
const SERVICE: &str = "_matrix-identity._tcp";
/// A key id in a path segment: `:` may stay as it is there (`ed25519:0`).
const KEY_ID: &AsciiSet = &COMPONENT.remove(b':');
/// Largest answer read from a remote identity server.
const ANSWER_LIMIT: u64 = 16 * 1024;
/// At most this many SRV targets are tried for one lookup.
const MAX_TARGETS: usize = 3;
/// At most this many signatures of one answer are checked (each may cost a key fetch).
const MAX_SIGNATURES: usize = 4;
/// A found association is remembered at most this long.
const MAX_POSITIVE_MS: u64 = 10 * 60 * 1000;
/// A failure to reach anyone is remembered at most this long.
const MAX_TRANSIENT_MS: u64 = 5 * 60 * 1000;
/// Public keys are remembered this long.
const KEY_TTL_MS: u64 = 60 * 60 * 1000;
/// Addresses (found or not) remembered.
const ADDRESS_CACHE_SIZE: usize = 10_000;
/// Entries in the public key cache.
const KEY_CACHE_SIZE: usize = 1_000;

/// What asking the remote gave.
enum Outcome {
    /// The verified association and its `not_after`.
    Found(Value, u64),
    /// The remote (or DNS) says there is nothing, or its answer is unusable.
    NotFound,
    /// Nobody could be asked.
    Failed,
}

/// A map whose entries expire at a time in ms, holding at most `capacity` entries.
struct Expiring<V> {
    entries: HashMap<String, (V, u64)>,
    capacity: usize,
}

impl<V: Clone> Expiring<V> {
    fn new(capacity: usize) -> Expiring<V> {
        Expiring {
            entries: HashMap::new(),
            capacity,
        }
    }

    fn get(&mut self, key: &str, now: u64) -> Option<V> {
        let (value, expires) = self.entries.get(key)?;
        if *expires > now {
            return Some(value.clone());
        }
        self.entries.remove(key);
        None
    }

    /// Remembers `value` until `expires`; when full, expired entries go first, then the one
    /// that would expire soonest.
    fn insert(&mut self, key: String, value: V, expires: u64, now: u64) {
        if expires <= now || self.capacity == 0 {
            return;
        }
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            self.entries.retain(|_, (_, e)| *e > now);
            if self.entries.len() >= self.capacity {
                let soonest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, e))| *e)
                    .map(|(k, _)| k.clone());
                if let Some(k) = soonest {
                    self.entries.remove(&k);
                }
            }
        }
        self.entries.insert(key, (value, expires));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Asks the identity servers of other email domains, with caches.
pub struct Federation {
    enabled: bool,
    negative_ms: u64,
    srv: SrvResolver,
    our_domains: Vec<String>,
    /// Per case-folded address: the association, or `None` for "not found".
    results: Mutex<Expiring<Option<Value>>>,
    keys: Mutex<Expiring<[u8; 32]>>,
}

impl Federation {
    /// `our_domains`: email domains never federated (matrix.domain and server.name; a port
    /// and case are ignored). With `config.enabled` false every lookup gives `None`.
    pub fn new(
        config: &FederationConfig,
        srv: SrvResolver,
        our_domains: Vec<String>,
    ) -> Federation {
        let our_domains = our_domains
            .iter()
            .map(|d| host_part(d))
            .filter(|d| !d.is_empty())
            .collect();
        Federation {
            enabled: config.enabled,
            negative_ms: config.negative_cache.saturating_mul(1000),
            srv,
            our_domains,
            results: Mutex::new(Expiring::new(ADDRESS_CACHE_SIZE)),
            keys: Mutex::new(Expiring::new(KEY_CACHE_SIZE)),
        }
    }

    /// The remote signed association (the JSON object exactly as the remote signed it) for an
    /// email, or None. Never errors to the caller: failures are logged at debug/info and give
    /// None. Uses a negative cache (config.negative_cache seconds) per address and a positive
    /// cache until the association's not_after or at most 10 minutes; bounded in size.
    pub fn lookup_email(&self, hs: &HomeserverClient, address: &str, now_ms: u64) -> Option<Value> {
        if !self.enabled {
            return None;
        }
        // An internationalised domain is stored in Unicode; DNS knows its ASCII form.
        let Some(domain) = email_domain(&crate::threepid::email::to_ace(address)) else {
            log::debug!("federated lookup: no usable domain in '{address}'");
            return None;
        };
        if self.our_domains.contains(&domain) {
            return None;
        }
        let key = caseless::default_case_fold_str(address);
        if let Some(cached) = lock(&self.results).get(&key, now_ms) {
            return cached;
        }
        let (result, ttl) = match self.ask(hs, address, &domain, now_ms) {
            Outcome::Found(association, not_after) => {
                let ttl = not_after.saturating_sub(now_ms).min(MAX_POSITIVE_MS);
                (Some(association), ttl)
            }
            Outcome::NotFound => (None, self.negative_ms),
            Outcome::Failed => (None, self.negative_ms.min(MAX_TRANSIENT_MS)),
        };
        let until = now_ms.saturating_add(ttl);
        lock(&self.results).insert(key, result.clone(), until, now_ms);
        result
    }

    /// Finds the domain's identity server and asks it.
    fn ask(&self, hs: &HomeserverClient, address: &str, domain: &str, now: u64) -> Outcome {
        let name = format!("{SERVICE}.{domain}");
        let records = match self.srv.lookup(&name) {
            Ok(records) => records,
            Err(e) => {
                log::info!("federated lookup: SRV lookup of {name} failed: {e}");
                return Outcome::Failed;
            }
        };
        if records.is_empty() {
            log::debug!("federated lookup: no identity server for {domain} ({name})");
            return Outcome::NotFound;
        }
        for record in records.iter().take(MAX_TARGETS) {
            let base = https_url(&record.target, record.port);
            let url = format!(
                "{base}{}{}?medium=email&address={}",
                paths::V1,
                paths::LOOKUP,
                url_encode(address)
            );
            match hs.get_url_json(&url, Some(ANSWER_LIMIT)) {
                Ok(answer) => return self.check(hs, &base, address, answer, now),
                Err(e) => log::info!("federated lookup at {base}: {e}"),
            }
        }
        Outcome::Failed
    }

    /// Whether `answer` from `base` is a valid, signed association of `address`.
    fn check(
        &self,
        hs: &HomeserverClient,
        base: &str,
        address: &str,
        answer: Value,
        now: u64,
    ) -> Outcome {
        let Some(object) = answer.as_object() else {
            log::info!("federated lookup at {base}: the answer is not an object");
            return Outcome::NotFound;
        };
        if object.is_empty() {
            log::debug!("federated lookup at {base}: not found");
            return Outcome::NotFound;
        }
        let str_field = |name: &str| object.get(name).and_then(Value::as_str);
        let time_field = |name: &str| object.get(name).and_then(Value::as_u64);
        let problem = if str_field("medium") != Some("email") {
            Some("medium is not email")
        } else if !str_field("address")
            .is_some_and(|a| caseless::default_caseless_match_str(a, address))
        {
            Some("the address is not the one asked for")
        } else if !str_field("mxid").is_some_and(|m| m.starts_with('@') && m.contains(':')) {
            Some("no valid mxid")
        } else {
            match (time_field("not_before"), time_field("not_after")) {
                (Some(from), Some(until)) if from <= now && now <= until => None,
                (Some(_), Some(_)) => Some("the association is not valid now"),
                _ => Some("not_before or not_after missing"),
            }
        };
        if let Some(problem) = problem {
            log::info!("federated lookup at {base}: unusable answer: {problem}");
            return Outcome::NotFound;
        }
        if !self.signed(hs, base, &answer, now) {
            log::info!("federated lookup at {base}: no valid signature on the association");
            return Outcome::NotFound;
        }
        let not_after = time_field("not_after").unwrap_or(now);
        Outcome::Found(answer, not_after)
    }

    /// Whether one ed25519 signature on `answer` verifies with the key `base` publishes.
    fn signed(&self, hs: &HomeserverClient, base: &str, answer: &Value, now: u64) -> bool {
        let Some(signatures) = answer.get("signatures").and_then(Value::as_object) else {
            return false;
        };
        let candidates = signatures
            .iter()
            .filter_map(|(entity, keys)| Some((entity, keys.as_object()?)))
            .flat_map(|(entity, keys)| keys.keys().map(move |key_id| (entity, key_id)))
            .filter(|(_, key_id)| key_id.starts_with("ed25519:"))
            .take(MAX_SIGNATURES);
        for (entity, key_id) in candidates {
            let Some(public_key) = self.public_key(hs, base, key_id, now) else {
                continue;
            };
            match verify_json(answer, entity, key_id, &public_key) {
                Ok(()) => return true,
                Err(e) => log::debug!("federated lookup at {base}: {entity} {key_id}: {e}"),
            }
        }
        false
    }

    /// The public key `key_id` of the identity server at `base`, cached.
    fn public_key(
        &self,
        hs: &HomeserverClient,
        base: &str,
        key_id: &str,
        now: u64,
    ) -> Option<[u8; 32]> {
        let cache_key = format!("{base} {key_id}");
        if let Some(key) = lock(&self.keys).get(&cache_key, now) {
            return Some(key);
        }
        let url = format!(
            "{base}{}{}/{}",
            paths::V1,
            paths::PUBKEY,
            utf8_percent_encode(key_id, KEY_ID)
        );
        let answer = match hs.get_url_json(&url, Some(ANSWER_LIMIT)) {
            Ok(answer) => answer,
            Err(e) => {
                log::info!("federated lookup: fetching key {key_id} from {base}: {e}");
                return None;
            }
        };
        let key = answer
            .get("public_key")
            .and_then(Value::as_str)
            .and_then(base64::decode)
            .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok());
        match key {
            Some(key) => {
                lock(&self.keys).insert(cache_key, key, now.saturating_add(KEY_TTL_MS), now);
                Some(key)
            }
            None => {
                log::info!("federated lookup: {base} has no usable public key {key_id}");
                None
            }
        }
    }
}

/// The lower-case domain of an email address, when it is a plain DNS name (ASCII letters,
/// digits, `-` and `_`, in labels of 1 to 63 bytes, 253 bytes at most).
fn email_domain(address: &str) -> Option<String> {
    let (local, domain) = address.rsplit_once('@')?;
    let domain = domain
        .strip_suffix('.')
        .unwrap_or(domain)
        .to_ascii_lowercase();
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let ok = !local.is_empty() && domain.len() <= 253 && domain.split('.').all(label_ok);
    ok.then_some(domain)
}

/// A configured domain or server name without port, trailing dot and case.
fn host_part(name: &str) -> String {
    let name = name.trim();
    let host = match name.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => name,
    };
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        assert_eq!(email_domain("a@Example.ORG."), Some("example.org".into()));
        assert_eq!(email_domain("a@b@x.test"), Some("x.test".into()));
        for bad in "nodomain @x.test a@ a@x..test a@[127.0.0.1] a@é.test".split(' ') {
            assert_eq!(email_domain(bad), None, "{bad}");
        }
        assert_eq!(host_part("ID.test:8090"), "id.test");
        assert_eq!(host_part("example.org."), "example.org");
    }

    #[test]
    fn encoding() {
        assert_eq!(url_encode("a+b@x.test"), "a%2Bb%40x.test");
        let key_id = |k| utf8_percent_encode(k, KEY_ID).to_string();
        assert_eq!(key_id("ed25519:0/x"), "ed25519:0%2Fx");
        assert_eq!(key_id("é"), "%C3%A9");
    }

    #[test]
    fn expiring_cache_is_bounded() {
        let mut cache = Expiring::new(2);
        cache.insert("a".into(), 1, 100, 0);
        cache.insert("b".into(), 2, 50, 0);
        cache.insert("c".into(), 3, 200, 0);
        assert_eq!(cache.entries.len(), 2);
        assert_eq!(cache.get("b", 0), None);
        assert_eq!(cache.get("a", 0), Some(1));
        assert_eq!(cache.get("a", 100), None);
        assert_eq!(cache.entries.len(), 1);
        cache.insert("d".into(), 4, 10, 20);
        assert_eq!(cache.get("d", 0), None);
    }
}
