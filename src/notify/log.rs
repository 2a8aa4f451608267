//! The log-only notifier: writes each message to the log instead of sending it. It is the
//! embedded default, so a fresh install works without a mail server or SMS provider; the
//! operator reads the validation link or code in the log.

use super::Message;

/// Writes `message` to the log.
pub fn send(message: &Message) {
    match message {
        Message::Email { to, raw, .. } => {
            log::info!("email to {to} (log-only notifier, not sent):\n{raw}");
        }
        Message::Sms { to, body } => {
            log::info!("SMS to +{to} (log-only notifier, not sent): {body}");
        }
    }
}
