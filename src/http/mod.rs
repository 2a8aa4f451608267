//! The HTTP layer: the tiny_http listener, a fixed pool of worker threads, per-request limits
//! (header size, body size, body read time), the panic boundary, the request log, and graceful
//! shutdown. Handlers never see tiny_http types.

pub mod auth;
mod client_ip;
mod request;
mod response;
pub mod router;
pub mod routes;
mod socket_guard;
pub mod tls;

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use request::{Method, Req, decode_value, parse_query, percent_decode};
pub use response::Reply;
pub use routes::Mount;

use crate::app::App;
use crate::error::{Error, ErrorKind};
use socket_guard::SocketGuard;

/// How long a worker waits for a request before it looks at the stop flag again.
const POLL: Duration = Duration::from_millis(200);

/// A running HTTP server.
pub struct Running {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    tls: Option<tls::TlsFront>,
}

impl Running {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The HTTPS listener, when `server.tls` is enabled.
    pub fn tls(&self) -> Option<&tls::TlsFront> {
        self.tls.as_ref()
    }

    /// Stops accepting work, lets every worker finish its request in flight, and returns
    /// when all workers have ended.
    pub fn shutdown(self) {
        self.stop.store(true, Ordering::SeqCst);
        for w in self.workers {
            let _ = w.join();
        }
    }
}

/// Binds the listener and starts the workers. `fatal` is told when the listener dies.
pub fn start(app: Arc<App>, fatal: Sender<String>) -> Result<Running, String> {
    let server_cfg = &app.config.server;
    let host = server_cfg
        .hostname
        .trim_start_matches('[')
        .trim_end_matches(']');
    let addr = (host, server_cfg.port)
        .to_socket_addrs()
        .map_err(|e| format!("server.hostname: cannot resolve '{host}': {e}"))?
        .next()
        .ok_or_else(|| format!("server.hostname: '{host}' has no address"))?;
    let listener = TcpListener::bind(addr)
        .map_err(|e| format!("cannot listen on {addr} (server.hostname, server.port): {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let server = tiny_http::Server::from_listener(listener, None)
        .map_err(|e| format!("cannot start the HTTP server on {addr}: {e}"))?;
    let server = Arc::new(server);
    let stop = Arc::new(AtomicBool::new(false));
    let guard = SocketGuard::new(
        addr.port(),
        Duration::from_secs(server_cfg.read_timeout),
        Duration::from_secs(server_cfg.write_timeout),
        Duration::from_secs(server_cfg.idle_timeout),
    );
    guard.spawn(stop.clone());
    let peers = Arc::new(tls::TlsPeers::default());
    let tls = if server_cfg.tls.enabled {
        let largest_body = server_cfg
            .max_body_size
            .max(app.config.lookup.max_addresses * 64);
        Some(tls::start(
            server_cfg,
            addr,
            peers.clone(),
            stop.clone(),
            largest_body,
        )?)
    } else {
        None
    };
    let ids = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::with_capacity(server_cfg.workers);
    for n in 0..server_cfg.workers {
        let (app, server, stop, guard, ids, fatal, peers) = (
            app.clone(),
            server.clone(),
            stop.clone(),
            guard.clone(),
            ids.clone(),
            fatal.clone(),
            peers.clone(),
        );
        let worker = std::thread::Builder::new()
            .name(format!("http-{n}"))
            .spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match server.recv_timeout(POLL) {
                        Ok(Some(rq)) => {
                            let id = ids.fetch_add(1, Ordering::Relaxed) + 1;
                            serve(&app, &guard, &peers, rq, id);
                        }
                        Ok(None) => {}
                        Err(e) => {
                            // tiny_http's accept loop ended (for example: out of file handles).
                            let _ = fatal.send(format!("the HTTP listener failed: {e}"));
                            stop.store(true, Ordering::SeqCst);
                        }
                    }
                }
            })
            .map_err(|e| format!("cannot start worker threads: {e}"))?;
        workers.push(worker);
    }
    Ok(Running {
        addr,
        stop,
        workers,
        tls,
    })
}

