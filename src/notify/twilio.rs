//! SMS delivery through Twilio's Programmable Messaging REST API.
//!
//! [`TwilioConnector::send`] makes one blocking call,
//! `POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json`, with HTTP Basic
//! authentication (`account_sid:auth_token`) and a form body (`To`, `Body`, and `From` or
//! `MessagingServiceSid`). Any 2xx answer means Twilio accepted the message; anything else is a
//! [`TwilioError`] whose [`TwilioError::failure`] class tells the caller whether the number is
//! invalid, refused by Twilio, or whether the fault is ours or Twilio's.
//!
//! The HTTP client is `ureq` over rustls (`ring`). One agent is built per connector and shared
//! by every call, so connections to Twilio are kept alive and reused; the connector is
//! `Send + Sync` and can be called from any number of threads. The configured timeout bounds the
//! whole call: DNS, connect, TLS, request and answer. At most 64 KiB of an answer is read.
//!
//! Nothing here logs above debug level: the caller decides how a failure is reported. The auth
//! token never appears in `Debug` or `Display` output.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use log::debug;
use serde_json::Value;

use crate::config::{Secret, TwilioConfig};

/// The most of an answer that is read; a longer answer is not Twilio's and is not read further.
const MAX_RESPONSE_BYTES: u64 = 64 * 1024;

/// The most characters of a server's text kept in an error message.
const MAX_MESSAGE_CHARS: usize = 300;

/// The most digits an E.164 number has.
const MAX_E164_DIGITS: usize = 15;

/// Twilio error codes that mean the number itself is invalid.
const INVALID_NUMBER_CODES: &[u32] = &[
    21211, // invalid 'To' phone number
    21217, // phone number does not appear to be valid
    21401, // invalid phone number
    21614, // 'To' number is not a valid mobile number
];

/// Twilio error codes that mean a valid number Twilio will not deliver to.
const REJECTED_CODES: &[u32] = &[
    21215, // geo permission configuration does not allow calls/messages to this number
    21408, // permission to send an SMS has not been enabled for the region
    21610, // the recipient unsubscribed (replied STOP)
    21612, // the 'To' number is not currently reachable
    21635, // 'To' number cannot be a landline / not a mobile number in this region
    30003, // unreachable destination handset
    30004, // message blocked
    30005, // unknown destination handset
    30006, // landline or unreachable carrier
    30007, // carrier violation (filtered)
    30008, // unknown error from the carrier
];

/// Sends SMS through the Twilio REST API. Built once from the configuration, then shared.
pub struct TwilioConnector {
    agent: ureq::Agent,
    /// The full `Messages.json` URL.
    url: String,
    /// The `Authorization` header value (`Basic ...`).
    authorization: Secret,
    /// The auth token, only to scrub it from anything a server sends back.
    token: Secret,
    sender: Sender,
    /// Seconds for the whole call.
    timeout: u64,
}

/// Where messages are sent from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sender {
    /// A phone number (`From`).
    Number(String),
    /// A Messaging Service (`MessagingServiceSid`).
    MessagingService(String),
}

