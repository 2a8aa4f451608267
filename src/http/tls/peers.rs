//! Which relayed connection belongs to which HTTPS client, and where its requests stand: the
//! plain listener sees every relayed connection as coming from our own loopback socket, asks
//! here for the real address, and reports when a request starts and ends, so the relay can
//! tell header bytes (sent while no request is in progress) from body bytes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

/// One relay connection.
#[derive(Debug, Clone, Copy)]
struct Relay {
    client: SocketAddr,
    started: u64,
    in_flight: u32,
}

/// Local addresses of relay connections -> the HTTPS client behind each.
#[derive(Default)]
pub struct TlsPeers {
    map: Mutex<HashMap<SocketAddr, Relay>>,
}

impl TlsPeers {
    /// Records that the relay connection from `relay` carries `client`'s requests.
    pub fn insert(&self, relay: SocketAddr, client: SocketAddr) {
        self.lock().insert(
            relay,
            Relay {
                client,
                started: 0,
                in_flight: 0,
            },
        );
    }

    /// Forgets a relay connection.
    pub fn remove(&self, relay: &SocketAddr) {
        self.lock().remove(relay);
    }

    /// The HTTPS client behind the connection from `peer`, if it is a relay connection.
    pub fn client_of(&self, peer: &SocketAddr) -> Option<SocketAddr> {
        self.lock().get(peer).map(|r| r.client)
    }

    /// A worker parsed a request's head from `peer` and works on it.
    pub fn request_started(&self, peer: &SocketAddr) {
        if let Some(r) = self.lock().get_mut(peer) {
            r.started += 1;
            r.in_flight += 1;
        }
    }

    /// A worker answered a request from `peer`.
    pub fn request_finished(&self, peer: &SocketAddr) {
        if let Some(r) = self.lock().get_mut(peer) {
            r.in_flight = r.in_flight.saturating_sub(1);
        }
    }

    /// Requests started so far on the relay connection, and whether one is in progress.
    pub fn progress(&self, relay: &SocketAddr) -> (u64, bool) {
        self.lock()
            .get(relay)
            .map_or((0, false), |r| (r.started, r.in_flight > 0))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Relay>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}
