//! Identifiers that arrive in requests, checked once where they are read (deserialised from a
//! body, or parsed from a query string), so that services and records hold only valid ones:
//! [`UserId`], [`ServerName`], [`RoomId`], [`ClientSecret`], [`SessionId`].
//!
//! Each refuses a bad value with the Matrix error the later check used to give (see
//! [`crate::error::Error::carried`] for how a request body carries it):
//!
//! | type | grammar | error |
//! |---|---|---|
//! | [`UserId`] | `@localpart:server_name`, at most 255 bytes | 400 `M_INVALID_PARAM` |
//! | [`ServerName`] | a Matrix server name (case-folded, trimmed) | 400 `M_INVALID_PARAM` |
//! | [`RoomId`] | `!opaque:server` or `!opaque`, at most 255 bytes | 400 `M_INVALID_PARAM` |
//! | [`ClientSecret`] | `[0-9a-zA-Z.=_-]{1,255}` | 400 `M_INVALID_PARAM` |
//! | [`SessionId`] | `[0-9a-zA-Z.=_-]{1,255}` | 404 `M_NO_VALID_SESSION` |
//!
//! All are written as the plain string they hold, so records keep their format.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::is_server_name;
use crate::error::{Error, ErrorKind, Result};
use crate::threepid::params::{check_client_secret, is_opaque_id};

/// Longest room id accepted.
const MAX_ROOM_ID: usize = 255;

/// A string type that holds only values its check accepts.
macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Checks (and normalises) `s`.
            pub fn parse(s: &str) -> Result<$name> {
                $name::try_from(s.to_string())
            }

            /// The value.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;

            fn try_from(s: String) -> Result<$name> {
                $check(s).map($name)
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<$name, D::Error> {
                let s = String::deserialize(deserializer)?;
                $name::try_from(s).map_err(|e| e.carried())
            }
        }
    };
}

checked_string!(
    /// A Matrix user id: `@localpart:server_name`, the local part printable ASCII without
    /// `:`, at most 255 bytes.
    UserId,
    user_id
);

checked_string!(
    /// A Matrix server name (`hostname`, `IPv4` or `[IPv6]`, an optional port), trimmed and
    /// in lower case. The one request field that carries one is `matrix_server_name`, and the
    /// error names it.
    ServerName,
    server_name
);

checked_string!(
    /// A room id: `!opaque:server`, or from room version 12 on just `!opaque` (Synapse 1.163
    /// creates those by default); at most 255 bytes, no whitespace or control characters.
    RoomId,
    room_id
);

checked_string!(
    /// A client's secret for its validation session: `[0-9a-zA-Z.=_-]{1,255}`.
    ClientSecret,
    client_secret
);

checked_string!(
    /// A validation session's id: `[0-9a-zA-Z.=_-]{1,255}`. Anything else names no session:
    /// 404 `M_NO_VALID_SESSION`, as an unknown sid (the answer must not tell which).
    SessionId,
    session_id
);

impl UserId {
    /// The server part.
    pub fn server_name(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, server)| server)
    }
}

/// Checks a Matrix user id: `@localpart:server_name`, at most 255 bytes; returns its server
/// part. 400 `M_INVALID_PARAM` otherwise.
pub fn check_user_id(mxid: &str) -> Result<&str> {
    let bad = || {
        Error::new(
            ErrorKind::InvalidParam,
            format!("'{mxid}' is not a valid Matrix user id"),
        )
    };
    let (local, server) = mxid
        .strip_prefix('@')
        .and_then(|r| r.split_once(':'))
        .ok_or_else(bad)?;
    let local_ok = !local.is_empty()
        && local
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b':');
    if mxid.len() > 255 || !local_ok || !is_server_name(server) {
        return Err(bad());
    }
    Ok(server)
}

fn user_id(s: String) -> Result<String> {
    check_user_id(&s)?;
    Ok(s)
}

fn server_name(s: String) -> Result<String> {
    let name = s.trim().to_ascii_lowercase();
    if is_server_name(&name) {
        Ok(name)
    } else {
        Err(Error::new(
            ErrorKind::InvalidParam,
            "matrix_server_name is not a valid server name",
        ))
    }
}

