//! `stores.ldap.*`: an organisation's directory (OpenLDAP, 389 DS, Active Directory) as an
//! identity store, and the source of the passwords `auth.*` checks. Key names follow mxisd's
//! `ldap:` section where they map (docs/MIGRATION.md has the table).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret, resolve_secret_file};

/// `stores.ldap.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct LdapStoreConfig {
    /// Use this store.
    pub enabled: bool,
    /// `stores.ldap.connection.*`: where the directory is and how to talk to it.
    pub connection: LdapConnectionConfig,
    /// The user filter (RFC 4515): which entries are Matrix users, e.g.
    /// `(&(objectClass=inetOrgPerson)(!(employeeType=disabled)))`.
    pub filter: String,
    /// `stores.ldap.attribute.*`: which attributes hold what.
    pub attribute: LdapAttributeConfig,
    /// The region phone numbers written without a country code belong to (ISO 3166 alpha-2,
    /// e.g. GB); empty: such numbers are skipped.
    pub default_region: String,
    /// `stores.ldap.sync.*`: copying the directory's 3PIDs into the store.
    pub sync: LdapSyncConfig,
}

impl Default for LdapStoreConfig {
    fn default() -> Self {
        LdapStoreConfig {
            enabled: false,
            connection: LdapConnectionConfig::default(),
            filter: "(objectClass=inetOrgPerson)".into(),
            attribute: LdapAttributeConfig::default(),
            default_region: String::new(),
            sync: LdapSyncConfig::default(),
        }
    }
}

/// `stores.ldap.connection.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct LdapConnectionConfig {
    /// The servers, tried in order: `ldap://host[:port]` or `ldaps://host[:port]`.
    pub urls: Vec<String>,
    /// mxisd's form of one server: its host name (with `port` and `tls`), used when `urls`
    /// is empty.
    pub host: String,
    /// mxisd's port (default 389, or 636 with `tls`).
    pub port: Option<u16>,
    /// mxisd's `tls`: LDAP over TLS (`ldaps://`).
    pub tls: bool,
    /// StartTLS on `ldap://` servers (refused if the server does not offer it; never falls back
    /// to plain text).
    pub start_tls: bool,
    /// PEM file of the certificate authorities to trust for `ldaps://` and StartTLS; empty: the
    /// system's trust store.
    pub ca_file: Option<PathBuf>,
    /// The service account's DN, used to search the directory (empty: anonymous).
    pub bind_dn: String,
    /// The service account's password.
    #[serde(alias = "bind_password")]
    pub bind_password: Secret,
    /// A file holding the service account's password, instead of `bindPassword`.
    #[serde(rename = "bindPassword_file", alias = "bind_password_file")]
    pub bind_password_file: Option<PathBuf>,
    /// Where users are searched (subtree of each).
    #[serde(rename = "baseDNs", alias = "baseDns", alias = "base_dns")]
    pub base_dns: Vec<String>,
    /// mxisd's older single base DN, added to `baseDNs`.
    #[serde(rename = "baseDn", alias = "base_dn")]
    pub base_dn: String,
    /// Seconds to connect to one server.
    pub connect_timeout: u64,
    /// Seconds for each answer of the server.
    pub timeout: u64,
    /// Entries per page of a search (simple paged results; Active Directory answers at most
    /// 1 000 without paging). 0: no paging.
    pub page_size: u32,
}

impl Default for LdapConnectionConfig {
    fn default() -> Self {
        LdapConnectionConfig {
            urls: Vec::new(),
            host: String::new(),
            port: None,
            tls: false,
            start_tls: false,
            ca_file: None,
            bind_dn: String::new(),
            bind_password: Secret::default(),
            bind_password_file: None,
            base_dns: Vec::new(),
            base_dn: String::new(),
            connect_timeout: 5,
            timeout: 10,
            page_size: 500,
        }
    }
}

