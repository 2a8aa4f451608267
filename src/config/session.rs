//! `session.*`: validation sessions (lifetime, token attempts, `next_link` hosts, message
//! rate limits) and the policies of what they may be used for.

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::sections::err;

/// `session.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SessionConfig {
    /// `session.policy.*`
    pub policy: SessionPolicy,
    /// Seconds a session stays usable after its last change (creation, a new message sent,
    /// validation).
    pub ttl: u64,
    /// Wrong tokens after which a session is locked.
    #[serde(alias = "max_token_attempts")]
    pub max_token_attempts: u32,
    /// `session.nextLink.*`
    #[serde(alias = "next_link")]
    pub next_link: NextLinkConfig,
    /// `session.rateLimit.*`: how often messages may be sent.
    #[serde(alias = "rate_limit")]
    pub rate_limit: SessionRateLimits,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            policy: SessionPolicy::default(),
            ttl: 24 * 3600,
            max_token_attempts: 10,
            next_link: NextLinkConfig::default(),
            rate_limit: SessionRateLimits::default(),
        }
    }
}

impl SessionConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.ttl == 0 {
            return Err(err("session.ttl: must be at least 1 second".into()));
        }
        if self.max_token_attempts == 0 {
            return Err(err("session.maxTokenAttempts: must be at least 1".into()));
        }
        for (key, rate) in [
            ("perRecipient", &self.rate_limit.per_recipient),
            ("perClient", &self.rate_limit.per_client),
        ] {
            if rate.burst == 0 || rate.refill == 0 {
                return Err(err(format!(
                    "session.rateLimit.{key}: burst and refill must be at least 1"
                )));
            }
        }
        Ok(())
    }
}

/// `session.nextLink.*`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct NextLinkConfig {
    /// Host names a `next_link` may point at; empty allows any http(s) host.
    #[serde(alias = "allowed_hosts")]
    pub allowed_hosts: Vec<String>,
}

/// `session.rateLimit.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SessionRateLimits {
    /// Messages to one address or number.
    #[serde(alias = "per_recipient")]
    pub per_recipient: RateLimit,
    /// Messages requested by one client (IP address, or account once authenticated).
    #[serde(alias = "per_client")]
    pub per_client: RateLimit,
}

impl Default for SessionRateLimits {
    fn default() -> Self {
        SessionRateLimits {
            per_recipient: RateLimit {
                burst: 5,
                refill: 300,
            },
            per_client: RateLimit {
                burst: 20,
                refill: 30,
            },
        }
    }
}

/// A token bucket: `burst` messages at once, then one more every `refill` seconds.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RateLimit {
    /// Messages allowed at once.
    pub burst: u32,
    /// Seconds to earn one more.
    pub refill: u64,
}

/// `session.policy.*`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SessionPolicy {
    /// `session.policy.validation.*`
    pub validation: ValidationPolicy,
    /// `session.policy.unbind.*`
    pub unbind: UnbindPolicy,
}

/// `session.policy.validation.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ValidationPolicy {
    /// Whether 3PID validation sessions may be started and completed at all.
    pub enabled: bool,
    /// Email domains that are "local" (ours); empty: `matrix.domain`. Phone numbers are never
    /// local.
    #[serde(alias = "local_domains")]
    pub local_domains: Vec<String>,
    /// `session.policy.validation.forLocal.*`: 3PIDs of our domains.
    #[serde(alias = "for_local")]
    pub for_local: ScopePolicy,
    /// `session.policy.validation.forRemote.*`: every other 3PID.
    #[serde(alias = "for_remote")]
    pub for_remote: ScopePolicy,
}

impl Default for ValidationPolicy {
    fn default() -> Self {
        ValidationPolicy {
            enabled: true,
            local_domains: Vec::new(),
            for_local: ScopePolicy::default(),
            for_remote: ScopePolicy::default(),
        }
    }
}

/// How 3PIDs of one scope (local or remote) are validated.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ScopePolicy {
    /// Whether sessions for these 3PIDs may be started at all.
    pub enabled: bool,
    /// Validate and bind them here.
    #[serde(alias = "to_local")]
    pub to_local: bool,
    /// `...toRemote.*`: publish them at an upstream identity server too.
    #[serde(alias = "to_remote")]
    pub to_remote: RemotePolicy,
}

impl Default for ScopePolicy {
    fn default() -> Self {
        ScopePolicy {
            enabled: true,
            to_local: true,
            to_remote: RemotePolicy::default(),
        }
    }
}

/// `...toRemote.*`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RemotePolicy {
    /// Offer (or, without `toLocal`, require) validation and binding at the upstream.
    pub enabled: bool,
    /// The upstream: a name in `matrix.identity.servers`.
    pub server: String,
}

/// `session.policy.unbind.*`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct UnbindPolicy {
    /// `session.policy.unbind.fraudulent.*`
    pub fraudulent: FraudulentUnbindPolicy,
    /// Tell the owner of a 3PID after it was unbound (ma1sd's behaviour).
    pub notifications: bool,
}

/// `session.policy.unbind.fraudulent.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct FraudulentUnbindPolicy {
    /// Warn the owner of a 3PID when someone tries to unbind it without proof.
    #[serde(alias = "send_warning")]
    pub send_warning: bool,
}

impl Default for FraudulentUnbindPolicy {
    fn default() -> Self {
        FraudulentUnbindPolicy { send_warning: true }
    }
}
