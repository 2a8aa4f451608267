//! Which relayed connection belongs to which HTTPS client: the plain listener sees every relayed
//! connection as coming from our own loopback socket, and asks here for the real address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

/// Local addresses of relay connections -> the HTTPS client behind each.
#[derive(Default)]
pub struct TlsPeers {
    map: Mutex<HashMap<SocketAddr, SocketAddr>>,
}

impl TlsPeers {
    /// Records that the relay connection from `relay` carries `client`'s requests.
    pub fn insert(&self, relay: SocketAddr, client: SocketAddr) {
        self.lock().insert(relay, client);
    }

    /// Forgets a relay connection.
    pub fn remove(&self, relay: &SocketAddr) {
        self.lock().remove(relay);
    }

    /// The HTTPS client behind the connection from `peer`, if it is a relay connection.
    pub fn client_of(&self, peer: &SocketAddr) -> Option<SocketAddr> {
        self.lock().get(peer).copied()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, SocketAddr>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}