/// `stores.ldap.attribute.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct LdapAttributeConfig {
    /// `stores.ldap.attribute.uid.*`: the attribute that gives the Matrix user.
    pub uid: LdapUidConfig,
    /// The display name's attribute.
    pub name: String,
    /// `stores.ldap.attribute.threepid.*`: the attributes holding 3PIDs, per medium.
    pub threepid: LdapThreepidAttributes,
}

impl Default for LdapAttributeConfig {
    fn default() -> Self {
        LdapAttributeConfig {
            uid: LdapUidConfig::default(),
            name: "displayName".into(),
            threepid: LdapThreepidAttributes::default(),
        }
    }
}

/// What the uid attribute holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LdapUidType {
    /// The Matrix localpart (`uid`, `sAMAccountName`); for `userPrincipalName`
    /// (`alice@corp.example.org`) the part before the `@`.
    Uid,
    /// A whole Matrix user id (`@alice:example.org`).
    Mxid,
}

/// `stores.ldap.attribute.uid.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct LdapUidConfig {
    /// `uid` or `mxid`.
    #[serde(rename = "type")]
    pub kind: LdapUidType,
    /// The attribute's name.
    pub value: String,
}

impl Default for LdapUidConfig {
    fn default() -> Self {
        LdapUidConfig {
            kind: LdapUidType::Uid,
            value: "uid".into(),
        }
    }
}

/// `stores.ldap.attribute.threepid.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct LdapThreepidAttributes {
    /// Attributes holding email addresses.
    pub email: Vec<String>,
    /// Attributes holding phone numbers.
    pub msisdn: Vec<String>,
}

impl Default for LdapThreepidAttributes {
    fn default() -> Self {
        LdapThreepidAttributes {
            email: vec!["mail".into()],
            msisdn: vec!["telephoneNumber".into(), "mobile".into()],
        }
    }
}

/// `stores.ldap.sync.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct LdapSyncConfig {
    /// Seconds between syncs.
    pub interval: u64,
    /// Seconds between full syncs (every entry read again); the syncs between read only the
    /// entries changed since (by `changedAttribute`) and the list of entry names.
    pub full_interval: u64,
    /// The operational attribute with each entry's last change (`modifyTimestamp`; Active
    /// Directory: `whenChanged`); empty: every sync is a full one.
    pub changed_attribute: String,
}

impl Default for LdapSyncConfig {
    fn default() -> Self {
        LdapSyncConfig {
            interval: 300,
            full_interval: 86_400,
            changed_attribute: "modifyTimestamp".into(),
        }
    }
}

impl LdapConnectionConfig {
    /// The server URLs: `urls`, or mxisd's `host`/`port`/`tls`.
    pub fn server_urls(&self) -> Vec<String> {
        if !self.urls.is_empty() || self.host.is_empty() {
            return self.urls.clone();
        }
        let (scheme, port) = if self.tls {
            ("ldaps", self.port.unwrap_or(636))
        } else {
            ("ldap", self.port.unwrap_or(389))
        };
        let host = if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        vec![format!("{scheme}://{host}:{port}")]
    }
}

