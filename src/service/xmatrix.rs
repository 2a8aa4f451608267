//! Homeserver-signed requests (`Authorization: X-Matrix ...`), as Synapse signs unbind
//! requests: the signed object is `{method, uri, origin, destination_is, content}`, signed with
//! one of the origin's keys from `/_matrix/key/v2/server` (fetched through the homeserver
//! client and its address guard, cached until `valid_until_ts`).

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::crypto::base64;
use crate::crypto::signing::verify_json;
use crate::homeserver::HomeserverClient;

/// Keys are kept at most this long, whatever `valid_until_ts` says.
const MAX_KEY_CACHE_MS: u64 = 24 * 3600 * 1000;

/// The parts of an `X-Matrix` Authorization header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XMatrix {
    /// The signing server.
    pub origin: String,
    /// The key id, e.g. `ed25519:a_1`.
    pub key: String,
    /// The signature, unpadded base64.
    pub sig: String,
    /// The destination the signer named, if any.
    pub destination: Option<String>,
}

/// Parses `X-Matrix origin=...,key="...",sig="...",destination="..."`: the scheme in any case
/// and followed by whitespace (RFC 9110, 11.1: `X-Matrixorigin=...` is not this scheme),
/// parameter names case-insensitive, values quoted or not. A quoted value may hold commas, and
/// a backslash stands for the character after it (the spec's wording, RFC 9110 5.6.4).
pub fn parse_header(value: &str) -> Option<XMatrix> {
    let value = value.trim();
    let split = value.find([' ', '\t'])?;
    let (scheme, mut rest) = value.split_at(split);
    if !scheme.eq_ignore_ascii_case("X-Matrix") {
        return None;
    }
    let mut params: HashMap<String, String> = HashMap::new();
    loop {
        // Empty list elements and whitespace around commas are allowed (RFC 9110, 5.6.1).
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        let (name, after) = rest.split_once('=')?;
        let after = after.trim_start_matches([' ', '\t']);
        let (v, after) = match after.strip_prefix('"') {
            Some(quoted) => unquote(quoted)?,
            None => {
                let (v, after) = after.split_at(after.find(',').unwrap_or(after.len()));
                (v.trim_end_matches([' ', '\t']).to_string(), after)
            }
        };
        rest = after.trim_start_matches([' ', '\t']);
        if !rest.is_empty() && !rest.starts_with(',') {
            return None;
        }
        params.insert(name.trim().to_ascii_lowercase(), v);
    }
    Some(XMatrix {
        origin: params.remove("origin")?,
        key: params.remove("key")?,
        sig: params.remove("sig")?,
        destination: params.remove("destination"),
    })
}

/// The value of a quoted-string whose opening quote is gone, and what follows its closing
/// quote; `None` when it is not closed.
fn unquote(s: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &s[i + 1..])),
            '\\' => value.push(chars.next()?.1),
            c => value.push(c),
        }
    }
    None
}

/// Why a signed request was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XMatrixError {
    /// The header is missing or malformed.
    Malformed,
    /// The signature names a destination that is not us.
    WrongDestination,
    /// The origin's key could not be fetched.
    KeyUnavailable(String),
    /// The origin answered, and does not publish the key the request names: a signature that
    /// cannot be checked is refused like a bad one (403), not as a gateway error.
    UnknownKey(String),
    /// The signature does not verify.
    BadSignature,
}

impl std::fmt::Display for XMatrixError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            XMatrixError::Malformed => f.write_str("no valid X-Matrix authorization"),
            XMatrixError::WrongDestination => f.write_str("signed for another destination"),
            XMatrixError::KeyUnavailable(m) => write!(f, "cannot get the origin's key: {m}"),
            XMatrixError::UnknownKey(k) => write!(f, "the origin publishes no key {k}"),
            XMatrixError::BadSignature => f.write_str("the signature does not verify"),
        }
    }
}

/// (origin, key id) -> (public key, cached until ms).
type KeyCache = HashMap<(String, String), ([u8; 32], u64)>;

/// A request with an X-Matrix authorization.
pub struct SignedRequest<'a> {
    /// The parsed Authorization header.
    pub auth: &'a XMatrix,
    /// The HTTP method.
    pub method: &'a str,
    /// The request target as received.
    pub uri: &'a str,
    /// The JSON body.
    pub content: &'a Value,
}

/// Verifies signed requests, with a cache of server keys.
#[derive(Default)]
pub struct Verifier {
    keys: Mutex<KeyCache>,
}

