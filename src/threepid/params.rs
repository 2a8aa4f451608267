//! Checks of the identifiers and links clients send with 3PID sessions.

use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::error::{Error, ErrorKind, Result};
use crate::util::url::{UrlParts, split_host};

/// True for the spec's grammar of client secrets, sids and invite tokens:
/// `[0-9a-zA-Z.=_-]{1,255}`.
pub fn is_opaque_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'=' | b'_' | b'-'))
}

/// Checks a `client_secret`: 400 `M_INVALID_PARAM` when it does not fit the grammar.
pub fn check_client_secret(s: &str) -> Result<()> {
    if is_opaque_id(s) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidParam,
            "Invalid client_secret: use 1 to 255 characters from [0-9a-zA-Z.=_-]",
        ))
    }
}

/// A client's `send_attempt` in a request: read with [`send_attempt`], so a body refuses a bad
/// one with its 400 `M_INVALID_PARAM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendAttempt(pub u64);

impl<'de> serde::Deserialize<'de> for SendAttempt {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<SendAttempt, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        send_attempt(&value)
            .map(SendAttempt)
            .map_err(|e| e.carried())
    }
}

/// Reads `send_attempt`: a non-negative integer below 2^53, or a string of up to 16 digits (as
/// sydent accepts).
pub fn send_attempt(value: &serde_json::Value) -> Result<u64> {
    let n = match value {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s)
            if !s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            s.parse().ok()
        }
        _ => None,
    };
    n.filter(|n| *n < (1 << 53)).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidParam,
            "send_attempt must be a non-negative integer",
        )
    })
}

/// Longest accepted next_link.
const MAX_NEXT_LINK: usize = 2048;

/// Checks a `next_link`: an absolute http or https URL with a host, on `allowed_hosts` when that
/// list is not empty. Anything else (`javascript:`, `file:`, relative links) is refused with 400
/// `M_INVALID_PARAM`, so a redirect after validation can only go where the client was allowed to
/// send it.
pub fn check_next_link(link: &str, allowed_hosts: &[String]) -> Result<()> {
    let (_, host) = next_link_target(link)?;
    if !allowed_hosts.is_empty() && !allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(&host)) {
        return Err(Error::new(
            ErrorKind::InvalidParam,
            "Invalid next_link: its host is not one this server redirects to",
        ));
    }
    Ok(())
}

/// Where [`check_next_link`] believes a link goes: its scheme (`http` or `https`) and its host,
/// lower-case (an IPv6 address without its brackets).
///
/// The host must be one a browser reads the same way (checked against the `url` crate in
/// `params/differential.rs`): ASCII letters, digits, `.`, `-` and `_`, with any `xn--` label the
/// exact Punycode of a lower-case label; an IPv4 address as four decimal numbers; or an IPv6
/// address in brackets. Browsers rewrite other forms (`%67ood.example`, `ｇｏｏｄ.example` and
/// `127.1` become `good.example`, `good.example` and `127.0.0.1`), so the host on the allowed
/// list could differ from the one the browser visits; such links are refused, as is a port
/// that is not a number up to 65535.
fn next_link_target(link: &str) -> Result<(&'static str, String)> {
    let bad = |why: &str| Error::new(ErrorKind::InvalidParam, format!("Invalid next_link: {why}"));
    if link.len() > MAX_NEXT_LINK {
        return Err(bad("it is too long"));
    }
    if link
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return Err(bad("it contains spaces, backslashes or control characters"));
    }
    let lower = link.to_ascii_lowercase();
    // The scheme is what comes before the first `://`, so `https://` must open the link.
    let parts = UrlParts::split(&lower);
    let scheme = match parts.scheme {
        Some("https") => "https",
        Some("http") => "http",
        _ => return Err(bad("only http:// and https:// links are allowed")),
    };
    let authority = parts.authority;
    if authority.contains('@') {
        return Err(bad("user names in links are not allowed"));
    }
    let (host, port) =
        split_host(authority).ok_or_else(|| bad("its IPv6 address has no closing ']'"))?;
    if authority.starts_with('[') {
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad("its host is not a valid IPv6 address"));
        }
    } else if host.is_empty() {
        return Err(bad("it has no host"));
    } else if !is_plain_host(host) {
        return Err(bad(
            "its host is not a plain host name (letters, digits, '.', '-', '_'; \
             internationalised names in their xn-- form) or IPv4 address \
             (four decimal numbers)",
        ));
    }
    if let Some(digits) = port.strip_prefix(':') {
        if !digits.is_empty()
            && (!digits.bytes().all(|b| b.is_ascii_digit())
                || digits.parse::<u32>().map_or(true, |p| p > 65535))
        {
            return Err(bad("its port is not a number from 0 to 65535"));
        }
    } else if !port.is_empty() {
        return Err(bad("its host is followed by something other than a port"));
    }
    Ok((scheme, host.to_string()))
}

