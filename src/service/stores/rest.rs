//! The `rest` identity store: asks an operator's backend over mxisd's REST backend protocol.
//!
//! - Single: `POST <url>/_mxisd/backend/api/v1/identity/single` with
//!   `{"lookup": {"medium", "address"}}`; the answer is
//!   `{"lookup": {"medium", "address", "id": {"type", "value"}}}`, or `{}` when unknown.
//! - Bulk: `POST <url>/_mxisd/backend/api/v1/identity/bulk` with
//!   `{"lookup": [{"medium", "address"}, ...]}`; the answer lists the found ones only, matched
//!   back to the question by medium and address (case-insensitively for emails). Bulk lookups
//!   are asked in chunks of [`BULK_CHUNK`], so each answer fits in [`MAX_ANSWER_BYTES`].
//!
//! An id of type `mxid` is a full user id (`@user:server`); `localpart` and `uid` are local
//! parts on our `matrix.domain`. Answers are valid from one minute before until five minutes
//! after the lookup, like mxisd's.
//!
//! The backend is not in the binding keyspace, so it only answers plain lookups. A backend that
//! cannot be reached, answers an error status or something unreadable is logged and treated as
//! knowing nothing: it never breaks the lookups of the other stores.

use std::collections::HashMap;

use log::{debug, warn};
use serde_json::{Map, Value, json};
use ureq::http::Uri;

use super::IdentityStore;
use crate::config::RestStoreConfig;
use crate::error::Result;
use crate::store::Store;
use crate::store::bindings::BindingRecord;
use crate::threepid::Medium;
use crate::util::time::now_ms;

/// The path of single lookups, below the configured URL.
pub const SINGLE_PATH: &str = "/_mxisd/backend/api/v1/identity/single";
/// The path of bulk lookups, below the configured URL.
pub const BULK_PATH: &str = "/_mxisd/backend/api/v1/identity/bulk";
/// The most bytes of one answer that are read; a longer answer counts as a failure.
pub const MAX_ANSWER_BYTES: u64 = 64 * 1024;
/// The most 3PIDs asked in one bulk request.
pub const BULK_CHUNK: usize = 100;
/// How long before the lookup an answer is valid (`not_before`), ms.
const VALID_BEFORE_MS: u64 = 60_000;
/// How long after the lookup an answer is valid (`not_after`), ms.
const VALID_AFTER_MS: u64 = 5 * 60_000;
/// The longest Matrix user id, bytes.
const MAX_USER_ID_BYTES: usize = 255;

/// A result whose error is a reason for the log.
type Why<T> = std::result::Result<T, String>;

/// The `rest` identity store.
pub struct RestStore {
    agent: ureq::Agent,
    single_url: String,
    bulk_url: String,
    /// The configured URL as logs show it: user and password, if any, hidden.
    shown_url: String,
    /// The `user:password` of the URL, hidden wherever it shows up in an error.
    userinfo: Option<String>,
    domain: String,
}

