//! The error type of requests and the only table that maps an error kind to a Matrix
//! `errcode` and an HTTP status; and [`StartError`], why the server cannot start.
//!
//! Services return client-meaningful kinds directly. Storage, I/O and other internal failures
//! become [`ErrorKind::Internal`]: the client sees a generic `M_UNKNOWN`, the details go to the
//! log only (see [`Error::log_detail`]).

use std::fmt;

/// What went wrong, in the vocabulary of the Identity Service API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// `M_BAD_JSON`: the body is JSON but not of the expected shape.
    BadJson,
    /// `M_DESTINATION_REJECTED`: the SMS provider refuses to deliver to that destination.
    DestinationRejected,
    /// `M_EMAIL_SEND_ERROR`: sending the email failed.
    EmailSendError,
    /// `M_FORBIDDEN`: the request is understood but refused by policy.
    Forbidden,
    /// `M_UNKNOWN` with 500: an internal failure; details only in the log.
    Internal,
    /// `M_INVALID_ADDRESS`: the third-party address is invalid.
    InvalidAddress,
    /// `M_INVALID_EMAIL`: the email address is invalid.
    InvalidEmail,
    /// `M_INVALID_PARAM`: a parameter has a wrong value or type.
    InvalidParam,
    /// `M_INVALID_PEPPER`: the lookup pepper is not the current one.
    InvalidPepper,
    /// `M_LIMIT_EXCEEDED` with 429: a rate limit was hit.
    LimitExceeded,
    /// `M_UNRECOGNIZED` with 405: the path exists but not with this method.
    MethodNotAllowed,
    /// `M_MISSING_PARAMS`: a required parameter is missing.
    MissingParams,
    /// `M_NOT_FOUND`: the resource does not exist.
    NotFound,
    /// `M_NOT_JSON`: the body is not valid JSON.
    NotJson,
    /// `M_NO_VALID_SESSION`: no session matches (unknown sid and wrong secret alike).
    NoValidSession,
    /// `M_SEND_ERROR`: sending a notification (SMS) failed.
    SendError,
    /// `M_SESSION_EXPIRED`: the session expired.
    SessionExpired,
    /// `M_SESSION_NOT_VALIDATED`: the session is not validated yet.
    SessionNotValidated,
    /// `M_TERMS_NOT_SIGNED`: the user has not accepted the current terms.
    TermsNotSigned,
    /// `M_THREEPID_IN_USE`: the 3PID is already bound.
    ThreepidInUse,
    /// `M_TOKEN_INCORRECT`: the validation token is wrong.
    TokenIncorrect,
    /// `M_TOO_LARGE` with 413: the request body or a list in it is too large.
    TooLarge,
    /// `M_TOO_LARGE` with 431: the request headers are too large.
    HeadersTooLarge,
    /// `M_UNKNOWN` with 408: the client was too slow to send its request.
    RequestTimeout,
    /// `M_UNAUTHORIZED`: missing or invalid credentials.
    Unauthorized,
    /// `M_UNKNOWN_TOKEN`: the access token is not known (logout).
    UnknownToken,
    /// `M_UNRECOGNIZED` with 404: unknown endpoint or unrecognised value.
    Unrecognized,
    /// 400 `M_UNRECOGNIZED`: a value the server does not support (store-invite's medium).
    UnsupportedValue,
    /// 403 `M_UNAUTHORIZED`: acting for another user (store-invite's `sender`, a v2 bind's
    /// `mxid`), as sydent answers.
    NotOwnUser,
    /// `M_UNKNOWN` with 502: an upstream server answered badly.
    BadGateway,
    /// `M_UNKNOWN` with 504: an upstream server could not be reached in time.
    GatewayTimeout,
    /// `M_UNKNOWN` with 503: the server is up but not healthy (`/health`).
    Unavailable,
}

