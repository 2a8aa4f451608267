//! The admin API's endpoints (below `/_oxisd/admin/v1`), and `/metrics`: one handler per
//! endpoint, listed in [`super::routes::ADMIN_ROUTES`].

use serde::Deserialize;

use super::answers::{self, Erased};
use crate::app::App;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{Reply, Req};
use crate::ids::UserId;
use crate::metrics::METRICS;
use crate::service::bindings::normalise_threepid;
use crate::store::bindings::BindingRecord;
use crate::threepid::Medium;

const DEFAULT_LIMIT: usize = 100;

/// `GET /metrics`: Prometheus text.
pub fn get_metrics(app: &App, _req: &Req) -> Result<Reply> {
    Ok(Reply::Static {
        content_type: "text/plain; version=0.0.4".into(),
        body: metrics(app)?.into_bytes(),
        cache_control: "no-store",
    })
}

/// `GET /stats`.
pub fn get_stats(app: &App, _req: &Req) -> Result<Reply> {
    let stats = app.admin.stats()?;
    Ok(Reply::ok(answers::StatsAnswer::from(&stats)))
}

/// `GET /bindings`: a page of every binding.
pub fn list_bindings(app: &App, req: &Req) -> Result<Reply> {
    let after = match (req.query("after_medium"), req.query("after_address")) {
        (Some(m), Some(a)) => Some((m, a)),
        _ => None,
    };
    let list = app.admin.list_bindings(after, limit(req)?)?;
    Ok(Reply::ok(answers::Bindings::of(&list)))
}

/// `GET /bindings/threepid`.
pub fn bindings_of_threepid(app: &App, req: &Req) -> Result<Reply> {
    let (medium, address) = threepid(req)?;
    let list = app.admin.bindings_of_threepid(medium, &address)?;
    Ok(Reply::ok(answers::Bindings::of(&list)))
}

/// `GET /bindings/user`.
pub fn bindings_of_user(app: &App, req: &Req) -> Result<Reply> {
    let list = app.admin.bindings_of_user(&user(req)?)?;
    Ok(Reply::ok(answers::Bindings::of(&list)))
}

/// `DELETE /bindings/threepid`.
pub fn delete_threepid_bindings(app: &App, req: &Req) -> Result<Reply> {
    let (medium, address) = threepid(req)?;
    let n = app.admin.delete_threepid_bindings(medium, &address)?;
    log::info!("admin: deleted {n} binding(s) of a {medium}");
    Ok(Reply::ok(answers::Deleted::of(n)))
}

/// `DELETE /bindings/user`.
pub fn delete_user_bindings(app: &App, req: &Req) -> Result<Reply> {
    let mxid = user(req)?;
    let n = app.admin.delete_user_bindings(&mxid)?;
    log::info!("admin: deleted {n} binding(s) of {mxid}");
    Ok(Reply::ok(answers::Deleted::of(n)))
}

/// `GET /sessions` (no secrets).
pub fn list_sessions(app: &App, req: &Req) -> Result<Reply> {
    let list = app.admin.list_sessions(limit(req)?)?;
    Ok(Reply::ok(answers::Sessions::of(&list)))
}

/// `GET /invites`.
pub fn list_invites(app: &App, req: &Req) -> Result<Reply> {
    let list = app.admin.list_invites(limit(req)?)?;
    Ok(Reply::ok(answers::Invites::of(&list)))
}

/// `DELETE /invites?token=`.
pub fn delete_invite(app: &App, req: &Req) -> Result<Reply> {
    let invite = app.admin.delete_invite(required(req, "token")?)?;
    log::info!("admin: deleted an invite to {}", invite.room_id);
    Ok(Reply::ok(answers::Deleted::of(1)))
}

/// `GET /export/threepid`: everything kept about a 3PID (GDPR access request).
pub fn export_threepid(app: &App, req: &Req) -> Result<Reply> {
    let (medium, address) = threepid(req)?;
    let export = app.admin.export_threepid(medium, &address)?;
    Ok(Reply::ok(answers::ExportedThreepid::of(
        medium, &address, &export,
    )))
}

/// `GET /export/user`: everything kept about a user.
pub fn export_user(app: &App, req: &Req) -> Result<Reply> {
    let mxid = user(req)?;
    let export = app.admin.export_user(&mxid)?;
    Ok(Reply::ok(answers::ExportedUser::of(&mxid, &export)))
}

/// `POST /erase/threepid` (GDPR erasure; published upstream through us: unbound there too).
pub fn erase_threepid(app: &App, req: &Req) -> Result<Reply> {
    let (medium, address) = threepid(req)?;
    let erased = Erased::from(app.admin.erase_threepid(medium, &address, app.now_ms())?);
    log::info!("admin: erased a {medium}: {erased}");
    Ok(Reply::ok(answers::Erasure::of(erased)))
}

