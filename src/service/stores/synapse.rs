//! The `synapse` store: the 3PIDs of a Synapse's accounts, copied through its admin API into
//! our store under the source `synapse`, where lookups (plain and hashed) find them through
//! [`LocalSource::new("synapse")`](super::local::LocalSource).
//!
//! [`SynapseSync::sync_once`] reads every active account (`GET /_synapse/admin/v2/users`, page
//! by page, then `GET /_synapse/admin/v2/users/<user id>` for each account's 3PIDs), and only
//! when all of that succeeded makes the source match it: new 3PIDs and 3PIDs now on another
//! account are written, 3PIDs no account has any more are removed. A sync that fails half-way
//! (Synapse down, a rejected admin token, an unreadable answer) writes nothing, so the store
//! keeps the last complete picture.
//!
//! # Privacy: `all` versus `bound`
//!
//! With `sync: all` (mxisd's behaviour) every email address and phone number on every account
//! becomes discoverable: anyone who knows an address finds the account, whether or not its
//! owner ever chose to publish that mapping on the identity server. That suits a closed
//! organisation directory, where finding colleagues by address is the point. With
//! `sync: bound` nothing is copied (and whatever an earlier `all` copied is removed): only what
//! users bind themselves, through their client, is found. Choose `bound` unless every user has
//! been told their addresses are searchable.

use std::collections::BTreeMap;

use log::{debug, warn};
use serde_json::Value;

use crate::config::{Secret, SynapseStoreConfig, SynapseSync as SyncMode};
use crate::service::bindings::{check_user_id, normalise_threepid};
use crate::store::Store;
use crate::store::bindings::Pepper;
use crate::threepid::params::url_encode;

use super::{Claims, Wanted, replace_source};

/// The source name of the synced bindings (and the store's name in `stores.order`).
pub const SOURCE: &str = "synapse";

/// Accounts asked for per page of the account list.
const PAGE_SIZE: u32 = 100;
/// The most of one admin API answer that is read.
const MAX_ANSWER_BYTES: u64 = 1024 * 1024;

/// What one sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Active accounts read from Synapse (0 with `sync: bound`).
    pub users: usize,
    /// Bindings written: 3PIDs new to the source, or now on another account.
    pub added: usize,
    /// Bindings removed: 3PIDs that no active account has any more.
    pub removed: usize,
    /// Bindings that were already right and were left alone.
    pub unchanged: usize,
}

/// Copies the 3PIDs of a Synapse's accounts into the store; the caller runs
/// [`SynapseSync::sync_once`] every `stores.synapse.interval` seconds.
pub struct SynapseSync {
    agent: ureq::Agent,
    base: String,
    authorization: Secret,
    mode: SyncMode,
    timeout: u64,
}

