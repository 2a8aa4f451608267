//! Discovery: supported versions, the v1/v2 status checks, and a health check for monitors.

use serde::Serialize;

use super::Empty;
use crate::app::App;
use crate::error::Result;
use crate::http::{Reply, Req};

/// The spec versions this server conforms to.
pub const SUPPORTED_VERSIONS: &[&str] = &[
    "r0.3.0", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10",
    "v1.11", "v1.12", "v1.13", "v1.14", "v1.15", "v1.16", "v1.17", "v1.18", "v1.19",
];

/// The answer of `versions`.
#[derive(Serialize)]
struct Versions {
    versions: &'static [&'static str],
}

/// The answer of `/health`.
#[derive(Serialize)]
struct Health<'a> {
    status: &'static str,
    tasks: &'a [&'static str],
    uptime_seconds: u64,
    version: &'static str,
}

/// `GET /_matrix/identity/versions`
/// ([spec](https://spec.matrix.org/v1.19/identity-service-api/#get_matrixidentityversions))
///
/// - no auth; `{"versions": [...]}`.
pub fn get_supported_versions(_app: &App, _req: &Req) -> Result<Reply> {
    Ok(Reply::ok(Versions {
        versions: SUPPORTED_VERSIONS,
    }))
}

/// `GET /` on the v2 and v1 mounts: the status check
/// ([spec](https://spec.matrix.org/v1.19/identity-service-api/#get_matrixidentityv2)).
///
/// - no auth; `{}` means an identity server is ready at this base URL.
pub fn get_server_status(_app: &App, _req: &Req) -> Result<Reply> {
    Ok(Reply::ok(Empty {}))
}

/// `GET /health`: for monitors and service managers.
///
/// - no auth; 200 `{"status": "ok", "version", "uptime_seconds", "tasks"}` (`tasks`: the
///   names of the background tasks watched) when the store answers and every background task
///   ([`crate::tasks`]) completed an iteration within its expected interval;
/// - 500 `M_UNKNOWN` when the store does not answer;
/// - 503 `M_UNKNOWN` with `late_tasks` (the names of the late tasks) when a background task is
///   late: it panics in every iteration, or hangs.
pub fn get_health(app: &App, _req: &Req) -> Result<Reply> {
    let healthy = app.health.check()?;
    Ok(Reply::ok(Health {
        status: "ok",
        tasks: &healthy.tasks,
        uptime_seconds: healthy.uptime_seconds,
        version: env!("CARGO_PKG_VERSION"),
    }))
}
