//! The listener of the homeserver's password checks (`auth.*`): its own address (loopback by
//! default), its own small thread pool, and one endpoint, `check_credentials`, behind
//! `auth.sharedSecret` when one is set. The public listeners serve it too only with
//! `auth.public`.

use std::net::SocketAddr;
use std::sync::Arc;

use super::Method::Post;
use super::auth::Auth;
use super::paths;
use super::routes::{Mount, Route, row};
use super::server::{self, Admission, Gate, Limits, Listener, Site};
use crate::api;
use crate::app::App;
use crate::error::StartError;

/// Handler threads: each check waits on the directory for a few milliseconds.
const WORKERS: usize = 2;
/// Open connections at most (a homeserver keeps a few).
const MAX_CONNECTIONS: usize = 64;

/// The endpoints of the `auth` listener.
#[rustfmt::skip]
pub static AUTH_ROUTES: &[Route] = &[
    row(Post, paths::CHECK_CREDENTIALS, &[Mount::Root], Auth::AuthSecret, api::check_credentials::check_credentials),
];

/// The running `auth` listener.
pub struct AuthListener {
    addr: SocketAddr,
    server: server::Running,
}

impl AuthListener {
    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops it, letting the requests in flight finish.
    pub fn shutdown(self) {
        self.server.shutdown();
    }
}

/// Starts the `auth` listener when `auth.enabled`.
pub fn start(app: Arc<App>) -> Result<Option<AuthListener>, StartError> {
    let cfg = &app.config.auth;
    if !cfg.enabled {
        return Ok(None);
    }
    let tcp = server::bind(&cfg.hostname, cfg.port, "auth.hostname, auth.port")?;
    let addr = tcp.local_addr().map_err(StartError::other)?;
    let listener = Listener {
        tcp,
        tls: None,
        admission: Admission::new(MAX_CONNECTIONS, MAX_CONNECTIONS, Vec::new()),
        cap: None,
        name: "auth",
    };
    let site = Arc::new(Site {
        app: app.clone(),
        routes: AUTH_ROUTES,
        public: false,
        gate: Gate::AuthSecret,
    });
    let limits = Limits::of(&app.config.server);
    let server = server::spawn("auth", WORKERS, site, limits, vec![listener])?;
    log::info!("password checks (auth.*) at http://{addr}");
    Ok(Some(AuthListener { addr, server }))
}
