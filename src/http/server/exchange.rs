//! One request, end to end: route it, apply the checks that need only its head (admin token,
//! v1 switch, body size from `Content-Length`), read the body under its size limit and
//! deadline, run the handler on the blocking pool inside the panic boundary, then count and log
//! the answer. Everything before the handler runs on the I/O thread and never blocks; so do
//! the few handlers marked `inline`, which answer from memory.

use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use hyper::http::request::Parts;

use super::super::auth::{self, Auth};
use super::super::client_ip;
use super::super::request::{Method, Req, parse_query};
use super::super::response::{self, Reply, Response};
use super::super::router::{self, Matched};
use super::super::routes::{Mount, Route};
use crate::app::App;
use crate::error::{Error, ErrorKind};

/// What a listener serves.
pub struct Site {
    /// The application.
    pub app: Arc<App>,
    /// Its routing table.
    pub routes: &'static [Route],
    /// The public listeners (CORS, metrics, `logging.requests`) or an internal one (admin,
    /// auth).
    pub public: bool,
    /// What every request must carry before it is routed.
    pub gate: Gate,
}

/// What every request on a listener must carry before it is routed (a route may ask for more:
/// [`Auth::AdminToken`], [`Auth::AuthSecret`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Nothing (the public listeners).
    Open,
    /// The admin token (the admin listener tells nothing, not even which paths exist, without
    /// it).
    AdminToken,
    /// `auth.sharedSecret`, when one is set (the auth listener).
    AuthSecret,
}

/// Request ids for the log, over every listener.
static IDS: AtomicU64 = AtomicU64::new(0);

/// Answers one request that arrived from `peer`.
pub async fn exchange(site: Arc<Site>, peer: SocketAddr, rq: hyper::Request<Incoming>) -> Response {
    let started = Instant::now();
    let id = IDS.fetch_add(1, Ordering::Relaxed) + 1;
    let (parts, body) = rq.into_parts();
    let config = &site.app.config;
    let client_ip = client_ip::resolve(peer, &parts.headers, &config.server.trusted_proxies);
    let method = Method::from_name(parts.method.as_str());
    let routed = router::route_in(site.routes, method, parts.uri.path());
    let endpoint = match &routed {
        Ok(m) => Some((m.mount, m.route.path)),
        Err(_) => None,
    };
    let (reply, close) = answer(&site, &parts, body, method, routed, client_ip, id).await;
    let status = reply.status();
    if site.public {
        let label = match endpoint {
            Some((mount, route_path)) => format!("{mount:?} {route_path}"),
            None => "unmatched".to_string(),
        };
        crate::metrics::METRICS.request(&label, status, started.elapsed());
    }
    if !site.public || config.logging.requests {
        log_request(&site, id, &parts, &reply, started, client_ip);
    }
    response::into_response(reply, site.public, close)
}

