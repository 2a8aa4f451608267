//! Notifications: a generator renders a message from a template and placeholders
//! ([`generator`]); a connector delivers it ([`smtp`] and [`twilio`], or [`log`] for the
//! embedded default). Each medium is a channel ([`email`], [`sms`]) that knows its templates
//! and connector. Services ask for a notification by purpose ([`Notifier::send_validation`]);
//! they never see templates or connectors.

pub mod email;
mod email_template;
pub mod generator;
pub mod log;
pub mod sms;
pub mod smtp;
pub mod twilio;

use std::path::Path;

use crate::config::Config;
use crate::error::StartError;
use crate::threepid::Medium;
use generator::Vars;

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
    /// An SMS.
    Sms {
        /// The recipient, E.164 digits without `+`.
        to: String,
        /// The text.
        body: String,
    },
}

/// Why a notification was not delivered.
#[derive(Debug)]
pub enum NotifyError {
    /// The address itself is invalid (for example: not a mobile number).
    InvalidAddress(String),
    /// The destination was refused (a mail server's 550, a country the SMS provider does not
    /// serve, an unsubscribed number).
    Rejected(String),
    /// Delivery failed (connection, TLS, authentication, provider error).
    Failed(String),
}

impl std::fmt::Display for NotifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotifyError::InvalidAddress(m) => write!(f, "invalid address: {m}"),
            NotifyError::Rejected(m) => write!(f, "destination rejected: {m}"),
            NotifyError::Failed(m) => f.write_str(m),
        }
    }
}

/// Renders and delivers notifications for every medium.
pub struct Notifier {
    domain: String,
    email: email::EmailChannel,
    sms: sms::SmsChannel,
}

impl Notifier {
    /// Builds the notifier from the configuration: loads template overrides and sets up the
    /// connectors. Errors name the config key.
    pub fn new(config: &Config) -> Result<Notifier, StartError> {
        let domain = config.matrix.domain.clone().unwrap_or_default();
        Ok(Notifier {
            email: email::EmailChannel::new(&config.threepid.medium.email)?,
            sms: sms::SmsChannel::new(&config.threepid.medium.msisdn)?,
            domain,
        })
    }

    /// What the connectors are, for the start-up log.
    pub fn describe(&self) -> String {
        format!("{}; {}", self.email.describe(), self.sms.describe())
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
        let mut vars = self.common_vars(medium, address);
        vars.text("VALIDATION_LINK", link)
            .text("VALIDATION_TOKEN", token)
            .text("NEXT_URL", link);
        match medium {
            Medium::Email => self.email.send_validation(address, vars),
            Medium::Msisdn => self.sms.send_validation(address, &vars),
        }
    }

    /// Tells the owner of a 3PID that someone tried to unbind it without proof
    /// (`fraudulent`), or that it was unbound.
    pub fn send_unbind(
        &self,
        fraudulent: bool,
        medium: Medium,
        address: &str,
    ) -> Result<(), NotifyError> {
        let vars = self.common_vars(medium, address);
        match medium {
            Medium::Email => self.email.send_unbind(fraudulent, address, vars),
            Medium::Msisdn => self.sms.send_unbind(fraudulent, address, &vars),
        }
    }

    /// Emails a 3PID room invite to its invitee.
    pub fn send_invite(&self, invite: &InviteMessage<'_>) -> Result<(), NotifyError> {
        let mut vars = self.common_vars(Medium::Email, invite.address);
        let or = |a: &str, b: &str| {
            if a.is_empty() {
                b.to_string()
            } else {
                a.to_string()
            }
        };
        vars.text("SENDER_ID", invite.sender)
            .text("SENDER_NAME", invite.sender_name)
            .text("SENDER_NAME_OR_ID", or(invite.sender_name, invite.sender))
            .text("SENDER_AVATAR_URL", invite.sender_avatar_url)
            .text("INVITE_MEDIUM", Medium::Email.as_str())
            .address("INVITE_ADDRESS", invite.address)
            .text("ROOM_ID", invite.room_id)
            .text("ROOM_NAME", invite.room_name)
            .text("ROOM_NAME_OR_ID", or(invite.room_name, invite.room_id))
            .text("ROOM_ALIAS", invite.room_alias)
            .text("ROOM_AVATAR_URL", invite.room_avatar_url)
            .text("ROOM_JOIN_RULES", invite.room_join_rules)
            .text("ROOM_TYPE", invite.room_type)
            .text("INVITE_TOKEN", invite.token)
            .text("EPHEMERAL_PRIVATE_KEY", invite.ephemeral_private_key)
            .text("SIGN_URL", invite.sign_url)
            .text("ROOM_LINK", invite.room_link)
            .text("REGISTER_URL", invite.register_url);
        self.email.send_invite(invite.address, vars)
    }

