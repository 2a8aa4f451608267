//! Third-party identifiers: media, and the rules that check and normalise what clients send
//! (addresses, client secrets, session ids, next links).

pub mod email;
pub mod msisdn;
pub mod params;
pub mod punycode;

use std::fmt;

/// A 3PID medium.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Medium {
    /// An email address.
    Email,
    /// A phone number (E.164 digits, no `+`).
    Msisdn,
}

impl Medium {
    /// The medium's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Medium::Email => "email",
            Medium::Msisdn => "msisdn",
        }
    }

    /// Parses a medium name.
    pub fn parse(s: &str) -> Option<Medium> {
        match s {
            "email" => Some(Medium::Email),
            "msisdn" => Some(Medium::Msisdn),
            _ => None,
        }
    }
}

impl fmt::Display for Medium {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