impl fmt::Debug for TwilioConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioConnector")
            .field("url", &self.url)
            .field("sender", &self.sender)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl TwilioConnector {
    /// Checks the configuration and builds the HTTP client.
    ///
    /// Fails when the account SID is empty or not plain letters and digits, the auth token is
    /// empty, neither a sender number nor a Messaging Service SID is set, the base URL is not an
    /// http(s) URL, or the timeout is zero. The error starts with the offending setting's name
    /// (`account_sid`, `auth_token`, `number`, `base_url`, `timeout`), for the caller to prefix
    /// with its config path.
    pub fn new(config: TwilioConfig) -> Result<TwilioConnector, String> {
        let sid = &config.account_sid;
        if sid.is_empty() || !sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!(
                "account_sid '{sid}' must be letters and digits only (AC...)"
            ));
        }
        if config.auth_token.is_empty() {
            return Err("auth_token is empty".into());
        }
        let sender = match (&config.messaging_service_sid, &config.number) {
            (Some(service), _) if !service.trim().is_empty() => {
                Sender::MessagingService(service.trim().to_string())
            }
            (_, Some(number)) if !number.trim().is_empty() => {
                Sender::Number(number.trim().to_string())
            }
            _ => return Err("number or messaging_service_sid is required".into()),
        };
        if config.timeout == 0 {
            return Err("timeout must be at least 1 second".into());
        }
        let base_url = config.base_url.trim().trim_end_matches('/');
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(format!("base_url '{base_url}' must be an http(s) URL"));
        }
        let url = format!("{base_url}/2010-04-01/Accounts/{sid}/Messages.json");
        if let Err(e) = url.parse::<ureq::http::Uri>() {
            return Err(format!("base_url '{base_url}' is not a valid URL: {e}"));
        }

        let agent = crate::outbound::operator_agent(base_url, config.timeout);

        let credentials = format!("{sid}:{}", config.auth_token.expose());
        Ok(TwilioConnector {
            agent,
            url,
            authorization: Secret::new(format!("Basic {}", BASE64.encode(credentials))),
            token: config.auth_token,
            sender,
            timeout: config.timeout,
        })
    }

    /// Sends `body` to the number `to`, given as E.164 digits without the `+` (for example
    /// `447700900123`). The connector adds exactly one `+`; a `to` that already starts with `+`
    /// is accepted and not doubled. Anything but 1 to 15 digits is refused without a request
    /// ([`TwilioFailure::InvalidNumber`]). Returns once Twilio has accepted the message (queued
    /// for delivery), or with the reason it did not.
    pub fn send(&self, to: &str, body: &str) -> Result<(), TwilioError> {
        let digits = to.strip_prefix('+').unwrap_or(to);
        if digits.is_empty()
            || digits.len() > MAX_E164_DIGITS
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(TwilioError::InvalidRecipient { to: to.to_string() });
        }
        let to = format!("+{digits}");
        let sender = match &self.sender {
            Sender::Number(number) => ("From", number.as_str()),
            Sender::MessagingService(sid) => ("MessagingServiceSid", sid.as_str()),
        };
        let form = [("To", to.as_str()), sender, ("Body", body)];

        let mut response = self
            .agent
            .post(&self.url)
            .header("Authorization", self.authorization.expose())
            .send_form(form)
            .map_err(|e| self.transport_error(e))?;

        let status = response.status().as_u16();
        let answer = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec();

        if (200..300).contains(&status) {
            // Accepted: whatever happens to the rest of the answer, the message is on its way,
            // and reporting a failure now could make the caller send it twice.
            match answer.as_deref().map(serde_json::from_slice::<Value>) {
                Ok(Ok(json)) => debug!(
                    "Twilio accepted the SMS to {to}: sid {}, status {}",
                    json["sid"].as_str().unwrap_or("?"),
                    json["status"].as_str().unwrap_or("?"),
                ),
                _ => debug!("Twilio accepted the SMS to {to} (HTTP {status}, no readable answer)"),
            }
            return Ok(());
        }

        let bytes = match answer {
            Ok(bytes) => bytes,
            Err(ureq::Error::Timeout(_)) => {
                return Err(TwilioError::Timeout {
                    url: self.url.clone(),
                    seconds: self.timeout,
                });
            }
            Err(ureq::Error::BodyExceedsLimit(_)) => {
                return Err(TwilioError::Api {
                    status,
                    code: None,
                    message: format!("answer larger than {} KiB", MAX_RESPONSE_BYTES / 1024),
                    more_info: None,
                });
            }
            Err(e) => {
                return Err(TwilioError::Api {
                    status,
                    code: None,
                    message: self.scrub(&format!("answer could not be read: {e}")),
                    more_info: None,
                });
            }
        };
        Err(self.api_error(status, &bytes))
    }

    /// The error for a non-2xx answer: Twilio's code and message when the body is its error
    /// JSON, else the start of whatever the body was.
    fn api_error(&self, status: u16, bytes: &[u8]) -> TwilioError {
        let json = serde_json::from_slice::<Value>(bytes).unwrap_or(Value::Null);
        let code = match &json["code"] {
            Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        let message = match json["message"].as_str() {
            Some(m) => m.to_string(),
            None if bytes.is_empty() => "empty answer".to_string(),
            None => String::from_utf8_lossy(bytes).into_owned(),
        };
        let more_info = json["more_info"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(|s| self.scrub(s));
        TwilioError::Api {
            status,
            code,
            message: self.scrub(&message),
            more_info,
        }
    }

    /// The error for a call that got no answer.
    fn transport_error(&self, error: ureq::Error) -> TwilioError {
        match error {
            ureq::Error::Timeout(_) => TwilioError::Timeout {
                url: self.url.clone(),
                seconds: self.timeout,
            },
            ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                TwilioError::Timeout {
                    url: self.url.clone(),
                    seconds: self.timeout,
                }
            }
            e => TwilioError::Transport {
                url: self.url.clone(),
                error: self.scrub(&e.to_string()),
            },
        }
    }

    /// `text` made fit for a log line: the credentials masked, control characters replaced
    /// and the length capped.
    fn scrub(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in [&self.token, &self.authorization] {
            if !secret.is_empty() {
                text = text.replace(secret.expose(), "********");
            }
        }
        let encoded = self.authorization.expose().trim_start_matches("Basic ");
        if !encoded.is_empty() {
            text = text.replace(encoded, "********");
        }
        let mut out: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(MAX_MESSAGE_CHARS)
            .collect();
        if text.chars().count() > MAX_MESSAGE_CHARS {
            out.push_str("...");
        }
        out.trim().to_string()
    }
}

