//! The outbound address guard: oxisd dials only public addresses, unless the operator
//! allow-lists a range.
//!
//! oxisd makes HTTPS requests to hosts that users name (Matrix server names, SRV targets).
//! Without a guard a user could point the server at `127.0.0.1`, at the cloud metadata
//! service on `169.254.169.254` or at any machine of the private network behind it. Every
//! such request therefore resolves its host through an [`AddressGuard`], which keeps only
//! the addresses [`is_public`] accepts or the operator's `outbound.allowedRanges` contain.
//!
//! Checking a name and then letting the HTTP client resolve it again would leave a gap: a
//! hostile DNS server can answer the check with a public address and the connection with a
//! private one (DNS rebinding). [`GuardedResolver`] closes it: it is the resolver of the
//! `ureq` agent, so the addresses the guard returns are exactly the addresses ureq dials.
//! Build the agent with it and without a proxy:
//!
//! ```ignore
//! let config = ureq::Agent::config_builder().proxy(None).build();
//! let agent = ureq::Agent::with_parts(
//!     config,
//!     ureq::unversioned::transport::DefaultConnector::new(),
//!     GuardedResolver::new(AddressGuard::new(allowed)),
//! );
//! ```
//!
//! ureq reads `ALL_PROXY`/`HTTPS_PROXY` from the environment by default. A proxy dials the
//! target itself, where the guard cannot see it, so [`GuardedResolver`] fails every request
//! of an agent that has a proxy configured instead of silently letting it through.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

use crate::cidr::{Cidr, same_prefix_v4, same_prefix_v6};

/// IPv4 ranges that are not public unicast: (network, prefix length).
const REFUSED_V4: &[([u8; 4], u8)] = &[
    ([0, 0, 0, 0], 8),       // "this network", includes the unspecified address
    ([10, 0, 0, 0], 8),      // private
    ([100, 64, 0, 0], 10),   // shared address space (carrier-grade NAT)
    ([127, 0, 0, 0], 8),     // loopback
    ([169, 254, 0, 0], 16),  // link-local (and cloud metadata services)
    ([172, 16, 0, 0], 12),   // private
    ([192, 0, 0, 0], 24),    // IETF protocol assignments
    ([192, 0, 2, 0], 24),    // documentation (TEST-NET-1)
    ([192, 168, 0, 0], 16),  // private
    ([198, 18, 0, 0], 15),   // benchmarking
    ([198, 51, 100, 0], 24), // documentation (TEST-NET-2)
    ([203, 0, 113, 0], 24),  // documentation (TEST-NET-3)
    ([224, 0, 0, 0], 4),     // multicast
    ([240, 0, 0, 0], 4),     // reserved, includes the broadcast address
];

/// IPv6 ranges that are not public unicast, whatever their content: (network, prefix length).
/// Everything outside 2000::/3 is refused as well, except the forms that embed IPv4.
const REFUSED_V6: &[(u128, u8)] = &[
    (0_u128, 128),                     // :: unspecified
    (1_u128, 128),                     // ::1 loopback
    (0x0100_u128 << 112, 64),          // 100::/64 discard-only
    (0x0064_ff9b_0001_u128 << 80, 48), // 64:ff9b:1::/48 local-use NAT64
    (0x2001_0002_u128 << 96, 48),      // 2001:2::/48 benchmarking
    (0x2001_0020_u128 << 96, 28),      // 2001:20::/28 ORCHIDv2 identifiers
    (0x2001_0db8_u128 << 96, 32),      // 2001:db8::/32 documentation
    (0x3fff_u128 << 112, 20),          // 3fff::/20 documentation
    (0xfc00_u128 << 112, 7),           // fc00::/7 unique local
    (0xfe80_u128 << 112, 10),          // fe80::/10 link-local
    (0xfec0_u128 << 112, 10),          // fec0::/10 site-local (deprecated)
    (0xff00_u128 << 112, 8),           // ff00::/8 multicast
];

