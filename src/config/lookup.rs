//! `bind.*`, `lookup.*` and `stores.*`: how bindings are made and found.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, LdapStoreConfig, Secret, resolve_secret_file};

/// `bind.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct BindConfig {
    /// Keep bindings made here, so lookups find them. `false` reproduces mxisd, where only the
    /// identity stores answer lookups.
    pub store: bool,
    /// Only bind user ids of these homeservers (mxisd's `matrix.domain` rule); empty: any.
    #[serde(alias = "allowed_servers")]
    pub allowed_servers: Vec<String>,
}

impl Default for BindConfig {
    fn default() -> Self {
        BindConfig {
            store: true,
            allowed_servers: Vec::new(),
        }
    }
}

/// `lookup.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct LookupConfig {
    /// Most addresses in one v2 lookup or v1 bulk lookup (more: 400 `M_TOO_LARGE`).
    #[serde(alias = "max_addresses")]
    pub max_addresses: usize,
    /// Offer the `none` algorithm (plain-text addresses) besides `sha256`.
    #[serde(alias = "allow_none")]
    pub allow_none: bool,
    /// `lookup.pepper.*`
    pub pepper: PepperConfig,
    /// `lookup.federation.*`
    pub federation: FederationConfig,
    /// `lookup.rateLimit.*`
    #[serde(alias = "rate_limit")]
    pub rate_limit: LookupRateLimits,
}

impl Default for LookupConfig {
    fn default() -> Self {
        LookupConfig {
            max_addresses: 10_000,
            allow_none: true,
            pepper: PepperConfig::default(),
            federation: FederationConfig::default(),
            rate_limit: LookupRateLimits::default(),
        }
    }
}

impl LookupConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_addresses == 0 || self.max_addresses > 100_000 {
            return Err(ConfigError(
                "lookup.maxAddresses: must be between 1 and 100000".into(),
            ));
        }
        let per_client = &self.rate_limit.per_client;
        if per_client.addresses_per_second > 0 && (per_client.burst as usize) < self.max_addresses {
            return Err(ConfigError(format!(
                "lookup.rateLimit.perClient.burst: {} is less than lookup.maxAddresses ({}), so a \
                 full-size lookup could never be answered; make it at least {}",
                per_client.burst, self.max_addresses, self.max_addresses
            )));
        }
        Ok(())
    }
}

/// `lookup.rateLimit.*`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct LookupRateLimits {
    /// Addresses looked up by one client (its IP address), whatever the endpoint.
    #[serde(alias = "per_client")]
    pub per_client: AddressBudget,
}

/// A token bucket counted in addresses: `burst` at once, then `addresses_per_second` more
/// every second.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct AddressBudget {
    /// Addresses earned per second; 0 turns the limit off.
    #[serde(alias = "addresses_per_second")]
    pub addresses_per_second: u32,
    /// Addresses allowed at once (at least `lookup.maxAddresses`).
    pub burst: u32,
}

impl Default for AddressBudget {
    fn default() -> Self {
        AddressBudget {
            addresses_per_second: 1_000,
            burst: 10_000,
        }
    }
}

/// `lookup.pepper.*`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct PepperConfig {
    /// Seconds between pepper rotations; 0 keeps the pepper.
    #[serde(alias = "rotate_every")]
    pub rotate_every: u64,
}

/// `lookup.federation.*`: asking the identity server of an email's domain.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct FederationConfig {
    /// Federate v1 single lookups (`GET /lookup`) of emails whose domain is not ours.
    pub enabled: bool,
    /// Also federate v1 bulk lookups.
    pub bulk: bool,
    /// Seconds a "not found there" answer is remembered.
    #[serde(alias = "negative_cache")]
    pub negative_cache: u64,
}

impl Default for FederationConfig {
    fn default() -> Self {
        FederationConfig {
            enabled: true,
            bulk: false,
            negative_cache: 3600,
        }
    }
}

/// `stores.*`: the identity stores lookups ask.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct StoresConfig {
    /// The order in which enabled stores are asked: `builtin`, `static`, `synapse`, `rest`.
    pub order: Vec<String>,
    /// `stores.static.*`
    #[serde(rename = "static")]
    pub static_store: StaticStoreConfig,
    /// `stores.synapse.*`
    pub synapse: SynapseStoreConfig,
    /// `stores.rest.*`
    pub rest: RestStoreConfig,
    /// `stores.ldap.*`
    pub ldap: LdapStoreConfig,
}

impl Default for StoresConfig {
    fn default() -> Self {
        StoresConfig {
            order: ["builtin", "static", "ldap", "synapse", "rest"]
                .map(String::from)
                .to_vec(),
            static_store: StaticStoreConfig::default(),
            synapse: SynapseStoreConfig::default(),
            rest: RestStoreConfig::default(),
            ldap: LdapStoreConfig::default(),
        }
    }
}