impl ErrorKind {
    /// The HTTP status and the Matrix `errcode` of this kind. This is the only such table.
    pub fn status_and_code(self) -> (u16, &'static str) {
        use ErrorKind::*;
        match self {
            BadJson => (400, "M_BAD_JSON"),
            DestinationRejected => (400, "M_DESTINATION_REJECTED"),
            EmailSendError => (500, "M_EMAIL_SEND_ERROR"),
            Forbidden => (403, "M_FORBIDDEN"),
            Internal => (500, "M_UNKNOWN"),
            InvalidAddress => (400, "M_INVALID_ADDRESS"),
            InvalidEmail => (400, "M_INVALID_EMAIL"),
            InvalidParam => (400, "M_INVALID_PARAM"),
            InvalidPepper => (400, "M_INVALID_PEPPER"),
            LimitExceeded => (429, "M_LIMIT_EXCEEDED"),
            MethodNotAllowed => (405, "M_UNRECOGNIZED"),
            MissingParams => (400, "M_MISSING_PARAMS"),
            NotFound => (404, "M_NOT_FOUND"),
            NotJson => (400, "M_NOT_JSON"),
            NoValidSession => (404, "M_NO_VALID_SESSION"),
            SendError => (500, "M_SEND_ERROR"),
            SessionExpired => (400, "M_SESSION_EXPIRED"),
            SessionNotValidated => (400, "M_SESSION_NOT_VALIDATED"),
            TermsNotSigned => (403, "M_TERMS_NOT_SIGNED"),
            ThreepidInUse => (400, "M_THREEPID_IN_USE"),
            TokenIncorrect => (400, "M_TOKEN_INCORRECT"),
            TooLarge => (413, "M_TOO_LARGE"),
            HeadersTooLarge => (431, "M_TOO_LARGE"),
            RequestTimeout => (408, "M_UNKNOWN"),
            Unauthorized => (401, "M_UNAUTHORIZED"),
            UnknownToken => (401, "M_UNKNOWN_TOKEN"),
            Unrecognized => (404, "M_UNRECOGNIZED"),
            UnsupportedValue => (400, "M_UNRECOGNIZED"),
            NotOwnUser => (403, "M_UNAUTHORIZED"),
            BadGateway => (502, "M_UNKNOWN"),
            GatewayTimeout => (504, "M_UNKNOWN"),
            Unavailable => (503, "M_UNKNOWN"),
        }
    }
}

/// An error with a kind, a message safe to show to the client, extra JSON fields for the error
/// body, and an optional internal cause that is only logged.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    extra: Vec<(&'static str, serde_json::Value)>,
    detail: Option<String>,
}

/// The crate-wide result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with a message for the client.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            extra: Vec::new(),
            detail: None,
        }
    }

    /// An internal error: the client sees a generic message; `detail` goes to the log.
    pub fn internal(detail: impl fmt::Display) -> Self {
        Error {
            kind: ErrorKind::Internal,
            message: "Internal server error".into(),
            extra: Vec::new(),
            detail: Some(detail.to_string()),
        }
    }

    /// Adds an extra key to the JSON error body (for example `mxid` on `M_THREEPID_IN_USE`).
    pub fn with_extra(mut self, key: &'static str, value: impl Into<serde_json::Value>) -> Self {
        self.extra.push((key, value.into()));
        self
    }

    /// Attaches a detail for the log (never shown to the client).
    pub fn with_detail(mut self, detail: impl fmt::Display) -> Self {
        self.detail = Some(detail.to_string());
        self
    }

    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The client-facing message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The internal detail to log, if any.
    pub fn log_detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> u16 {
        self.kind.status_and_code().0
    }

    /// The Matrix error body: `errcode`, `error` and any extra keys.
    pub fn body(&self) -> serde_json::Value {
        let mut body = serde_json::Map::new();
        body.insert("errcode".into(), self.kind.status_and_code().1.into());
        body.insert("error".into(), self.message.clone().into());
        for (key, value) in &self.extra {
            body.insert((*key).into(), value.clone());
        }
        serde_json::Value::Object(body)
    }
}

