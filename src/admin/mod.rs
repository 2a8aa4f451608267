//! The operator's listener (`admin.*`): the admin API that `oxisd admin ...` talks to, and
//! Prometheus metrics at `/metrics`. It listens on loopback only, answers only requests with
//! the admin token, and runs on its own small thread pool so that it stays usable when the
//! public listener is busy. fjall lets one process open the store, so administration goes
//! through the running server.

pub mod client;
mod handlers;

use std::io::Read;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::app::App;
use crate::crypto::random::constant_time_eq;
use crate::error::{Error, ErrorKind};
use crate::http::parse_query;

/// Where the admin API lives.
pub const PREFIX: &str = "/_oxisd/admin/v1";
/// Largest request body.
const MAX_BODY: u64 = 64 * 1024;
/// Largest body of `POST /import/bindings` (a batch of 5 000 bindings is about 1 MiB).
pub const MAX_IMPORT_BODY: u64 = 8 * 1024 * 1024;
/// The one endpoint that takes a body.
const IMPORT_PATH: &str = "/import/bindings";
/// Worker threads.
const WORKERS: usize = 2;

/// A parsed admin request.
pub struct AdminRequest {
    /// `GET`, `POST`, `DELETE`.
    pub method: String,
    /// The path below [`PREFIX`] (`/stats`), or `/metrics`.
    pub path: String,
    /// Query parameters.
    pub query: Vec<(String, String)>,
    /// The body (only `POST /import/bindings` reads one).
    pub body: Vec<u8>,
}

impl AdminRequest {
    /// A query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A required query parameter: 400 `M_MISSING_PARAMS` without it.
    pub fn required(&self, name: &str) -> Result<&str, Error> {
        self.param(name).filter(|v| !v.is_empty()).ok_or_else(|| {
            Error::new(
                ErrorKind::MissingParams,
                format!("Missing query parameter '{name}'"),
            )
        })
    }
}

/// An admin answer: JSON, or Prometheus text.
pub enum AdminReply {
    /// 200 with a JSON body.
    Json(Value),
    /// 200 with text.
    Text(String),
}

/// The running admin listener.
pub struct AdminListener {
    addr: SocketAddr,
}

impl AdminListener {
    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Starts the admin listener when `admin.enabled`; it stops when `stop` becomes true.
pub fn start(app: Arc<App>, stop: Arc<AtomicBool>) -> Result<Option<AdminListener>, String> {
    let cfg = &app.config.admin;
    if !cfg.enabled {
        return Ok(None);
    }
    let host = cfg.hostname.trim_start_matches('[').trim_end_matches(']');
    let addr = (host, cfg.port)
        .to_socket_addrs()
        .map_err(|e| format!("admin.hostname: cannot resolve '{host}': {e}"))?
        .next()
        .ok_or_else(|| format!("admin.hostname: '{host}' has no address"))?;
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| format!("cannot listen on {addr} (admin.hostname, admin.port): {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let server = Arc::new(
        tiny_http::Server::from_listener(listener, None)
            .map_err(|e| format!("cannot start the admin listener: {e}"))?,
    );
    for n in 0..WORKERS {
        let (app, server, stop) = (app.clone(), server.clone(), stop.clone());
        std::thread::Builder::new()
            .name(format!("admin-{n}"))
            .spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match server.recv_timeout(Duration::from_millis(200)) {
                        Ok(Some(rq)) => serve(&app, rq),
                        Ok(None) => {}
                        Err(e) => {
                            log::error!("the admin listener failed: {e}");
                            return;
                        }
                    }
                }
            })
            .map_err(|e| format!("cannot start the admin workers: {e}"))?;
    }
    Ok(Some(AdminListener { addr }))
}

fn serve(app: &App, mut rq: tiny_http::Request) {
    let method = rq.method().as_str().to_string();
    let url = rq.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let authorised = rq
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .and_then(|h| h.value.as_str().strip_prefix("Bearer "))
        .is_some_and(|t| {
            constant_time_eq(
                t.trim().as_bytes(),
                app.config.admin.token.expose().as_bytes(),
            )
        });
    let admin_path = path.strip_prefix(PREFIX).unwrap_or(path);
    // The admin API takes its parameters from the query string, except imports, whose
    // batches come as a JSON body: only an authorised import may send a large one.
    let limit = if authorised && method == "POST" && admin_path == IMPORT_PATH {
        MAX_IMPORT_BODY
    } else {
        MAX_BODY
    };
    let mut body = Vec::new();
    let _ = rq.as_reader().take(limit + 1).read_to_end(&mut body);
    let result = if !authorised {
        Err(Error::new(
            ErrorKind::Unauthorized,
            "The admin API needs 'Authorization: Bearer <admin.token>'",
        ))
    } else if body.len() as u64 > limit {
        Err(Error::new(
            ErrorKind::TooLarge,
            format!("The request body is larger than {limit} bytes"),
        ))
    } else {
        let request = AdminRequest {
            method: method.clone(),
            path: admin_path.to_string(),
            query: parse_query(query),
            body,
        };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            handlers::handle(app, &request)
        }))
        .unwrap_or_else(|_| Err(Error::internal("the admin handler panicked")))
    };
    let (status, content_type, body) = match result {
        Ok(AdminReply::Json(v)) => (200, "application/json", v.to_string()),
        Ok(AdminReply::Text(t)) => (200, "text/plain; version=0.0.4", t),
        Err(e) => {
            if let Some(detail) = e.log_detail() {
                log::error!("admin {method} {path}: {detail}");
            }
            (e.status(), "application/json", e.body().to_string())
        }
    };
    log::info!("admin request method={method} path={path} status={status}");
    let response = tiny_http::Response::from_string(body)
        .with_status_code(status)
        .with_header(
            tiny_http::Header::from_bytes("Content-Type", content_type)
                .expect("static header is valid"),
        );
    if let Err(e) = rq.respond(response) {
        log::debug!("admin: could not write the response: {e}");
    }
}

/// `{"ok": true, ...}`-style answers for writes.
pub fn done(extra: Value) -> AdminReply {
    let mut v = json!({"ok": true});
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    AdminReply::Json(v)
}
