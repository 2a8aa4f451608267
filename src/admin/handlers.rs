//! The admin API's endpoints (below `/_oxisd/admin/v1`), and `/metrics`.

use serde::Deserialize;
use serde_json::json;

use super::{AdminReply, AdminRequest, done};
use crate::app::App;
use crate::error::{Error, ErrorKind, Result};
use crate::metrics::METRICS;
use crate::service::admin;
use crate::service::bindings::{check_user_id, normalise_threepid};
use crate::store::bindings::BindingRecord;

const DEFAULT_LIMIT: usize = 100;

/// Routes one authorised admin request.
pub fn handle(app: &App, req: &AdminRequest) -> Result<AdminReply> {
    let store = &app.store;
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/metrics") => Ok(AdminReply::Text(metrics(app)?)),
        ("GET", "/stats") => {
            let mut stats = store.stats()?;
            stats["uptime_seconds"] = json!(app.started.elapsed().as_secs());
            stats["version"] = json!(env!("CARGO_PKG_VERSION"));
            Ok(AdminReply::Json(stats))
        }
        ("GET", "/bindings") => {
            let after = match (req.param("after_medium"), req.param("after_address")) {
                (Some(m), Some(a)) => Some((m, a)),
                _ => None,
            };
            let list = store.list_bindings(after, limit(req)?)?;
            Ok(AdminReply::Json(json!({
                "bindings": list.iter().map(|(s, b)| admin::binding_json(s, b)).collect::<Vec<_>>()
            })))
        }
        ("GET", "/bindings/threepid") => {
            let (medium, address) = threepid(req)?;
            let list = store.bindings_of(&medium, &address)?;
            Ok(AdminReply::Json(json!({
                "bindings": list.iter().map(|(s, b)| admin::binding_json(s, b)).collect::<Vec<_>>()
            })))
        }
        ("GET", "/bindings/user") => {
            let mxid = user(req)?;
            let list = store.bindings_of_user(mxid)?;
            Ok(AdminReply::Json(json!({
                "bindings": list.iter().map(|(s, b)| admin::binding_json(s, b)).collect::<Vec<_>>()
            })))
        }
        ("DELETE", "/bindings/threepid") => {
            let (medium, address) = threepid(req)?;
            let n = admin::delete_threepid_bindings(store, &app.peppers, &medium, &address)?;
            log::info!("admin: deleted {n} binding(s) of a {medium}");
            Ok(done(json!({"deleted": n})))
        }
        ("DELETE", "/bindings/user") => {
            let mxid = user(req)?;
            let n = admin::delete_user_bindings(store, &app.peppers, mxid)?;
            log::info!("admin: deleted {n} binding(s) of {mxid}");
            Ok(done(json!({"deleted": n})))
        }
        ("GET", "/sessions") => {
            let list = store.list_sessions(None, limit(req)?)?;
            Ok(AdminReply::Json(json!({
                "sessions": list.iter().map(admin::session_json).collect::<Vec<_>>()
            })))
        }
        ("GET", "/invites") => {
            let list = store.list_invites(None, None, limit(req)?)?;
            Ok(AdminReply::Json(json!({
                "invites": list.iter().map(admin::invite_json).collect::<Vec<_>>()
            })))
        }
        ("DELETE", "/invites") => {
            let token = req.required("token")?;
            let invite = store
                .invite(token)?
                .ok_or_else(|| Error::new(ErrorKind::NotFound, "No invite with this token"))?;
            store.delete_invite(&invite)?;
            log::info!("admin: deleted an invite to {}", invite.room_id);
            Ok(done(json!({"deleted": 1})))
        }
        ("GET", "/export/threepid") => {
            let (medium, address) = threepid(req)?;
            Ok(AdminReply::Json(admin::export_threepid(
                store, &medium, &address,
            )?))
        }
        ("GET", "/export/user") => Ok(AdminReply::Json(admin::export_user(store, user(req)?)?)),
        ("POST", "/erase/threepid") => {
            let (medium, address) = threepid(req)?;
            let erased = admin::erase_threepid(store, &app.peppers, &medium, &address)?;
            log::info!("admin: erased a {medium}: {erased}");
            Ok(done(json!({"erased": erased})))
        }
        ("POST", "/erase/user") => {
            let mxid = user(req)?;
            let erased = admin::erase_user(store, &app.peppers, mxid)?;
            log::info!("admin: erased {mxid}: {erased}");
            Ok(done(json!({"erased": erased})))
        }
        ("POST", "/import/bindings") => import_bindings(app, req),
        ("GET", "/keys") => Ok(AdminReply::Json(json!({
            "keys": app.keys.all().iter().enumerate().map(|(i, k)| json!({
                "id": k.id(),
                "public_key": k.public_key_base64(),
                "signing": i == 0,
            })).collect::<Vec<_>>()
        }))),
        ("POST", "/keys/rotate") => {
            let id = app.keys.rotate().map_err(Error::internal)?;
            log::info!("admin: new signing key {id}; older keys still answer /pubkey");
            Ok(done(json!({"signing_key": id})))
        }
        ("POST", "/backup") => {
            let dir = std::path::PathBuf::from(req.required("dir")?);
            if !dir.is_absolute() {
                return Err(Error::new(
                    ErrorKind::InvalidParam,
                    "'dir' must be an absolute path",
                ));
            }
            let records = store.backup(&dir)?;
            let key_copy = dir.join("signing.key");
            let key_text = std::fs::read(app.config.key_path())
                .map_err(|e| Error::internal(format_args!("cannot read the key file: {e}")))?;
            crate::keys::write_private_file(&key_copy, &key_text)
                .map_err(|e| Error::internal(format_args!("cannot copy the key file: {e}")))?;
            log::info!("admin: backed up {records} records to {}", dir.display());
            Ok(done(json!({"records": records, "dir": dir})))
        }
        (_, path) => Err(Error::new(
            ErrorKind::Unrecognized,
            format!("No admin endpoint {} {path}", req.method),
        )),
    }
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

