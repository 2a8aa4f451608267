//! The one error type of the LDAP client, and the names of LDAP result codes (RFC 4511 4.1.9,
//! appendix A).

use std::fmt;

/// Why an LDAP operation failed.
#[derive(Debug)]
pub enum LdapError {
    /// Could not connect to the server (all its resolved addresses failed); `error` is the last
    /// address's error.
    Connect {
        /// The server, as `ldap://host:port`.
        server: String,
        /// The last connection error.
        error: std::io::Error,
    },
    /// No (complete) answer within the configured timeout.
    Timeout,
    /// TLS handshake or certificate problem, or StartTLS refused by the server.
    Tls(String),
    /// Any other read or write error on the connection (including the server closing it).
    Io(std::io::Error),
    /// A malformed or unexpected answer from the server.
    Protocol(String),
    /// The server answered resultCode 49 (invalidCredentials) to a bind.
    InvalidCredentials,
    /// A bind with a DN and an empty password was refused locally (it would be an
    /// unauthenticated bind, which servers accept: RFC 4513 5.1.2).
    EmptyPassword,
    /// Any other non-success result.
    Server {
        /// The LDAP resultCode.
        code: u32,
        /// The server's diagnosticMessage (may be empty).
        message: String,
    },
}

impl fmt::Display for LdapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LdapError::Connect { server, error } => {
                write!(f, "cannot connect to {server}: {error}")
            }
            LdapError::Timeout => f.write_str("the LDAP server did not answer in time"),
            LdapError::Tls(message) => write!(f, "TLS: {message}"),
            LdapError::Io(error) => write!(f, "LDAP connection: {error}"),
            LdapError::Protocol(message) => write!(f, "LDAP protocol error: {message}"),
            LdapError::InvalidCredentials => f.write_str("49 invalidCredentials"),
            LdapError::EmptyPassword => {
                f.write_str("empty password refused (it would be an unauthenticated bind)")
            }
            LdapError::Server { code, message } => {
                write!(f, "{code} {}", result_code_name(*code))?;
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for LdapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LdapError::Connect { error, .. } | LdapError::Io(error) => Some(error),
            _ => None,
        }
    }
}

/// Maps an I/O error of a read or write with a timeout to Timeout or Io.
pub(crate) fn io_error(error: std::io::Error) -> LdapError {
    match error.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => LdapError::Timeout,
        _ => LdapError::Io(error),
    }
}

/// The RFC 4511 name of a resultCode ("other" for codes it does not list).
pub fn result_code_name(code: u32) -> &'static str {
    match code {
        0 => "success",
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        5 => "compareFalse",
        6 => "compareTrue",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        10 => "referral",
        11 => "adminLimitExceeded",
        12 => "unavailableCriticalExtension",
        13 => "confidentialityRequired",
        14 => "saslBindInProgress",
        16 => "noSuchAttribute",
        17 => "undefinedAttributeType",
        18 => "inappropriateMatching",
        19 => "constraintViolation",
        20 => "attributeOrValueExists",
        21 => "invalidAttributeSyntax",
        32 => "noSuchObject",
        33 => "aliasProblem",
        34 => "invalidDNSyntax",
        36 => "aliasDereferencingProblem",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        54 => "loopDetect",
        64 => "namingViolation",
        65 => "objectClassViolation",
        66 => "notAllowedOnNonLeaf",
        67 => "notAllowedOnRDN",
        68 => "entryAlreadyExists",
        69 => "objectClassModsProhibited",
        71 => "affectsMultipleDSAs",
        _ => "other",
    }
}
