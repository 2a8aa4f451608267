//! The owned request a handler sees: method, path parameters, query, headers, the capped body,
//! the client IP and the mount it arrived on. Also the decoding of JSON bodies into typed
//! requests with Matrix errors for every way a body can be wrong.

use std::net::IpAddr;

use serde::de::DeserializeOwned;

use super::routes::Mount;
use crate::error::{Error, ErrorKind, Result};
use crate::ids::UserId;

/// HTTP methods the router knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET (HEAD is routed as GET).
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// OPTIONS (CORS preflight)
    Options,
    /// Anything else.
    Other,
}

impl Method {
    /// Parses a method name.
    pub fn from_name(name: &str) -> Method {
        match name {
            "GET" | "HEAD" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }
}

/// A request, fully read, as handlers see it.
#[derive(Debug, Clone)]
pub struct Req {
    /// The method.
    pub method: Method,
    /// The path, percent-encoded as received, without the query string.
    pub path: String,
    /// The request target exactly as received (path and query), for signature checks.
    pub target: String,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// Headers with lower-case names.
    pub headers: Vec<(String, String)>,
    /// The body (at most `server.maxBodySize` bytes).
    pub body: Vec<u8>,
    /// The client's address (from `X-Forwarded-For` when the peer is a trusted proxy).
    pub client_ip: IpAddr,
    /// The mount the request arrived on (v1, v2, or outside the identity prefix).
    pub mount: Mount,
    /// Decoded path parameters, in the order of the route's `{...}` segments.
    pub params: Vec<String>,
    /// The authenticated account's user id (v2 authentication), if any.
    pub user: Option<UserId>,
}

impl Req {
    /// The first query parameter called `name`.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A required query parameter: 400 `M_MISSING_PARAMS` when absent.
    pub fn required_query(&self, name: &str) -> Result<&str> {
        self.query(name).ok_or_else(|| {
            Error::new(
                ErrorKind::MissingParams,
                format!("Missing query parameter '{name}'"),
            )
        })
    }

    /// The first header called `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path parameter at `index`.
    pub fn param(&self, index: usize) -> &str {
        self.params.get(index).map(String::as_str).unwrap_or("")
    }

    /// Who is asking, as a rate-limit key: the account when authenticated, else the client
    /// address.
    pub fn requester(&self) -> String {
        match &self.user {
            Some(user) => format!("user:{user}"),
            None => format!("ip:{}", self.client_ip),
        }
    }

    /// Decodes the body parameters into `T`: JSON, or on the v1 mount also a
    /// `application/x-www-form-urlencoded` form (deprecated, still sent by old clients).
    pub fn params<T: DeserializeOwned>(&self) -> Result<T> {
        let is_form = self.header("content-type").is_some_and(|ct| {
            ct.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
        if self.mount == Mount::V1 && is_form {
            let text = std::str::from_utf8(&self.body)
                .map_err(|_| Error::new(ErrorKind::BadJson, "Form body is not UTF-8"))?;
            let object: serde_json::Map<String, serde_json::Value> = parse_query(text)
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect();
            return decode_value(serde_json::Value::Object(object));
        }
        self.json()
    }

    /// Decodes the JSON body into `T`.
    ///
    /// - not JSON (or not UTF-8): 400 `M_NOT_JSON`
    /// - JSON but not an object: 400 `M_BAD_JSON`
    /// - a required field missing: 400 `M_MISSING_PARAMS`
    /// - a field of the wrong type or value: 400 `M_INVALID_PARAM`
    ///
    /// An empty body is read as `{}`: the spec allows clients to send nothing where every
    /// field is optional.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        let body: &[u8] = if self.body.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &self.body
        };
        let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
            Error::new(
                ErrorKind::NotJson,
                format!("Request body is not valid JSON: {e}"),
            )
        })?;
        if !value.is_object() {
            return Err(Error::new(
                ErrorKind::BadJson,
                "Request body must be a JSON object",
            ));
        }
        decode_value(value)
    }
}

/// Decodes a JSON value into `T` with Matrix errors naming the field.
pub fn decode_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if let Some(carried) = Error::carried_by(&inner) {
            carried
        } else if let Some(field) = inner.strip_prefix("missing field ") {
            let field = field.trim_matches('`');
            let full = if path == "." {
                field.to_string()
            } else {
                format!("{path}.{field}")
            };
            Error::new(
                ErrorKind::MissingParams,
                format!("Missing parameter '{full}'"),
            )
        } else if path == "." {
            Error::new(
                ErrorKind::BadJson,
                format!("Malformed request body: {inner}"),
            )
        } else {
            Error::new(
                ErrorKind::InvalidParam,
                format!("Invalid parameter '{path}': {inner}"),
            )
        }
    })
}

