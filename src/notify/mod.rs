//! Notifications: a generator renders a message from a template and placeholders
//! ([`generator`]); a connector delivers it ([`smtp`], or [`log`] for the embedded default).
//! Services ask for a notification by purpose ([`Notifier::send_validation`]); they never see
//! templates or connectors.

pub mod generator;
pub mod log;
pub mod smtp;

use std::path::Path;
use std::time::SystemTime;

use crate::config::{Config, EmailConnector};
use crate::crypto::random;
use crate::threepid::Medium;
use generator::Vars;
use smtp::SmtpConnector;

/// A message ready to deliver.
#[derive(Debug, Clone)]
pub enum Message {
    /// An email: envelope sender and recipient, and the complete RFC 5322 text.
    Email {
        /// Envelope sender.
        from: String,
        /// Envelope recipient.
        to: String,
        /// The message as rendered, CRLF line endings.
        raw: String,
    },
}

/// Why a notification was not delivered.
#[derive(Debug)]
pub enum NotifyError {
    /// The destination itself was refused (for example 550 on RCPT TO).
    Rejected(String),
    /// Delivery failed (connection, TLS, authentication, server error, unsupported medium).
    Failed(String),
}

impl std::fmt::Display for NotifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotifyError::Rejected(m) => write!(f, "destination rejected: {m}"),
            NotifyError::Failed(m) => f.write_str(m),
        }
    }
}

enum EmailTransport {
    Log,
    /// The connector and a description for the log.
    Smtp(Box<SmtpConnector>, String),
}

struct EmailChannel {
    transport: EmailTransport,
    from: String,
    name: String,
    validation_template: String,
}

/// Renders and delivers notifications for every medium.
pub struct Notifier {
    domain: String,
    email: EmailChannel,
}

/// The built-in validation email.
const EMAIL_VALIDATION: &str = include_str!("../../templates/email/validation.eml");

