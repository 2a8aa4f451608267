//! The small sections of the configuration tree (`matrix`, `storage`, `key`, `logging`), each
//! with its defaults and checks.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// A configuration error with this message.
pub(super) fn err(msg: String) -> ConfigError {
    ConfigError(msg)
}

/// `matrix.*`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct MatrixConfig {
    /// The Matrix domain of the homeserver this server serves (defaults to `server.name`).
    pub domain: Option<String>,
    /// `matrix.identity.*`
    pub identity: MatrixIdentityConfig,
}

/// `matrix.identity.*`: other identity servers, by name.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct MatrixIdentityConfig {
    /// Named lists of identity server base URLs (the first one is used), e.g.
    /// `upstream: ["https://identity.example.net"]`. Nothing is contacted unless a policy names
    /// one (`session.policy.validation.*.toRemote`).
    pub servers: std::collections::BTreeMap<String, Vec<String>>,
}

impl MatrixIdentityConfig {
    /// The base URL of the server called `name`.
    pub fn url_of(&self, name: &str) -> Option<&str> {
        self.servers
            .get(name)
            .and_then(|urls| urls.first())
            .map(|u| u.trim_end_matches('/'))
    }
}

/// `storage.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct StorageConfig {
    /// The data directory (default `./oxisd-data`).
    pub path: Option<PathBuf>,
    /// MiB of memory for caching store blocks; more makes lookups in a large store faster.
    #[serde(alias = "cache_size")]
    pub cache_size: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            path: None,
            cache_size: 4,
        }
    }
}

/// `key.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyConfig {
    /// The signing key file (default `<storage.path>/signing.key`), created on first run.
    pub path: Option<PathBuf>,
    /// The key id of a newly generated key.
    pub id: String,
}

impl Default for KeyConfig {
    fn default() -> Self {
        KeyConfig {
            path: None,
            id: "ed25519:0".into(),
        }
    }
}

/// `logging.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct LoggingConfig {
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
    /// Log one line per HTTP request.
    pub requests: bool,
    /// `text` (lines for people; the journald style when standard error is the journal) or
    /// `json` (one object per line, for log shippers).
    pub format: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: "info".into(),
            requests: true,
            format: "text".into(),
        }
    }
}

impl LoggingConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.level_filter()?;
        self.log_format().map(|_| ())
    }

    /// The format as the logger's.
    pub fn log_format(&self) -> Result<crate::logging::Format, ConfigError> {
        match self.format.as_str() {
            "text" => Ok(crate::logging::Format::Text),
            "json" => Ok(crate::logging::Format::Json),
            other => Err(err(format!(
                "logging.format: '{other}' is not one of text, json"
            ))),
        }
    }

    /// The level as a `log` filter.
    pub fn level_filter(&self) -> Result<log::LevelFilter, ConfigError> {
        self.level.parse::<log::LevelFilter>().map_err(|_| {
            err(format!(
                "logging.level: '{}' is not one of error, warn, info, debug, trace",
                self.level
            ))
        })
    }
}
