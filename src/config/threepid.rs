//! `threepid.medium.*`: how messages to each medium are generated and sent (mxisd's shape:
//! an identity, a connector choice, connector settings, and template overrides).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret, resolve_secret_file};

/// `threepid.*`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ThreepidConfig {
    /// `threepid.medium.*`
    pub medium: MediumConfig,
}

/// `threepid.medium.*`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct MediumConfig {
    /// `threepid.medium.email.*`
    pub email: EmailConfig,
}

/// Which connector delivers email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailConnector {
    /// Write the message to the log; nothing is sent (the embedded default).
    Log,
    /// Send through an SMTP server.
    Smtp,
}

/// `threepid.medium.email.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct EmailConfig {
    /// `threepid.medium.email.identity.*`: the sender.
    pub identity: EmailIdentity,
    /// `log` or `smtp`.
    pub connector: EmailConnector,
    /// `threepid.medium.email.connectors.*`
    pub connectors: EmailConnectors,
    /// `threepid.medium.email.generators.*`
    pub generators: EmailGenerators,
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            identity: EmailIdentity::default(),
            connector: EmailConnector::Log,
            connectors: EmailConnectors::default(),
            generators: EmailGenerators::default(),
        }
    }
}

/// `threepid.medium.email.identity.*`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct EmailIdentity {
    /// The sender address (default `noreply@<matrix.domain>`).
    pub from: Option<String>,
    /// The sender display name (default `<matrix.domain> Identity Server`).
    pub name: Option<String>,
}

/// `threepid.medium.email.connectors.*`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct EmailConnectors {
    /// `threepid.medium.email.connectors.smtp.*`
    pub smtp: SmtpConfig,
}

/// How the SMTP connection is secured (mxisd's numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum SmtpTls {
    /// 0: plain text, never STARTTLS.
    None,
    /// 1: STARTTLS when the server offers it.
    StartTlsIfOffered,
    /// 2: STARTTLS, and fail when the server does not offer it.
    StartTlsRequired,
    /// 3: TLS from the first byte (usually port 465).
    Implicit,
}

impl TryFrom<u8> for SmtpTls {
    type Error = String;

    fn try_from(v: u8) -> Result<Self, String> {
        Ok(match v {
            0 => SmtpTls::None,
            1 => SmtpTls::StartTlsIfOffered,
            2 => SmtpTls::StartTlsRequired,
            3 => SmtpTls::Implicit,
            _ => {
                return Err(format!(
                    "{v} is not a TLS mode: 0 none, 1 STARTTLS if offered, 2 STARTTLS required, 3 implicit TLS"
                ));
            }
        })
    }
}

impl From<SmtpTls> for u8 {
    fn from(t: SmtpTls) -> u8 {
        t as u8
    }
}

/// `threepid.medium.email.connectors.smtp.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SmtpConfig {
    /// The SMTP server.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// 0 none, 1 STARTTLS if offered, 2 STARTTLS required, 3 implicit TLS.
    pub tls: SmtpTls,
    /// The login, when the server wants authentication.
    pub login: Option<String>,
    /// The password.
    pub password: Secret,
    /// A file holding the password (instead of `password`).
    #[serde(rename = "password_file", alias = "passwordFile")]
    pub password_file: Option<PathBuf>,
    /// Seconds for connecting and for each SMTP exchange.
    pub timeout: u64,
    /// Accept invalid or self-signed server certificates (test setups only).
    #[serde(alias = "accept_invalid_certs")]
    pub accept_invalid_certs: bool,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: String::new(),
            port: 587,
            tls: SmtpTls::StartTlsIfOffered,
            login: None,
            password: Secret::default(),
            password_file: None,
            timeout: 30,
            accept_invalid_certs: false,
        }
    }
}

/// `threepid.medium.email.generators.*`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct EmailGenerators {
    /// `threepid.medium.email.generators.template.*`
    pub template: EmailTemplates,
}

/// `threepid.medium.email.generators.template.*`: files that replace the built-in templates.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct EmailTemplates {
    /// `...template.session.*`
    pub session: EmailSessionTemplates,
}

/// `threepid.medium.email.generators.template.session.*`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct EmailSessionTemplates {
    /// The validation email (a complete RFC 5322 message with placeholders).
    pub validation: Option<PathBuf>,
}

impl EmailConfig {
    pub(super) fn validate(&mut self, domain: &str) -> Result<(), ConfigError> {
        let from = self
            .identity
            .from
            .get_or_insert_with(|| format!("noreply@{domain}"));
        if from.contains(['\r', '\n', '<', '>', ' ']) || !from.contains('@') {
            return Err(ConfigError(format!(
                "threepid.medium.email.identity.from: '{from}' is not a plain email address"
            )));
        }
        let name = self
            .identity
            .name
            .get_or_insert_with(|| format!("{domain} Identity Server"));
        if name.contains(['\r', '\n']) {
            return Err(ConfigError(
                "threepid.medium.email.identity.name: must be one line".into(),
            ));
        }
        let smtp = &mut self.connectors.smtp;
        resolve_secret_file(
            &mut smtp.password,
            smtp.password_file.as_deref(),
            "threepid.medium.email.connectors.smtp.password",
        )
        .map_err(ConfigError)?;
        if self.connector == EmailConnector::Smtp && smtp.host.trim().is_empty() {
            return Err(ConfigError(
                "threepid.medium.email.connectors.smtp.host: required when threepid.medium.email.connector is smtp".into(),
            ));
        }
        if smtp.timeout == 0 || smtp.timeout > 600 {
            return Err(ConfigError(
                "threepid.medium.email.connectors.smtp.timeout: must be between 1 and 600 seconds"
                    .into(),
            ));
        }
        Ok(())
    }
}
