//! Server discovery: from a Matrix server name to the base URL of its federation API, as the
//! server-server spec says: an IP literal (with optional port), a hostname with a port, then
//! `/.well-known/matrix/server` (whose delegated name goes through the same steps), then SRV
//! `_matrix-fed._tcp` and the deprecated `_matrix._tcp`, then port 8448.
//!
//! Results are cached: well-known answers for their `Cache-Control` max-age (24 h by default,
//! 48 h at most), failures and SRV-derived results for at most an hour. When SRV names a target
//! host, the connection goes to that target's (guard-checked) addresses while TLS and the URL
//! keep the delegated name: the addresses are handed to the resolver as a pin.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::HsError;
use super::guard::{AddressGuard, GuardError};
use super::srv::{SrvRecord, SrvResolver};
use crate::config::is_server_name;
use crate::util::url::bracketed;

/// The default federation port.
pub const FEDERATION_PORT: u16 = 8448;
const DEFAULT_WELL_KNOWN_TTL: Duration = Duration::from_secs(24 * 3600);
const MAX_WELL_KNOWN_TTL: Duration = Duration::from_secs(48 * 3600);
const FALLBACK_TTL: Duration = Duration::from_secs(3600);

/// Where to send federation requests for a server name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `https://host:port`, without a trailing slash.
    pub base_url: String,
    /// Addresses to dial for the URL's host and port instead of resolving it (from SRV).
    pub pin: Option<(String, u16, Vec<SocketAddr>)>,
}

/// A server name split into its host and optional port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerName {
    /// The host: a DNS name, an IPv4 literal, or an IPv6 literal without brackets.
    pub host: String,
    /// The explicit port.
    pub port: Option<u16>,
}

impl ServerName {
    /// Parses and checks a server name (`host`, `host:port`, `1.2.3.4:port`, `[::1]:port`).
    pub fn parse(name: &str) -> Option<ServerName> {
        if !is_server_name(name) {
            return None;
        }
        if let Some(rest) = name.strip_prefix('[') {
            let (ip, after) = rest.split_once(']')?;
            let port = after.strip_prefix(':').map(str::parse).transpose().ok()?;
            return Some(ServerName {
                host: ip.to_string(),
                port,
            });
        }
        match name.rsplit_once(':') {
            Some((h, p)) => Some(ServerName {
                host: h.to_ascii_lowercase(),
                port: Some(p.parse().ok()?),
            }),
            None => Some(ServerName {
                host: name.to_ascii_lowercase(),
                port: None,
            }),
        }
    }

    fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

/// `https://host:port` with brackets around IPv6 literals.
pub fn https_url(host: &str, port: u16) -> String {
    format!("https://{}:{port}", bracketed(host))
}

/// The steps of discovery that need the network, so the algorithm can be tested without it.
pub trait Lookups {
    /// `GET https://<host>/.well-known/matrix/server`: the delegated server name and how long
    /// to cache it, or `None` when there is no usable answer.
    fn well_known(&self, host: &str) -> Option<(String, Option<Duration>)>;
    /// SRV records of `name`, best first.
    fn srv(&self, name: &str) -> Vec<SrvRecord>;
    /// The checked addresses of an SRV target.
    fn addresses(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, HsError>;
}

/// Finds targets for server names, with a cache.
pub struct Discovery {
    cache: Mutex<HashMap<String, (Target, Instant)>>,
}

impl Default for Discovery {
    fn default() -> Self {
        Discovery {
            cache: Mutex::new(HashMap::new()),
        }
    }
}

impl Discovery {
    /// The target of `server_name`, from the cache or `lookups`.
    pub fn resolve(&self, server_name: &str, lookups: &dyn Lookups) -> Result<Target, HsError> {
        if let Some((target, expires)) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(server_name)
            && *expires > Instant::now()
        {
            return Ok(target.clone());
        }
        let name = ServerName::parse(server_name)
            .ok_or_else(|| HsError::InvalidServerName(server_name.to_string()))?;
        let (target, ttl) = discover(&name, lookups)?;
        if let Some(ttl) = ttl {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() > 10_000 {
                let now = Instant::now();
                cache.retain(|_, (_, expires)| *expires > now);
            }
            cache.insert(
                server_name.to_string(),
                (target.clone(), Instant::now() + ttl),
            );
        }
        Ok(target)
    }
}

/// The discovery algorithm; the TTL is `None` for results that need no caching.
fn discover(
    name: &ServerName,
    lookups: &dyn Lookups,
) -> Result<(Target, Option<Duration>), HsError> {
    if name.ip().is_some() || name.port.is_some() {
        let port = name.port.unwrap_or(FEDERATION_PORT);
        return Ok((
            Target {
                base_url: https_url(&name.host, port),
                pin: None,
            },
            None,
        ));
    }
    if let Some((delegated, ttl)) = lookups.well_known(&name.host)
        && let Some(delegated) = ServerName::parse(&delegated)
    {
        let ttl = ttl
            .unwrap_or(DEFAULT_WELL_KNOWN_TTL)
            .min(MAX_WELL_KNOWN_TTL);
        if delegated.ip().is_some() || delegated.port.is_some() {
            let port = delegated.port.unwrap_or(FEDERATION_PORT);
            return Ok((
                Target {
                    base_url: https_url(&delegated.host, port),
                    pin: None,
                },
                Some(ttl),
            ));
        }
        let (target, _) = via_srv_or_default(&delegated.host, lookups)?;
        return Ok((target, Some(ttl)));
    }
    let (target, ttl) = via_srv_or_default(&name.host, lookups)?;
    Ok((target, Some(ttl)))
}

fn via_srv_or_default(host: &str, lookups: &dyn Lookups) -> Result<(Target, Duration), HsError> {
    for service in ["_matrix-fed._tcp", "_matrix._tcp"] {
        let records = lookups.srv(&format!("{service}.{host}"));
        for record in &records {
            match lookups.addresses(&record.target, record.port) {
                Ok(addrs) if !addrs.is_empty() => {
                    let ttl = Duration::from_secs(u64::from(record.ttl)).min(FALLBACK_TTL);
                    let target = Target {
                        base_url: https_url(host, record.port),
                        pin: Some((host.to_string(), record.port, addrs)),
                    };
                    return Ok((target, ttl));
                }
                Ok(_) => {}
                Err(e @ HsError::Refused(_)) if records.len() == 1 => return Err(e),
                Err(e) => log::debug!(
                    "SRV target {}:{} of {host}: {e}",
                    record.target,
                    record.port
                ),
            }
        }
    }
    Ok((
        Target {
            base_url: https_url(host, FEDERATION_PORT),
            pin: None,
        },
        FALLBACK_TTL,
    ))
}

/// Reads the `max-age` of a `Cache-Control` header.
pub fn max_age(cache_control: &str) -> Option<Duration> {
    cache_control.split(',').find_map(|d| {
        let (k, v) = d.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| v.trim().parse().ok().map(Duration::from_secs))?
    })
}

/// Fetches a URL and returns its JSON body and `Cache-Control` header, or `None`.
pub type FetchJson<'f> = dyn Fn(&str) -> Option<(serde_json::Value, Option<String>)> + 'f;

/// Network lookups through the guard: well-known over the guarded agent, SRV over DNS.
pub struct NetLookups<'a> {
    /// Fetches a URL and returns its JSON body and Cache-Control header.
    pub fetch: &'a FetchJson<'a>,
    /// The SRV resolver.
    pub srv: &'a SrvResolver,
    /// The address guard.
    pub guard: &'a AddressGuard,
}

