//! The listener of the homeserver's password checks (`auth.*`): its own address (loopback by
//! default), its own small thread pool, and one endpoint, `check_credentials`, behind
//! `auth.sharedSecret` when one is set. The public listeners serve it too only with
//! `auth.public`.

use std::sync::Arc;

use super::Method::Post;
use super::auth::Auth;
use super::paths;
use super::routes::{Mount, Route, row};
use super::server;
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
pub type AuthListener = server::InternalListener;

/// Starts the `auth` listener when `auth.enabled`.
pub fn start(app: Arc<App>) -> Result<Option<AuthListener>, StartError> {
    let cfg = &app.config.auth;
    if !cfg.enabled {
        return Ok(None);
    }
    let internal = server::Internal {
        name: "auth",
        hostname: cfg.hostname.clone(),
        port: cfg.port,
        keys: "auth.hostname, auth.port",
        routes: AUTH_ROUTES,
        gate: server::Gate::AuthSecret,
        workers: WORKERS,
        max_connections: MAX_CONNECTIONS,
    };
    let listener = internal.start(app)?;
    log::info!(
        "password checks (auth.*) at http://{}",
        listener.local_addr()
    );
    Ok(Some(listener))
}
