//! The nameservers listed in /etc/resolv.conf.

use std::net::{IpAddr, SocketAddr, SocketAddrV6};

/// The nameservers of a resolv.conf text: "nameserver" lines with an IPv4 or IPv6 address
/// (an IPv6 zone only when numeric, `fe80::1%2`), port 53, in file order.
pub(crate) fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    let mut found = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(word) = words.next() else { continue };
        let (addr, zone) = match word.split_once('%') {
            Some((addr, zone)) => (addr, Some(zone)),
            None => (word, None),
        };
        let server = match (addr.parse::<IpAddr>(), zone) {
            (Ok(ip), None) => SocketAddr::new(ip, 53),
            (Ok(IpAddr::V6(ip)), Some(zone)) => match zone.parse::<u32>() {
                Ok(scope) => SocketAddr::V6(SocketAddrV6::new(ip, 53, 0, scope)),
                Err(_) => {
                    log::debug!("resolv.conf: skipping {word}: only numeric zones are supported");
                    continue;
                }
            },
            _ => {
                log::debug!("resolv.conf: skipping nameserver {word:?}");
                continue;
            }
        };
        if !found.contains(&server) {
            found.push(server);
        }
    }
    found
}