fn import_bindings(app: &App, req: &AdminRequest) -> Result<AdminReply> {
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
    let outcome = admin::import_bindings(&app.store, &app.peppers, batch.bindings, batch.finish)?;
    log::info!(
        "admin: import batch of {received}: {} written, {} unchanged, {} kept (newer here), {} refused",
        outcome.written,
        outcome.unchanged,
        outcome.kept_newer,
        outcome.rejected.len()
    );
    Ok(done(json!({
        "received": received,
        "written": outcome.written,
        "unchanged": outcome.unchanged,
        "kept_newer": outcome.kept_newer,
        "rejected": outcome.rejected.iter().map(|(i, r)| json!({"index": i, "reason": r})).collect::<Vec<_>>(),
    })))
}

fn limit(req: &AdminRequest) -> Result<usize> {
    match req.param("limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=100_000).contains(n))
            .ok_or_else(|| Error::new(ErrorKind::InvalidParam, "'limit' is 1 to 100000")),
    }
}

fn threepid(req: &AdminRequest) -> Result<(String, String)> {
    let (medium, address) = normalise_threepid(req.required("medium")?, req.required("address")?)?;
    Ok((medium.as_str().to_string(), address))
}

fn user(req: &AdminRequest) -> Result<&str> {
    let mxid = req.required("mxid")?;
    check_user_id(mxid)?;
    Ok(mxid)
}

fn metrics(app: &App) -> Result<String> {
    let outbox = app.store.outbox()?;
    let now = app.now_ms();
    let oldest = outbox
        .iter()
        .map(|(_, e)| now.saturating_sub(e.created_ms))
        .max()
        .unwrap_or(0);
    let disk = app.store.disk_bytes()?;
    Ok(METRICS.render(&[
        (
            "oxisd_onbind_outbox_depth",
            "onbind calls waiting for delivery.",
            outbox.len() as f64,
        ),
        (
            "oxisd_onbind_outbox_oldest_seconds",
            "Age of the oldest waiting onbind call.",
            oldest as f64 / 1000.0,
        ),
        (
            "oxisd_store_disk_bytes",
            "Size of the store on disk.",
            disk as f64,
        ),
        (
            "oxisd_uptime_seconds",
            "Seconds since the start.",
            app.started.elapsed().as_secs_f64(),
        ),
    ]))
}