impl LdapStoreConfig {
    pub(super) fn validate(&mut self) -> Result<(), ConfigError> {
        const KEY: &str = "stores.ldap";
        let c = &mut self.connection;
        resolve_secret_file(
            &mut c.bind_password,
            c.bind_password_file.as_deref(),
            "stores.ldap.connection.bindPassword",
        )
        .map_err(ConfigError)?;
        if !c.base_dn.trim().is_empty() {
            let dn = c.base_dn.trim().to_string();
            if !c.base_dns.contains(&dn) {
                c.base_dns.push(dn);
            }
        }
        if !self.enabled {
            return Ok(());
        }
        let urls = c.server_urls();
        if urls.is_empty() {
            return Err(ConfigError(format!(
                "{KEY}.connection.urls: give at least one server, e.g. [\"ldap://ldap.example.org\"]"
            )));
        }
        for url in &urls {
            let server = crate::ldap::Server::parse(url)
                .map_err(|e| ConfigError(format!("{KEY}.connection.urls: {e}")))?;
            if server.ldaps && c.start_tls {
                return Err(ConfigError(format!(
                    "{KEY}.connection.startTls: '{url}' is ldaps:// (TLS from the start); StartTLS is for ldap:// servers"
                )));
            }
        }
        if c.base_dns.iter().all(|d| d.trim().is_empty()) {
            return Err(ConfigError(format!(
                "{KEY}.connection.baseDNs: give at least one base DN, e.g. [\"ou=people,dc=example,dc=org\"]"
            )));
        }
        c.base_dns.retain(|d| !d.trim().is_empty());
        if c.bind_dn.is_empty() != c.bind_password.is_empty() {
            return Err(ConfigError(format!(
                "{KEY}.connection.bindDn and bindPassword: give both (the service account), or neither (anonymous searches)"
            )));
        }
        if c.connect_timeout == 0 || c.timeout == 0 {
            return Err(ConfigError(format!(
                "{KEY}.connection.connectTimeout and timeout: must be at least 1 second"
            )));
        }
        crate::ldap::parse_filter(&self.filter)
            .map_err(|e| ConfigError(format!("{KEY}.filter: '{}': {e}", self.filter)))?;
        let a = &self.attribute;
        let attribute_names = std::iter::once(&a.uid.value)
            .chain(a.threepid.email.iter())
            .chain(a.threepid.msisdn.iter());
        for name in attribute_names {
            if !is_attribute_name(name) {
                return Err(ConfigError(format!(
                    "{KEY}.attribute: '{name}' is not an attribute name (letters, digits and -)"
                )));
            }
        }
        if !a.name.is_empty() && !is_attribute_name(&a.name) {
            return Err(ConfigError(format!(
                "{KEY}.attribute.name: '{}' is not an attribute name (letters, digits and -)",
                a.name
            )));
        }
        let region = self.default_region.trim().to_ascii_uppercase();
        if !region.is_empty() && region.parse::<phonenumber::country::Id>().is_err() {
            return Err(ConfigError(format!(
                "{KEY}.defaultRegion: '{}' is not an ISO 3166 alpha-2 country code like GB or FR",
                self.default_region
            )));
        }
        self.default_region = region;
        let s = &self.sync;
        if s.interval == 0 || s.full_interval == 0 {
            return Err(ConfigError(format!(
                "{KEY}.sync.interval and fullInterval: must be at least 1 second"
            )));
        }
        if !s.changed_attribute.is_empty() && !is_attribute_name(&s.changed_attribute) {
            return Err(ConfigError(format!(
                "{KEY}.sync.changedAttribute: '{}' is not an attribute name",
                s.changed_attribute
            )));
        }
        Ok(())
    }
}

/// An attribute description's name: a letter, then letters, digits and hyphens (RFC 4512), or
/// a numeric OID.
fn is_attribute_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() => chars.all(|c| c.is_ascii_alphanumeric() || c == '-'),
        Some(c) if c.is_ascii_digit() => name
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_names() {
        for ok in ["uid", "sAMAccountName", "x-custom-1", "2.5.4.3"] {
            assert!(is_attribute_name(ok), "{ok}");
        }
        for bad in ["", "1uid", "mail)(uid=*", "a b", "2.5..4", "mail;lang-en"] {
            assert!(!is_attribute_name(bad), "{bad}");
        }
    }

    #[test]
    fn mxisd_host_port_tls_make_a_url() {
        let mut c = LdapConnectionConfig {
            host: "ldap.example.org".into(),
            ..LdapConnectionConfig::default()
        };
        assert_eq!(c.server_urls(), ["ldap://ldap.example.org:389"]);
        c.tls = true;
        assert_eq!(c.server_urls(), ["ldaps://ldap.example.org:636"]);
        c.port = Some(10636);
        c.host = "::1".into();
        assert_eq!(c.server_urls(), ["ldaps://[::1]:10636"]);
        c.urls = vec!["ldap://a".into()];
        assert_eq!(c.server_urls(), ["ldap://a"]);
    }
}
