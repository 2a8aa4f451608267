//! `admin.*`: the operator's listener (admin API and `/metrics`), off by default.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret, resolve_secret_file};
use crate::util::url::{is_loopback_host, unbracket};

/// `admin.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct AdminConfig {
    /// Whether the admin listener runs.
    pub enabled: bool,
    /// A loopback address to listen on.
    pub hostname: String,
    /// The port (0 picks a free one).
    pub port: u16,
    /// The token `oxisd admin` and scrapers send (`Authorization: Bearer`), 16 characters or
    /// more.
    pub token: Secret,
    /// A file holding the token, instead of `token`.
    #[serde(alias = "token_file")]
    pub token_file: Option<PathBuf>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: false,
            hostname: "127.0.0.1".into(),
            port: 8091,
            token: Secret::default(),
            token_file: None,
        }
    }
}

impl AdminConfig {
    pub(super) fn validate(&mut self) -> Result<(), ConfigError> {
        resolve_secret_file(&mut self.token, self.token_file.as_deref(), "admin.token")
            .map_err(ConfigError)?;
        if !self.enabled {
            return Ok(());
        }
        if !is_loopback_host(unbracket(&self.hostname)) {
            return Err(ConfigError(format!(
                "admin.hostname: '{}' is not a loopback address; the admin API must not be reachable from the network",
                self.hostname
            )));
        }
        if self.token.expose().chars().count() < 16 {
            return Err(ConfigError(
                "admin.token: set a token of at least 16 characters (or admin.token_file)".into(),
            ));
        }
        Ok(())
    }
}