    fn common_vars(&self, medium: Medium, address: &str) -> Vars {
        let mut vars = Vars::default();
        vars.text("DOMAIN", &self.domain)
            .text("DOMAIN_PRETTY", pretty_domain(&self.domain))
            .text("RECIPIENT_MEDIUM", medium.as_str());
        match medium {
            Medium::Email => vars.address("RECIPIENT_ADDRESS", address),
            Medium::Msisdn => vars.text("RECIPIENT_ADDRESS", address),
        };
        vars
    }
}

/// What a 3PID room invite email says. Values from the request are untrusted: the generator
/// strips control characters and escapes them for where they land; the caller shortens them.
#[derive(Debug, Clone, Default)]
pub struct InviteMessage<'a> {
    /// The invited address.
    pub address: &'a str,
    /// The inviting user id.
    pub sender: &'a str,
    /// Its display name, or empty.
    pub sender_name: &'a str,
    /// Its avatar (mxc URL), or empty.
    pub sender_avatar_url: &'a str,
    /// The room id.
    pub room_id: &'a str,
    /// The room name, or empty.
    pub room_name: &'a str,
    /// The room alias, or empty.
    pub room_alias: &'a str,
    /// The room avatar (mxc URL), or empty.
    pub room_avatar_url: &'a str,
    /// The room's join rules, or empty.
    pub room_join_rules: &'a str,
    /// The room type (`m.space`), or empty.
    pub room_type: &'a str,
    /// The invite token.
    pub token: &'a str,
    /// The ephemeral private key (unpadded URL-safe base64 of the seed).
    pub ephemeral_private_key: &'a str,
    /// Our sign-ed25519 URL with the token and private key, for clients' invitation links
    /// (answers POST only: not a link for people).
    pub sign_url: &'a str,
    /// The web client's room link that joins through the invite: the link for people.
    pub room_link: &'a str,
    /// Where to create an account.
    pub register_url: &'a str,
}

/// Which of a medium's session templates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TemplateKind {
    Validation,
    UnbindFraudulent,
    UnbindNotification,
}

/// The message templates of one medium, each built in or the operator's file.
pub(crate) struct Templates {
    validation: String,
    unbind_fraudulent: String,
    unbind_notification: String,
}

impl Templates {
    /// Loads the templates configured under `key` (`threepid.medium.<medium>.generators.
    /// template.session`), falling back to `builtin` (validation, unbind warning, unbind
    /// notice). `prepare(kind, file, builtin, key, path)` makes the template to render from
    /// the operator's file's text (or `None`) and vets it.
    pub(crate) fn load(
        validation: Option<&Path>,
        unbind: &crate::config::UnbindTemplates,
        builtin: [&str; 3],
        key: &str,
        prepare: impl Fn(
            TemplateKind,
            Option<&str>,
            &str,
            &str,
            Option<&Path>,
        ) -> Result<String, StartError>,
    ) -> Result<Templates, StartError> {
        let one = |kind: TemplateKind, path: Option<&Path>, builtin: &str, key: String| {
            let text = match path {
                None => None,
                Some(_) => Some(load_template(path, builtin, &key)?),
            };
            prepare(kind, text.as_deref(), builtin, &key, path)
        };
        Ok(Templates {
            validation: one(
                TemplateKind::Validation,
                validation,
                builtin[0],
                format!("{key}.validation"),
            )?,
            unbind_fraudulent: one(
                TemplateKind::UnbindFraudulent,
                unbind.fraudulent.as_deref(),
                builtin[1],
                format!("{key}.unbind.fraudulent"),
            )?,
            unbind_notification: one(
                TemplateKind::UnbindNotification,
                unbind.notification.as_deref(),
                builtin[2],
                format!("{key}.unbind.notification"),
            )?,
        })
    }

    /// The validation message.
    pub(crate) fn validation(&self) -> &str {
        &self.validation
    }

    /// The unbind warning (`fraudulent`) or notice.
    pub(crate) fn unbind(&self, fraudulent: bool) -> &str {
        if fraudulent {
            &self.unbind_fraudulent
        } else {
            &self.unbind_notification
        }
    }
}

/// Reads an operator's template file, or returns the built-in one.
pub(crate) fn load_template(
    path: Option<&Path>,
    builtin: &str,
    key: &str,
) -> Result<String, StartError> {
    match path {
        None => Ok(builtin.to_string()),
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| StartError::setting(key, format!("cannot read {}: {e}", path.display()))),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_domains() {
        assert_eq!(pretty_domain("example.org"), "Example.org");
        assert_eq!(pretty_domain(""), "");
    }
}
