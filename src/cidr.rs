//! IP address ranges in CIDR notation (`10.0.0.0/8`, `::1/128`, or a bare address), and the
//! prefix comparison behind them, used for trusted reverse proxies, connection caps and the
//! outbound address guard.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An address range: a network address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// True when `ip` lies inside this range. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`)
    /// are compared as the IPv4 address they carry.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                same_prefix_v4(u32::from(net), u32::from(ip), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix_v6(u128::from(net), u128::from(ip), self.prefix)
            }
            _ => false,
        }
    }
}

/// The address as compared: IPv4-mapped IPv6 becomes IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// True when the first `prefix` bits of two IPv4 addresses (as integers) are the same: every
/// pair shares a prefix of 0, and a prefix of 32 or more compares the whole address.
pub fn same_prefix_v4(a: u32, b: u32, prefix: u8) -> bool {
    let mask = u32::MAX
        .checked_shl(32_u32.saturating_sub(u32::from(prefix)))
        .unwrap_or(0);
    a & mask == b & mask
}

/// True when the first `prefix` bits of two IPv6 addresses (as integers) are the same: every
/// pair shares a prefix of 0, and a prefix of 128 or more compares the whole address.
pub fn same_prefix_v6(a: u128, b: u128, prefix: u8) -> bool {
    let mask = u128::MAX
        .checked_shl(128_u32.saturating_sub(u32::from(prefix)))
        .unwrap_or(0);
    a & mask == b & mask
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network = canonical(
            addr.trim()
                .parse::<IpAddr>()
                .map_err(|_| format!("'{s}' is not an IP address or CIDR range"))?,
        );
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("'{s}' has an invalid prefix length (0 to {max})"))?,
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_contain_what_they_should() {
        let lan: Cidr = "192.168.0.0/16".parse().unwrap();
        assert!(lan.contains(ip("192.168.4.2")));
        assert!(!lan.contains(ip("192.169.0.1")));
        assert!(lan.contains(ip("::ffff:192.168.1.1")));
        let odd: Cidr = "10.0.0.0/13".parse().unwrap();
        assert!(odd.contains(ip("10.7.255.255")));
        assert!(!odd.contains(ip("10.8.0.0")));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6: Cidr = "fc00::/7".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")) && !all.contains(ip("::1")));
    }

    #[test]
    fn prefixes_compare_leading_bits() {
        assert!(same_prefix_v4(0x0a00_0000, 0xc0a8_0101, 0));
        assert!(same_prefix_v4(0x0a07_ffff, 0x0a00_0000, 13));
        assert!(!same_prefix_v4(0x0a08_0000, 0x0a00_0000, 13));
        assert!(same_prefix_v4(1, 1, 40) && !same_prefix_v4(1, 2, 32));
        assert!(same_prefix_v6(1, u128::MAX, 0));
        assert!(same_prefix_v6(0xfd12 << 112, 0xfc00 << 112, 7));
        assert!(!same_prefix_v6(0xfe80 << 112, 0xfc00 << 112, 7));
        assert!(!same_prefix_v6(1, 0, 128) && same_prefix_v6(1, 1, 200));
    }

    #[test]
    fn bad_ranges_are_rejected() {
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("example.com".parse::<Cidr>().is_err());
        assert!("::/129".parse::<Cidr>().is_err());
    }
}