/// Percent-decodes `s` (and `+` as space when `plus_is_space`, for query strings). Invalid
/// escapes are kept as written; invalid UTF-8 is replaced.
pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let spaced;
    let s = if plus_is_space {
        spaced = s.replace('+', " ");
        &spaced
    } else {
        s
    };
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Parses a query string (`a=1&b=x%20y`) into decoded pairs.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn req(body: &str) -> Req {
        Req {
            method: Method::Post,
            path: "/".into(),
            target: "/".into(),
            query: vec![],
            headers: vec![],
            body: body.as_bytes().to_vec(),
            client_ip: "127.0.0.1".parse().unwrap(),
            mount: Mount::V2,
            params: vec![],
            user: None,
        }
    }

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Body {
        sid: String,
        send_attempt: u64,
    }

    #[test]
    fn json_errors_map_to_matrix_codes() {
        let kind = |b: &str| req(b).json::<Body>().unwrap_err().kind();
        assert_eq!(kind("{nope"), ErrorKind::NotJson);
        assert_eq!(kind("[1,2]"), ErrorKind::BadJson);
        assert_eq!(kind(r#"{"sid":"a"}"#), ErrorKind::MissingParams);
        assert_eq!(
            kind(r#"{"sid":"a","send_attempt":"x"}"#),
            ErrorKind::InvalidParam
        );
        assert_eq!(kind(""), ErrorKind::MissingParams);
        assert!(
            req(r#"{"sid":"a","send_attempt":1}"#)
                .json::<Body>()
                .is_ok()
        );
        let e = req(r#"{"sid":"a"}"#).json::<Body>().unwrap_err();
        assert!(e.message().contains("send_attempt"), "{}", e.message());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("ed25519%3A0", false), "ed25519:0");
        assert_eq!(percent_decode("a+b%2Bc", true), "a b+c");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("bad%zzend%", false), "bad%zzend%");
        assert_eq!(percent_decode("%e6%97%a5", false), "日");
        assert_eq!(percent_decode("%41%4", false), "A%4");
        assert_eq!(percent_decode("%ff+x", true), "\u{FFFD} x");
        assert_eq!(
            parse_query("sid=1&client_secret=a%3Db&flag"),
            vec![
                ("sid".into(), "1".into()),
                ("client_secret".into(), "a=b".into()),
                ("flag".into(), "".into())
            ]
        );
    }
}

/// Property tests (issue 16; `fuzz/fuzz_targets/percent_decode.rs` is the fuzz target).
#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    /// `s` percent-encoded: `%`, `+`, `&`, `=` and non-ASCII bytes always, other bytes when
    /// `mask` says so, in upper- or lower-case hex.
    fn encode(s: &str, mask: &[u8]) -> String {
        let mut out = String::new();
        for (i, b) in s.bytes().enumerate() {
            let bits = mask.get(i % mask.len().max(1)).copied().unwrap_or(1);
            if matches!(b, b'%' | b'+' | b'&' | b'=') || !b.is_ascii() || bits & 1 == 1 {
                if bits & 2 == 2 {
                    out.push_str(&format!("%{b:02x}"));
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            } else {
                out.push(char::from(b));
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn encoded_text_decodes_to_itself(
            s in any::<String>(),
            mask in prop::collection::vec(any::<u8>(), 0..8),
            plus in any::<bool>(),
        ) {
            prop_assert_eq!(percent_decode(&encode(&s, &mask), plus), s);
        }

        #[test]
        fn any_text_decodes_without_growing(
            s in prop_oneof![any::<String>(), "[%+0-9a-fA-Fg-z\u{e9}\u{65e5}]{0,24}"],
            plus in any::<bool>(),
        ) {
            let out = percent_decode(&s, plus);
            prop_assert!(out.len() <= s.len(), "{:?} -> {:?}", s, out);
            let escapes = s.contains('%') || plus && s.contains('+');
            if !escapes {
                prop_assert_eq!(out, s);
            }
        }

        #[test]
        fn plus_is_a_space_only_in_queries(s in "[a-z+ ]{0,12}") {
            prop_assert_eq!(percent_decode(&s, true), s.replace('+', " "));
            prop_assert_eq!(percent_decode(&s, false), s);
        }

        #[test]
        fn query_strings_of_encoded_pairs_parse_back(
            pairs in prop::collection::vec((any::<String>(), any::<String>()), 0..6),
            mask in prop::collection::vec(any::<u8>(), 0..8),
            empty in prop::collection::vec(0usize..8, 0..3),
        ) {
            let mut parts: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k, &mask), encode(v, &mask)))
                .collect();
            // Empty pieces (`a=1&&b=2`, a trailing `&`) are skipped.
            for at in empty {
                parts.insert(at.min(parts.len()), String::new());
            }
            prop_assert_eq!(parse_query(&parts.join("&")), pairs);
        }

        #[test]
        fn a_key_without_value_has_an_empty_value(key in "[a-z%0-9+]{1,8}") {
            let decoded = percent_decode(&key, true);
            prop_assert_eq!(parse_query(&key), vec![(decoded, String::new())]);
        }
    }
}