/// The request's log line: `request id= method= path= status= ms= ip=` on the public
/// listeners, `admin request method= path= status=` on the admin one; an error answer adds its
/// `errcode`, and at debug level its `error` text.
fn log_request(
    site: &Site,
    id: u64,
    parts: &Parts,
    reply: &Reply,
    started: Instant,
    client_ip: std::net::IpAddr,
) {
    use log::kv::Value;
    let ms = (started.elapsed().as_secs_f64() * 100_000.0).round() / 100.0;
    let mut fields: Vec<(&str, Value<'_>)> = Vec::with_capacity(8);
    if site.public {
        fields.push(("id", Value::from(id)));
    }
    fields.push(("method", Value::from(parts.method.as_str())));
    fields.push(("path", Value::from(parts.uri.path())));
    fields.push(("status", Value::from(reply.status())));
    if site.public {
        fields.push(("ms", Value::from(ms)));
        fields.push(("ip", Value::from_display(&client_ip)));
    }
    let error = reply.error();
    if let Some((errcode, error)) = &error {
        fields.push(("errcode", Value::from(errcode.as_str())));
        if log::log_enabled!(log::Level::Debug) {
            fields.push(("error", Value::from(error.as_str())));
        }
    }
    let message = if site.public {
        "request"
    } else if site.gate == Gate::AuthSecret {
        "auth request"
    } else {
        "admin request"
    };
    crate::logging::log_fields(log::Level::Info, module_path!(), message, &fields);
}

/// The reply, and whether the connection must close after it (the body was left unread).
async fn answer(
    site: &Site,
    parts: &Parts,
    body: Incoming,
    method: Method,
    routed: Result<Matched, Error>,
    client_ip: std::net::IpAddr,
    id: u64,
) -> (Reply, bool) {
    let app = &site.app;
    let unread = !body.is_end_stream();
    if method == Method::Options && site.public {
        return (Reply::Empty, unread);
    }
    let route_auth = routed.as_ref().ok().map(|m| m.route.auth);
    let needs_token = site.gate == Gate::AdminToken || route_auth == Some(Auth::AdminToken);
    if needs_token && !admin_token_given(app, parts) {
        let e = Error::new(
            ErrorKind::Unauthorized,
            "The admin API needs 'Authorization: Bearer <admin.token>'",
        );
        return (Reply::from(e), unread);
    }
    let auth = &app.config.auth;
    if site.public && route_auth == Some(Auth::AuthSecret) && !(auth.enabled && auth.public) {
        let e = Error::new(ErrorKind::Unrecognized, "Unrecognized request");
        return (Reply::from(e), unread);
    }
    let needs_secret = site.gate == Gate::AuthSecret || route_auth == Some(Auth::AuthSecret);
    if needs_secret && !auth_secret_given(app, parts) {
        let e = Error::new(
            ErrorKind::Unauthorized,
            "Password checks need 'Authorization: Bearer <auth.sharedSecret>'",
        );
        return (Reply::from(e), unread);
    }
    let matched = match routed {
        Ok(m) => m,
        Err(e) => return (Reply::from(e), unread),
    };
    if matched.mount == Mount::V1 && !app.config.api.v1.enabled {
        let e = Error::new(
            ErrorKind::Forbidden,
            "The v1 API is disabled on this server: use /_matrix/identity/v2",
        );
        return (Reply::from(e), unread);
    }
    let limit = matched.route.body.bytes(&app.config);
    if body.size_hint().lower() > limit as u64 {
        return (Reply::from(too_large(limit)), unread);
    }
    let deadline = Duration::from_secs(app.config.server.read_timeout);
    let body = match tokio::time::timeout(deadline, read_body(body, limit)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => return (Reply::from(e), true),
        Err(_) => {
            let e = Error::new(
                ErrorKind::RequestTimeout,
                "Timed out reading the request body",
            );
            return (Reply::from(e), true);
        }
    };
    let target = parts.uri.path_and_query().map_or_else(
        || parts.uri.path().to_string(),
        |pq| pq.as_str().to_string(),
    );
    let req = Req {
        method,
        path: parts.uri.path().to_string(),
        query: parse_query(parts.uri.query().unwrap_or("")),
        target,
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
        client_ip,
        mount: matched.mount,
        params: matched.params,
        user: None,
    };
    let route = matched.route;
    if route.inline {
        return (run_handler(&site.app, route, req, id), false);
    }
    let app = site.app.clone();
    match tokio::task::spawn_blocking(move || run_handler(&app, route, req, id)).await {
        Ok(reply) => (reply, false),
        Err(e) => {
            log::error!("request id={id}: the handler thread failed: {e}");
            (Reply::from(Error::internal("handler failed")), false)
        }
    }
}

/// Whether the request carries `auth.sharedSecret` (always, when none is set: then the auth
/// listener is on loopback and the public listeners do not serve the endpoint).
fn auth_secret_given(app: &App, parts: &Parts) -> bool {
    let secret = app.config.auth.shared_secret.expose();
    if secret.is_empty() {
        return true;
    }
    let given = parts
        .headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    auth::admin_token_ok(given, secret)
}

/// Whether the request carries the admin token (checked from the head, before any body).
fn admin_token_given(app: &App, parts: &Parts) -> bool {
    let given = parts
        .headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    auth::admin_token_ok(given, app.config.admin.token.expose())
}

fn too_large(limit: usize) -> Error {
    Error::new(
        ErrorKind::TooLarge,
        format!("Request body is larger than {limit} bytes"),
    )
}

/// Reads at most `limit` bytes of body (chunked bodies carry no length up front).
async fn read_body(mut body: Incoming, limit: usize) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            Error::new(ErrorKind::RequestTimeout, "Could not read the request body").with_detail(e)
        })?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(too_large(limit));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// Authenticates and runs a handler inside the panic boundary; turns its result into a reply.
fn run_handler(app: &App, route: &'static Route, mut req: Req, id: u64) -> Reply {
    let result = catch_unwind(AssertUnwindSafe(|| {
        auth::authenticate(app, &mut req, route.auth)?;
        (route.handler)(app, &req)
    }));
    match result {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => {
            if e.kind() == ErrorKind::Internal || e.status() >= 500 {
                log::error!("request id={id} failed: {e}");
            } else if let Some(detail) = e.log_detail() {
                log::debug!("request id={id}: {}: {detail}", e.message());
            }
            Reply::from(e)
        }
        Err(_) => {
            log::error!("request id={id}: the handler panicked (see the panic message above)");
            Reply::from(Error::internal("handler panicked"))
        }
    }
}