/// `POST /erase/user` (3PIDs published upstream through us: unbound there too).
pub fn erase_user(app: &App, req: &Req) -> Result<Reply> {
    let mxid = user(req)?;
    let erased = Erased::from(app.admin.erase_user(&mxid, app.now_ms())?);
    log::info!("admin: erased {mxid}: {erased}");
    Ok(Reply::ok(answers::Erasure::of(erased)))
}

/// `GET /keys`: the signing key and the older keys that still answer.
pub fn list_keys(app: &App, _req: &Req) -> Result<Reply> {
    let keys = app.admin.keys();
    Ok(Reply::ok(answers::Keys::of(&keys)))
}

/// `POST /keys/rotate`.
pub fn rotate_keys(app: &App, _req: &Req) -> Result<Reply> {
    let id = app.admin.rotate_keys()?;
    log::info!("admin: new signing key {id}; older keys still answer /pubkey");
    Ok(Reply::ok(answers::Rotated::of(&id)))
}

/// `POST /backup?dir=`: a consistent copy of the store and the key, while serving.
pub fn backup(app: &App, req: &Req) -> Result<Reply> {
    let dir = std::path::PathBuf::from(required(req, "dir")?);
    let records = app.admin.backup(&dir)?;
    log::info!("admin: backed up {records} records to {}", dir.display());
    Ok(Reply::ok(answers::BackedUp::of(&dir, records)))
}

/// A batch of `oxisd admin import`.
#[derive(Deserialize)]
struct ImportBatch {
    /// The bindings, as the store keeps them.
    bindings: Vec<BindingRecord>,
    /// The import's last batch: compact the binding tables afterwards.
    #[serde(default)]
    finish: bool,
}

/// Most bindings in one batch.
const MAX_IMPORT_BATCH: usize = 20_000;

/// `POST /import/bindings`: one batch of `oxisd admin import`.
pub fn import_bindings(app: &App, req: &Req) -> Result<Reply> {
    let batch: ImportBatch = serde_json::from_slice(&req.body).map_err(|e| {
        Error::new(
            ErrorKind::BadJson,
            format!("Expected {{\"bindings\": [...], \"finish\": bool}}: {e}"),
        )
    })?;
    if batch.bindings.len() > MAX_IMPORT_BATCH {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!("At most {MAX_IMPORT_BATCH} bindings per batch"),
        ));
    }
    let received = batch.bindings.len();
    let outcome = app.admin.import_bindings(batch.bindings, batch.finish)?;
    log::info!(
        "admin: import batch of {received}: {} written, {} unchanged, {} kept (newer here), {} refused",
        outcome.written,
        outcome.unchanged,
        outcome.kept_newer,
        outcome.rejected.len()
    );
    Ok(Reply::ok(answers::Imported::of(received, &outcome)))
}

/// A required, non-empty query parameter: 400 `M_MISSING_PARAMS` without it.
fn required<'a>(req: &'a Req, name: &str) -> Result<&'a str> {
    req.query(name).filter(|v| !v.is_empty()).ok_or_else(|| {
        Error::new(
            ErrorKind::MissingParams,
            format!("Missing query parameter '{name}'"),
        )
    })
}

fn limit(req: &Req) -> Result<usize> {
    match req.query("limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=100_000).contains(n))
            .ok_or_else(|| Error::new(ErrorKind::InvalidParam, "'limit' is 1 to 100000")),
    }
}

fn threepid(req: &Req) -> Result<(Medium, String)> {
    normalise_threepid(required(req, "medium")?, required(req, "address")?)
}

fn user(req: &Req) -> Result<UserId> {
    UserId::parse(required(req, "mxid")?)
}

fn metrics(app: &App) -> Result<String> {
    let g = app.admin.gauges(app.now_ms())?;
    Ok(METRICS.render(&[
        (
            "oxisd_onbind_outbox_depth",
            "onbind calls waiting for delivery.",
            g.onbind_depth as f64,
        ),
        (
            "oxisd_onbind_outbox_oldest_seconds",
            "Age of the oldest waiting onbind call.",
            g.onbind_oldest_ms as f64 / 1000.0,
        ),
        (
            "oxisd_remote_outbox_depth",
            "Binds and unbinds waiting to be forwarded to upstream identity servers.",
            g.remote_depth as f64,
        ),
        (
            "oxisd_remote_outbox_oldest_seconds",
            "Age of the oldest bind or unbind waiting to be forwarded.",
            g.remote_oldest_ms as f64 / 1000.0,
        ),
        (
            "oxisd_store_disk_bytes",
            "Size of the store on disk.",
            g.disk_bytes as f64,
        ),
        (
            "oxisd_uptime_seconds",
            "Seconds since the start.",
            g.uptime_seconds,
        ),
    ]))
}
