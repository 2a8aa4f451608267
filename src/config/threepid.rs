//! `threepid.medium.*`: how messages to each medium are generated and sent (mxisd's shape:
//! an identity, a connector choice, connector settings, and template overrides).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, RateLimit, Secret, resolve_secret_file};

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
    /// `threepid.medium.msisdn.*`
    pub msisdn: MsisdnConfig,
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
    /// `threepid.medium.email.generators.subject.*`
    pub subject: EmailSubjects,
}

/// `threepid.medium.email.generators.subject.*`: the subject of each email (placeholders as
/// in the templates), for the built-in templates and for template files that are only a body.
/// A template file that is a complete message keeps its own Subject header.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct EmailSubjects {
    /// The 3PID room invite email.
    pub invite: Option<String>,
    /// `...subject.session.*`
    pub session: EmailSessionSubjects,
}

/// `threepid.medium.email.generators.subject.session.*`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct EmailSessionSubjects {
    /// The validation email.
    pub validation: Option<String>,
    /// `...subject.session.unbind.*`
    pub unbind: UnbindSubjects,
}

/// `threepid.medium.email.generators.subject.session.unbind.*`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct UnbindSubjects {
    /// The warning sent when someone tried to unbind the 3PID without proof.
    pub fraudulent: Option<String>,
    /// The notice sent after the 3PID was unbound.
    pub notification: Option<String>,
}

impl EmailSubjects {
    /// Each configured subject with its key.
    fn all(&self) -> [(&'static str, &Option<String>); 4] {
        [
            ("invite", &self.invite),
            ("session.validation", &self.session.validation),
            ("session.unbind.fraudulent", &self.session.unbind.fraudulent),
            (
                "session.unbind.notification",
                &self.session.unbind.notification,
            ),
        ]
    }

    /// A subject is one line of at most 200 characters.
    fn validate(&self) -> Result<(), ConfigError> {
        for (key, subject) in self.all() {
            let Some(subject) = subject else { continue };
            let key = format!("threepid.medium.email.generators.subject.{key}");
            if subject.trim().is_empty() {
                return Err(ConfigError(format!(
                    "{key}: must not be empty (leave it out for the built-in subject)"
                )));
            }
            if subject.chars().any(char::is_control) {
                return Err(ConfigError(format!(
                    "{key}: must be one line, without control characters"
                )));
            }
            if subject.chars().count() > 200 {
                return Err(ConfigError(format!(
                    "{key}: must be at most 200 characters"
                )));
            }
        }
        Ok(())
    }
}

/// `threepid.medium.email.generators.template.*`: files that replace the built-in templates.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct EmailTemplates {
    /// The 3PID room invite email (store-invite).
    pub invite: Option<PathBuf>,
    /// `...template.session.*`
    pub session: EmailSessionTemplates,
}

/// `threepid.medium.email.generators.template.session.*`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct EmailSessionTemplates {
    /// The validation email (a complete RFC 5322 message with placeholders).
    pub validation: Option<PathBuf>,
    /// `...template.session.unbind.*`
    pub unbind: UnbindTemplates,
}

/// `threepid.medium.<medium>.generators.template.session.unbind.*`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct UnbindTemplates {
    /// The warning sent when someone tried to unbind the 3PID without proof.
    pub fraudulent: Option<PathBuf>,
    /// The notice sent after the 3PID was unbound (when `session.policy.unbind.notifications`).
    pub notification: Option<PathBuf>,
}

