//! The email channel: the validation template (built in or the operator's), the sender
//! identity, and delivery through SMTP or the log.

use std::time::SystemTime;

use super::email_template::{self, Source};
use super::generator::{self, Vars};
use super::smtp::SmtpConnector;
use super::{Message, NotifyError, TemplateKind, Templates, log};
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
const SUBJECT_KEY: &str = "threepid.medium.email.generators.subject";

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
        let subjects = &config.generators.subject;
        let builtin = [VALIDATION, UNBIND_FRAUDULENT, UNBIND_NOTIFICATION];
        let templates = Templates::load(
            session.validation.as_deref(),
            &session.unbind,
            builtin,
            TEMPLATE_KEY,
            |kind, file, builtin, key, path| {
                let (subject, subject_key) = match kind {
                    TemplateKind::Validation => (
                        &subjects.session.validation,
                        format!("{SUBJECT_KEY}.session.validation"),
                    ),
                    TemplateKind::UnbindFraudulent => (
                        &subjects.session.unbind.fraudulent,
                        format!("{SUBJECT_KEY}.session.unbind.fraudulent"),
                    ),
                    TemplateKind::UnbindNotification => (
                        &subjects.session.unbind.notification,
                        format!("{SUBJECT_KEY}.session.unbind.notification"),
                    ),
                };
                email_template::prepare(&Source {
                    file,
                    builtin,
                    subject: subject.as_deref(),
                    key,
                    path,
                    subject_key: &subject_key,
                })
            },
        )?;
        let invite_path = config.generators.template.invite.as_deref();
        let invite_file = match invite_path {
            None => None,
            Some(path) => Some(super::load_template(Some(path), INVITE, INVITE_KEY)?),
        };
        let invite = email_template::prepare(&Source {
            file: invite_file.as_deref(),
            builtin: INVITE,
            subject: subjects.invite.as_deref(),
            key: INVITE_KEY,
            path: invite_path,
            subject_key: &format!("{SUBJECT_KEY}.invite"),
        })?;
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

/// An RFC 5322 date in UTC: `Fri, 27 Nov 2026 09:37:22 +0000`.
pub fn rfc5322_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let (y, m, d) = crate::util::time::civil_from_days(days as i64);
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
}
