//! The operator's listener (`admin.*`): the admin API that `oxisd admin ...` talks to, and
//! Prometheus metrics at `/metrics`. It listens on loopback only, answers only requests with
//! the admin token, and runs on its own small thread pool so that it stays usable when the
//! public listener is busy. fjall lets one process open the store, so administration goes
//! through the running server.

mod answers;
pub mod client;
mod handlers;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::app::App;
use crate::error::StartError;
use crate::http::server::{self, Admission, Limits, Listener, Site};

pub use routes::ADMIN_ROUTES;

/// Where the admin API lives.
pub const PREFIX: &str = "/_oxisd/admin/v1";
/// Handler threads: the admin API is for one operator at a time.
const WORKERS: usize = 2;
/// Open connections at most (the CLI uses one at a time; Prometheus another).
const MAX_CONNECTIONS: usize = 64;

/// The running admin listener.
pub struct AdminListener {
    addr: SocketAddr,
    server: server::Running,
}

impl AdminListener {
    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops it, letting the requests in flight finish.
    pub fn shutdown(self) {
        self.server.shutdown();
    }
}

/// Starts the admin listener when `admin.enabled`, on the same transport as the public one
/// (same limits and timeouts) but its own runtime and threads, so it stays usable when the
/// public listener is busy.
pub fn start(app: Arc<App>) -> Result<Option<AdminListener>, StartError> {
    let cfg = &app.config.admin;
    if !cfg.enabled {
        return Ok(None);
    }
    let tcp = server::bind(&cfg.hostname, cfg.port, "admin.hostname, admin.port")?;
    let addr = tcp.local_addr().map_err(StartError::other)?;
    let listener = Listener {
        tcp,
        tls: None,
        admission: Admission::new(MAX_CONNECTIONS, MAX_CONNECTIONS, Vec::new()),
        cap: None,
        name: "admin",
    };
    let site = Arc::new(Site {
        app: app.clone(),
        routes: ADMIN_ROUTES,
        public: false,
        gate: server::Gate::AdminToken,
    });
    let limits = Limits::of(&app.config.server);
    let server = server::spawn("admin", WORKERS, site, limits, vec![listener])?;
    Ok(Some(AdminListener { addr, server }))
}