impl EmailConfig {
    pub(super) fn validate(&mut self, domain: &str) -> Result<(), ConfigError> {
        self.generators.subject.validate()?;
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

/// Which connector delivers SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsConnector {
    /// Write the message to the log; nothing is sent (the embedded default).
    Log,
    /// Send through Twilio's HTTP API.
    Twilio,
}

/// `threepid.medium.msisdn.*`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct MsisdnConfig {
    /// `log` or `twilio`.
    pub connector: SmsConnector,
    /// Digits in an SMS validation code (4 to 10).
    #[serde(alias = "token_length")]
    pub token_length: usize,
    /// ISO 3166 alpha-2 codes of the countries SMS may be sent to; empty allows all.
    #[serde(alias = "allowed_countries")]
    pub allowed_countries: Vec<String>,
    /// Kinds of numbers refused by default (premium rate, shared cost, UAN) that SMS may be
    /// sent to anyway.
    #[serde(alias = "allow_number_types")]
    pub allow_number_types: Vec<CostlyNumberType>,
    /// `threepid.medium.msisdn.rateLimit.*`
    #[serde(alias = "rate_limit")]
    pub rate_limit: SmsRateLimits,
    /// `threepid.medium.msisdn.connectors.*`
    pub connectors: SmsConnectors,
    /// `threepid.medium.msisdn.generators.*`
    pub generators: SmsGenerators,
}

impl Default for MsisdnConfig {
    fn default() -> Self {
        MsisdnConfig {
            connector: SmsConnector::Log,
            token_length: 6,
            allowed_countries: Vec::new(),
            allow_number_types: Vec::new(),
            rate_limit: SmsRateLimits::default(),
            connectors: SmsConnectors::default(),
            generators: SmsGenerators::default(),
        }
    }
}

/// Kinds of phone numbers (as libphonenumber types them) that no SMS goes to unless
/// `threepid.medium.msisdn.allowNumberTypes` lists them: a message to them costs more than a
/// normal one or pays whoever runs the number, which is what SMS pumping fraud is after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CostlyNumberType {
    /// Premium-rate numbers (UK 09 and 0871, French 0891, German 0900, ...).
    #[serde(alias = "premium_rate")]
    PremiumRate,
    /// Shared-cost numbers (French 0884, German 01801, ...).
    #[serde(alias = "shared_cost")]
    SharedCost,
    /// Universal access (company) numbers (UK 0300, French 0806, ...).
    Uan,
}

impl CostlyNumberType {
    /// How people call these numbers, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            CostlyNumberType::PremiumRate => "premium-rate",
            CostlyNumberType::SharedCost => "shared-cost",
            CostlyNumberType::Uan => "universal access (UAN)",
        }
    }
}

/// `threepid.medium.msisdn.rateLimit.*`: SMS costs money, so they are limited beyond the
/// per-client limit of `session.rateLimit`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SmsRateLimits {
    /// Messages to one phone number.
    #[serde(alias = "per_number")]
    pub per_number: RateLimit,
    /// Messages to one country calling code (SMS pumping goes through premium ranges).
    #[serde(alias = "per_country_code")]
    pub per_country_code: RateLimit,
    /// Messages per hour in all, whoever asks.
    #[serde(alias = "global_per_hour")]
    pub global_per_hour: u32,
}

impl Default for SmsRateLimits {
    fn default() -> Self {
        SmsRateLimits {
            per_number: RateLimit {
                burst: 3,
                refill: 3600,
            },
            per_country_code: RateLimit {
                burst: 30,
                refill: 120,
            },
            global_per_hour: 200,
        }
    }
}

/// `threepid.medium.msisdn.connectors.*`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SmsConnectors {
    /// `threepid.medium.msisdn.connectors.twilio.*`
    pub twilio: TwilioConfig,
}

/// `threepid.medium.msisdn.connectors.twilio.*` (mxisd's snake_case names; camelCase accepted).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TwilioConfig {
    /// The account SID (`AC...`).
    #[serde(alias = "accountSid")]
    pub account_sid: String,
    /// The auth token.
    #[serde(alias = "authToken")]
    pub auth_token: Secret,
    /// A file holding the auth token (instead of `auth_token`).
    #[serde(alias = "authTokenFile")]
    pub auth_token_file: Option<PathBuf>,
    /// The sender number, `+` and E.164 digits.
    pub number: Option<String>,
    /// A Messaging Service SID (`MG...`) to send from instead of `number`.
    #[serde(alias = "messagingServiceSid")]
    pub messaging_service_sid: Option<String>,
    /// The API base URL (tests point it at a local stand-in).
    #[serde(alias = "baseUrl")]
    pub base_url: String,
    /// Seconds for the whole API call.
    pub timeout: u64,
}

