//! Discovery: supported versions, the v1/v2 status checks, and a health check for monitors.

use serde_json::json;

use crate::app::App;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{Reply, Req};

/// The spec versions this server conforms to.
pub const SUPPORTED_VERSIONS: &[&str] = &[
    "r0.3.0", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10",
    "v1.11", "v1.12", "v1.13", "v1.14", "v1.15", "v1.16", "v1.17", "v1.18", "v1.19",
];

/// `GET /_matrix/identity/versions`
/// ([spec](https://spec.matrix.org/v1.19/identity-service-api/#get_matrixidentityversions))
///
/// - no auth; `{"versions": [...]}`.
pub fn get_supported_versions(_app: &App, _req: &Req) -> Result<Reply> {
    Ok(Reply::ok(json!({ "versions": SUPPORTED_VERSIONS })))
}

/// `GET /` on the v2 and v1 mounts: the status check
/// ([spec](https://spec.matrix.org/v1.19/identity-service-api/#get_matrixidentityv2)).
///
/// - no auth; `{}` means an identity server is ready at this base URL.
pub fn get_server_status(_app: &App, _req: &Req) -> Result<Reply> {
    Ok(Reply::ok(json!({})))
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
    app.store.schema_version()?;
    let late = app.tasks.late();
    if !late.is_empty() {
        return Err(Error::new(
            ErrorKind::Unavailable,
            format!(
                "Background tasks have not completed their work in time: {}",
                late.join(", ")
            ),
        )
        .with_extra("late_tasks", late));
    }
    Ok(Reply::ok(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": app.started.elapsed().as_secs(),
        "tasks": app.tasks.names(),
    })))
}
