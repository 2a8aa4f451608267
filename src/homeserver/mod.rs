//! Outbound requests to homeservers (and other servers users name): server discovery, the
//! address guard against requests into private networks, TLS, timeouts and size limits. Only
//! this module dials addresses that come from users.

pub mod client;
pub mod discovery;
pub mod guard;
pub mod slots;
pub mod srv;

pub use client::HomeserverClient;

/// Why an outbound request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HsError {
    /// The server name is not a valid Matrix server name.
    InvalidServerName(String),
    /// The address guard refused every address of the target.
    Refused(String),
    /// No connection: DNS, TCP, TLS or a broken answer.
    Unreachable(String),
    /// No answer in time.
    Timeout(String),
    /// The server answered with an error status.
    Status {
        /// The HTTP status.
        status: u16,
        /// The JSON body, or null.
        body: serde_json::Value,
    },
    /// The server answered 2xx with a body we cannot use (not JSON, too large).
    BadResponse(String),
    /// Not tried: too many calls in progress (to this destination, or in all).
    Busy(String),
}

impl std::fmt::Display for HsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HsError::InvalidServerName(n) => write!(f, "'{n}' is not a valid server name"),
            HsError::Refused(m) => write!(f, "refused by the address guard: {m}"),
            HsError::Unreachable(m) => write!(f, "unreachable: {m}"),
            HsError::Timeout(m) => write!(f, "no answer in time: {m}"),
            HsError::Status { status, body } => write!(f, "answered HTTP {status}: {body}"),
            HsError::BadResponse(m) => write!(f, "unusable answer: {m}"),
            HsError::Busy(m) => write!(f, "not tried, {m}"),
        }
    }
}
