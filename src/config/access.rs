//! `api.*`, `account.*`, `policy.*` and `outbound.*`: who may use the API, the terms users
//! accept, and how the server talks to other servers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::cidr::Cidr;

/// `api.*`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiConfig {
    /// `api.v1.*`
    pub v1: ApiV1Config,
}

/// `api.v1.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiV1Config {
    /// Serve the deprecated, unauthenticated v1 API (Synapse's phone delegation needs it).
    pub enabled: bool,
}

impl Default for ApiV1Config {
    fn default() -> Self {
        ApiV1Config { enabled: true }
    }
}

/// `account.*`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct AccountConfig {
    /// Homeserver names whose users may register; empty allows every homeserver.
    #[serde(alias = "allowed_servers")]
    pub allowed_servers: Vec<String>,
}

/// `policy.*`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyConfig {
    /// Policy id -> the current version of that policy.
    pub policies: BTreeMap<String, Policy>,
}

/// One policy document, in its current version.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Policy {
    /// The version; a new version must be accepted again.
    pub version: String,
    /// Language code (ISO 639) -> the document in that language.
    pub terms: BTreeMap<String, LocalizedPolicy>,
}

/// A policy document in one language.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LocalizedPolicy {
    /// Its title.
    pub name: String,
    /// Where to read it.
    pub url: String,
}

impl PolicyConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (id, policy) in &self.policies {
            let key = format!("policy.policies.{id}");
            if policy.version.trim().is_empty() {
                return Err(ConfigError(format!("{key}.version: must not be empty")));
            }
            if policy.terms.is_empty() {
                return Err(ConfigError(format!(
                    "{key}.terms: give the document in at least one language"
                )));
            }
            for (lang, doc) in &policy.terms {
                if lang == "version" || lang.is_empty() {
                    return Err(ConfigError(format!(
                        "{key}.terms.{lang}: not a language code"
                    )));
                }
                if !(doc.url.starts_with("https://") || doc.url.starts_with("http://")) {
                    return Err(ConfigError(format!(
                        "{key}.terms.{lang}.url: '{}' must be an http(s) URL",
                        doc.url
                    )));
                }
            }
        }
        Ok(())
    }
}

/// `outbound.*`: requests to homeservers and other servers that users name.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct OutboundConfig {
    /// Non-public address ranges that may be contacted anyway (loopback, private networks).
    /// Everything non-public is refused otherwise, so users cannot make this server probe
    /// the local network.
    #[serde(alias = "allowed_ranges")]
    pub allowed_ranges: Vec<Cidr>,
    /// Accept any TLS certificate. For test setups only: a warning is logged at start.
    #[serde(alias = "insecure_skip_tls_verify")]
    pub insecure_skip_tls_verify: bool,
    /// Seconds for a whole outbound request.
    pub timeout: u64,
    /// Largest response body read, in bytes.
    #[serde(alias = "max_response_size")]
    pub max_response_size: usize,
    /// Server name -> base URL, for homeservers reached another way than federation
    /// discovery (e.g. `example.org: http://127.0.0.1:8008` next to a local Synapse). These
    /// are trusted as written: the address guard does not apply to them.
    pub overrides: BTreeMap<String, String>,
    /// DNS servers for SRV lookups (`ip:port`); empty uses /etc/resolv.conf.
    pub nameservers: Vec<String>,
    /// Outbound calls in progress at most, all destinations together; 0: half of
    /// `server.workers`. Calls beyond it fail at once, so slow peers never hold every worker.
    #[serde(alias = "max_concurrent")]
    pub max_concurrent: usize,
    /// Outbound calls in progress at most to one destination (a homeserver or identity
    /// server); more fail at once.
    #[serde(alias = "max_per_destination")]
    pub max_per_destination: usize,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            allowed_ranges: Vec::new(),
            insecure_skip_tls_verify: false,
            timeout: 10,
            max_response_size: 64 * 1024,
            overrides: BTreeMap::new(),
            nameservers: Vec::new(),
            max_concurrent: 0,
            max_per_destination: 4,
        }
    }
}

impl OutboundConfig {
    pub(super) fn validate(&mut self) -> Result<(), ConfigError> {
        if self.timeout == 0 || self.timeout > 120 {
            return Err(ConfigError(
                "outbound.timeout: must be between 1 and 120 seconds".into(),
            ));
        }
        if self.max_response_size < 1024 {
            return Err(ConfigError(
                "outbound.maxResponseSize: must be at least 1024 bytes".into(),
            ));
        }
        for (name, url) in self.overrides.iter_mut() {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(ConfigError(format!(
                    "outbound.overrides.{name}: '{url}' must be an http(s) base URL"
                )));
            }
            *url = url.trim_end_matches('/').to_string();
        }
        if self.max_per_destination == 0 {
            return Err(ConfigError(
                "outbound.maxPerDestination: must be at least 1".into(),
            ));
        }
        for ns in &self.nameservers {
            if ns.parse::<std::net::SocketAddr>().is_err() {
                return Err(ConfigError(format!(
                    "outbound.nameservers: '{ns}' must be ip:port, e.g. 127.0.0.53:53"
                )));
            }
        }
        Ok(())
    }
}
