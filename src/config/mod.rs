//! The configuration: one typed tree with defaults, read from YAML, validated once at start.
//!
//! Key names follow mxisd where mxisd had the same setting (`server.publicUrl`,
//! `session.policy.validation.enabled`, ...). Every multi-word key is accepted in camelCase and in
//! snake_case. Unknown keys and wrong types are errors that name the key path and the line.
//! Every key is documented, with its default, in `config.example.yaml`.

mod access;
mod admin;
mod auth;
mod invite;
mod ldap;
mod lookup;
mod secret;
mod sections;
mod server;
mod session;
mod threepid;
mod tree;
mod view;
mod wording;

use std::fmt;
use std::path::{Path, PathBuf};

pub use access::*;
pub use admin::*;
pub use auth::*;
pub use invite::*;
pub use ldap::*;
pub use lookup::*;
pub use secret::{Secret, resolve as resolve_secret_file};
pub use sections::*;
use serde::{Deserialize, Serialize};
pub use server::*;
pub use session::*;
pub use threepid::*;
pub use view::*;

/// The environment variable that names the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "OXISD_CONFIG";

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// `server.*`: listener, public identity and HTTP limits.
    pub server: ServerConfig,
    /// `matrix.*`: the Matrix side of the deployment.
    pub matrix: MatrixConfig,
    /// `storage.*`: where data lives.
    pub storage: StorageConfig,
    /// `key.*`: the long-term signing key.
    pub key: KeyConfig,
    /// `session.*`: 3PID session policy.
    pub session: SessionConfig,
    /// `threepid.*`: message generation and delivery per medium.
    pub threepid: ThreepidConfig,
    /// `view.*`: web pages and branding.
    pub view: ViewConfig,
    /// `bind.*`: how bindings are made.
    pub bind: BindConfig,
    /// `lookup.*`: lookups, pepper, federation, the per-client budget.
    pub lookup: LookupConfig,
    /// `stores.*`: identity stores.
    pub stores: StoresConfig,
    /// `api.*`: which API versions are served.
    pub api: ApiConfig,
    /// `account.*`: who may register.
    pub account: AccountConfig,
    /// `invite.*`: 3PID room invites.
    pub invite: InviteConfig,
    /// `policy.*`: terms of service users accept.
    pub policy: PolicyConfig,
    /// `outbound.*`: requests to other servers.
    pub outbound: OutboundConfig,
    /// `admin.*`: the operator's listener.
    pub admin: AdminConfig,
    /// `auth.*`: password checks for the homeserver, against `stores.ldap`.
    pub auth: AuthConfig,
    /// `logging.*`: log verbosity.
    pub logging: LoggingConfig,
}