fn load_template(path: Option<&Path>, builtin: &str, key: &str) -> Result<String, String> {
    let Some(path) = path else {
        return Ok(builtin.to_string());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{key}: cannot read {}: {e}", path.display()))?;
    let head = text.replace("\r\n", "\n");
    let head = head.split("\n\n").next().unwrap_or("").to_ascii_lowercase();
    if !head.lines().any(|l| l.starts_with("subject:")) {
        return Err(format!(
            "{key}: {} is not an email template (no Subject: header before the first blank line)",
            path.display()
        ));
    }
    for header in ["from:", "to:", "date:"] {
        if !head.lines().any(|l| l.starts_with(header)) {
            ::log::warn!(
                "{key}: {} has no {header} header; the message is sent without it",
                path.display()
            );
        }
    }
    Ok(text)
}

impl Notifier {
    /// Builds the notifier from the configuration: loads template overrides and sets up the
    /// connectors. Errors name the config key.
    pub fn new(config: &Config) -> Result<Notifier, String> {
        let email_cfg = &config.threepid.medium.email;
        let transport = match email_cfg.connector {
            EmailConnector::Log => EmailTransport::Log,
            EmailConnector::Smtp => {
                let smtp = &email_cfg.connectors.smtp;
                let connector = SmtpConnector::new(smtp.clone())
                    .map_err(|e| format!("threepid.medium.email.connectors.smtp: {e}"))?;
                let login = smtp
                    .login
                    .as_deref()
                    .map(|l| format!(", login {l}"))
                    .unwrap_or_default();
                EmailTransport::Smtp(
                    Box::new(connector),
                    format!(
                        "{}:{} (tls mode {}{login})",
                        smtp.host,
                        smtp.port,
                        u8::from(smtp.tls)
                    ),
                )
            }
        };
        let email = EmailChannel {
            transport,
            from: email_cfg.identity.from.clone().unwrap_or_default(),
            name: email_cfg.identity.name.clone().unwrap_or_default(),
            validation_template: load_template(
                email_cfg.generators.template.session.validation.as_deref(),
                EMAIL_VALIDATION,
                "threepid.medium.email.generators.template.session.validation",
            )?,
        };
        Ok(Notifier {
            domain: config.matrix.domain.clone().unwrap_or_default(),
            email,
        })
    }

    /// A short description of the email connector, for the start-up log.
    pub fn describe(&self) -> String {
        match &self.email.transport {
            EmailTransport::Log => {
                "email: log-only notifier (messages are written to the log, not sent)".into()
            }
            EmailTransport::Smtp(_, description) => format!("email: SMTP via {description}"),
        }
    }

    /// Sends the validation message of a session: `token` is the secret the user proves
    /// ownership with, `link` the page that submits it.
    pub fn send_validation(
        &self,
        medium: Medium,
        address: &str,
        token: &str,
        link: &str,
    ) -> Result<(), NotifyError> {
        match medium {
            Medium::Email => {
                let mut vars = self.email_vars(address)?;
                vars.text("VALIDATION_LINK", link)
                    .text("VALIDATION_TOKEN", token)
                    .text("NEXT_URL", link);
                self.send_email(address, &self.email.validation_template, &vars)
            }
            Medium::Msisdn => Err(NotifyError::Failed(
                "phone numbers cannot be validated by this server".into(),
            )),
        }
    }

    fn email_vars(&self, recipient: &str) -> Result<Vars, NotifyError> {
        let mut vars = Vars::default();
        let id = random::token(18).map_err(|e| NotifyError::Failed(e.to_string()))?;
        let boundary = random::token(18).map_err(|e| NotifyError::Failed(e.to_string()))?;
        let sender_domain = self.email.from.rsplit('@').next().unwrap_or("localhost");
        vars.text("DOMAIN", &self.domain)
            .text("DOMAIN_PRETTY", pretty_domain(&self.domain))
            .address("FROM_EMAIL", &self.email.from)
            .text("FROM_NAME", &self.email.name)
            .address("RECIPIENT_ADDRESS", recipient)
            .text("RECIPIENT_MEDIUM", "email")
            .text("DATE", rfc5322_date(SystemTime::now()))
            .text("MESSAGE_ID", format!("<{id}@{sender_domain}>"))
            .text("BOUNDARY", format!("oxisd-{boundary}"));
        Ok(vars)
    }

    fn send_email(&self, to: &str, template: &str, vars: &Vars) -> Result<(), NotifyError> {
        let message = Message::Email {
            from: self.email.from.clone(),
            to: to.to_string(),
            raw: generator::render_email(template, vars),
        };
        match &self.email.transport {
            EmailTransport::Log => {
                log::send(&message);
                Ok(())
            }
            EmailTransport::Smtp(smtp, _) => {
                let Message::Email { from, to, raw } = &message;
                smtp.send(from, to, raw.as_bytes()).map_err(|e| {
                    if e.is_recipient_rejected() {
                        NotifyError::Rejected(e.to_string())
                    } else {
                        NotifyError::Failed(e.to_string())
                    }
                })
            }
        }
    }
}

/// mxisd's `%DOMAIN_PRETTY%`: the domain with its first letter in upper case.
fn pretty_domain(domain: &str) -> String {
    let mut chars = domain.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// An RFC 5322 date in UTC: `Fri, 27 Nov 2026 09:37:22 +0000`.
pub fn rfc5322_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let (y, m, d) = crate::logging::civil_from_days(days as i64);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let rem = secs % 86_400;
    format!(
        "{}, {d:02} {} {y} {:02}:{:02}:{:02} +0000",
        WEEKDAYS[(days % 7) as usize],
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_and_pretty_domains() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_772_215);
        assert_eq!(rfc5322_date(t), "Fri, 27 Nov 2026 09:36:55 +0000");
        assert_eq!(
            rfc5322_date(SystemTime::UNIX_EPOCH),
            "Thu, 01 Jan 1970 00:00:00 +0000"
        );
        assert_eq!(pretty_domain("example.org"), "Example.org");
    }

    #[test]
    fn the_builtin_template_renders_a_complete_message() {
        let mut config = Config::default().validated().unwrap();
        config.matrix.domain = Some("example.org".into());
        let n = Notifier::new(&config).unwrap();
        let mut vars = n.email_vars("alice@example.org").unwrap();
        vars.text("VALIDATION_LINK", "https://id.example.org/v?a=1&b=2")
            .text("VALIDATION_TOKEN", "TOK");
        let raw = generator::render_email(EMAIL_VALIDATION, &vars);
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        for h in [
            "From: ",
            "To: alice@example.org",
            "Subject: ",
            "Date: ",
            "Message-ID: <",
            "MIME-Version: 1.0",
            "Content-Type: multipart/alternative",
        ] {
            assert!(head.contains(h), "{h} missing in {head}");
        }
        assert!(!raw.contains('%'), "placeholder left: {raw}");
        assert!(body.contains("https://id.example.org/v?a=1&b=2\r\n"));
        assert!(body.contains("href=\"https://id.example.org/v?a=1&amp;b=2\""));
    }
}