/// Marks a serde error message that carries a Matrix error; see [`Error::carried_by`].
const CARRIED: char = '\u{1f}';

impl Error {
    /// A serde error carrying this error's kind and message: values checked while a request is
    /// deserialised (identifiers, media) refuse with the very Matrix error a later check would
    /// give, and the request decoder ([`crate::http::decode_value`]) answers it as it is.
    pub fn carried<E: serde::de::Error>(&self) -> E {
        let tag = match self.kind {
            ErrorKind::NoValidSession => 's',
            _ => 'p',
        };
        E::custom(format_args!("{CARRIED}{tag}{}", self.message))
    }

    /// The error a serde error message carries (see [`Error::carried`]), if it carries one.
    pub fn carried_by(message: &str) -> Option<Error> {
        let rest = message.strip_prefix(CARRIED)?;
        let mut chars = rest.chars();
        let kind = match chars.next()? {
            's' => ErrorKind::NoValidSession,
            _ => ErrorKind::InvalidParam,
        };
        Some(Error::new(kind, chars.as_str()))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (_, code) = self.kind.status_and_code();
        write!(f, "{code}: {}", self.message)?;
        if let Some(detail) = &self.detail {
            write!(f, " ({detail})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// Why the server cannot start, said to the operator: what to fix, and the config key to fix
/// it under when a setting is to blame (`view.brand.logo: cannot read /x.png: ...`).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is wrong, or what it names (a file, a connector) cannot be used.
    #[error("{key}: {message}")]
    Setting {
        /// The config key, e.g. `threepid.medium.email.connectors.smtp`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// Something no single setting names: the store, the signing key, a listener.
    #[error("{0}")]
    Other(String),
}

impl StartError {
    /// The setting `key` is wrong: `message` says how.
    pub fn setting(key: impl Into<String>, message: impl fmt::Display) -> StartError {
        StartError::Setting {
            key: key.into(),
            message: message.to_string(),
        }
    }

    /// A failure no single setting names.
    pub fn other(message: impl fmt::Display) -> StartError {
        StartError::Other(message.to_string())
    }

    /// The config key to fix, when a setting is to blame.
    pub fn key(&self) -> Option<&str> {
        match self {
            StartError::Setting { key, .. } => Some(key),
            StartError::Other(_) => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::internal(format_args!("I/O: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_errcode_error_and_extras() {
        let e = Error::new(ErrorKind::ThreepidInUse, "Binding already known")
            .with_extra("mxid", "@a:b");
        assert_eq!(e.status(), 400);
        assert_eq!(
            e.body(),
            serde_json::json!({"errcode": "M_THREEPID_IN_USE", "error": "Binding already known", "mxid": "@a:b"})
        );
    }

    #[test]
    fn internal_errors_hide_details_from_the_body() {
        let e = Error::internal("disk on fire at /var/lib");
        assert_eq!(e.status(), 500);
        assert!(!e.body().to_string().contains("disk"));
        assert_eq!(e.log_detail(), Some("disk on fire at /var/lib"));
    }

    #[test]
    fn start_errors_name_the_setting_first() {
        let e = StartError::setting("view.brand.logo", "cannot read /x.png: gone");
        assert_eq!(e.to_string(), "view.brand.logo: cannot read /x.png: gone");
        assert_eq!(e.key(), Some("view.brand.logo"));
        let e = StartError::other("the store is locked");
        assert_eq!(e.to_string(), "the store is locked");
        assert_eq!(e.key(), None);
    }

    #[test]
    fn unknown_path_and_wrong_method_share_the_errcode() {
        assert_eq!(
            ErrorKind::Unrecognized.status_and_code(),
            (404, "M_UNRECOGNIZED")
        );
        assert_eq!(
            ErrorKind::MethodNotAllowed.status_and_code(),
            (405, "M_UNRECOGNIZED")
        );
    }
}