/// A configuration problem, with the key path (and line, where known) in the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Where the configuration came from, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// No file: the embedded defaults.
    Defaults,
    /// This file.
    File(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Defaults => f.write_str("embedded defaults (no config file)"),
            Source::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Before 0.2 (see CHANGELOG.md), a config file without `storage.path` kept the data in
/// `./oxisd-data` under the working directory; now it is next to the file. Starting on an
/// empty directory there while the store is elsewhere would look like a fresh install (an empty
/// store and a new signing key), so that case is refused with what to do.
fn refuse_a_data_dir_left_behind(data_dir: &Path, old: &Path) -> Result<(), ConfigError> {
    if data_dir.exists() || !old.join("db").is_dir() {
        return Ok(());
    }
    let old = std::fs::canonicalize(old).unwrap_or_else(|_| old.to_path_buf());
    Err(ConfigError(format!(
        "storage.path is not set, so the data directory is {} (next to the config file: \
         relative paths and this default are relative to the config file), which does not \
         exist; a store exists at {}, where earlier versions put it (relative to the working \
         directory): set storage.path to that directory, or move it to {}",
        data_dir.display(),
        old.display(),
        data_dir.display()
    )))
}

impl Config {
    /// Loads the file at `path`, or at `$OXISD_CONFIG`, or the embedded defaults when neither
    /// is given; then validates it.
    pub fn load(path: Option<&Path>) -> Result<(Config, Source), ConfigError> {
        let env_path = std::env::var_os(CONFIG_ENV)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
        let Some(path) = path.map(Path::to_path_buf).or(env_path) else {
            return Ok((Config::default().validated()?, Source::Defaults));
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
        let mut config = Config::parse(&text)
            .map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))?;
        // One rule: relative paths in a config file, and the default data directory when the
        // file leaves `storage.path` out, are relative to the file, not to the working
        // directory. (Without a config file, the defaults are relative to the working
        // directory: there is no file to be relative to.)
        let base = path.parent().unwrap_or(Path::new(""));
        let data_dir_defaulted = config.storage.path.is_none();
        if data_dir_defaulted {
            let name = DEFAULT_DATA_DIR.trim_start_matches("./");
            config.storage.path = Some(PathBuf::from(name));
        }
        let config = config.resolve_relative_paths(base).validated()?;
        if data_dir_defaulted {
            refuse_a_data_dir_left_behind(config.data_dir(), Path::new(DEFAULT_DATA_DIR))?;
        }
        Ok((config, Source::File(path)))
    }

    /// Parses YAML text into a config (not yet validated). Errors name the key path.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        // An empty file, or one with only comments, means "all defaults".
        let has_content = text.lines().any(|l| {
            let l = l.trim();
            !l.is_empty() && !l.starts_with('#') && l != "---"
        });
        if !has_content {
            return Ok(Config::default());
        }
        // YAML into a tree, then the tree into the config (see tree.rs for why).
        let mut tree: serde_json::Value = serde_norway::from_str(text).map_err(|e| {
            ConfigError(format!(
                "invalid config: {}",
                wording::parse_error("", &e.to_string())
            ))
        })?;
        let defaults = serde_json::to_value(Config::default()).unwrap_or_default();
        tree::like_yaml(&mut tree, &defaults);
        serde_path_to_error::deserialize(tree).map_err(|e| {
            let path = e.path().to_string();
            let steps: Vec<tree::Step> = e
                .path()
                .iter()
                .filter_map(|s| match s {
                    serde_path_to_error::Segment::Seq { index } => Some(tree::Step::Index(*index)),
                    serde_path_to_error::Segment::Map { key }
                    | serde_path_to_error::Segment::Enum { variant: key } => {
                        Some(tree::Step::Key(key.clone()))
                    }
                    _ => None,
                })
                .collect();
            let mut inner = e.into_inner().to_string();
            if let Some((line, column)) = tree::locate(text, &steps) {
                inner.push_str(&format!(" at line {line} column {column}"));
            }
            if path == "." || path.is_empty() {
                ConfigError(format!(
                    "invalid config: {}",
                    wording::parse_error("", &inner)
                ))
            } else {
                ConfigError(wording::parse_error(&path, &inner))
            }
        })
    }

    fn resolve_relative_paths(mut self, base: &Path) -> Config {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() && !p.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        };
        if let Some(p) = self.storage.path.as_mut() {
            fix(p);
        }
        let email = &mut self.threepid.medium.email;
        let msisdn = &mut self.threepid.medium.msisdn;
        let views = &mut self.view;
        let paths = [
            self.key.path.as_mut(),
            self.server.tls.certificate.as_mut(),
            self.admin.token_file.as_mut(),
            self.auth.shared_secret_file.as_mut(),
            self.stores.ldap.connection.ca_file.as_mut(),
            self.stores.ldap.connection.bind_password_file.as_mut(),
            self.server.tls.private_key.as_mut(),
            email.connectors.smtp.password_file.as_mut(),
            email.generators.template.session.validation.as_mut(),
            email.generators.template.invite.as_mut(),
            email.generators.template.session.unbind.fraudulent.as_mut(),
            email
                .generators
                .template
                .session
                .unbind
                .notification
                .as_mut(),
            msisdn
                .generators
                .template
                .session
                .unbind
                .fraudulent
                .as_mut(),
            msisdn
                .generators
                .template
                .session
                .unbind
                .notification
                .as_mut(),
            msisdn.connectors.twilio.auth_token_file.as_mut(),
            msisdn.generators.template.session.validation.as_mut(),
            views.brand.logo.as_mut(),
            views.brand.css.as_mut(),
            views.session.on_token_submit.success.as_mut(),
            views.session.on_token_submit.failure.as_mut(),
        ];
        for p in paths.into_iter().flatten() {
            fix(p);
        }
        self
    }

    /// Checks every value and fills the defaults that depend on other values.
    pub fn validated(mut self) -> Result<Config, ConfigError> {
        self.server.validate()?;
        if self.matrix.domain.as_deref().unwrap_or("").is_empty() {
            self.matrix.domain = Some(self.server.name.clone());
        }
        let data = self
            .storage
            .path
            .get_or_insert_with(|| PathBuf::from(DEFAULT_DATA_DIR))
            .clone();
        self.key
            .path
            .get_or_insert_with(|| data.join("signing.key"));
        if !self.key.id.starts_with("ed25519:")
            || !self.key.id["ed25519:".len()..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            || self.key.id.len() == "ed25519:".len()
        {
            return Err(ConfigError(format!(
                "key.id: '{}' must look like ed25519:<letters, digits or _>, e.g. ed25519:0",
                self.key.id
            )));
        }
        self.session.validate()?;
        for (scope, policy) in [
            ("forLocal", &self.session.policy.validation.for_local),
            ("forRemote", &self.session.policy.validation.for_remote),
        ] {
            let remote = &policy.to_remote;
            if !remote.enabled {
                continue;
            }
            let url = self.matrix.identity.url_of(&remote.server).ok_or_else(|| {
                ConfigError(format!(
                    "session.policy.validation.{scope}.toRemote.server: '{}' is not a name in matrix.identity.servers",
                    remote.server
                ))
            })?;
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(ConfigError(format!(
                    "matrix.identity.servers.{}: '{url}' must be an http(s) URL",
                    remote.server
                )));
            }
        }
        let domain = self.matrix.domain.clone().unwrap_or_default();
        self.threepid.medium.email.validate(&domain)?;
        self.threepid.medium.msisdn.validate()?;
        self.policy.validate()?;
        self.invite.validate()?;
        self.admin.validate()?;
        self.stores.validate()?;
        self.auth.validate(self.stores.ldap.enabled)?;
        self.lookup.validate()?;
        self.outbound.validate()?;
        if self.outbound.max_concurrent == 0 {
            self.outbound.max_concurrent = (self.server.workers / 2).max(1);
        }
        self.logging.validate()?;
        Ok(self)
    }

    /// The data directory (after validation, always set).
    pub fn data_dir(&self) -> &Path {
        self.storage
            .path
            .as_deref()
            .unwrap_or(Path::new(DEFAULT_DATA_DIR))
    }

    /// The signing key file (after validation, always set).
    pub fn key_path(&self) -> PathBuf {
        self.key
            .path
            .clone()
            .unwrap_or_else(|| self.data_dir().join("signing.key"))
    }

    /// The effective configuration as YAML, secrets masked.
    pub fn to_yaml(&self) -> String {
        // Through a tree, like the reading (tree.rs): keys come out in alphabetical order.
        serde_json::to_value(self)
            .map_err(|e| e.to_string())
            .and_then(|v| serde_norway::to_string(&v).map_err(|e| e.to_string()))
            .unwrap_or_else(|e| format!("# cannot print config: {e}\n"))
    }
}

