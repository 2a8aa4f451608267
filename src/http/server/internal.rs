//! A listener of the operator's side (the admin API, the homeserver's password checks): one
//! plain-HTTP address, a small thread pool and connection cap of its own so that it stays
//! usable when the public listeners are busy, the public listeners' limits and timeouts, and
//! a gate every request passes before it is routed.

use std::net::SocketAddr;
use std::sync::Arc;

use super::{Admission, Gate, Limits, Listener, Running, Site, bind, spawn};
use crate::app::App;
use crate::error::StartError;
use crate::http::routes::Route;

/// What an internal listener serves and where.
pub struct Internal {
    /// Its name, for threads and logs ("admin", "auth").
    pub name: &'static str,
    /// The address to listen on.
    pub hostname: String,
    /// The port (0 picks a free one).
    pub port: u16,
    /// The config keys of the address, for errors.
    pub keys: &'static str,
    /// Its routing table.
    pub routes: &'static [Route],
    /// What every request must carry.
    pub gate: Gate,
    /// Handler threads.
    pub workers: usize,
    /// Open connections at most.
    pub max_connections: usize,
}

/// A running internal listener.
pub struct InternalListener {
    addr: SocketAddr,
    server: Running,
}

impl InternalListener {
    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops it, letting the requests in flight finish.
    pub fn shutdown(self) {
        self.server.shutdown();
    }
}

impl Internal {
    /// Binds and starts it for `app`.
    pub fn start(self, app: Arc<App>) -> Result<InternalListener, StartError> {
        let tcp = bind(&self.hostname, self.port, self.keys)?;
        let addr = tcp.local_addr().map_err(StartError::other)?;
        let listener = Listener {
            tcp,
            tls: None,
            admission: Admission::new(self.max_connections, self.max_connections, Vec::new()),
            cap: None,
            name: self.name,
        };
        let limits = Limits::of(&app.config.server);
        let site = Arc::new(Site {
            app,
            routes: self.routes,
            public: false,
            gate: self.gate,
        });
        let server = spawn(self.name, self.workers, site, limits, vec![listener])?;
        Ok(InternalListener { addr, server })
    }
}