impl Default for TwilioConfig {
    fn default() -> Self {
        TwilioConfig {
            account_sid: String::new(),
            auth_token: Secret::default(),
            auth_token_file: None,
            number: None,
            messaging_service_sid: None,
            base_url: "https://api.twilio.com".into(),
            timeout: 15,
        }
    }
}

/// `threepid.medium.msisdn.generators.*`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SmsGenerators {
    /// `threepid.medium.msisdn.generators.template.*`
    pub template: SmsTemplates,
}

/// `threepid.medium.msisdn.generators.template.*`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SmsTemplates {
    /// `...template.session.*`
    pub session: SmsSessionTemplates,
}

/// `threepid.medium.msisdn.generators.template.session.*`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SmsSessionTemplates {
    /// The validation SMS (plain text with placeholders).
    pub validation: Option<PathBuf>,
    /// `...template.session.unbind.*`
    pub unbind: UnbindTemplates,
}

impl MsisdnConfig {
    pub(super) fn validate(&mut self) -> Result<(), ConfigError> {
        const KEY: &str = "threepid.medium.msisdn";
        if !(4..=10).contains(&self.token_length) {
            return Err(ConfigError(format!(
                "{KEY}.tokenLength: must be between 4 and 10 digits"
            )));
        }
        for c in &mut self.allowed_countries {
            *c = c.trim().to_ascii_uppercase();
            if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(ConfigError(format!(
                    "{KEY}.allowedCountries: '{c}' is not an ISO 3166 alpha-2 country code like GB or FR"
                )));
            }
        }
        let limits = &self.rate_limit;
        for (key, rate) in [
            ("perNumber", &limits.per_number),
            ("perCountryCode", &limits.per_country_code),
        ] {
            if rate.burst == 0 || rate.refill == 0 {
                return Err(ConfigError(format!(
                    "{KEY}.rateLimit.{key}: burst and refill must be at least 1"
                )));
            }
        }
        if limits.global_per_hour == 0 {
            return Err(ConfigError(format!(
                "{KEY}.rateLimit.globalPerHour: must be at least 1"
            )));
        }
        let twilio = &mut self.connectors.twilio;
        resolve_secret_file(
            &mut twilio.auth_token,
            twilio.auth_token_file.as_deref(),
            &format!("{KEY}.connectors.twilio.auth_token"),
        )
        .map_err(ConfigError)?;
        if self.connector == SmsConnector::Twilio {
            let k = format!("{KEY}.connectors.twilio");
            if twilio.account_sid.trim().is_empty() {
                return Err(ConfigError(format!(
                    "{k}.account_sid: required when {KEY}.connector is twilio"
                )));
            }
            if twilio.auth_token.is_empty() {
                return Err(ConfigError(format!(
                    "{k}.auth_token: required when {KEY}.connector is twilio (or auth_token_file)"
                )));
            }
            match (&twilio.number, &twilio.messaging_service_sid) {
                (None, None) => {
                    return Err(ConfigError(format!(
                        "{k}.number: required when {KEY}.connector is twilio (or messaging_service_sid)"
                    )));
                }
                (Some(n), _)
                    if !(n.starts_with('+')
                        && n.len() > 4
                        && n[1..].bytes().all(|b| b.is_ascii_digit())) =>
                {
                    return Err(ConfigError(format!(
                        "{k}.number: '{n}' must be + and digits, e.g. +15005550006"
                    )));
                }
                _ => {}
            }
            if !(twilio.base_url.starts_with("https://") || twilio.base_url.starts_with("http://"))
            {
                return Err(ConfigError(format!("{k}.base_url: must be an http(s) URL")));
            }
            if twilio.timeout == 0 || twilio.timeout > 120 {
                return Err(ConfigError(format!(
                    "{k}.timeout: must be between 1 and 120 seconds"
                )));
            }
            twilio.base_url = twilio.base_url.trim_end_matches('/').to_string();
        }
        Ok(())
    }
}
