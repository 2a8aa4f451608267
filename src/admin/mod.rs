//! The operator's listener (`admin.*`): the admin API that `oxisd admin ...` talks to, and
//! Prometheus metrics at `/metrics`. It listens on loopback only, answers only requests with
//! the admin token, and runs on its own small thread pool so that it stays usable when the
//! public listener is busy. fjall lets one process open the store, so administration goes
//! through the running server.

mod answers;
pub mod client;
mod handlers;
mod routes;

use std::sync::Arc;

use crate::app::App;
use crate::error::StartError;
use crate::http::server;

pub use routes::ADMIN_ROUTES;

/// Where the admin API lives.
pub const PREFIX: &str = "/_oxisd/admin/v1";
/// Handler threads: the admin API is for one operator at a time.
const WORKERS: usize = 2;
/// Open connections at most (the CLI uses one at a time; Prometheus another).
const MAX_CONNECTIONS: usize = 64;

/// The running admin listener.
pub type AdminListener = server::InternalListener;

/// Starts the admin listener when `admin.enabled`, on the same transport as the public one
/// (same limits and timeouts) but its own runtime and threads, so it stays usable when the
/// public listener is busy.
pub fn start(app: Arc<App>) -> Result<Option<AdminListener>, StartError> {
    let cfg = &app.config.admin;
    if !cfg.enabled {
        return Ok(None);
    }
    let internal = server::Internal {
        name: "admin",
        hostname: cfg.hostname.clone(),
        port: cfg.port,
        keys: "admin.hostname, admin.port",
        routes: ADMIN_ROUTES,
        gate: server::Gate::AdminToken,
        workers: WORKERS,
        max_connections: MAX_CONNECTIONS,
    };
    internal.start(app).map(Some)
}