/// True when `ip` is a public unicast address.
///
/// Refused IPv4: unspecified and 0/8, loopback 127/8, private (10/8, 172.16/12, 192.168/16),
/// shared CGNAT 100.64/10, link-local 169.254/16, 192.0.0/24, documentation (192.0.2/24,
/// 198.51.100/24, 203.0.113/24), benchmarking 198.18/15, multicast 224/4, reserved 240/4 and
/// broadcast.
///
/// Refused IPv6: `::`, `::1`, unique local fc00::/7, link-local fe80::/10, site-local
/// fec0::/10, multicast ff00::/8, discard 100::/64, documentation 2001:db8::/32 and 3fff::/20,
/// benchmarking 2001:2::/48, ORCHIDv2 2001:20::/28, local-use NAT64 64:ff9b:1::/48 (its
/// IPv4 position depends on a local prefix length, and the range is not globally reachable),
/// and anything outside global unicast 2000::/3.
///
/// Addresses that embed IPv4 are judged by the embedded IPv4 (all of them, when there are
/// two): IPv4-mapped ::ffff:0:0/96, IPv4-compatible ::/96, NAT64 64:ff9b::/96, 6to4 2002::/16
/// (bits 16..48) and Teredo 2001::/32 (server in bits 32..64, client in the last 32 bits
/// inverted).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let bits = u32::from(ip);
    !REFUSED_V4
        .iter()
        .any(|&(net, prefix)| same_prefix_v4(bits, u32::from_be_bytes(net), prefix))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let bits = u128::from(ip);
    if REFUSED_V6
        .iter()
        .any(|&(net, prefix)| same_prefix_v6(bits, net, prefix))
    {
        return false;
    }
    let embedded = embedded_v4(bits);
    if !embedded.is_empty() {
        return embedded.into_iter().all(is_public_v4);
    }
    // Global unicast: everything IANA has allocated to registries lies in 2000::/3.
    same_prefix_v6(bits, 0x2000_u128 << 112, 3)
}

/// The IPv4 addresses an IPv6 address carries, when it is one of the forms that carry one.
fn embedded_v4(bits: u128) -> Vec<Ipv4Addr> {
    // The truncating casts below keep the 32 bits wanted after the shift.
    let mapped = same_prefix_v6(bits, 0xffff_u128 << 32, 96); // ::ffff:a.b.c.d
    let compatible = same_prefix_v6(bits, 0, 96); // ::a.b.c.d (deprecated)
    let nat64 = same_prefix_v6(bits, 0x0064_ff9b_u128 << 96, 96); // 64:ff9b::a.b.c.d
    if mapped || compatible || nat64 {
        vec![Ipv4Addr::from(bits as u32)]
    } else if same_prefix_v6(bits, 0x2002_u128 << 112, 16) {
        // 6to4: 2002:aabb:ccdd::/48
        vec![Ipv4Addr::from((bits >> 80) as u32)]
    } else if same_prefix_v6(bits, 0x2001_0000_u128 << 96, 32) {
        // Teredo: 2001:0:server:flags:port:client, the client inverted.
        vec![
            Ipv4Addr::from((bits >> 64) as u32),
            Ipv4Addr::from(!(bits as u32)),
        ]
    } else {
        Vec::new()
    }
}

/// Decides which addresses oxisd may dial: the public ones, and those in the ranges the
/// operator allow-lists (`outbound.allowedRanges`).
#[derive(Clone, Debug, Default)]
pub struct AddressGuard {
    allowed: Vec<Cidr>,
}

impl AddressGuard {
    /// A guard that also permits the non-public addresses inside `allowed`. The ranges
    /// match the address itself (an IPv4-mapped IPv6 address as its IPv4 address), not the
    /// IPv4 embedded in NAT64, 6to4 or Teredo addresses.
    pub fn new(allowed: Vec<Cidr>) -> AddressGuard {
        AddressGuard { allowed }
    }

    /// True when `ip` is public ([`is_public`]) or inside an allow-listed range.
    pub fn permits(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.allowed.iter().any(|range| range.contains(ip))
    }

