//! The SMS channel: the validation text (built in or the operator's) and delivery through
//! Twilio or the log.

use super::generator::{self, Vars};
use super::twilio::{TwilioConnector, TwilioFailure};
use super::{Message, NotifyError, load_template, log};
use crate::config::{MsisdnConfig, SmsConnector};

/// The built-in validation SMS.
const VALIDATION: &str = include_str!("../../templates/sms/validation.txt");
const VALIDATION_KEY: &str = "threepid.medium.msisdn.generators.template.session.validation";

enum Transport {
    Log,
    Twilio(Box<TwilioConnector>, String),
}

/// Renders and sends SMS.
pub struct SmsChannel {
    transport: Transport,
    validation_template: String,
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
        let path = config.generators.template.session.validation.as_deref();
        let validation_template = load_template(path, VALIDATION, VALIDATION_KEY)?;
        if validation_template.trim().is_empty() {
            return Err(format!("{VALIDATION_KEY}: the template is empty"));
        }
        Ok(SmsChannel {
            transport,
            validation_template,
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
        let body = generator::render_text(&self.validation_template, vars)
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