impl Verifier {
    /// Checks one X-Matrix authorization of a request: `destinations` are the names we answer
    /// to (Synapse signs whatever name its client used for us). Returns the origin.
    pub fn verify(
        &self,
        hs: &HomeserverClient,
        request: &SignedRequest<'_>,
        destinations: &[String],
        now_ms: u64,
    ) -> Result<String, XMatrixError> {
        let SignedRequest {
            auth,
            method,
            uri,
            content,
        } = *request;
        if !auth.key.starts_with("ed25519:") {
            return Err(XMatrixError::Malformed);
        }
        let candidates: Vec<&String> = match &auth.destination {
            Some(d) if destinations.iter().any(|x| x.eq_ignore_ascii_case(d)) => destinations
                .iter()
                .filter(|x| x.eq_ignore_ascii_case(d))
                .collect(),
            Some(_) => return Err(XMatrixError::WrongDestination),
            None => destinations.iter().collect(),
        };
        let key = self.key(hs, &auth.origin, &auth.key, now_ms)?;
        for destination in candidates {
            let signed = json!({
                "method": method,
                "uri": uri,
                "origin": auth.origin,
                "destination_is": destination,
                "content": content,
                "signatures": { auth.origin.clone(): { auth.key.clone(): auth.sig } },
            });
            if verify_json(&signed, &auth.origin, &auth.key, &key).is_ok() {
                return Ok(auth.origin.clone());
            }
        }
        Err(XMatrixError::BadSignature)
    }