/// Checks a room id (see [`RoomId`]): 400 `M_INVALID_PARAM` naming it (cut to 80 characters).
pub fn check_room_id(room_id: &str) -> Result<()> {
    let ok = room_id.len() <= MAX_ROOM_ID
        && room_id.strip_prefix('!').is_some_and(|rest| {
            let opaque = rest.split_once(':').map_or(rest, |(id, _)| id);
            let server_ok = rest
                .split_once(':')
                .is_none_or(|(_, server)| !server.is_empty());
            !opaque.is_empty() && server_ok
        })
        && !room_id.chars().any(|c| c.is_control() || c.is_whitespace());
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidParam,
            format!("'{}' is not a room id", cut(room_id, 80)),
        ))
    }
}

fn room_id(s: String) -> Result<String> {
    check_room_id(&s)?;
    Ok(s)
}

fn client_secret(s: String) -> Result<String> {
    check_client_secret(&s)?;
    Ok(s)
}

fn session_id(s: String) -> Result<String> {
    if is_opaque_id(&s) {
        Ok(s)
    } else {
        Err(Error::new(
            ErrorKind::NoValidSession,
            "No valid session was found matching that sid and client secret",
        ))
    }
}

/// `s` cut to `max` characters, with an ellipsis when something was cut (for values shown in
/// messages).
pub fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::decode_value;
    use serde_json::json;

    #[test]
    fn user_ids_are_checked() {
        assert_eq!(check_user_id("@alice:example.org").unwrap(), "example.org");
        assert_eq!(check_user_id("@a.b=c/d:[::1]:8448").unwrap(), "[::1]:8448");
        for bad in [
            "alice:example.org",
            "@:example.org",
            "@alice",
            "@al ice:example.org",
            "@alice:exa mple.org",
            "@alice:",
        ] {
            assert!(check_user_id(bad).is_err(), "{bad}");
        }
        let id = UserId::parse("@a.b=c/d:[::1]:8448").unwrap();
        assert_eq!(id.server_name(), "[::1]:8448");
    }

    #[test]
    fn room_ids_are_checked() {
        assert!(check_room_id("!abc:example.org").is_ok());
        // Room version 12: no server part.
        assert!(check_room_id("!9vJdusWrSbN5Jp3YeqvXZxZ87KAsT-sRv276qFiRN54").is_ok());
        for bad in [
            "abc:example.org",
            "!",
            "!a b",
            "!:example.org",
            "!abc:",
            "#alias:example.org",
        ] {
            assert!(check_room_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn long_values_are_cut() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("0123456789abc", 10), "012345678…");
        assert_eq!(cut("ééééé", 3), "éé…");
    }

    #[test]
    fn server_names_are_trimmed_and_case_folded() {
        assert_eq!(
            ServerName::parse(" HS.Example.org ").unwrap(),
            "hs.example.org"
        );
        assert!(ServerName::parse("bad name").is_err());
    }

    /// Read from a request, each refuses with the error its later check gave.
    #[test]
    fn identifiers_in_requests_give_their_matrix_errors() {
        let e = decode_value::<ClientSecret>(json!("has space")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidParam);
        assert_eq!(
            e.message(),
            "Invalid client_secret: use 1 to 255 characters from [0-9a-zA-Z.=_-]"
        );
        let e = decode_value::<SessionId>(json!("a/b")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoValidSession);
        let e = decode_value::<UserId>(json!("alice")).unwrap_err();
        assert_eq!(e.message(), "'alice' is not a valid Matrix user id");
        let e = decode_value::<RoomId>(json!("#a:b")).unwrap_err();
        assert_eq!(e.message(), "'#a:b' is not a room id");
        // Not a string at all: the decoder's own error.
        let e = decode_value::<ClientSecret>(json!(5)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadJson);
        // Written as the plain string.
        let id = UserId::parse("@a:b.org").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"@a:b.org\"");
    }
}