impl Lookups for NetLookups<'_> {
    fn well_known(&self, host: &str) -> Option<(String, Option<Duration>)> {
        let url = format!(
            "{}/.well-known/matrix/server",
            https_url(host, 443).trim_end_matches(":443")
        );
        let (body, cache_control) = (self.fetch)(&url)?;
        let delegated = body.get("m.server")?.as_str()?.to_string();
        Some((delegated, cache_control.as_deref().and_then(max_age)))
    }

    fn srv(&self, name: &str) -> Vec<SrvRecord> {
        self.srv.lookup(name).unwrap_or_else(|e| {
            log::debug!("SRV lookup of {name} failed: {e}");
            Vec::new()
        })
    }

    fn addresses(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, HsError> {
        self.guard.resolve(host, port).map_err(|e| match e {
            GuardError::Refused { .. } => HsError::Refused(e.to_string()),
            GuardError::NotFound { .. } => HsError::Unreachable(e.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Fake {
        well_known: Option<(String, Option<Duration>)>,
        srv: HashMap<String, Vec<SrvRecord>>,
    }

    impl Lookups for Fake {
        fn well_known(&self, _host: &str) -> Option<(String, Option<Duration>)> {
            self.well_known.clone()
        }
        fn srv(&self, name: &str) -> Vec<SrvRecord> {
            self.srv.get(name).cloned().unwrap_or_default()
        }
        fn addresses(&self, _host: &str, port: u16) -> Result<Vec<SocketAddr>, HsError> {
            Ok(vec![SocketAddr::from(([203, 0, 113, 7], port))])
        }
    }

    fn srv(target: &str, port: u16) -> Vec<SrvRecord> {
        vec![SrvRecord {
            target: target.into(),
            port,
            priority: 0,
            weight: 0,
            ttl: 300,
        }]
    }

    fn base(name: &str, fake: &Fake) -> String {
        discover(&ServerName::parse(name).unwrap(), fake)
            .unwrap()
            .0
            .base_url
    }

    #[test]
    fn literals_and_ports_need_no_lookup() {
        let fake = Fake::default();
        assert_eq!(base("1.2.3.4", &fake), "https://1.2.3.4:8448");
        assert_eq!(base("1.2.3.4:8008", &fake), "https://1.2.3.4:8008");
        assert_eq!(base("[::1]:9000", &fake), "https://[::1]:9000");
        assert_eq!(base("[2001:db8::1]", &fake), "https://[2001:db8::1]:8448");
        assert_eq!(base("Example.ORG:8443", &fake), "https://example.org:8443");
        assert_eq!(base("example.org", &fake), "https://example.org:8448");
    }

    #[test]
    fn well_known_delegation_is_followed() {
        let mut fake = Fake {
            well_known: Some(("matrix.example.org:443".into(), None)),
            ..Fake::default()
        };
        assert_eq!(base("example.org", &fake), "https://matrix.example.org:443");
        fake.well_known = Some(("matrix.example.org".into(), Some(Duration::from_secs(60))));
        fake.srv.insert(
            "_matrix-fed._tcp.matrix.example.org".into(),
            srv("fed.example.net", 8449),
        );
        let (target, ttl) = discover(&ServerName::parse("example.org").unwrap(), &fake).unwrap();
        assert_eq!(target.base_url, "https://matrix.example.org:8449");
        assert_eq!(
            target.pin.unwrap().2,
            vec![SocketAddr::from(([203, 0, 113, 7], 8449))]
        );
        assert_eq!(ttl, Some(Duration::from_secs(60)));
        fake.srv.clear();
        assert_eq!(
            base("example.org", &fake),
            "https://matrix.example.org:8448"
        );
        // An invalid delegation is ignored.
        fake.well_known = Some(("not a server name".into(), None));
        assert_eq!(base("example.org", &fake), "https://example.org:8448");
    }

    #[test]
    fn srv_then_the_deprecated_srv_then_8448() {
        let mut fake = Fake::default();
        fake.srv.insert(
            "_matrix._tcp.example.org".into(),
            srv("old.example.org", 8500),
        );
        assert_eq!(base("example.org", &fake), "https://example.org:8500");
        fake.srv.insert(
            "_matrix-fed._tcp.example.org".into(),
            srv("new.example.org", 8600),
        );
        assert_eq!(base("example.org", &fake), "https://example.org:8600");
    }

    #[test]
    fn bad_names_are_refused_and_max_age_is_read() {
        assert!(ServerName::parse("exa mple.org").is_none());
        assert!(ServerName::parse("example.org:0").is_none());
        assert_eq!(
            max_age("public, max-age=3600"),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(max_age("no-cache"), None);
    }
}
