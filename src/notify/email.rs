//! The email channel: the validation template (built in or the operator's), the sender
//! identity, and delivery through SMTP or the log.

use std::path::Path;
use std::time::SystemTime;

use super::generator::{self, Vars};
use super::smtp::SmtpConnector;
use super::{Message, NotifyError, Templates, log};
use crate::config::{EmailConfig, EmailConnector};
use crate::crypto::random;
use crate::error::StartError;

/// The built-in validation email.
const VALIDATION: &str = include_str!("../../templates/email/validation.eml");
const UNBIND_FRAUDULENT: &str = include_str!("../../templates/email/unbind-fraudulent.eml");
const UNBIND_NOTIFICATION: &str = include_str!("../../templates/email/unbind-notification.eml");
const INVITE: &str = include_str!("../../templates/email/invite.eml");
const INVITE_KEY: &str = "threepid.medium.email.generators.template.invite";
const TEMPLATE_KEY: &str = "threepid.medium.email.generators.template.session";

enum Transport {
    Log,
    /// The connector and a description for the log.
    Smtp(Box<SmtpConnector>, String),
}

/// Renders and sends emails.
pub struct EmailChannel {
    transport: Transport,
    from: String,
    name: String,
    templates: Templates,
    invite: String,
}

impl EmailChannel {
    /// Loads the templates and sets up the connector.
    pub fn new(config: &EmailConfig) -> Result<EmailChannel, StartError> {
        let transport = match config.connector {
            EmailConnector::Log => Transport::Log,
            EmailConnector::Smtp => {
                let smtp = &config.connectors.smtp;
                let connector = SmtpConnector::new(smtp.clone())
                    .map_err(|e| StartError::setting("threepid.medium.email.connectors.smtp", e))?;
                let login = smtp
                    .login
                    .as_deref()
                    .map(|l| format!(", login {l}"))
                    .unwrap_or_default();
                let description = format!(
                    "{}:{} (tls mode {}{login})",
                    smtp.host,
                    smtp.port,
                    u8::from(smtp.tls)
                );
                Transport::Smtp(Box::new(connector), description)
            }
        };
        let session = &config.generators.template.session;
        let builtin = [VALIDATION, UNBIND_FRAUDULENT, UNBIND_NOTIFICATION];
        let templates = Templates::load(
            session.validation.as_deref(),
            &session.unbind,
            builtin,
            TEMPLATE_KEY,
            check_email_template,
        )?;
        let invite_path = config.generators.template.invite.as_deref();
        let invite = super::load_template(invite_path, INVITE, INVITE_KEY)?;
        if let Some(path) = invite_path {
            check_email_template(&invite, INVITE_KEY, path)?;
        }
        Ok(EmailChannel {
            invite,
            transport,
            from: config.identity.from.clone().unwrap_or_default(),
            name: config.identity.name.clone().unwrap_or_default(),
            templates,
        })
    }

    /// What delivers emails, for the start-up log.
    pub fn describe(&self) -> String {
        match &self.transport {
            Transport::Log => {
                "email: log-only notifier (messages are written to the log, not sent)".into()
            }
            Transport::Smtp(_, description) => format!("email: SMTP via {description}"),
        }
    }

    /// Sends the validation email to `to`; `vars` holds the common and validation values.
    pub fn send_validation(&self, to: &str, vars: Vars) -> Result<(), NotifyError> {
        self.send(self.templates.validation(), to, vars)
    }

    /// Sends the unbind warning (`fraudulent`) or notice to `to`.
    pub fn send_unbind(&self, fraudulent: bool, to: &str, vars: Vars) -> Result<(), NotifyError> {
        self.send(self.templates.unbind(fraudulent), to, vars)
    }

    /// Sends a room invite to `to`; `vars` holds the common and invite values.
    pub fn send_invite(&self, to: &str, vars: Vars) -> Result<(), NotifyError> {
        self.send(&self.invite, to, vars)
    }

