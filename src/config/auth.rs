//! `auth.*`: password checks for the homeserver (`check_credentials`, against the directory of
//! `stores.ldap`), off by default and served on a listener of their own.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, RateLimit, Secret, resolve_secret_file};
use crate::util::url::{is_loopback_host, unbracket};

/// `auth.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthConfig {
    /// Whether `POST /_matrix-internal/identity/v1/check_credentials` is served.
    pub enabled: bool,
    /// The address of its own listener (loopback unless `sharedSecret` is set).
    pub hostname: String,
    /// Its port (0 picks a free one).
    pub port: u16,
    /// A secret the homeserver sends as `Authorization: Bearer <secret>` (16 characters or
    /// more); required off loopback and with `public`.
    #[serde(alias = "shared_secret")]
    pub shared_secret: Secret,
    /// A file holding the shared secret, instead of `sharedSecret`.
    #[serde(rename = "sharedSecret_file", alias = "shared_secret_file")]
    pub shared_secret_file: Option<PathBuf>,
    /// Also serve the endpoint on the public listeners (needs `sharedSecret`).
    pub public: bool,
    /// `auth.rateLimit.*`: failed checks allowed (a successful one gives its token back).
    pub rate_limit: AuthRateLimits,
}

/// `auth.rateLimit.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthRateLimits {
    /// Failed checks of one user id.
    pub per_user: RateLimit,
    /// Failed checks from one client address (the homeserver is usually the only client).
    pub per_client: RateLimit,
}

impl Default for AuthRateLimits {
    fn default() -> Self {
        AuthRateLimits {
            per_user: RateLimit {
                burst: 5,
                refill: 60,
            },
            per_client: RateLimit {
                burst: 100,
                refill: 1,
            },
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            enabled: false,
            hostname: "127.0.0.1".into(),
            port: 8092,
            shared_secret: Secret::default(),
            shared_secret_file: None,
            public: false,
            rate_limit: AuthRateLimits::default(),
        }
    }
}