impl SynapseSync {
    /// Builds the syncer from `stores.synapse.*`. The URL is the operator's own Synapse and is
    /// trusted (no address guard). Errors name the problem, for the caller to prefix with the
    /// config path.
    pub fn new(config: &SynapseStoreConfig) -> Result<SynapseSync, String> {
        let base = config.url.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!("url '{base}' must be an http(s) URL"));
        }
        format!("{base}/_synapse/admin/v2/users")
            .parse::<ureq::http::Uri>()
            .map_err(|e| format!("url '{base}' is not a valid URL: {e}"))?;
        if config.timeout == 0 {
            return Err("timeout must be at least 1 second".into());
        }
        if config.sync == SyncMode::All && config.admin_token.is_empty() {
            return Err("admin_token is required with sync: all".into());
        }
        let agent = crate::outbound::operator_agent(&base, config.timeout);
        Ok(SynapseSync {
            agent,
            base,
            authorization: Secret::new(format!("Bearer {}", config.admin_token.expose())),
            mode: config.sync,
            timeout: config.timeout,
        })
    }

    /// One sync: reads every active account's 3PIDs from Synapse, then makes the source
    /// `synapse` in `store` match them (hash entries under every pepper in `peppers`, new
    /// bindings valid from `now_ms` for 100 years) and makes the writes durable. With
    /// `sync: bound` it asks Synapse nothing and removes every binding of the source.
    ///
    /// 3PIDs are normalised like those of binds ([`normalise_threepid`]); unusable ones, and
    /// 3PIDs that two accounts claim, are skipped. Any failure while reading Synapse returns an
    /// error before anything is written.
    pub fn sync_once(
        &self,
        store: &Store,
        peppers: &[Pepper],
        now_ms: u64,
    ) -> Result<SyncReport, String> {
        let (wanted, users) = match self.mode {
            SyncMode::Bound => (BTreeMap::new(), 0),
            SyncMode::All => self.collect()?,
        };
        reconcile(store, peppers, &wanted, users, now_ms)
            .map_err(|e| format!("writing the synced bindings failed: {e}"))
    }

    /// Every 3PID of every active account, and the number of active accounts.
    fn collect(&self) -> Result<(Wanted, usize), String> {
        let mut claims = Claims::new("Synapse");
        let mut users = 0;
        let mut from = "0".to_string();
        loop {
            let url = format!(
                "{}/_synapse/admin/v2/users?from={}&limit={PAGE_SIZE}&guests=false",
                self.base,
                url_encode(&from)
            );
            let (status, page) = self.get(&url)?;
            if !(200..300).contains(&status) {
                return Err(status_error(&url, status, &page));
            }
            let list = page["users"]
                .as_array()
                .ok_or_else(|| format!("{url}: the answer has no \"users\" list"))?;
            for entry in list {
                let Some(user_id) = entry["name"].as_str() else {
                    continue;
                };
                if is_true(&entry["deactivated"]) || is_true(&entry["is_guest"]) {
                    continue;
                }
                if check_user_id(user_id).is_err() {
                    warn!("Synapse sync: skipping '{user_id}', not a Matrix user id");
                    continue;
                }
                let Some(threepids) = self.threepids_of(user_id)? else {
                    continue;
                };
                users += 1;
                for key in threepids {
                    claims.claim(&key.0, &key.1, user_id);
                }
            }
            let next = match &page["next_token"] {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            };
            match next {
                None => break,
                Some(next) if !list.is_empty() && next != from => from = next,
                Some(next) => {
                    return Err(format!(
                        "{url}: the account list does not advance (next_token '{next}')"
                    ));
                }
            }
        }
        Ok((claims.into_wanted(), users))
    }

    /// The usable 3PIDs of one account; `None` when it is deactivated or gone since the list
    /// was read.
    fn threepids_of(&self, user_id: &str) -> Result<Option<Vec<(String, String)>>, String> {
        let url = format!(
            "{}/_synapse/admin/v2/users/{}",
            self.base,
            url_encode(user_id)
        );
        let (status, detail) = self.get(&url)?;
        if status == 404 && detail["errcode"] == "M_NOT_FOUND" {
            debug!("Synapse sync: {user_id} disappeared during the sync");
            return Ok(None);
        }
        if !(200..300).contains(&status) {
            return Err(status_error(&url, status, &detail));
        }
        if is_true(&detail["deactivated"]) {
            return Ok(None);
        }
        let mut out = Vec::new();
        for t in detail["threepids"].as_array().into_iter().flatten() {
            match threepid(t) {
                Some(key) => out.push(key),
                None => debug!("Synapse sync: skipping an unusable 3PID of {user_id}: {t}"),
            }
        }
        Ok(Some(out))
    }

    /// GETs `url` as the admin: the status and the JSON answer (`Null` when an error answer is
    /// not JSON). A 2xx answer that is not JSON is an error.
    fn get(&self, url: &str) -> Result<(u16, Value), String> {
        let mut response = self
            .agent
            .get(url)
            .header("Authorization", self.authorization.expose())
            .call()
            .map_err(|e| self.transport_error(url, e))?;
        let status = response.status().as_u16();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_vec();
        let bytes = match bytes {
            Ok(bytes) => bytes,
            Err(ureq::Error::BodyExceedsLimit(_)) => {
                return Err(format!(
                    "{url}: answer larger than {} KiB",
                    MAX_ANSWER_BYTES / 1024
                ));
            }
            Err(e) => return Err(self.transport_error(url, e)),
        };
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(json) => Ok((status, json)),
            Err(_) if !(200..300).contains(&status) => Ok((status, Value::Null)),
            Err(e) => Err(format!("{url}: HTTP {status}, the answer is not JSON: {e}")),
        }
    }

    fn transport_error(&self, url: &str, error: ureq::Error) -> String {
        match error {
            ureq::Error::Timeout(_) => format!("{url}: no answer within {}s", self.timeout),
            ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                format!("{url}: no answer within {}s", self.timeout)
            }
            e => format!("{url}: {e}"),
        }
    }
}

/// Makes the source match `wanted` (bindings valid from now), then makes the writes durable.
fn reconcile(
    store: &Store,
    peppers: &[Pepper],
    wanted: &Wanted,
    users: usize,
    now_ms: u64,
) -> crate::error::Result<SyncReport> {
    let replaced = replace_source(store, peppers, SOURCE, wanted, now_ms, now_ms)?;
    Ok(SyncReport {
        users,
        added: replaced.added,
        removed: replaced.removed,
        unchanged: replaced.unchanged,
    })
}

/// One 3PID of an account in our normal form (emails case-folded, phone numbers as E.164
/// digits; a leading `+` is tolerated), or `None` when it is unusable.
fn threepid(t: &Value) -> Option<(String, String)> {
    let (medium, address) = (t["medium"].as_str()?, t["address"].as_str()?);
    let address = match medium {
        "msisdn" => address.strip_prefix('+').unwrap_or(address),
        _ => address,
    };
    let (medium, address) = normalise_threepid(medium, address).ok()?;
    Some((medium.as_str().to_string(), address))
}

/// Synapse writes flags as `true`/`false` or as 0/1.
fn is_true(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        _ => false,
    }
}

/// The error for a non-2xx answer, with Synapse's errcode and message when it sent them.
fn status_error(url: &str, status: u16, body: &Value) -> String {
    let what = match status {
        401 => " (the admin token is not valid)",
        403 => " (the admin token is not a Synapse admin's)",
        _ => "",
    };
    let errcode = body["errcode"].as_str().unwrap_or("");
    let message = body["error"].as_str().unwrap_or("");
    let detail = format!("{errcode} {message}");
    let detail: String = detail
        .chars()
        .filter(|c| !c.is_control())
        .take(300)
        .collect();
    format!("{url}: HTTP {status}{what}: {}", detail.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn threepids_are_normalised_or_skipped() {
        let t = |m: &str, a: &str| threepid(&json!({"medium": m, "address": a}));
        assert_eq!(
            t("email", "Alice@Example.ORG"),
            Some(("email".into(), "alice@example.org".into()))
        );
        assert_eq!(
            t("msisdn", "+447700900123"),
            Some(("msisdn".into(), "447700900123".into()))
        );
        assert_eq!(t("email", "not an address"), None);
        assert_eq!(t("msisdn", "44 7700"), None);
        assert_eq!(t("msisdn", "1234567890123456"), None);
        assert_eq!(t("fax", "123"), None);
        assert_eq!(threepid(&json!({"medium": "email"})), None);
    }
}