    /// Resolves `host` and `port` and returns only the permitted addresses, in the order
    /// the system resolver gave them.
    ///
    /// `host` is a DNS name, an IPv4 literal, or an IPv6 literal with or without brackets.
    /// Literals are not looked up; names go to the system resolver
    /// ([`std::net::ToSocketAddrs`], so `/etc/hosts` applies), and the call blocks until it
    /// answers. Names with characters other than ASCII letters, digits, `-`, `_` and `.`
    /// are refused without a lookup (internationalised names must come punycoded).
    ///
    /// Errors: [`GuardError::NotFound`] when the name does not resolve;
    /// [`GuardError::Refused`] when it resolves only to addresses the guard refuses (the
    /// error lists them, for the log).
    pub fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, GuardError> {
        let found = lookup(host, port)?;
        let mut permitted: Vec<SocketAddr> = Vec::new();
        let mut refused: Vec<IpAddr> = Vec::new();
        for addr in found {
            if self.permits(addr.ip()) {
                if !permitted.contains(&addr) {
                    permitted.push(addr);
                }
            } else if !refused.contains(&addr.ip()) {
                refused.push(addr.ip());
            }
        }
        if permitted.is_empty() {
            return Err(if refused.is_empty() {
                GuardError::NotFound {
                    host: host.to_owned(),
                    reason: "no addresses".to_owned(),
                }
            } else {
                GuardError::Refused {
                    host: host.to_owned(),
                    addresses: refused,
                }
            });
        }
        if !refused.is_empty() {
            log::debug!(
                "address guard: {host} also resolves to non-public {}, skipped",
                list(&refused)
            );
        }
        Ok(permitted)
    }
}

/// The addresses `host` stands for, unchecked.
fn lookup(host: &str, port: u16) -> Result<Vec<SocketAddr>, GuardError> {
    let not_found = |reason: &str| GuardError::NotFound {
        host: host.to_owned(),
        reason: reason.to_owned(),
    };
    if let Some(rest) = host.strip_prefix('[') {
        let ip = rest
            .strip_suffix(']')
            .and_then(|inner| inner.parse::<Ipv6Addr>().ok())
            .ok_or_else(|| not_found("not an IPv6 address in brackets"))?;
        return Ok(vec![SocketAddr::new(IpAddr::V6(ip), port)]);
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    if host.is_empty()
        || host.len() > 254
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(not_found("not a valid host name"));
    }
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| not_found(&e.to_string()))?;
    Ok(addrs.collect())
}

fn list(addresses: &[IpAddr]) -> String {
    addresses
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why the guard gives no address to dial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuardError {
    /// The host does not resolve (or is not a valid host name).
    NotFound {
        /// The host as asked for.
        host: String,
        /// What the resolver said.
        reason: String,
    },
    /// The host resolves, but only to addresses the guard refuses.
    Refused {
        /// The host as asked for.
        host: String,
        /// The refused addresses, for the log.
        addresses: Vec<IpAddr>,
    },
}

impl GuardError {
    /// The guard's error inside an error of a ureq agent built with [`GuardedResolver`], if
    /// that is why the request failed. (A request refused because the agent has a proxy
    /// configured is an [`ureq::Error::Io`] of kind `PermissionDenied` whose message starts
    /// with "address guard", without a `GuardError` inside.)
    pub fn from_ureq(error: &ureq::Error) -> Option<&GuardError> {
        match error {
            ureq::Error::Io(e) => e.get_ref()?.downcast_ref::<GuardError>(),
            _ => None,
        }
    }
}

impl fmt::Display for GuardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardError::NotFound { host, reason } => {
                write!(f, "cannot resolve {host}: {reason}")
            }
            GuardError::Refused { host, addresses } => write!(
                f,
                "address guard: {host} resolves only to non-public addresses ({}), which oxisd \
                 does not dial; to allow them, add their ranges to outbound.allowedRanges",
                list(addresses)
            ),
        }
    }
}

impl std::error::Error for GuardError {}