/// `stores.static.*`: fixed mappings (mxisd's memory store).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct StaticStoreConfig {
    /// The mappings.
    pub mappings: Vec<StaticMapping>,
}

/// One fixed mapping.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaticMapping {
    /// `email` or `msisdn`.
    pub medium: String,
    /// The address (normalised at start).
    pub address: String,
    /// The Matrix user id.
    pub mxid: String,
}

/// What the synapse store copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SynapseSync {
    /// Every 3PID on every account (mxisd's behaviour).
    All,
    /// Nothing: only what users bind themselves is found.
    Bound,
}

/// `stores.synapse.*`: the 3PIDs of a Synapse's users, through its admin API.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SynapseStoreConfig {
    /// Use this store.
    pub enabled: bool,
    /// Synapse's client API base URL, e.g. `http://127.0.0.1:8008`.
    pub url: String,
    /// An access token of a Synapse admin.
    #[serde(alias = "admin_token")]
    pub admin_token: Secret,
    /// A file holding the admin token.
    #[serde(rename = "admin_token_file", alias = "adminTokenFile")]
    pub admin_token_file: Option<PathBuf>,
    /// `all` or `bound`.
    pub sync: SynapseSync,
    /// Seconds between syncs.
    pub interval: u64,
    /// Seconds for each admin API call.
    pub timeout: u64,
}

impl Default for SynapseStoreConfig {
    fn default() -> Self {
        SynapseStoreConfig {
            enabled: false,
            url: "http://127.0.0.1:8008".into(),
            admin_token: Secret::default(),
            admin_token_file: None,
            sync: SynapseSync::All,
            interval: 3600,
            timeout: 10,
        }
    }
}

/// `stores.rest.*`: mxisd's REST backend protocol.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RestStoreConfig {
    /// Use this store.
    pub enabled: bool,
    /// The backend's base URL; requests go to `<url>/_mxisd/backend/api/v1/identity/single`
    /// and `.../bulk`.
    pub url: String,
    /// Seconds for each call.
    pub timeout: u64,
}

impl Default for RestStoreConfig {
    fn default() -> Self {
        RestStoreConfig {
            enabled: false,
            url: String::new(),
            timeout: 5,
        }
    }
}

impl StoresConfig {
    pub(super) fn validate(&mut self) -> Result<(), ConfigError> {
        for name in &self.order {
            if !["builtin", "static", "ldap", "synapse", "rest"].contains(&name.as_str()) {
                return Err(ConfigError(format!(
                    "stores.order: unknown store '{name}' (builtin, static, ldap, synapse, rest)"
                )));
            }
        }
        for (n, m) in self.static_store.mappings.iter().enumerate() {
            if m.medium != "email" && m.medium != "msisdn" {
                return Err(ConfigError(format!(
                    "stores.static.mappings[{n}].medium: must be email or msisdn"
                )));
            }
            if !m.mxid.starts_with('@') || !m.mxid.contains(':') {
                return Err(ConfigError(format!(
                    "stores.static.mappings[{n}].mxid: '{}' is not a Matrix user id",
                    m.mxid
                )));
            }
        }
        let syn = &mut self.synapse;
        resolve_secret_file(
            &mut syn.admin_token,
            syn.admin_token_file.as_deref(),
            "stores.synapse.admin_token",
        )
        .map_err(ConfigError)?;
        if syn.enabled {
            if !(syn.url.starts_with("http://") || syn.url.starts_with("https://")) {
                return Err(ConfigError(
                    "stores.synapse.url: must be an http(s) URL".into(),
                ));
            }
            if syn.admin_token.is_empty() && syn.sync == SynapseSync::All {
                return Err(ConfigError(
                    "stores.synapse.adminToken: required when stores.synapse.enabled is true"
                        .into(),
                ));
            }
            if syn.interval == 0 || syn.timeout == 0 {
                return Err(ConfigError(
                    "stores.synapse.interval and timeout: must be at least 1 second".into(),
                ));
            }
            syn.url = syn.url.trim_end_matches('/').to_string();
        }
        self.ldap.validate()?;
        if self.ldap.enabled && !self.order.iter().any(|n| n == "ldap") {
            return Err(ConfigError(
                "stores.order: add ldap to the list, or lookups will not ask stores.ldap".into(),
            ));
        }
        let rest = &mut self.rest;
        if rest.enabled {
            if !(rest.url.starts_with("http://") || rest.url.starts_with("https://")) {
                return Err(ConfigError(
                    "stores.rest.url: required, an http(s) URL, when stores.rest.enabled is true"
                        .into(),
                ));
            }
            if rest.timeout == 0 {
                return Err(ConfigError(
                    "stores.rest.timeout: must be at least 1 second".into(),
                ));
            }
            rest.url = rest.url.trim_end_matches('/').to_string();
        }
        Ok(())
    }
}