/// Serves one request, end to end, and logs it.
fn serve(
    app: &App,
    guard: &SocketGuard,
    peers: &tls::TlsPeers,
    mut rq: tiny_http::Request,
    id: u64,
) {
    let started = Instant::now();
    let peer = rq.remote_addr().copied();
    // Requests relayed from the HTTPS listener come from our own loopback socket.
    let client = peer.map(|p| peers.client_of(&p).unwrap_or(p));
    if let Some(p) = &peer {
        peers.request_started(p);
    }
    if let Some(peer) = peer {
        guard.request_started(peer);
    }
    let method_name = rq.method().as_str().to_string();
    let url = rq.url().to_string();
    let path = url.split('?').next().unwrap_or("").to_string();
    let client_ip = client_ip::resolve(client, &rq, &app.config.server.trusted_proxies);

    let routed = router::route(Method::from_name(&method_name), &path);
    let endpoint = match &routed {
        Ok(m) => format!("{:?} {}", m.mount, m.route.path),
        Err(_) => "unmatched".to_string(),
    };
    let reply = match read_request(app, &mut rq, &url, routed, client_ip) {
        Ok(None) => Reply::Empty,
        Ok(Some((handler, req))) => run_handler(handler, app, &req, id),
        Err(e) => Reply::from(e),
    };
    let status = reply.status();
    crate::metrics::METRICS.request(&endpoint, status, started.elapsed());
    if let Err(e) = rq.respond(response::into_response(reply)) {
        log::debug!("request id={id}: could not write the response: {e}");
    }
    if let Some(peer) = peer {
        guard.request_finished(peer);
        peers.request_finished(&peer);
    }
    if app.config.logging.requests {
        log::info!(
            "request id={id} method={method_name} path={path} status={status} ms={:.2} ip={client_ip}",
            started.elapsed().as_secs_f64() * 1000.0
        );
    }
}

/// Routes and reads the request. `Ok(None)` is a CORS preflight.
fn read_request(
    app: &App,
    rq: &mut tiny_http::Request,
    url: &str,
    routed: Result<router::Matched, Error>,
    client_ip: std::net::IpAddr,
) -> Result<Option<(routes::Handler, Req)>, Error> {
    let limits = &app.config.server;
    let header_bytes: usize = url.len()
        + rq.headers()
            .iter()
            .map(|h| h.field.as_str().as_str().len() + h.value.as_str().len() + 4)
            .sum::<usize>();
    if header_bytes > limits.max_header_size {
        return Err(Error::new(
            ErrorKind::HeadersTooLarge,
            "Request headers are too large",
        ));
    }
    let method = Method::from_name(rq.method().as_str());
    if method == Method::Options {
        return Ok(None);
    }
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let matched = routed?;
    let body_limit = if matched.route.large_body {
        // 64 bytes per address covers a sha256 hash or an address with its JSON quoting.
        limits
            .max_body_size
            .max(app.config.lookup.max_addresses * 64)
    } else {
        limits.max_body_size
    };
    if rq.body_length().is_some_and(|n| n > body_limit) {
        return Err(too_large(body_limit));
    }
    if matched.mount == Mount::V1 && !app.config.api.v1.enabled {
        return Err(Error::new(
            ErrorKind::Forbidden,
            "The v1 API is disabled on this server: use /_matrix/identity/v2",
        ));
    }
    let body = read_body(rq, body_limit, Duration::from_secs(limits.read_timeout))?;
    let headers = rq
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_ascii_lowercase(),
                h.value.as_str().to_string(),
            )
        })
        .collect();
    let mut req = Req {
        method,
        path: path.to_string(),
        target: url.to_string(),
        query: parse_query(query),
        headers,
        body,
        client_ip,
        mount: matched.mount,
        params: matched.params,
        user: None,
    };
    auth::authenticate(app, &mut req, matched.route.auth)?;
    Ok(Some((matched.route.handler, req)))
}

fn too_large(limit: usize) -> Error {
    Error::new(
        ErrorKind::TooLarge,
        format!("Request body is larger than {limit} bytes"),
    )
}

/// Reads at most `limit` bytes of body, and gives up when the whole body takes longer than
/// `deadline` (a client dripping its body must not hold a worker).
fn read_body(
    rq: &mut tiny_http::Request,
    limit: usize,
    deadline: Duration,
) -> Result<Vec<u8>, Error> {
    let started = Instant::now();
    let mut body = Vec::new();
    let mut chunk = [0u8; 8192];
    let reader = rq.as_reader();
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => return Ok(body),
            Ok(n) => {
                if body.len() + n > limit {
                    return Err(too_large(limit));
                }
                body.extend_from_slice(&chunk[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Error::new(
                    ErrorKind::RequestTimeout,
                    "Timed out reading the request body",
                )
                .with_detail(e));
            }
        }
        if started.elapsed() > deadline {
            return Err(Error::new(
                ErrorKind::RequestTimeout,
                "Timed out reading the request body",
            ));
        }
    }
}

/// Runs a handler inside the panic boundary and turns its result into a reply.
fn run_handler(handler: routes::Handler, app: &App, req: &Req, id: u64) -> Reply {
    let result = catch_unwind(AssertUnwindSafe(|| handler(app, req)));
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
