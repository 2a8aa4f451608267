//! The SMS channel: the validation text (built in or the operator's) and delivery through
//! Twilio or the log.

use super::generator::{self, Vars};
use super::twilio::{TwilioConnector, TwilioFailure};
use super::{Message, NotifyError, load_template, log};
use crate::config::{MsisdnConfig, SmsConnector};

/// The built-in validation SMS.
const VALIDATION: &str = include_str!("../../templates/sms/validation.txt");
const VALIDATION_KEY: &str = "threepid.medium.msisdn.generators.template.session.validation";
const UNBIND_FRAUDULENT: &str = include_str!("../../templates/sms/unbind-fraudulent.txt");
const UNBIND_NOTIFICATION: &str = include_str!("../../templates/sms/unbind-notification.txt");
const UNBIND_KEY: &str = "threepid.medium.msisdn.generators.template.session.unbind";

enum Transport {
    Log,
    Twilio(Box<TwilioConnector>, String),
}

/// Renders and sends SMS.
pub struct SmsChannel {
    transport: Transport,
    validation_template: String,
    unbind_fraudulent: String,
    unbind_notification: String,
}

/// Loads an operator template (which must not be empty), or returns the built-in one.
fn sms_template(
    path: Option<&std::path::Path>,
    builtin: &str,
    key: &str,
) -> Result<String, String> {
    let text = load_template(path, builtin, key)?;
    if text.trim().is_empty() {
        return Err(format!("{key}: the template is empty"));
    }
    Ok(text)
}

impl SmsChannel {
    /// Loads the templates and sets up the connector.
    pub fn new(config: &MsisdnConfig) -> Result<SmsChannel, String> {
        let transport = match config.connector {
            SmsConnector::Log => Transport::Log,
            SmsConnector::Twilio => {
                let twilio = &config.connectors.twilio;
                let connector = TwilioConnector::new(twilio.clone())
                    .map_err(|e| format!("threepid.medium.msisdn.connectors.twilio: {e}"))?;
                let sender = twilio
                    .messaging_service_sid
                    .clone()
                    .or_else(|| twilio.number.clone())
                    .unwrap_or_default();
                Transport::Twilio(
                    Box::new(connector),
                    format!("{} from {sender}", twilio.base_url),
                )
            }
        };
        let session = &config.generators.template.session;
        let unbind = &session.unbind;
        Ok(SmsChannel {
            transport,
            validation_template: sms_template(
                session.validation.as_deref(),
                VALIDATION,
                VALIDATION_KEY,
            )?,
            unbind_fraudulent: sms_template(
                unbind.fraudulent.as_deref(),
                UNBIND_FRAUDULENT,
                &format!("{UNBIND_KEY}.fraudulent"),
            )?,
            unbind_notification: sms_template(
                unbind.notification.as_deref(),
                UNBIND_NOTIFICATION,
                &format!("{UNBIND_KEY}.notification"),
            )?,
        })
    }

    /// What delivers SMS, for the start-up log.
    pub fn describe(&self) -> String {
        match &self.transport {
            Transport::Log => {
                "SMS: log-only notifier (messages are written to the log, not sent)".into()
            }
            Transport::Twilio(_, description) => format!("SMS: Twilio at {description}"),
        }
    }

    /// Sends the validation SMS to `to` (E.164 digits).
    pub fn send_validation(&self, to: &str, vars: &Vars) -> Result<(), NotifyError> {
        self.send(&self.validation_template, to, vars)
    }

    /// Sends the unbind warning (`fraudulent`) or notice to `to`.
    pub fn send_unbind(&self, fraudulent: bool, to: &str, vars: &Vars) -> Result<(), NotifyError> {
        let template = if fraudulent {
            &self.unbind_fraudulent
        } else {
            &self.unbind_notification
        };
        self.send(template, to, vars)
    }

    fn send(&self, template: &str, to: &str, vars: &Vars) -> Result<(), NotifyError> {
        let body = generator::render_text(template, vars)
            .trim_end()
            .to_string();
        let message = Message::Sms {
            to: to.to_string(),
            body,
        };
        match (&self.transport, &message) {
            (Transport::Log, _) => {
                log::send(&message);
                Ok(())
            }
            (Transport::Twilio(twilio, _), Message::Sms { to, body }) => {
                twilio.send(to, body).map_err(|e| match e.failure() {
                    TwilioFailure::InvalidNumber => NotifyError::InvalidAddress(e.to_string()),
                    TwilioFailure::Rejected => NotifyError::Rejected(e.to_string()),
                    TwilioFailure::Failed => NotifyError::Failed(e.to_string()),
                })
            }
            (Transport::Twilio(..), Message::Email { .. }) => {
                Err(NotifyError::Failed("not an SMS".into()))
            }
        }
    }
}
