//! The SMS channel: the validation text (built in or the operator's) and delivery through
//! Twilio or the log.

use std::path::Path;

use super::generator::{self, Vars};
use super::twilio::{TwilioConnector, TwilioFailure};
use super::{Message, NotifyError, Templates, log};
use crate::config::{MsisdnConfig, SmsConnector};
use crate::error::StartError;

/// The built-in validation SMS.
const VALIDATION: &str = include_str!("../../templates/sms/validation.txt");
const UNBIND_FRAUDULENT: &str = include_str!("../../templates/sms/unbind-fraudulent.txt");
const UNBIND_NOTIFICATION: &str = include_str!("../../templates/sms/unbind-notification.txt");
const TEMPLATE_KEY: &str = "threepid.medium.msisdn.generators.template.session";

enum Transport {
    Log,
    Twilio(Box<TwilioConnector>, String),
}

/// Renders and sends SMS.
pub struct SmsChannel {
    transport: Transport,
    templates: Templates,
}

/// An operator's SMS template must not be empty.
fn prepare_sms_template(
    _: super::TemplateKind,
    file: Option<&str>,
    builtin: &str,
    key: &str,
    path: Option<&Path>,
) -> Result<String, StartError> {
    match (file, path) {
        (Some(text), Some(path)) if text.trim().is_empty() => Err(StartError::setting(
            key,
            format!("{}: the template is empty", path.display()),
        )),
        (Some(text), _) => Ok(text.to_string()),
        (None, _) => Ok(builtin.to_string()),
    }
}

impl SmsChannel {
    /// Loads the templates and sets up the connector.
    pub fn new(config: &MsisdnConfig) -> Result<SmsChannel, StartError> {
        let transport = match config.connector {
            SmsConnector::Log => Transport::Log,
            SmsConnector::Twilio => {
                let twilio = &config.connectors.twilio;
                let connector = TwilioConnector::new(twilio.clone()).map_err(|e| {
                    StartError::setting("threepid.medium.msisdn.connectors.twilio", e)
                })?;
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
        let builtin = [VALIDATION, UNBIND_FRAUDULENT, UNBIND_NOTIFICATION];
        let templates = Templates::load(
            session.validation.as_deref(),
            &session.unbind,
            builtin,
            TEMPLATE_KEY,
            prepare_sms_template,
        )?;
        Ok(SmsChannel {
            transport,
            templates,
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
        self.send(self.templates.validation(), to, vars)
    }

    /// Sends the unbind warning (`fraudulent`) or notice to `to`.
    pub fn send_unbind(&self, fraudulent: bool, to: &str, vars: &Vars) -> Result<(), NotifyError> {
        self.send(self.templates.unbind(fraudulent), to, vars)
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
                let sent = twilio.send(to, body);
                crate::metrics::METRICS.notification("twilio", sent.is_ok());
                sent.map_err(|e| match e.failure() {
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
