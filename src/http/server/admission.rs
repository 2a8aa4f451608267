//! Which connections a listener takes: at most `server.maxConnections` open in total and
//! `server.maxConnectionsPerAddress` from one client address (an IPv6 /64 counts as one
//! address, since one subscriber holds a whole /64), counted from `accept()` on, so a TLS
//! connection that never finishes its handshake counts too. Trusted reverse proxies are exempt
//! from the per-address cap (every proxied client arrives from them). A [`Ticket`] holds a
//! connection's place and gives it back when dropped, panics included.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::cidr::{Cidr, canonical};

/// The caps of one group of listeners.
pub struct Admission {
    total_max: usize,
    per_address_max: usize,
    exempt: Vec<Cidr>,
    open: AtomicUsize,
    per_address: Mutex<HashMap<AddressKey, usize>>,
    /// Told whenever a connection closes (shutdown waits for the last one).
    closed: Notify,
}

/// The per-address counting key: an IPv4 address, or the /64 of an IPv6 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum AddressKey {
    V4(u32),
    V6(u64),
}

impl AddressKey {
    fn of(ip: IpAddr) -> AddressKey {
        match canonical(ip) {
            IpAddr::V4(v4) => AddressKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => AddressKey::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `server.maxConnections` (or the listener's own cap) connections are open.
    Total,
    /// The client's address has `server.maxConnectionsPerAddress` connections open.
    PerAddress,
}

/// A listener's own cap inside its group (`server.tls.maxConnections`).
pub struct Cap {
    max: usize,
    open: AtomicUsize,
}

impl Cap {
    /// A cap of `max` open connections.
    pub fn new(max: usize) -> Arc<Cap> {
        Arc::new(Cap {
            max,
            open: AtomicUsize::new(0),
        })
    }
}

/// An admitted connection's place.
pub struct Ticket {
    admission: Arc<Admission>,
    key: Option<AddressKey>,
    cap: Option<Arc<Cap>>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(cap) = &self.cap {
            cap.open.fetch_sub(1, Ordering::SeqCst);
        }
        if let Some(key) = self.key {
            let mut map = self.admission.lock();
            if let Some(n) = map.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&key);
                }
            }
        }
        self.admission.open.fetch_sub(1, Ordering::SeqCst);
        self.admission.closed.notify_waiters();
    }
}

impl Admission {
    /// Caps of `total` connections and `per_address` from one address; `exempt` addresses
    /// (trusted proxies) only count towards the total.
    pub fn new(total: usize, per_address: usize, exempt: Vec<Cidr>) -> Arc<Admission> {
        Arc::new(Admission {
            total_max: total,
            per_address_max: per_address,
            exempt,
            open: AtomicUsize::new(0),
            per_address: Mutex::new(HashMap::new()),
            closed: Notify::new(),
        })
    }

    /// Takes a place for a connection from `ip` (and one under `cap`), or says why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, cap: Option<&Arc<Cap>>) -> Result<Ticket, Refusal> {
        if self.open.fetch_add(1, Ordering::SeqCst) >= self.total_max {
            self.open.fetch_sub(1, Ordering::SeqCst);
            return Err(Refusal::Total);
        }
        // From here on, the ticket gives back what it holds when dropped.
        let mut ticket = Ticket {
            admission: self.clone(),
            key: None,
            cap: None,
        };
        if let Some(cap) = cap {
            if cap.open.fetch_add(1, Ordering::SeqCst) >= cap.max {
                cap.open.fetch_sub(1, Ordering::SeqCst);
                return Err(Refusal::Total);
            }
            ticket.cap = Some(cap.clone());
        }
        let ip = canonical(ip);
        if !self.exempt.iter().any(|c| c.contains(ip)) {
            let key = AddressKey::of(ip);
            let mut map = self.lock();
            let n = map.entry(key).or_insert(0);
            if *n >= self.per_address_max {
                return Err(Refusal::PerAddress);
            }
            *n += 1;
            ticket.key = Some(key);
        }
        Ok(ticket)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Waits until no connection is open.
    pub async fn drained(&self) {
        loop {
            let closed = self.closed.notified();
            if self.open() == 0 {
                return;
            }
            closed.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AddressKey, usize>> {
        self.per_address.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn caps_total_and_per_address_and_gives_places_back() {
        let a = Admission::new(3, 2, vec!["10.0.0.1".parse().unwrap()]);
        let t1 = a.admit(ip("192.0.2.1"), None).unwrap();
        let _t2 = a.admit(ip("192.0.2.1"), None).unwrap();
        assert_eq!(
            a.admit(ip("192.0.2.1"), None).err(),
            Some(Refusal::PerAddress)
        );
        // The refused attempt gave its place in the total back.
        let _t3 = a.admit(ip("192.0.2.2"), None).unwrap();
        assert_eq!(a.admit(ip("192.0.2.3"), None).err(), Some(Refusal::Total));
        drop(t1);
        assert_eq!(a.open(), 2);
        let _t4 = a.admit(ip("192.0.2.1"), None).unwrap();
    }

    #[test]
    fn an_ipv6_64_is_one_address_and_proxies_are_exempt() {
        let a = Admission::new(100, 1, vec!["10.0.0.1".parse().unwrap()]);
        let _t = a.admit(ip("2001:db8::1"), None).unwrap();
        assert!(a.admit(ip("2001:db8::ffff"), None).is_err());
        assert!(a.admit(ip("2001:db8:0:1::1"), None).is_ok());
        let _p: Vec<Ticket> = (0..5)
            .map(|_| a.admit(ip("10.0.0.1"), None).unwrap())
            .collect();
        // An IPv4-mapped IPv6 peer counts as its IPv4 address.
        let _v4 = a.admit(ip("192.0.2.9"), None).unwrap();
        assert!(a.admit(ip("::ffff:192.0.2.9"), None).is_err());
    }

    #[test]
    fn a_listener_cap_holds_inside_the_group() {
        let a = Admission::new(100, 100, vec![]);
        let cap = Cap::new(1);
        let t = a.admit(ip("192.0.2.1"), Some(&cap)).unwrap();
        assert_eq!(
            a.admit(ip("192.0.2.2"), Some(&cap)).err(),
            Some(Refusal::Total)
        );
        assert_eq!(a.open(), 1);
        drop(t);
        assert!(a.admit(ip("192.0.2.2"), Some(&cap)).is_ok());
    }
}