/// The data directory used when `storage.path` is not set.
pub const DEFAULT_DATA_DIR: &str = "./oxisd-data";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_gives_the_embedded_defaults() {
        let c = Config::parse("# nothing\n").unwrap().validated().unwrap();
        assert_eq!(c.server.name, "localhost");
        assert_eq!(c.server.hostname, "127.0.0.1");
        assert_eq!(c.server.port, 8090);
        assert_eq!(
            c.server.public_url.as_deref(),
            Some("http://localhost:8090")
        );
        assert_eq!(c.matrix.domain.as_deref(), Some("localhost"));
        assert_eq!(c.data_dir(), Path::new("./oxisd-data"));
        assert_eq!(c.key_path(), Path::new("./oxisd-data/signing.key"));
        assert!(c.session.policy.validation.enabled);
        assert!(c.session.policy.unbind.fraudulent.send_warning);
    }

    #[test]
    fn email_subjects_are_one_short_line() {
        let with = |subject: &str| {
            let yaml = format!(
                "threepid:\n  medium:\n    email:\n      generators:\n        subject:\n          session:\n            validation: {}\n",
                serde_json::Value::String(subject.into())
            );
            Config::parse(&yaml).and_then(|c| c.validated()).map(|c| {
                c.threepid
                    .medium
                    .email
                    .generators
                    .subject
                    .session
                    .validation
            })
        };
        assert_eq!(
            with("Your code for %DOMAIN%").unwrap().as_deref(),
            Some("Your code for %DOMAIN%")
        );
        for bad in ["a\nBcc: x@example.org", " ", &"x".repeat(201)] {
            let e = with(bad).unwrap_err().to_string();
            assert!(
                e.contains("threepid.medium.email.generators.subject.session.validation"),
                "{e}"
            );
        }
    }

    #[test]
    fn camel_and_snake_case_are_both_accepted() {
        let a = Config::parse("server:\n  publicUrl: https://id.example.org/\n").unwrap();
        let b = Config::parse("server:\n  public_url: https://id.example.org/\n").unwrap();
        assert_eq!(a.server.public_url, b.server.public_url);
        let c = Config::parse(
            "session:\n  policy:\n    unbind:\n      fraudulent:\n        send_warning: false\n",
        )
        .unwrap();
        assert!(!c.session.policy.unbind.fraudulent.send_warning);
        let a = a.validated().unwrap();
        assert_eq!(
            a.server.public_url.as_deref(),
            Some("https://id.example.org")
        );
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_path_and_line() {
        let e = Config::parse("server:\n  name: a.org\n  prot: 8090\n")
            .unwrap_err()
            .0;
        assert!(e.starts_with("server"), "{e}");
        assert!(e.contains("prot"), "{e}");
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn wrong_types_are_errors_naming_the_path() {
        let e = Config::parse("server:\n  port: eighty\n").unwrap_err().0;
        assert!(e.starts_with("server.port:"), "{e}");
        let e = Config::parse("session:\n  policy:\n    validation:\n      enabled: maybe\n")
            .unwrap_err()
            .0;
        assert!(e.starts_with("session.policy.validation.enabled:"), "{e}");
    }

    #[test]
    fn invalid_values_are_rejected_with_the_key() {
        let bad = |yaml: &str| Config::parse(yaml).unwrap().validated().unwrap_err().0;
        assert!(bad("server:\n  publicUrl: ftp://x\n").starts_with("server.publicUrl"));
        assert!(bad("server:\n  name: ''\n").starts_with("server.name"));
        assert!(bad("server:\n  maxBodySize: 10\n").starts_with("server.maxBodySize"));
        assert!(bad("key:\n  id: rsa:1\n").starts_with("key.id"));
        assert!(bad("logging:\n  level: loud\n").starts_with("logging.level"));
        assert!(bad("logging:\n  format: xml\n").starts_with("logging.format"));
        // A lookup budget smaller than one full lookup would refuse full lookups for ever.
        let e = bad("lookup:\n  rateLimit:\n    perClient:\n      burst: 500\n");
        assert!(e.starts_with("lookup.rateLimit.perClient.burst"), "{e}");
        let ok = |yaml: &str| Config::parse(yaml).unwrap().validated().is_ok();
        assert!(ok(
            "lookup:\n  maxAddresses: 500\n  rateLimit:\n    perClient:\n      burst: 500\n"
        ));
        assert!(ok(
            "lookup:\n  rateLimit:\n    perClient:\n      addressesPerSecond: 0\n      burst: 0\n"
        ));
        assert!(
            Config::parse("server:\n  trustedProxies: [nope]\n")
                .unwrap_err()
                .0
                .starts_with("server.trustedProxies")
        );
    }

    /// docs/CONFIGURATION.md carries config.example.yaml, as it is now. Regenerate with
    /// `OXISD_UPDATE_DOCS=1 cargo test --lib configuration_reference`.
    #[test]
    fn configuration_reference_matches_the_example_config() {
        let example = include_str!("../../config.example.yaml");
        let expected = format!(
            "# Configuration reference\n\n\
             Every key oxisd understands, with its default and what it does. This page is\n\
             `config.example.yaml` (a test keeps the two identical); keys may be written in\n\
             camelCase or snake_case, `*_file` keys read a secret from a file, relative paths are\n\
             relative to the config file, and so is the default data directory when `storage.path`\n\
             is left out (`oxisd-data` next to the file; with no config file at all, `./oxisd-data`\n\
             in the working directory). Check a file with `oxisd check-config --config FILE`.\n\n\
             ```yaml\n{example}```\n"
        );
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/CONFIGURATION.md");
        if std::env::var_os("OXISD_UPDATE_DOCS").is_some() {
            std::fs::write(path, &expected).unwrap();
        }
        let actual = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            actual == expected,
            "docs/CONFIGURATION.md is out of date: run OXISD_UPDATE_DOCS=1 cargo test --lib configuration_reference"
        );
    }

    /// Every key of the config tree is documented in config.example.yaml, with its default.
    #[test]
    fn example_config_documents_every_key_with_its_default() {
        let text = include_str!("../../config.example.yaml");
        let example = Config::parse(text).unwrap().validated().unwrap();
        let defaults = Config::default().validated().unwrap();
        assert_eq!(example.to_yaml(), defaults.to_yaml());
        let documented: serde_json::Value = serde_norway::from_str(text).unwrap();
        let tree = serde_json::to_value(&defaults).unwrap();
        fn walk(tree: &serde_json::Value, doc: &serde_json::Value, path: &str) {
            if let serde_json::Value::Object(map) = tree {
                for (k, v) in map {
                    let key = format!("{path}{k}");
                    let d = doc
                        .get(k)
                        .unwrap_or_else(|| panic!("{key} is not in config.example.yaml"));
                    walk(v, d, &format!("{key}."));
                }
            }
        }
        walk(&tree, &documented, "");
    }

    #[test]
    fn non_default_name_gets_an_https_public_url() {
        let c = Config::parse("server:\n  name: id.example.org\n")
            .unwrap()
            .validated()
            .unwrap();
        assert_eq!(
            c.server.public_url.as_deref(),
            Some("https://id.example.org")
        );
        assert_eq!(c.matrix.domain.as_deref(), Some("id.example.org"));
    }
}
