//! Third-party identifiers: media, and the rules that check and normalise what clients send
//! (addresses, client secrets, session ids, next links).

pub mod email;
pub mod msisdn;
pub mod params;
pub mod punycode;

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, ErrorKind};

/// A 3PID medium, written as its name on the wire and in records (`email`, `msisdn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

    /// Parses a medium named in a request: 400 `M_INVALID_PARAM` for an unknown one.
    pub fn of_request(s: &str) -> Result<Medium, Error> {
        Medium::parse(s)
            .ok_or_else(|| Error::new(ErrorKind::InvalidParam, format!("Unknown medium '{s}'")))
    }
}

impl Serialize for Medium {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Medium {
    /// 400 `M_INVALID_PARAM` (`Unknown medium '...'`) in a request.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Medium, D::Error> {
        let name = String::deserialize(deserializer)?;
        Medium::of_request(&name).map_err(|e| e.carried())
    }
}

impl PartialEq<str> for Medium {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl fmt::Display for Medium {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_are_written_by_name_and_unknown_ones_are_invalid_params() {
        assert_eq!(
            serde_json::to_string(&Medium::Msisdn).unwrap(),
            "\"msisdn\""
        );
        let read: Medium = crate::http::decode_value(serde_json::json!("email")).unwrap();
        assert_eq!(read, Medium::Email);
        let e = crate::http::decode_value::<Medium>(serde_json::json!("fax")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidParam);
        assert_eq!(e.message(), "Unknown medium 'fax'");
    }
}