    fn send(&self, template: &str, to: &str, mut vars: Vars) -> Result<(), NotifyError> {
        self.add_message_vars(&mut vars)?;
        let raw = generator::render_email(template, &vars);
        self.deliver(Message::Email {
            from: self.from.clone(),
            // The envelope names an internationalised domain in its ASCII form.
            to: crate::threepid::email::to_ace(to),
            raw,
        })
    }

    fn add_message_vars(&self, vars: &mut Vars) -> Result<(), NotifyError> {
        let id = random::token(18).map_err(|e| NotifyError::Failed(e.to_string()))?;
        let boundary = random::token(18).map_err(|e| NotifyError::Failed(e.to_string()))?;
        let sender_domain = self.from.rsplit('@').next().unwrap_or("localhost");
        vars.address("FROM_EMAIL", &self.from)
            .text("FROM_NAME", &self.name)
            .text("DATE", rfc5322_date(SystemTime::now()))
            .text("MESSAGE_ID", format!("<{id}@{sender_domain}>"))
            .text("BOUNDARY", format!("oxisd-{boundary}"));
        Ok(())
    }

    fn deliver(&self, message: Message) -> Result<(), NotifyError> {
        match (&self.transport, &message) {
            (Transport::Log, _) => {
                log::send(&message);
                Ok(())
            }
            (Transport::Smtp(smtp, _), Message::Email { from, to, raw }) => {
                let sent = smtp.send(from, to, raw.as_bytes());
                crate::metrics::METRICS.notification("smtp", sent.is_ok());
                sent.map_err(|e| {
                    if e.is_recipient_rejected() {
                        NotifyError::Rejected(e.to_string())
                    } else {
                        NotifyError::Failed(e.to_string())
                    }
                })
            }
            (Transport::Smtp(..), Message::Sms { .. }) => {
                Err(NotifyError::Failed("not an email".into()))
            }
        }
    }
}

/// An operator's email template must at least look like a message: a Subject header before the
/// first blank line. Missing From, To or Date headers are only warned about.
fn check_email_template(text: &str, key: &str, path: &Path) -> Result<(), StartError> {
    let normalised = text.replace("\r\n", "\n");
    let head = normalised
        .split("\n\n")
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    if !head.lines().any(|l| l.starts_with("subject:")) {
        return Err(StartError::setting(
            key,
            format!(
                "{} is not an email template (no Subject: header before the first blank line)",
                path.display()
            ),
        ));
    }
    let what = format!("{key}: {}", path.display());
    for header in ["from:", "to:", "date:"] {
        if !head.lines().any(|l| l.starts_with(header)) {
            ::log::warn!("{what} has no {header} header; the message is sent without it");
        }
    }
    Ok(())
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
    use crate::config::Config;
    use std::time::Duration;

    #[test]
    fn dates_are_rfc5322() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_772_215);
        assert_eq!(rfc5322_date(t), "Fri, 27 Nov 2026 09:36:55 +0000");
        assert_eq!(
            rfc5322_date(SystemTime::UNIX_EPOCH),
            "Thu, 01 Jan 1970 00:00:00 +0000"
        );
    }

    #[test]
    fn the_builtin_template_renders_a_complete_message() {
        let config = Config::default().validated().unwrap();
        let channel = EmailChannel::new(&config.threepid.medium.email).unwrap();
        let mut vars = Vars::default();
        vars.text("DOMAIN", "example.org")
            .text("DOMAIN_PRETTY", "Example.org")
            .address("RECIPIENT_ADDRESS", "alice@example.org")
            .text("VALIDATION_LINK", "https://id.example.org/v?a=1&b=2")
            .text("VALIDATION_TOKEN", "TOK");
        channel.add_message_vars(&mut vars).unwrap();
        let raw = generator::render_email(VALIDATION, &vars);
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

    #[test]
    fn a_template_without_subject_is_refused() {
        let path = Path::new("x");
        assert!(check_email_template("From: a\n\nbody", "k", path).is_err());
        assert!(
            check_email_template(
                "Subject: hi\r\nFrom: a\r\nTo: b\r\nDate: c\r\n\r\nbody",
                "k",
                path
            )
            .is_ok()
        );
    }
}