impl From<GuardError> for ureq::Error {
    /// An [`ureq::Error::Io`] carrying the guard error, so [`GuardError::from_ureq`] finds it.
    fn from(error: GuardError) -> ureq::Error {
        let kind = match error {
            GuardError::NotFound { .. } => io::ErrorKind::NotFound,
            GuardError::Refused { .. } => io::ErrorKind::PermissionDenied,
        };
        ureq::Error::Io(io::Error::new(kind, error))
    }
}

/// A ureq resolver that resolves through the guard, so ureq dials only checked addresses.
///
/// Refusals surface as [`ureq::Error::Io`] carrying the [`GuardError`] (see
/// [`GuardError::from_ureq`]); its display reads "io: address guard: ...". The agent's
/// `ip_family` setting is honoured (no address left: [`ureq::Error::HostNotFound`]).
///
/// The agent must have no proxy (`.proxy(None)` on its config builder): a proxy dials the
/// target itself, unchecked, so with one configured every request fails with an
/// `io::ErrorKind::PermissionDenied` error saying so.
///
/// Timeout: IP literals need no lookup. A name with a resolve timeout in force (ureq's
/// `timeout_resolve` or `timeout_global`) is looked up on a helper thread, and the request
/// fails with [`ureq::Error::Timeout`] when the timeout passes first. The system resolver
/// cannot be interrupted, so that thread runs on until it answers (the answer is dropped).
/// Without a timeout the lookup runs on the calling thread.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    guard: AddressGuard,
}

impl GuardedResolver {
    /// A resolver that returns only the addresses `guard` permits.
    pub fn new(guard: AddressGuard) -> GuardedResolver {
        GuardedResolver { guard }
    }
}

impl Resolver for GuardedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let host = uri
            .host()
            .ok_or_else(|| ureq::Error::BadUri(format!("{uri}: no host")))?;
        if config.proxy().is_some() {
            return Err(ureq::Error::Io(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "address guard: refusing to reach {host} through a proxy, since the guard \
                     cannot check the address the proxy dials; build the agent with proxy(None)"
                ),
            )));
        }
        let port = match (uri.port_u16(), uri.scheme_str()) {
            (Some(port), _) => port,
            (None, Some("https")) => 443,
            (None, Some("http")) => 80,
            _ => return Err(ureq::Error::BadUri(format!("{uri}: no port"))),
        };

        let literal = host.starts_with('[') || host.parse::<IpAddr>().is_ok();
        let permitted = if literal || timeout.after.is_not_happening() {
            self.guard.resolve(host, port)?
        } else {
            resolve_within(&self.guard, host, port, *timeout.after)
                .ok_or(ureq::Error::Timeout(timeout.reason))??
        };

        let mut result = self.empty();
        for addr in config.ip_family().keep_wanted(permitted.into_iter()) {
            if result.try_push(addr).is_err() {
                break;
            }
        }
        log::trace!("address guard: {host} -> {:?}", &result[..]);
        if result.is_empty() {
            Err(ureq::Error::HostNotFound)
        } else {
            Ok(result)
        }
    }
}

/// Resolves on a helper thread; `None` when `limit` passes first.
fn resolve_within(
    guard: &AddressGuard,
    host: &str,
    port: u16,
    limit: Duration,
) -> Option<Result<Vec<SocketAddr>, ureq::Error>> {
    let (tx, rx) = mpsc::sync_channel(1);
    let (guard, name) = (guard.clone(), host.to_owned());
    let spawned = thread::Builder::new()
        .name("guard-resolve".into())
        .spawn(move || {
            // The receiver is gone when the caller gave up waiting.
            let _ = tx.send(guard.resolve(&name, port));
        });
    if let Err(e) = spawned {
        return Some(Err(ureq::Error::Io(e)));
    }
    match rx.recv_timeout(limit) {
        Ok(result) => Some(result.map_err(ureq::Error::from)),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            log::debug!("address guard: resolving {host} timed out after {limit:?}");
            None
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => Some(Err(ureq::Error::Io(io::Error::other(
            "address guard: the resolver thread ended without an answer",
        )))),
    }
}

#[cfg(test)]
mod tests;