impl AuthConfig {
    pub(super) fn validate(&mut self, ldap_enabled: bool) -> Result<(), ConfigError> {
        resolve_secret_file(
            &mut self.shared_secret,
            self.shared_secret_file.as_deref(),
            "auth.sharedSecret",
        )
        .map_err(ConfigError)?;
        if !self.enabled {
            return Ok(());
        }
        if !ldap_enabled {
            return Err(ConfigError(
                "auth.enabled: passwords are checked against the directory; enable stores.ldap too"
                    .into(),
            ));
        }
        let secret_len = self.shared_secret.expose().chars().count();
        if !self.shared_secret.is_empty() && secret_len < 16 {
            return Err(ConfigError(
                "auth.sharedSecret: use at least 16 characters".into(),
            ));
        }
        if self.shared_secret.is_empty() && !is_loopback_host(unbracket(&self.hostname)) {
            return Err(ConfigError(format!(
                "auth.hostname: '{}' is not a loopback address; set auth.sharedSecret to serve password checks there",
                self.hostname
            )));
        }
        if self.shared_secret.is_empty() && self.public {
            return Err(ConfigError(
                "auth.public: set auth.sharedSecret to serve password checks on the public listener"
                    .into(),
            ));
        }
        for (key, rate) in [
            ("perUser", &self.rate_limit.per_user),
            ("perClient", &self.rate_limit.per_client),
        ] {
            if rate.burst == 0 {
                return Err(ConfigError(format!(
                    "auth.rateLimit.{key}.burst: must be at least 1"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn check(yaml: &str) -> Result<Config, String> {
        Config::parse(yaml)
            .and_then(Config::validated)
            .map_err(|e| e.0)
    }

    const LDAP: &str = "stores:\n  ldap:\n    enabled: true\n    connection:\n      urls: [\"ldap://127.0.0.1:3389\"]\n      baseDNs: [\"dc=example,dc=org\"]\n";

    #[test]
    fn the_auth_listener_is_loopback_unless_a_secret_is_set() {
        assert!(check(&format!("{LDAP}auth:\n  enabled: true\n")).is_ok());
        let e = check(&format!(
            "{LDAP}auth:\n  enabled: true\n  hostname: 0.0.0.0\n"
        ))
        .unwrap_err();
        assert!(e.starts_with("auth.hostname"), "{e}");
        assert!(
            check(&format!(
                "{LDAP}auth:\n  enabled: true\n  hostname: 0.0.0.0\n  sharedSecret: 0123456789abcdef\n"
            ))
            .is_ok()
        );
        let e = check(&format!("{LDAP}auth:\n  enabled: true\n  public: true\n")).unwrap_err();
        assert!(e.starts_with("auth.public"), "{e}");
        let e = check(&format!(
            "{LDAP}auth:\n  enabled: true\n  sharedSecret: short\n"
        ))
        .unwrap_err();
        assert!(e.starts_with("auth.sharedSecret"), "{e}");
        let e = check("auth:\n  enabled: true\n").unwrap_err();
        assert!(e.contains("stores.ldap"), "{e}");
        let e = check(&format!(
            "{LDAP}auth:\n  enabled: true\n  rateLimit:\n    perUser: {{burst: 0, refill: 1}}\n"
        ))
        .unwrap_err();
        assert!(e.starts_with("auth.rateLimit.perUser"), "{e}");
    }

    #[test]
    fn ldap_settings_are_checked() {
        assert!(check(LDAP).is_ok());
        let bad = [
            (
                "stores:\n  ldap:\n    enabled: true\n    connection:\n      baseDNs: [\"dc=x\"]\n",
                "stores.ldap.connection.urls",
            ),
            (
                "stores:\n  ldap:\n    enabled: true\n    connection:\n      urls: [\"http://x\"]\n      baseDNs: [\"dc=x\"]\n",
                "stores.ldap.connection.urls",
            ),
            (
                "stores:\n  ldap:\n    enabled: true\n    connection:\n      urls: [\"ldap://x\"]\n",
                "stores.ldap.connection.baseDNs",
            ),
            (
                "stores:\n  ldap:\n    enabled: true\n    connection:\n      urls: [\"ldaps://x\"]\n      startTls: true\n      baseDNs: [\"dc=x\"]\n",
                "stores.ldap.connection.startTls",
            ),
            (
                "stores:\n  ldap:\n    enabled: true\n    connection:\n      urls: [\"ldap://x\"]\n      baseDNs: [\"dc=x\"]\n      bindDn: \"cn=a\"\n",
                "stores.ldap.connection.bindDn",
            ),
            (
                "stores:\n  ldap:\n    enabled: true\n    filter: \"(&(uid=a)\"\n    connection:\n      urls: [\"ldap://x\"]\n      baseDNs: [\"dc=x\"]\n",
                "stores.ldap.filter",
            ),
            (
                "stores:\n  ldap:\n    enabled: true\n    defaultRegion: XX\n    connection:\n      urls: [\"ldap://x\"]\n      baseDNs: [\"dc=x\"]\n",
                "stores.ldap.defaultRegion",
            ),
            (
                "stores:\n  ldap:\n    enabled: true\n    attribute:\n      threepid:\n        email: [\"mail)(x\"]\n    connection:\n      urls: [\"ldap://x\"]\n      baseDNs: [\"dc=x\"]\n",
                "stores.ldap.attribute",
            ),
            (
                "stores:\n  ldap:\n    enabled: true\n    sync:\n      interval: 0\n    connection:\n      urls: [\"ldap://x\"]\n      baseDNs: [\"dc=x\"]\n",
                "stores.ldap.sync",
            ),
        ];
        for (yaml, key) in bad {
            let e = check(yaml).unwrap_err();
            assert!(e.starts_with(key), "{yaml}: {e}");
        }
        let e = check(&format!("{LDAP}  order: [builtin]\n")).unwrap_err();
        assert!(e.starts_with("stores.order"), "{e}");
        // mxisd's host/port/tls and baseDn.
        let c = check("stores:\n  ldap:\n    enabled: true\n    connection:\n      host: ldap.example.org\n      tls: true\n      baseDn: \"dc=example,dc=org\"\n").unwrap();
        let conn = &c.stores.ldap.connection;
        assert_eq!(conn.server_urls(), ["ldaps://ldap.example.org:636"]);
        assert_eq!(conn.base_dns, ["dc=example,dc=org"]);
    }
}