/// Whether a lower-case host is one browsers leave as it is: a name of letters, digits, `.`,
/// `-` and `_` (each `xn--` label the exact Punycode of a lower-case Unicode label) that does
/// not end in a number, or an IPv4 address as four decimal numbers without leading zeros.
fn is_plain_host(host: &str) -> bool {
    let labels: Vec<&str> = host.split('.').collect();
    // A last label that is a number (decimal or 0x hex), ignoring one trailing dot, makes
    // browsers read the whole host as an IPv4 address, in forms such as `127.1` or `0x7f.1`.
    let last = match labels.as_slice() {
        [.., last, ""] => *last,
        [.., last] => *last,
        [] => "",
    };
    let numeric = (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()))
        || last
            .strip_prefix("0x")
            .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
    if numeric {
        return labels.len() == 4
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 3
                    && l.bytes().all(|b| b.is_ascii_digit())
                    && (l.len() == 1 || !l.starts_with('0'))
                    && l.parse::<u16>().is_ok_and(|n| n <= 255)
            });
    }
    labels.iter().all(|label| {
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'))
        {
            return false;
        }
        match label.strip_prefix("xn--") {
            None => true,
            Some(puny) => super::punycode::decode(puny).is_some_and(|decoded| {
                !decoded.is_ascii()
                    && super::punycode::encode(&decoded).as_deref() == Some(puny)
                    && decoded
                        .chars()
                        .all(|c| (c.is_alphanumeric() && !c.is_uppercase()) || c == '-')
            }),
        }
    })
}

