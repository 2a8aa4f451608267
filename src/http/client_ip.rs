//! The client's IP address: the TCP peer, or, when the peer is a trusted reverse proxy
//! (`server.trustedProxies`), the last address in `X-Forwarded-For` that is not itself a trusted
//! proxy. Untrusted peers cannot choose the address we see by sending the header.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::cidr::{Cidr, canonical};

/// Resolves the client address of a request from `peer` with these headers.
pub fn resolve(peer: SocketAddr, headers: &hyper::HeaderMap, trusted: &[Cidr]) -> IpAddr {
    if trusted.is_empty() {
        return canonical(peer.ip());
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    from_parts(Some(peer.ip()), &forwarded, trusted)
}

fn from_parts(peer: Option<IpAddr>, forwarded: &[&str], trusted: &[Cidr]) -> IpAddr {
    // A Unix-socket peer has no address; it is local.
    let peer = canonical(peer.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = forwarded
        .iter()
        .flat_map(|h| h.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok().map(canonical))
        .collect();
    // Walk from the nearest hop back; the first untrusted one is the client.
    hops.iter()
        .rev()
        .copied()
        .find(|ip| !is_trusted(*ip))
        .or(hops.first().copied())
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_only_believed_from_trusted_proxies() {
        let trusted: Vec<Cidr> = vec!["127.0.0.1".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            from_parts(Some(ip("203.0.113.9")), &["1.2.3.4"], &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(
            from_parts(Some(ip("127.0.0.1")), &["1.2.3.4"], &trusted),
            ip("1.2.3.4")
        );
        assert_eq!(
            from_parts(
                Some(ip("127.0.0.1")),
                &["6.6.6.6, 1.2.3.4, 10.1.1.1"],
                &trusted
            ),
            ip("1.2.3.4")
        );
        assert_eq!(
            from_parts(Some(ip("127.0.0.1")), &[], &trusted),
            ip("127.0.0.1")
        );
        assert_eq!(
            from_parts(Some(ip("127.0.0.1")), &["garbage"], &trusted),
            ip("127.0.0.1")
        );
        assert_eq!(
            from_parts(Some(ip("127.0.0.1")), &["1.2.3.4"], &[]),
            ip("127.0.0.1")
        );
    }
}
