//! Checks of the identifiers and links clients send with 3PID sessions.

use crate::error::{Error, ErrorKind, Result};

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

/// Reads `send_attempt`: a non-negative integer, or a string of digits (as sydent accepts).
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
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .ok_or_else(|| bad("only http:// and https:// links are allowed"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if authority.contains('@') {
        return Err(bad("user names in links are not allowed"));
    }
    let (host, after) = match host_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split_once(']').unwrap_or(("", "")),
        None => host_port.split_at(host_port.find(':').unwrap_or(host_port.len())),
    };
    if host.is_empty() {
        return Err(bad("it has no host"));
    }
    // Only a port may follow the host: `[::1].evil.example` or `host:x` is not a URL.
    let port_ok = match after.strip_prefix(':') {
        None => after.is_empty(),
        Some(port) => {
            port.is_empty()
                || port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok()
        }
    };
    if !port_ok {
        return Err(bad("only a port may follow its host"));
    }
    if !allowed_hosts.is_empty() && !allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
        return Err(bad("its host is not one this server redirects to"));
    }
    Ok(())
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

/// Percent-encodes the UTF-8 bytes of non-ASCII characters, leaving ASCII as it is.
pub fn encode_non_ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

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
    }
}