/// `next_link` with `sid=<sid>` added to its query (before any fragment), as sydent and
/// Synapse do, because the client learns the sid only after the message went out. Non-ASCII
/// characters (which [`check_next_link`] lets through, as browsers do) are percent-encoded as
/// UTF-8, since a `Location` header carries ASCII only.
pub fn with_sid(next_link: &str, sid: &str) -> String {
    let next_link = encode_non_ascii(next_link);
    let (base, fragment) = match next_link.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (next_link.as_str(), None),
    };
    let sep = if base.contains('?') { '&' } else { '?' };
    let mut out = format!("{base}{sep}sid={}", url_encode(sid));
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// Every byte but RFC 3986's unreserved characters (`A-Za-z0-9-._~`): what is safe, as is, in
/// both a path segment and a query value.
pub const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes the UTF-8 bytes of non-ASCII characters (and ASCII control characters,
/// which [`check_next_link`] refuses anyway), leaving the rest of ASCII as it is.
pub fn encode_non_ascii(s: &str) -> String {
    utf8_percent_encode(s, CONTROLS).to_string()
}

/// Percent-encodes everything but unreserved characters (RFC 3986), for a path segment or a
/// query value.
pub fn url_encode(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

#[cfg(test)]
mod differential;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn client_secret_grammar() {
        assert!(check_client_secret("monkeys_are_GREAT").is_ok());
        assert!(check_client_secret("a.b=c-d_e").is_ok());
        assert!(check_client_secret(&"a".repeat(255)).is_ok());
        for bad in ["", "has space", "slash/", "é", &"a".repeat(256)] {
            assert_eq!(
                check_client_secret(bad).unwrap_err().kind(),
                ErrorKind::InvalidParam,
                "{bad}"
            );
        }
    }

    #[test]
    fn send_attempt_forms() {
        assert_eq!(send_attempt(&json!(0)).unwrap(), 0);
        assert_eq!(send_attempt(&json!("3")).unwrap(), 3);
        for bad in [
            json!(-1),
            json!(1.5),
            json!("x"),
            json!(null),
            json!(""),
            json!([1]),
        ] {
            assert!(send_attempt(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn send_attempts_in_requests() {
        let read = |v| crate::http::decode_value::<SendAttempt>(v);
        assert_eq!(read(json!(2)).unwrap(), SendAttempt(2));
        assert_eq!(read(json!("3")).unwrap(), SendAttempt(3));
        let e = read(json!(-1)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidParam);
        assert_eq!(e.message(), "send_attempt must be a non-negative integer");
    }

    #[test]
    fn next_links() {
        assert!(check_next_link("https://app.element.io/#/home", &[]).is_ok());
        assert!(check_next_link("http://localhost:8080/done?x=1", &[]).is_ok());
        for bad in [
            "javascript:alert(1)",
            "JAVASCRIPT:alert(1)",
            "file:///etc/passwd",
            "//evil.example/x",
            "/relative",
            "https://",
            "https://user@evil.example/",
            "https://a b/",
            "data:text/html,hi",
            "https://evil.example\\@good.example/",
        ] {
            assert!(check_next_link(bad, &[]).is_err(), "{bad}");
        }
        let allowed = vec!["app.element.io".to_string()];
        assert!(check_next_link("https://APP.element.io/x", &allowed).is_ok());
        assert!(check_next_link("https://app.element.io.evil.example/x", &allowed).is_err());
        assert!(check_next_link("https://[::1]:8080/x", &["::1".to_string()]).is_ok());
    }

    /// Regression (issue 16, found by the property tests): anything after an IPv6 literal or
    /// after the host's colon was let through, so `https://[::1].evil.example/` passed an allow
    /// list naming `::1`. Browsers refuse such links, but an accepted link must be a URL on
    /// the allowed host.
    #[test]
    fn issue_16_only_a_port_may_follow_the_host() {
        let local = ["::1".to_string()];
        for bad in [
            "https://[::1].evil.example/",
            "https://[::1]evil/",
            "https://[::1]:x/",
            "https://a.example:b/",
            "https://a.example:80:90/",
            "https://a.example:65536/",
            "https://a.example:+80/",
        ] {
            assert!(check_next_link(bad, &local).is_err(), "{bad}");
            assert!(check_next_link(bad, &[]).is_err(), "{bad}");
        }
        for good in ["https://[::1]:8448/", "https://[::1]", "http://[::1]:/x"] {
            assert!(check_next_link(good, &local).is_ok(), "{good}");
        }
        assert!(check_next_link("https://a.example:65535/", &[]).is_ok());
    }

    #[test]
    fn sid_is_added_before_the_fragment() {
        assert_eq!(with_sid("https://a.b/c", "x1"), "https://a.b/c?sid=x1");
        assert_eq!(
            with_sid("https://a.b/c?d=1", "x1"),
            "https://a.b/c?d=1&sid=x1"
        );
        assert_eq!(
            with_sid("https://a.b/#/room", "x=1"),
            "https://a.b/?sid=x%3D1#/room"
        );
        assert_eq!(
            with_sid("https://ex\u{e4}mple.org/p?q=\u{65e5}", "s"),
            "https://ex%C3%A4mple.org/p?q=%E6%97%A5&sid=s"
        );
    }

    #[test]
    fn url_encoding_keeps_only_unreserved_characters() {
        assert_eq!(url_encode("aZ09-._~"), "aZ09-._~");
        assert_eq!(
            url_encode("a+b c/d?e&f=g#h%:@"),
            "a%2Bb%20c%2Fd%3Fe%26f%3Dg%23h%25%3A%40"
        );
        assert_eq!(url_encode("\u{e9}"), "%C3%A9");
        assert_eq!(encode_non_ascii("/a?b=c d#\u{e9}"), "/a?b=c d#%C3%A9");
    }
}

/// Property tests (issue 16; `fuzz/fuzz_targets/next_link.rs` is the fuzz target, with the
/// WHATWG URL parser as its oracle).
#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    /// Hosts as written in links, and as an allow list names them.
    fn host() -> impl Strategy<Value = (String, String)> {
        prop_oneof![
            // The last label ends in a letter: one that is a number makes browsers read the
            // whole host as an IPv4 address, which the check refuses unless it is one.
            // (`xn--` labels must be exact Punycode: left to the tests of internationalised
            // names.)
            // So does a last label `0x` + hex digits (`0x`, `0xa`: a hexadecimal number).
            "([a-z0-9-]{1,10}\\.){0,3}[a-z0-9-]{0,9}[a-z]"
                .prop_filter("no xn-- label", |h| !h
                    .split('.')
                    .any(|l| l.starts_with("xn--")))
                .prop_filter("no hexadecimal last label", |h| {
                    let last = h.rsplit('.').next().unwrap_or_default();
                    !last
                        .strip_prefix("0x")
                        .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
                })
                .prop_map(|h| (h.clone(), h)),
            any::<[u8; 4]>().prop_map(|ip| {
                let h = std::net::Ipv4Addr::from(ip).to_string();
                (h.clone(), h)
            }),
            any::<[u16; 8]>().prop_map(|ip| {
                let h = std::net::Ipv6Addr::from(ip).to_string();
                (format!("[{h}]"), h)
            }),
        ]
    }

    /// A well-formed http(s) link: (link, host for the allow list).
    fn link() -> impl Strategy<Value = (String, String)> {
        (
            prop_oneof![Just("https"), Just("http"), Just("HTTPS"), Just("hTtP")],
            host(),
            prop::option::of(any::<u16>()),
            "(/[a-zA-Z0-9._~!$&'()*+,;=:@%-]{0,8}){0,3}",
            prop::option::of("[a-zA-Z0-9=&/?é日-]{0,10}"),
            prop::option::of("[a-zA-Z0-9=&/?#é日-]{0,10}"),
        )
            .prop_map(|(scheme, (host, allowed), port, path, query, fragment)| {
                let mut link = format!("{scheme}://{host}");
                if let Some(port) = port {
                    link.push_str(&format!(":{port}"));
                }
                link.push_str(&path);
                if let Some(q) = query {
                    link.push_str(&format!("?{q}"));
                }
                if let Some(f) = fragment {
                    link.push_str(&format!("#{f}"));
                }
                (link, allowed)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn http_links_are_accepted_on_their_host_only(
            (link, host) in link(),
            other in "[a-z]{1,8}\\.example",
        ) {
            prop_assert!(check_next_link(&link, &[]).is_ok(), "{}", link);
            prop_assert!(check_next_link(&link, &[host.to_ascii_uppercase()]).is_ok(), "{}", link);
            prop_assert!(check_next_link(&link, &[other, host.clone()]).is_ok(), "{}", link);
            prop_assert!(check_next_link(&link, &[format!("{host}.example")]).is_err(), "{}", link);
        }

        #[test]
        fn disguised_hosts_are_refused(
            (link, host) in link(),
            trick in prop_oneof![
                Just("@evil.example"), Just(":x@evil.example"), Just(".evil.example"),
                Just("\\@evil.example"), Just("\\\\evil.example"), Just("%2F@evil.example"),
                Just("\t.evil.example"), Just(" .evil.example"), Just("\u{0}"),
            ],
        ) {
            // The trick goes right after the host, before any port, path, query or fragment.
            let at = link.find(&host).unwrap() + host.len();
            let at = if link[at..].starts_with(']') { at + 1 } else { at };
            let tricked = format!("{}{trick}{}", &link[..at], &link[at..]);
            prop_assert!(check_next_link(&tricked, &[host]).is_err(), "{}", tricked);
        }

        #[test]
        fn other_schemes_and_shapes_are_refused(
            scheme in "(javascript|data|file|ftp|vbscript|mailto|https?:|https?:/|//)",
            // Not starting with '/': `http:/` + `/a` would be a fine link.
            rest in "([a-z.:@][a-z./:@]{0,19})?",
        ) {
            let link = format!("{scheme}{rest}");
            prop_assert!(check_next_link(&link, &[]).is_err(), "{}", link);
        }

        #[test]
        fn accepted_links_have_the_expected_shape(link in "(?i:https?://)?[^\\\\]{0,30}") {
            if check_next_link(&link, &[]).is_ok() {
                let lower = link.to_ascii_lowercase();
                prop_assert!(lower.starts_with("https://") || lower.starts_with("http://"));
                prop_assert!(!link.chars().any(|c| c.is_whitespace() || c.is_control()));
                let authority = lower.split("://").nth(1).unwrap().split(['/', '?', '#']).next();
                prop_assert!(authority.is_some_and(|a| !a.is_empty() && !a.contains('@')));
            }
        }

        #[test]
        fn the_sid_goes_into_the_query_and_the_rest_is_kept(
            (link, host) in link(),
            sid in any::<String>(),
        ) {
            let out = with_sid(&link, &sid);
            prop_assert!(out.is_ascii());
            let (base, fragment) = match link.split_once('#') {
                Some((b, f)) => (b, Some(f)),
                None => (link.as_str(), None),
            };
            let sep = if base.contains('?') { '&' } else { '?' };
            let expected_base = format!("{}{sep}sid={}", encode_non_ascii(base), url_encode(&sid));
            prop_assert!(out.starts_with(&expected_base), "{}", out);
            prop_assert_eq!(
                out[expected_base.len()..].strip_prefix('#').map(String::from),
                fragment.map(encode_non_ascii)
            );
            prop_assert!(out[expected_base.len()..].is_empty() || fragment.is_some());
            if out.len() <= MAX_NEXT_LINK {
                prop_assert!(check_next_link(&out, &[host]).is_ok(), "{}", out);
            }
        }

        #[test]
        fn url_encoding_keeps_only_unreserved_characters(s in any::<String>()) {
            let out = url_encode(&s);
            prop_assert!(out.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)));
            prop_assert_eq!(crate::http::percent_decode(&out, false), s);
        }
    }
}
