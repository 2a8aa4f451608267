//! Reading URLs and hosts the way the server's own checks do: the parts of an absolute URL, the
//! host of an authority, and whether a host names this machine. Nothing here decides whether a
//! URL is acceptable: the strict checks (`threepid::params` for `next_link`) build on these
//! splits and refuse what they must.

use std::borrow::Cow;
use std::net::IpAddr;

/// The parts of `scheme://authority/path?query#fragment`, as written (nothing decoded).
///
/// The URL is cut at its first `#`, then at the first `?` before it, then after the first
/// `://` up to the next `/`. Without `://` there is no scheme and no authority, and all that
/// comes before the query is the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlParts<'a> {
    /// The scheme as written, e.g. `https`.
    pub scheme: Option<&'a str>,
    /// `[userinfo@]host[:port]`; empty without a scheme.
    pub authority: &'a str,
    /// From the `/` after the authority (or empty) up to the query or fragment.
    pub path: &'a str,
    /// What follows the `?`.
    pub query: Option<&'a str>,
    /// What follows the `#`.
    pub fragment: Option<&'a str>,
}

impl<'a> UrlParts<'a> {
    /// Cuts `url` into its parts.
    pub fn split(url: &'a str) -> UrlParts<'a> {
        let (rest, fragment) = match url.split_once('#') {
            Some((rest, fragment)) => (rest, Some(fragment)),
            None => (url, None),
        };
        let (base, query) = match rest.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (rest, None),
        };
        let (scheme, authority, path) = match base.split_once("://") {
            Some((scheme, after)) => {
                let (authority, path) = after.split_at(after.find('/').unwrap_or(after.len()));
                (Some(scheme), authority, path)
            }
            None => (None, "", base),
        };
        UrlParts {
            scheme,
            authority,
            path,
            query,
            fragment,
        }
    }

    /// The authority without any userinfo: `host[:port]` (what follows the last `@`).
    pub fn host_port(&self) -> &'a str {
        self.authority
            .rsplit_once('@')
            .map_or(self.authority, |(_, host_port)| host_port)
    }

    /// The URL before its query and fragment: scheme, authority and path.
    pub fn base(&self) -> String {
        match self.scheme {
            Some(scheme) => format!("{scheme}://{}{}", self.authority, self.path),
            None => self.path.to_string(),
        }
    }
}

/// Splits `host[:port]` (an authority without userinfo) into the host, an IPv6 literal without
/// its brackets, and what follows the host: empty or `:port` when it is well formed, anything
/// else when it is not (for the caller to refuse). `None` when a `[` has no `]`.
pub fn split_host(host_port: &str) -> Option<(&str, &str)> {
    match host_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split_once(']'),
        None => Some(host_port.split_at(host_port.find(':').unwrap_or(host_port.len()))),
    }
}

/// A host as configured (`server.hostname`, `admin.hostname`) without the brackets an IPv6
/// literal may be written in.
pub fn unbracket(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
}

/// A host as it goes into a URL: an IPv6 literal in brackets (once), anything else as it is.
pub fn bracketed(host: &str) -> Cow<'_, str> {
    if host.contains(':') && !host.starts_with('[') {
        Cow::Owned(format!("[{host}]"))
    } else {
        Cow::Borrowed(host)
    }
}

/// True when `host` (an IPv6 literal without brackets) names this machine: `localhost`, in any
/// case, or a loopback address.
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_cut_into_their_parts() {
        let parts = UrlParts::split("https://u:p@h.example:8448/a/b?x=1&y#f?g");
        assert_eq!(
            parts,
            UrlParts {
                scheme: Some("https"),
                authority: "u:p@h.example:8448",
                path: "/a/b",
                query: Some("x=1&y"),
                fragment: Some("f?g"),
            }
        );
        assert_eq!(parts.host_port(), "h.example:8448");
        assert_eq!(parts.base(), "https://u:p@h.example:8448/a/b");
        let bare = UrlParts::split("http://h#x/y");
        assert_eq!((bare.authority, bare.path), ("h", ""));
        assert_eq!(bare.fragment, Some("x/y"));
        let relative = UrlParts::split("/p?q=http://h");
        assert_eq!(relative.scheme, None);
        assert_eq!((relative.authority, relative.path), ("", "/p"));
        assert_eq!(relative.base(), "/p");
    }

    #[test]
    fn hosts_are_split_from_their_ports() {
        assert_eq!(split_host("h.example:80"), Some(("h.example", ":80")));
        assert_eq!(split_host("h.example"), Some(("h.example", "")));
        assert_eq!(split_host("[::1]:8448"), Some(("::1", ":8448")));
        assert_eq!(split_host("[::1].evil"), Some(("::1", ".evil")));
        assert_eq!(split_host("[::1"), None);
        assert_eq!(unbracket("[::1]"), "::1");
        assert_eq!(unbracket("127.0.0.1"), "127.0.0.1");
        assert_eq!(bracketed("::1"), "[::1]");
        assert_eq!(bracketed("[::1]"), "[::1]");
        assert_eq!(bracketed("h.example"), "h.example");
    }

    #[test]
    fn loopback_hosts() {
        for host in ["localhost", "LocalHost", "127.0.0.1", "127.3.2.1", "::1"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["0.0.0.0", "10.0.0.1", "localhost.example", "[::1]", ""] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