impl RestStore {
    /// A store asking the backend at `config.url` (an `http(s)` base URL; a trailing `/` is
    /// ignored), each call given `config.timeout` seconds in all. `localpart` and `uid` ids
    /// become users of `matrix_domain`. The error says which setting is wrong.
    pub fn new(config: &RestStoreConfig, matrix_domain: &str) -> Why<RestStore> {
        let base = config.url.trim().trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!("url '{base}' must be an http(s) URL"));
        }
        let uri = base
            .parse::<Uri>()
            .map_err(|e| format!("url '{base}' is not a valid URL: {e}"))?;
        if uri.query().is_some() {
            return Err(format!("url '{base}' must not have a query"));
        }
        if config.timeout == 0 {
            return Err("timeout must be at least 1 second".into());
        }
        if matrix_domain.is_empty() {
            return Err("the Matrix domain is empty".into());
        }
        let authority = uri.authority().map_or("", |a| a.as_str());
        let userinfo = authority.rsplit_once('@').map(|(u, _)| u.to_string());
        let shown_url = match &userinfo {
            Some(u) => base.replacen(&format!("{u}@"), "***@", 1),
            None => base.to_string(),
        };
        let agent = crate::outbound::operator_agent(base, config.timeout);
        Ok(RestStore {
            agent,
            single_url: format!("{base}{SINGLE_PATH}"),
            bulk_url: format!("{base}{BULK_PATH}"),
            shown_url,
            userinfo,
            domain: matrix_domain.to_string(),
        })
    }

    /// The binding of (`medium`, `address`) the backend knows; `None` when it knows none or
    /// could not be asked (logged).
    pub fn find(&self, medium: Medium, address: &str) -> Option<BindingRecord> {
        let body = json!({ "lookup": { "medium": medium, "address": address } });
        let answer = self.post(&self.single_url, &body);
        match answer.and_then(|answer| self.single_answer(&answer)) {
            Ok(Some(mxid)) => Some(record(medium, address, mxid, now_ms())),
            Ok(None) => {
                debug!("rest store: no binding for this {medium}");
                None
            }
            Err(reason) => {
                self.warn(SINGLE_PATH, &reason);
                None
            }
        }
    }

    /// The bindings of many 3PIDs (medium, address), in the same order; `None` where the
    /// backend knows none. A failed request leaves its chunk and every later one at `None`
    /// (logged), so a broken backend costs at most one timeout.
    pub fn find_many(&self, threepids: &[(Medium, String)]) -> Vec<Option<BindingRecord>> {
        let mut found = vec![None; threepids.len()];
        let now = now_ms();
        for (n, chunk) in threepids.chunks(BULK_CHUNK).enumerate() {
            let mxids = match self.bulk_chunk(chunk) {
                Ok(mxids) => mxids,
                Err(reason) => {
                    self.warn(BULK_PATH, &reason);
                    break;
                }
            };
            for (i, ((medium, address), mxid)) in chunk.iter().zip(mxids).enumerate() {
                if let Some(mxid) = mxid {
                    found[n * BULK_CHUNK + i] = Some(record(*medium, address, mxid, now));
                }
            }
        }
        found
    }

    /// One bulk request: the user id of each 3PID of `chunk`.
    fn bulk_chunk(&self, chunk: &[(Medium, String)]) -> Why<Vec<Option<String>>> {
        let items: Vec<Value> = chunk
            .iter()
            .map(|(medium, address)| json!({ "medium": medium, "address": address }))
            .collect();
        let answer = self.post(&self.bulk_url, &json!({ "lookup": items }))?;
        let entries = match answer.as_object().ok_or("not a JSON object")?.get("lookup") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(entries)) => entries,
            Some(_) => return Err("'lookup' is not an array".into()),
        };
        let mut by_threepid: HashMap<(String, String), String> = HashMap::new();
        let mut skipped = Vec::new();
        for entry in entries {
            match self.bulk_entry(entry) {
                Ok((key, mxid)) => {
                    by_threepid.entry(key).or_insert(mxid);
                }
                Err(reason) => skipped.push(reason),
            }
        }
        if let Some(first) = skipped.first() {
            let n = skipped.len();
            self.warn(
                BULK_PATH,
                &format!("{n} unusable entries ignored, first: {first}"),
            );
        }
        let mxid =
            |(m, a): &(Medium, String)| by_threepid.get(&threepid_key(m.as_str(), a)).cloned();
        Ok(chunk.iter().map(mxid).collect())
    }

    /// One entry of a bulk answer: its (medium, address) key and user id.
    fn bulk_entry(&self, entry: &Value) -> Why<((String, String), String)> {
        let entry = entry.as_object().ok_or("an entry is not an object")?;
        let key = threepid_key(string(entry, "medium")?, string(entry, "address")?);
        Ok((key, self.user_id(entry.get("id"))?))
    }

    /// The user id of a single answer; `None` for `{}` (unknown 3PID).
    fn single_answer(&self, answer: &Value) -> Why<Option<String>> {
        match answer.as_object().ok_or("not a JSON object")?.get("lookup") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(lookup)) if lookup.is_empty() => Ok(None),
            Some(Value::Object(lookup)) => self.user_id(lookup.get("id")).map(Some),
            Some(_) => Err("'lookup' is not an object".into()),
        }
    }

    /// The user id an `id` object (`{"type", "value"}`) names.
    fn user_id(&self, id: Option<&Value>) -> Why<String> {
        let id = id
            .and_then(Value::as_object)
            .ok_or("'id' is missing or not an object")?;
        let (kind, value) = (string(id, "type")?, string(id, "value")?);
        match kind.to_ascii_lowercase().as_str() {
            "mxid" if is_user_id(value) => Ok(value.to_string()),
            "mxid" => Err(format!("'{}' is not a Matrix user id", clip(value))),
            "localpart" | "uid" => {
                let mxid = format!("@{value}:{}", self.domain);
                if value.is_empty() || value.contains(':') || !is_user_id(&mxid) {
                    return Err(format!("'{}' is not a local part", clip(value)));
                }
                Ok(mxid)
            }
            _ => Err(format!(
                "unknown id type '{}' (mxid, localpart, uid)",
                clip(kind)
            )),
        }
    }

    /// POSTs `body` as JSON to `url`: the JSON answer of a 2xx status.
    fn post(&self, url: &str, body: &Value) -> Why<Value> {
        let bytes = body.to_string().into_bytes();
        let mut response = self
            .agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(&bytes[..])
            .map_err(|e| format!("the backend could not be asked: {}", self.scrub(&e)))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(format!("answered HTTP {status}"));
        }
        let limit = MAX_ANSWER_BYTES;
        let answer = match response.body_mut().with_config().limit(limit).read_to_vec() {
            Ok(answer) => answer,
            Err(ureq::Error::BodyExceedsLimit(_)) => {
                return Err(format!("answer larger than {} KiB", limit / 1024));
            }
            Err(e) => return Err(format!("the answer could not be read: {}", self.scrub(&e))),
        };
        serde_json::from_slice(&answer).map_err(|e| format!("the answer is not JSON: {e}"))
    }

    /// Logs that the backend at `path` gave nothing usable, and why.
    fn warn(&self, path: &str, reason: &str) {
        warn!(
            "rest store: {}{path}: {reason}; no bindings from it",
            self.shown_url
        );
    }

    /// An error's text with the URL's credentials, if any, hidden.
    fn scrub(&self, error: &dyn std::fmt::Display) -> String {
        let text = error.to_string();
        match &self.userinfo {
            Some(u) if !u.is_empty() => text.replace(u.as_str(), "***"),
            _ => text,
        }
    }
}

