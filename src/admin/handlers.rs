//! The admin API's endpoints (below `/_oxisd/admin/v1`), and `/metrics`: one handler per
//! endpoint, listed in [`super::routes::ADMIN_ROUTES`].

use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{Reply, Req};
use crate::metrics::METRICS;
use crate::service::admin;
use crate::service::bindings::{check_user_id, normalise_threepid};
use crate::store::bindings::BindingRecord;

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
    let mut stats = app.store.stats()?;
    stats["uptime_seconds"] = json!(app.started.elapsed().as_secs());
    stats["version"] = json!(env!("CARGO_PKG_VERSION"));
    Ok(Reply::ok(stats))
}

fn bindings_reply(list: &[(String, BindingRecord)]) -> Reply {
    Reply::ok(json!({
        "bindings": list.iter().map(|(s, b)| admin::binding_json(s, b)).collect::<Vec<_>>()
    }))
}

/// `GET /bindings`: a page of every binding.
pub fn list_bindings(app: &App, req: &Req) -> Result<Reply> {
    let after = match (req.query("after_medium"), req.query("after_address")) {
        (Some(m), Some(a)) => Some((m, a)),
        _ => None,
    };
    Ok(bindings_reply(
        &app.store.list_bindings(after, limit(req)?)?,
    ))
}

/// `GET /bindings/threepid`.
pub fn bindings_of_threepid(app: &App, req: &Req) -> Result<Reply> {
    let (medium, address) = threepid(req)?;
    Ok(bindings_reply(&app.store.bindings_of(&medium, &address)?))
}

/// `GET /bindings/user`.
pub fn bindings_of_user(app: &App, req: &Req) -> Result<Reply> {
    Ok(bindings_reply(&app.store.bindings_of_user(user(req)?)?))
}

/// `DELETE /bindings/threepid`.
pub fn delete_threepid_bindings(app: &App, req: &Req) -> Result<Reply> {
    let (medium, address) = threepid(req)?;
    let n = admin::delete_threepid_bindings(&app.store, &app.peppers, &medium, &address)?;
    log::info!("admin: deleted {n} binding(s) of a {medium}");
    Ok(done(json!({"deleted": n})))
}

/// `DELETE /bindings/user`.
pub fn delete_user_bindings(app: &App, req: &Req) -> Result<Reply> {
    let mxid = user(req)?;
    let n = admin::delete_user_bindings(&app.store, &app.peppers, mxid)?;
    log::info!("admin: deleted {n} binding(s) of {mxid}");
    Ok(done(json!({"deleted": n})))
}

/// `GET /sessions` (no secrets).
pub fn list_sessions(app: &App, req: &Req) -> Result<Reply> {
    let list = app.store.list_sessions(None, limit(req)?)?;
    Ok(Reply::ok(json!({
        "sessions": list.iter().map(admin::session_json).collect::<Vec<_>>()
    })))
}

/// `GET /invites`.
pub fn list_invites(app: &App, req: &Req) -> Result<Reply> {
    let list = app.store.list_invites(None, None, limit(req)?)?;
    Ok(Reply::ok(json!({
        "invites": list.iter().map(admin::invite_json).collect::<Vec<_>>()
    })))
}

/// `DELETE /invites?token=`.
pub fn delete_invite(app: &App, req: &Req) -> Result<Reply> {
    let token = required(req, "token")?;
    let invite = app
        .store
        .invite(token)?
        .ok_or_else(|| Error::new(ErrorKind::NotFound, "No invite with this token"))?;
    app.store.delete_invite(&invite)?;
    log::info!("admin: deleted an invite to {}", invite.room_id);
    Ok(done(json!({"deleted": 1})))
}

/// `GET /export/threepid`: everything kept about a 3PID (GDPR access request).
pub fn export_threepid(app: &App, req: &Req) -> Result<Reply> {
    let (medium, address) = threepid(req)?;
    Ok(Reply::ok(admin::export_threepid(
        &app.store, &medium, &address,
    )?))
}

/// `GET /export/user`: everything kept about a user.
pub fn export_user(app: &App, req: &Req) -> Result<Reply> {
    Ok(Reply::ok(admin::export_user(&app.store, user(req)?)?))
}

/// `POST /erase/threepid` (GDPR erasure).
pub fn erase_threepid(app: &App, req: &Req) -> Result<Reply> {
    let (medium, address) = threepid(req)?;
    let mut erased = admin::erase_threepid(&app.store, &app.peppers, &medium, &address)?;
    // Published upstream through us: unbound there too (the outbox keeps the call until then).
    let mut upstream = 0;
    if let Some(b) = app.store.remote_binding(&medium, &address)?
        && app.remote.forward_unbind(
            &app.store,
            &app.homeserver,
            (&medium, &address, &b.mxid),
            None,
            app.now_ms(),
        )?
    {
        upstream += 1;
    }
    erased["upstream_unbinds"] = json!(upstream);
    log::info!("admin: erased a {medium}: {erased}");
    Ok(done(json!({"erased": erased})))
}

