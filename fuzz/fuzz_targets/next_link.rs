//! The `next_link` check (`oxisd::threepid::params`): a link it accepts is one a browser reads
//! as an http(s) URL on the allowed host (the WHATWG parser of the `url` crate is the oracle),
//! and adding the sid keeps it so: same scheme, host and fragment, the sid in the query, ASCII
//! only.
//!
//! Input: the first byte picks the allowed-host list (none, or one of a few hosts), the rest up
//! to the first NUL is the link, what follows is the sid.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxisd::threepid::params::{check_next_link, with_sid};

const HOSTS: &[&str] = &[
    "app.element.io",
    "localhost",
    "127.0.0.1",
    "::1",
    "xn--bcher-kva.example",
];

/// The host as the `url` crate gives it for an allowed-host entry (`::1` -> `[::1]`).
fn normalised(host: &str) -> Option<String> {
    let text = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    url::Host::parse(&text).ok().map(|h| h.to_string())
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (link, sid) = text.split_once('\0').unwrap_or((&text, "sid"));
    let allowed: Vec<String> = match usize::from(pick) % (HOSTS.len() + 1) {
        0 => Vec::new(),
        n => vec![HOSTS[n - 1].to_string()],
    };
    if check_next_link(link, &allowed).is_err() {
        return;
    }
    let lower = link.to_ascii_lowercase();
    assert!(lower.starts_with("http://") || lower.starts_with("https://"));
    assert!(link.len() <= 2048);
    assert!(
        !link
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
    );
    let parsed = url::Url::parse(link);
    if let Ok(url) = &parsed {
        assert!(
            matches!(url.scheme(), "http" | "https"),
            "{link}: scheme {}",
            url.scheme()
        );
        let host = url.host().map(|h| h.to_string());
        assert!(
            host.as_deref().is_some_and(|h| !h.is_empty()),
            "{link}: no host"
        );
        assert_eq!(url.username(), "", "{link}: user name");
        assert_eq!(url.password(), None, "{link}: password");
        if let Some(only) = allowed.first() {
            assert_eq!(host, normalised(only), "{link}: another host than {only}");
        }
    }

    let redirect = with_sid(link, sid);
    assert!(redirect.is_ascii(), "{redirect}");
    if redirect.len() <= 2048 {
        assert!(
            check_next_link(&redirect, &allowed).is_ok(),
            "{redirect} is refused"
        );
    }
    let (Ok(before), Ok(after)) = (parsed, url::Url::parse(&redirect)) else {
        return;
    };
    assert_eq!(before.scheme(), after.scheme(), "{redirect}");
    assert_eq!(before.host(), after.host(), "{redirect}");
    assert_eq!(before.port(), after.port(), "{redirect}");
    assert_eq!(before.fragment(), after.fragment(), "{redirect}");
    assert!(
        after.query_pairs().any(|(k, v)| k == "sid" && v == sid),
        "{redirect} lost the sid {sid:?}"
    );
});