    fn key(
        &self,
        hs: &HomeserverClient,
        origin: &str,
        key_id: &str,
        now_ms: u64,
    ) -> Result<[u8; 32], XMatrixError> {
        let cache_key = (origin.to_string(), key_id.to_string());
        if let Some((key, until)) = self
            .keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&cache_key)
            && *until > now_ms
        {
            return Ok(*key);
        }
        let answer = hs
            .get_json(origin, "/_matrix/key/v2/server", Some(64 * 1024))
            .map_err(|e| XMatrixError::KeyUnavailable(e.to_string()))?;
        if answer.get("server_name").and_then(Value::as_str) != Some(origin) {
            return Err(XMatrixError::KeyUnavailable(
                "the key answer is for another server".into(),
            ));
        }
        let encoded = answer
            .pointer(&format!(
                "/verify_keys/{}/key",
                key_id.replace('~', "~0").replace('/', "~1")
            ))
            .and_then(Value::as_str)
            .ok_or_else(|| XMatrixError::UnknownKey(key_id.to_string()))?;
        let key: [u8; 32] = base64::decode(encoded)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                XMatrixError::KeyUnavailable("the key is not 32 bytes of base64".into())
            })?;
        // The answer must be signed by the key it lists.
        verify_json(&answer, origin, key_id, &key).map_err(|_| {
            XMatrixError::KeyUnavailable("the key answer is not self-signed".into())
        })?;
        let valid_until = answer
            .get("valid_until_ts")
            .and_then(Value::as_u64)
            .unwrap_or(now_ms);
        let until = valid_until.min(now_ms + MAX_KEY_CACHE_MS);
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() > 1000 {
            keys.retain(|_, (_, until)| *until > now_ms);
        }
        keys.insert(cache_key, (key, until));
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_parsed_with_or_without_quotes() {
        let h = parse_header(
            r#"X-Matrix origin="domain",key="ed25519:1",sig="abc+/",destination="id.example.com""#,
        )
        .unwrap();
        assert_eq!(
            h,
            XMatrix {
                origin: "domain".into(),
                key: "ed25519:1".into(),
                sig: "abc+/".into(),
                destination: Some("id.example.com".into())
            }
        );
        let h = parse_header("X-Matrix origin=hs.org,Key=ed25519:a,SIG=xyz").unwrap();
        assert_eq!(
            (
                h.origin.as_str(),
                h.key.as_str(),
                h.sig.as_str(),
                h.destination
            ),
            ("hs.org", "ed25519:a", "xyz", None)
        );
        assert!(parse_header("Bearer abc").is_none());
        assert!(parse_header("X-Matrix origin=a").is_none());
        // The scheme is case-insensitive, and a token of its own.
        for scheme in ["X-MATRIX", "x-matrix", "x-MaTrIx"] {
            let h = parse_header(&format!("{scheme} origin=hs.org,key=ed25519:a,sig=xyz")).unwrap();
            assert_eq!(h.origin, "hs.org");
        }
        assert!(parse_header("X-Matrix\torigin=hs.org,key=ed25519:a,sig=xyz").is_some());
        assert!(parse_header("X-Matrixorigin=hs.org,key=ed25519:a,sig=xyz").is_none());
        assert!(parse_header("X-Matrix-Foo origin=hs.org,key=ed25519:a,sig=xyz").is_none());
    }

    /// Regression (issue 16, found by the fuzz target): a quoted value holding a comma was cut
    /// at it, and only `\"` and `\\` were unescaped, where the spec says a backslash stands
    /// for whatever character follows it.
    #[test]
    fn issue_16_quoted_values_may_hold_commas_and_any_escape() {
        let h =
            parse_header(r#"X-Matrix origin="a,b", key="ed25519:1" ,sig="s\,x\q\"\\""#).unwrap();
        assert_eq!(
            (h.origin.as_str(), h.key.as_str(), h.sig.as_str()),
            ("a,b", "ed25519:1", r#"s,xq"\"#)
        );
        // Empty list elements are allowed; junk after a quoted value and an open quote are not.
        assert!(parse_header("X-Matrix ,origin=a,,key=k,sig=s,").is_some());
        assert!(parse_header(r#"X-Matrix origin="a"b,key=k,sig=s"#).is_none());
        assert!(parse_header(r#"X-Matrix origin=a,key=k,sig="s"#).is_none());
    }

    /// The spec vector (vectors.md §3b): Synapse's unbind object signed with the appendix key.
    #[test]
    fn the_spec_unbind_vector_verifies() {
        let seed: [u8; 32] = base64::decode("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1")
            .unwrap()
            .try_into()
            .unwrap();
        let key = crate::crypto::signing::KeyPair::from_seed("ed25519:1", &seed);
        let signed = json!({
            "method": "POST",
            "uri": "/_matrix/identity/v2/3pid/unbind",
            "origin": "domain",
            "destination_is": "id.example.com",
            "content": {"mxid": "@ears:domain", "threepid": {"address": "louise@bobs.burgers", "medium": "email"}},
            "signatures": {"domain": {"ed25519:1": "HKsPmoz7pClb/mEb7+wFovkRZvyStxv7JB7hFxFr4Ieb6J3V+y2xQtYWRDgWmCCZR2TCfjUcTBk8QXIwc8UlDg"}},
        });
        assert!(verify_json(&signed, "domain", "ed25519:1", &key.public_key()).is_ok());
    }
}

/// Property tests (issue 16; `fuzz/fuzz_targets/xmatrix_header.rs` is the fuzz target).
#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    /// `value` as a quoted-string, escaping `"` and `\` (and every character when `all`).
    fn quoted(value: &str, all: bool) -> String {
        let mut out = String::from("\"");
        for c in value.chars() {
            if all || c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
        out
    }

    fn header(x: &XMatrix, all: bool, separator: &str) -> String {
        let mut params = vec![
            format!("origin={}", quoted(&x.origin, all)),
            format!("key={}", quoted(&x.key, all)),
            format!("sig={}", quoted(&x.sig, all)),
        ];
        if let Some(d) = &x.destination {
            params.push(format!("destination={}", quoted(d, all)));
        }
        format!("X-Matrix {}", params.join(separator))
    }

    /// Any header-safe text (no control characters, RFC 9110 5.5), commas and quotes included.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof!["[^\\p{Cc}]{0,12}", "[a-z,=\" \\\\]{0,12}"]
    }

    fn xmatrix() -> impl Strategy<Value = XMatrix> {
        (value(), value(), value(), prop::option::of(value())).prop_map(
            |(origin, key, sig, destination)| XMatrix {
                origin,
                key,
                sig,
                destination,
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn formatted_headers_parse_back(
            x in xmatrix(),
            all in any::<bool>(),
            separator in prop_oneof![Just(","), Just(", "), Just(" ,\t")],
        ) {
            prop_assert_eq!(parse_header(&header(&x, all, separator)), Some(x));
        }

        #[test]
        fn token_values_need_no_quotes(
            values in prop::collection::vec("[!#$%&'*+.^_`|~0-9A-Za-z-]{1,12}", 3),
            upper in any::<[bool; 3]>(),
        ) {
            let names: Vec<String> = ["origin", "key", "sig"]
                .iter()
                .zip(upper)
                .map(|(n, up)| if up { n.to_ascii_uppercase() } else { n.to_string() })
                .collect();
            let text = format!(
                "X-Matrix {}={},{}={},{}={}",
                names[0], values[0], names[1], values[1], names[2], values[2]
            );
            let parsed = parse_header(&text).unwrap();
            prop_assert_eq!(
                (parsed.origin, parsed.key, parsed.sig, parsed.destination),
                (values[0].clone(), values[1].clone(), values[2].clone(), None)
            );
        }

        #[test]
        fn what_parses_formats_and_parses_the_same(text in "(X-Matrix |x-matrix\t)?[a-z=,\" \\\\]{0,40}") {
            if let Some(x) = parse_header(&text) {
                prop_assert_eq!(parse_header(&header(&x, false, ",")), Some(x));
            }
        }
    }
}