/// `POST /erase/user`.
pub fn erase_user(app: &App, req: &Req) -> Result<Reply> {
    let mxid = user(req)?;
    let mut erased = admin::erase_user(&app.store, &app.peppers, mxid)?;
    // 3PIDs published upstream through us: unbound there too.
    let mut upstream = 0;
    for (medium, address, _) in app.store.remote_bindings_of_user(mxid)? {
        if app.remote.forward_unbind(
            &app.store,
            &app.homeserver,
            (&medium, &address, mxid),
            None,
            app.now_ms(),
        )? {
            upstream += 1;
        }
    }
    erased["upstream_unbinds"] = json!(upstream);
    log::info!("admin: erased {mxid}: {erased}");
    Ok(done(json!({"erased": erased})))
}

/// `GET /keys`: the signing key and the older keys that still answer.
pub fn list_keys(app: &App, _req: &Req) -> Result<Reply> {
    Ok(Reply::ok(json!({
        "keys": app.keys.all().iter().enumerate().map(|(i, k)| json!({
            "id": k.id(),
            "public_key": k.public_key_base64(),
            "signing": i == 0,
        })).chain(app.keys.lost().into_iter().map(|(id, public)| json!({
            "id": id,
            "public_key": public,
            "signing": false,
            "lost": true,
        }))).collect::<Vec<_>>()
    })))
}

/// `POST /keys/rotate`.
pub fn rotate_keys(app: &App, _req: &Req) -> Result<Reply> {
    let id = app.keys.rotate().map_err(Error::internal)?;
    // Recorded so that a later loss of the key file can keep the key answering isvalid.
    if let Err(e) = app.store.record_public_keys(&app.keys.public_keys(), &[]) {
        log::error!("admin: cannot record the public key of {id} in the store: {e}");
    }
    log::info!("admin: new signing key {id}; older keys still answer /pubkey");
    Ok(done(json!({"signing_key": id})))
}

/// `POST /backup?dir=`: a consistent copy of the store and the key, while serving.
pub fn backup(app: &App, req: &Req) -> Result<Reply> {
    let dir = std::path::PathBuf::from(required(req, "dir")?);
    if !dir.is_absolute() {
        return Err(Error::new(
            ErrorKind::InvalidParam,
            "'dir' must be an absolute path",
        ));
    }
    // The operator runs this command: a failure tells them why, not only the server log.
    let failed = |e: Error| {
        log::error!("admin: backup to {} failed: {e}", dir.display());
        match (e.kind(), e.log_detail()) {
            (ErrorKind::Internal, Some(detail)) => {
                Error::new(ErrorKind::Internal, format!("backup failed: {detail}"))
            }
            _ => e,
        }
    };
    let records = app.store.backup(&dir).map_err(failed)?;
    let key_path = app.config.key_path();
    let key_copy = dir.join("signing.key");
    let key_text = std::fs::read(&key_path).map_err(|e| {
        failed(Error::new(
            ErrorKind::Internal,
            format!("cannot read the key file {}: {e}", key_path.display()),
        ))
    })?;
    crate::keys::write_private_file(&key_copy, &key_text).map_err(|e| {
        failed(Error::new(
            ErrorKind::Internal,
            format!("cannot copy the key file to {}: {e}", key_copy.display()),
        ))
    })?;
    log::info!("admin: backed up {records} records to {}", dir.display());
    Ok(done(json!({"records": records, "dir": dir})))
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

/// `{"ok": true, ...}`-style answers for writes.
fn done(extra: Value) -> Reply {
    let mut v = json!({"ok": true});
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    Reply::ok(v)
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

fn threepid(req: &Req) -> Result<(String, String)> {
    let (medium, address) =
        normalise_threepid(required(req, "medium")?, required(req, "address")?)?;
    Ok((medium.as_str().to_string(), address))
}

fn user(req: &Req) -> Result<&str> {
    let mxid = required(req, "mxid")?;
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
    let remote = app.store.remote_outbox()?;
    let remote_oldest = remote
        .iter()
        .map(|(_, c)| now.saturating_sub(c.created_ms))
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
            "oxisd_remote_outbox_depth",
            "Binds and unbinds waiting to be forwarded to upstream identity servers.",
            remote.len() as f64,
        ),
        (
            "oxisd_remote_outbox_oldest_seconds",
            "Age of the oldest bind or unbind waiting to be forwarded.",
            remote_oldest as f64 / 1000.0,
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
