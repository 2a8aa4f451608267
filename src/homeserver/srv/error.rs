//! Why an SRV lookup gave no answer.

use std::fmt;
use std::io;

/// Why an SRV lookup gave no answer.
#[derive(Debug)]
pub enum SrvError {
    /// No nameserver is configured (none in /etc/resolv.conf).
    NoNameserver,
    /// The name cannot be asked for: empty, an empty label, a label over 63 bytes, over 255
    /// bytes in all, or characters other than ASCII letters, digits, `-` and `_`.
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No nameserver answered within the timeout.
    Timeout {
        /// The name looked up.
        name: String,
    },
    /// A nameserver answered with an error code: SERVFAIL (2), REFUSED (5), NOTIMP (4), ...
    Server {
        /// The name looked up.
        name: String,
        /// The DNS response code.
        rcode: u8,
    },
    /// A nameserver's answer matched the query but could not be parsed.
    Malformed {
        /// The name looked up.
        name: String,
        /// What is wrong with the answer.
        reason: String,
    },
    /// Talking to a nameserver failed (unreachable, connection refused, ...).
    Io {
        /// The name looked up.
        name: String,
        /// The socket error.
        error: io::Error,
    },
}

fn rcode_name(rcode: u8) -> String {
    match rcode {
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        other => format!("RCODE {other}"),
    }
}

impl fmt::Display for SrvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SrvError::NoNameserver => {
                write!(
                    f,
                    "SRV lookup: no nameserver configured in /etc/resolv.conf"
                )
            }
            SrvError::InvalidName { name, reason } => {
                write!(f, "SRV lookup: invalid name {name:?}: {reason}")
            }
            SrvError::Timeout { name } => {
                write!(f, "SRV lookup of {name}: no nameserver answered in time")
            }
            SrvError::Server { name, rcode } => write!(
                f,
                "SRV lookup of {name}: the nameserver answered {}",
                rcode_name(*rcode)
            ),
            SrvError::Malformed { name, reason } => {
                write!(f, "SRV lookup of {name}: malformed answer: {reason}")
            }
            SrvError::Io { name, error } => write!(f, "SRV lookup of {name}: {error}"),
        }
    }
}

impl std::error::Error for SrvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SrvError::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}