/// Why an SMS was not sent, described for the operator. Never contains the auth token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwilioError {
    /// The recipient is not 1 to 15 digits (after an optional `+`); nothing was sent.
    InvalidRecipient {
        /// The recipient as given.
        to: String,
    },
    /// The API answered with a status other than 2xx.
    Api {
        /// The HTTP status.
        status: u16,
        /// Twilio's error code (`21211`, `20003`, ...), when the answer was Twilio's error JSON.
        code: Option<u32>,
        /// Twilio's error message, or what the answer was when it was not Twilio's JSON.
        message: String,
        /// Twilio's link to the error's documentation.
        more_info: Option<String>,
    },
    /// No complete answer within the configured timeout.
    Timeout {
        /// The URL called.
        url: String,
        /// The configured timeout, in seconds.
        seconds: u64,
    },
    /// The call failed before an answer arrived: DNS, connection, TLS, protocol.
    Transport {
        /// The URL called.
        url: String,
        /// What went wrong.
        error: String,
    },
}

impl TwilioError {
    /// The class of the failure: the number is invalid, Twilio refuses to deliver to it, or
    /// anything else (our configuration, authentication, Twilio unavailable, timeouts).
    pub fn failure(&self) -> TwilioFailure {
        match self {
            TwilioError::InvalidRecipient { .. } => TwilioFailure::InvalidNumber,
            TwilioError::Api {
                code: Some(code), ..
            } => classify(*code),
            TwilioError::Api { .. }
            | TwilioError::Timeout { .. }
            | TwilioError::Transport { .. } => TwilioFailure::Failed,
        }
    }

    /// Twilio's error code, when the API answered with one.
    pub fn code(&self) -> Option<u32> {
        match self {
            TwilioError::Api { code, .. } => *code,
            _ => None,
        }
    }
}

/// The failure class of a Twilio error code.
fn classify(code: u32) -> TwilioFailure {
    if INVALID_NUMBER_CODES.contains(&code) {
        TwilioFailure::InvalidNumber
    } else if REJECTED_CODES.contains(&code) {
        TwilioFailure::Rejected
    } else {
        TwilioFailure::Failed
    }
}

impl fmt::Display for TwilioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TwilioError::InvalidRecipient { to } => {
                write!(f, "'{to}' is not an E.164 phone number (1 to 15 digits)")
            }
            TwilioError::Api {
                status,
                code: Some(code),
                message,
                more_info,
            } => {
                write!(f, "Twilio answered HTTP {status}, error {code}: {message}")?;
                match more_info {
                    Some(link) => write!(f, " ({link})"),
                    None => Ok(()),
                }
            }
            TwilioError::Api {
                status,
                code: None,
                message,
                ..
            } => write!(
                f,
                "Twilio answered HTTP {status} without an error code: {message}"
            ),
            TwilioError::Timeout { url, seconds } => {
                write!(f, "no answer from Twilio at {url} within {seconds} s")
            }
            TwilioError::Transport { url, error } => {
                write!(f, "request to Twilio at {url} failed: {error}")
            }
        }
    }
}

