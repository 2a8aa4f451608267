//! The organisation's directory (`stores.ldap`): OpenLDAP, 389 DS or Active Directory, reached
//! with the small LDAP client of [`crate::ldap`].
//!
//! Two services use it:
//! - [`sync::DirectorySync`] copies the 3PIDs of its users into the store under the source
//!   `ldap`, so that plain and hashed lookups and pending invites find them (like the synapse
//!   store);
//! - [`password::PasswordCheck`] answers the homeserver's `check_credentials` by binding to the
//!   directory as the user.
//!
//! This module holds what both need: the servers and how to reach them, the service account,
//! the base DNs and the user filter; [`person`] maps an entry to a Matrix user.

pub mod password;
pub mod person;
pub mod sync;

use std::time::Duration;

use crate::config::{LdapStoreConfig, Secret};
use crate::ldap::{
    self, ConnectOptions, Connection, Entry, LdapError, Scope, SearchRequest, Server,
};

use person::Mapping;

/// The source name of the synced bindings (and the store's name in `stores.order`).
pub const SOURCE: &str = "ldap";

/// Why the directory could not answer, worded for the operator's log.
#[derive(Debug)]
pub struct DirectoryError(pub String);

impl std::fmt::Display for DirectoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The directory: where it is, how to reach it, where its users are and which entries are
/// users.
pub struct Directory {
    servers: Vec<Server>,
    options: ConnectOptions,
    bind_dn: String,
    bind_password: Secret,
    base_dns: Vec<String>,
    /// The user filter as configured (checked at start), for building per-user filters.
    filter: String,
    page_size: u32,
    /// How entries become Matrix users.
    pub mapping: Mapping,
}

impl Directory {
    /// Builds it from `stores.ldap.*` (validated), reading the CA file; users belong to
    /// `domain`. The error names the problem, for the caller to prefix with the key.
    pub fn new(config: &LdapStoreConfig, domain: &str) -> Result<Directory, String> {
        let c = &config.connection;
        let servers = c
            .server_urls()
            .iter()
            .map(|u| Server::parse(u))
            .collect::<Result<Vec<_>, _>>()?;
        let tls = ldap::tls_config(c.ca_file.as_deref())
            .map_err(|e| format!("connection.caFile: {e}"))?;
        ldap::parse_filter(&config.filter).map_err(|e| format!("filter: {e}"))?;
        Ok(Directory {
            servers,
            options: ConnectOptions {
                start_tls: c.start_tls,
                tls,
                connect_timeout: Duration::from_secs(c.connect_timeout),
                timeout: Duration::from_secs(c.timeout),
            },
            bind_dn: c.bind_dn.clone(),
            bind_password: c.bind_password.clone(),
            base_dns: c.base_dns.clone(),
            filter: config.filter.trim().to_string(),
            page_size: c.page_size,
            mapping: Mapping::new(config, domain),
        })
    }

    /// A connection to the first server that answers, bound as the service account (or
    /// anonymous when none is configured).
    pub fn connect(&self) -> Result<Connection, DirectoryError> {
        let mut failures = Vec::new();
        for server in &self.servers {
            match Connection::open(server, &self.options) {
                Ok(mut conn) => {
                    if self.bind_dn.is_empty() {
                        return Ok(conn);
                    }
                    return match conn.simple_bind(&self.bind_dn, self.bind_password.expose()) {
                        Ok(()) => Ok(conn),
                        Err(LdapError::InvalidCredentials) => Err(DirectoryError(format!(
                            "{server} refused the service account '{}': invalid credentials \
                             (check stores.ldap.connection.bindDn and bindPassword)",
                            self.bind_dn
                        ))),
                        Err(e) => Err(DirectoryError(format!(
                            "{server}: binding as the service account '{}' failed: {e}",
                            self.bind_dn
                        ))),
                    };
                }
                Err(e) => failures.push(format!("{server}: {e}")),
            }
        }
        Err(DirectoryError(format!(
            "no directory server answered ({})",
            failures.join("; ")
        )))
    }

    /// The user filter narrowed by `extra` (a filter string whose values are escaped), as a
    /// parsed filter.
    fn narrowed(&self, extra: &str) -> Result<ldap::Filter, DirectoryError> {
        let text = if extra.is_empty() {
            self.filter.clone()
        } else {
            format!("(&{}{extra})", parenthesised(&self.filter))
        };
        ldap::parse_filter(&text)
            .map_err(|e| DirectoryError(format!("the filter '{text}' is not valid: {e}")))
    }

    /// Runs the user filter narrowed by `extra` under every base DN, asking for `attributes`,
    /// and hands each entry to `on_entry`.
    fn search(
        &self,
        conn: &mut Connection,
        extra: &str,
        attributes: &[&str],
        on_entry: &mut dyn FnMut(Entry) -> Result<(), LdapError>,
    ) -> Result<(), DirectoryError> {
        let filter = self.narrowed(extra)?;
        for base in &self.base_dns {
            let request = SearchRequest {
                base,
                scope: Scope::Subtree,
                filter: &filter,
                attributes,
                size_limit: 0,
            };
            conn.search(&request, self.page_size, on_entry)
                .map_err(|e| DirectoryError(format!("searching '{base}' failed: {e}")))?;
        }
        Ok(())
    }

    /// The first base DN (for the stand-in bind of an unknown user).
    fn first_base(&self) -> &str {
        self.base_dns.first().map_or("", String::as_str)
    }
}

/// `text` in parentheses unless it already is (the configured filter may be a bare
/// `objectClass=person`).
fn parenthesised(text: &str) -> String {
    let t = text.trim();
    if t.starts_with('(') {
        t.to_string()
    } else {
        format!("({t})")
    }
}

/// What the directory serves: the sync of `stores.ldap`, and the password checks of `auth.*`
/// when enabled.
pub struct DirectoryServices {
    /// Copies the directory's 3PIDs into the store.
    pub sync: sync::DirectorySync,
    /// Checks passwords for the homeserver (`auth.enabled`).
    pub passwords: Option<password::PasswordCheck>,
}

impl DirectoryServices {
    /// Builds them from `config` when `stores.ldap.enabled` (reading the CA file); `None`
    /// otherwise. Connects to nothing yet.
    pub fn from_config(
        config: &crate::config::Config,
    ) -> Result<Option<DirectoryServices>, crate::error::StartError> {
        let ldap = &config.stores.ldap;
        if !ldap.enabled {
            return Ok(None);
        }
        let domain = config
            .matrix
            .domain
            .as_deref()
            .unwrap_or(&config.server.name);
        let directory = std::sync::Arc::new(
            Directory::new(ldap, domain)
                .map_err(|e| crate::error::StartError::setting("stores.ldap", e))?,
        );
        let passwords = config
            .auth
            .enabled
            .then(|| password::PasswordCheck::new(directory.clone(), &config.auth.rate_limit));
        if passwords.is_some() {
            // A wrong matrix.domain refuses every login: say which users are checked.
            log::info!(
                "password checks for users @<localpart>:{domain} (matrix.domain; it must be the homeserver's server_name)"
            );
        }
        Ok(Some(DirectoryServices {
            sync: sync::DirectorySync::new(directory, &ldap.sync),
            passwords,
        }))
    }
}