impl IdentityStore for RestStore {
    fn name(&self) -> &'static str {
        "rest"
    }

    fn is_local(&self) -> bool {
        false
    }

    fn lookup(
        &self,
        _store: &Store,
        medium: Medium,
        address: &str,
    ) -> Result<Option<BindingRecord>> {
        Ok(self.find(medium, address))
    }

    fn bulk_lookup(
        &self,
        _store: &Store,
        threepids: &[(Medium, String)],
    ) -> Result<Vec<Option<BindingRecord>>> {
        Ok(self.find_many(threepids))
    }
}

/// The string `field` of `object`.
fn string<'a>(object: &'a Map<String, Value>, field: &str) -> Why<&'a str> {
    object
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("'{field}' is missing or not a string"))
}

/// How bulk answers are matched to questions: emails compare case-insensitively.
fn threepid_key(medium: &str, address: &str) -> (String, String) {
    let address = match medium {
        "email" => address.to_lowercase(),
        _ => address.to_string(),
    };
    (medium.to_string(), address)
}

/// True for `@localpart:server` with neither part empty, no spaces or control characters, at
/// most 255 bytes.
fn is_user_id(s: &str) -> bool {
    let Some((local, server)) = s.strip_prefix('@').and_then(|r| r.split_once(':')) else {
        return false;
    };
    !local.is_empty()
        && !server.is_empty()
        && s.len() <= MAX_USER_ID_BYTES
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The start of a backend's value, fit for a log line.
fn clip(value: &str) -> String {
    let clean = |c: char| if c.is_control() { ' ' } else { c };
    value.chars().take(80).map(clean).collect()
}

/// A binding answered at `now`, valid from a minute before until five minutes after.
fn record(medium: Medium, address: &str, mxid: String, now: u64) -> BindingRecord {
    BindingRecord {
        medium: medium.as_str().to_string(),
        address: address.to_string(),
        mxid,
        ts: now,
        not_before: now.saturating_sub(VALID_BEFORE_MS),
        not_after: now.saturating_add(VALID_AFTER_MS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(url: &str) -> RestStore {
        let config = RestStoreConfig {
            enabled: true,
            url: url.into(),
            timeout: 5,
        };
        RestStore::new(&config, "example.org").unwrap()
    }

    #[test]
    fn credentials_in_the_url_stay_out_of_logs() {
        let s = store("https://user:pw@backend:8090/base/");
        assert_eq!(
            s.single_url,
            format!("https://user:pw@backend:8090/base{SINGLE_PATH}")
        );
        assert_eq!(s.shown_url, "https://***@backend:8090/base");
        assert_eq!(s.scrub(&"failed: user:pw@backend"), "failed: ***@backend");
        assert_eq!(store("http://backend").shown_url, "http://backend");
    }

    #[test]
    fn ids_become_user_ids() {
        let s = store("http://127.0.0.1:1");
        let id = |t: &str, v: &str| s.user_id(Some(&json!({ "type": t, "value": v })));
        assert_eq!(id("mxid", "@a:hs.test").unwrap(), "@a:hs.test");
        assert_eq!(id("localpart", "bob").unwrap(), "@bob:example.org");
        assert_eq!(id("UID", "carol").unwrap(), "@carol:example.org");
        let long = "x".repeat(250);
        for (t, v) in [
            ("mxid", "alice"),
            ("mxid", "@:hs"),
            ("mxid", "@a:"),
            ("mxid", "@a b:hs"),
            ("localpart", "a\nb"),
            ("localpart", &long),
            ("email", "a@b.c"),
        ] {
            assert!(id(t, v).is_err(), "{t} {v}");
        }
        assert!(s.user_id(Some(&json!("@a:b"))).is_err());
    }
}