impl std::error::Error for TwilioError {}

/// What a [`TwilioError`] means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwilioFailure {
    /// The number itself is invalid (Twilio 21211, 21217, 21401, 21614, or not E.164 digits).
    InvalidNumber,
    /// A valid number Twilio will not deliver to: region not enabled, unreachable,
    /// unsubscribed, blocked (21215, 21408, 21610, 21612, 21635, 30003 to 30008).
    Rejected,
    /// Anything else: our configuration, authentication, rate limits, Twilio unavailable,
    /// timeouts, connection errors, unreadable answers.
    Failed,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TwilioConfig {
        TwilioConfig {
            account_sid: "AC0123456789abcdef0123456789abcdef".into(),
            auth_token: Secret::new("tok3n-s3cret"),
            number: Some("+15005550006".into()),
            ..TwilioConfig::default()
        }
    }

    #[test]
    fn connector_is_send_sync_and_debug_hides_the_token() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<TwilioConnector>();
        let c = TwilioConnector::new(config()).unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("tok3n"), "{debug}");
        assert!(debug.contains("Messages.json"), "{debug}");
    }

    #[test]
    fn new_rejects_bad_settings() {
        for sid in ["", "AC/../x", "AC 1", "ACé"] {
            let c = TwilioConfig {
                account_sid: sid.into(),
                ..config()
            };
            assert!(TwilioConnector::new(c).is_err(), "{sid}");
        }
        let no_token = TwilioConfig {
            auth_token: Secret::default(),
            ..config()
        };
        assert!(TwilioConnector::new(no_token).is_err());
        let no_sender = TwilioConfig {
            number: None,
            messaging_service_sid: Some(" ".into()),
            ..config()
        };
        assert!(TwilioConnector::new(no_sender).is_err());
        let zero = TwilioConfig {
            timeout: 0,
            ..config()
        };
        assert!(TwilioConnector::new(zero).is_err());
        for url in ["ftp://x", "api.twilio.com", "http://bad host"] {
            let c = TwilioConfig {
                base_url: url.into(),
                ..config()
            };
            assert!(TwilioConnector::new(c).is_err(), "{url}");
        }
    }

    #[test]
    fn url_and_sender() {
        let c = TwilioConnector::new(TwilioConfig {
            base_url: "https://api.example.org/".into(),
            messaging_service_sid: Some("MG123".into()),
            ..config()
        })
        .unwrap();
        assert_eq!(
            c.url,
            "https://api.example.org/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json"
        );
        assert_eq!(c.sender, Sender::MessagingService("MG123".into()));
    }

    #[test]
    fn invalid_recipients_are_refused_locally() {
        let c = TwilioConnector::new(config()).unwrap();
        for to in ["", "+", "++44", "44 7700", "abc", "1234567890123456"] {
            let e = c.send(to, "x").unwrap_err();
            assert_eq!(e.failure(), TwilioFailure::InvalidNumber, "{to}: {e}");
        }
    }

    #[test]
    fn codes_are_classified() {
        for code in [21211, 21614, 21217, 21401] {
            assert_eq!(classify(code), TwilioFailure::InvalidNumber, "{code}");
        }
        for code in [21408, 21610, 21612, 21215, 21635, 30003, 30005, 30008] {
            assert_eq!(classify(code), TwilioFailure::Rejected, "{code}");
        }
        for code in [20003, 21606, 20429, 30009, 0] {
            assert_eq!(classify(code), TwilioFailure::Failed, "{code}");
        }
    }

    #[test]
    fn scrub_masks_credentials_and_caps_length() {
        let c = TwilioConnector::new(config()).unwrap();
        let encoded = BASE64.encode("AC0123456789abcdef0123456789abcdef:tok3n-s3cret");
        let text = format!("echo tok3n-s3cret and {encoded}\r\n{}", "x".repeat(1000));
        let out = c.scrub(&text);
        assert!(!out.contains("tok3n"), "{out}");
        assert!(!out.contains(&encoded), "{out}");
        assert!(!out.contains('\n'));
        assert!(out.chars().count() <= MAX_MESSAGE_CHARS + 3);
    }
}
