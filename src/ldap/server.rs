//! The address of one LDAP server, read from an `ldap://` or `ldaps://` URL.

use std::fmt;

/// One server from a URL: `ldap://host[:port]` (default 389) or `ldaps://host[:port]` (636);
/// an IPv6 address in brackets; nothing after the host and port except an optional `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Host name or IP address (an IPv6 address without its brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// True for `ldaps://` (TLS from the first byte).
    pub ldaps: bool,
}

impl Server {
    /// Parses `ldap://host[:port][/]` or `ldaps://host[:port][/]` (scheme case-insensitive).
    /// Err says what is wrong, for the operator.
    pub fn parse(url: &str) -> Result<Server, String> {
        let (ldaps, rest) = if let Some(rest) = strip_prefix_ignore_case(url, "ldap://") {
            (false, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(url, "ldaps://") {
            (true, rest)
        } else {
            return Err(format!("{url:?}: must start with ldap:// or ldaps://"));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: missing ']' after the IPv6 address"))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!("{url:?}: {host:?} is not an IPv6 address"));
            }
            let port =
                match after {
                    "" => None,
                    _ => Some(after.strip_prefix(':').ok_or_else(|| {
                        format!("{url:?}: only ':port' may follow the IPv6 address")
                    })?),
                };
            (host, port)
        } else {
            match rest.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(format!("{url:?}: no host"));
        }
        if !rest.starts_with('[')
            && !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        {
            return Err(format!(
                "{url:?}: the host may only be a name or an address (nothing after the port but '/')"
            ));
        }
        let port = match port {
            None => {
                if ldaps {
                    636
                } else {
                    389
                }
            }
            Some(text) => match text.parse::<u16>() {
                Ok(port) if port > 0 && text.bytes().all(|b| b.is_ascii_digit()) => port,
                _ => return Err(format!("{url:?}: bad port {text:?}")),
            },
        };
        Ok(Server {
            host: host.to_string(),
            port,
            ldaps,
        })
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        text.get(prefix.len()..)
    } else {
        None
    }
}

impl fmt::Display for Server {
    /// `ldap://host:port` or `ldaps://host:port` (IPv6 in brackets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.ldaps { "ldaps" } else { "ldap" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}
