//! A fake Matrix homeserver for tests: a server on 127.0.0.1 port 0 that records every request
//! and answers JSON.
//!
//! HTTPS (TLS 1.2 and 1.3 through rustls, with the fixed self-signed certificate of
//! [`super::tls`]) or plain HTTP. HTTP/1.1 with keep-alive (HTTP/1.0 and `Connection: close`
//! close after the answer); request bodies by `Content-Length` or chunked. One thread per
//! connection, so a client that connects and says nothing blocks nobody else.
//!
//! Answers, first match wins:
//! 1. a canned answer set with [`FakeHomeserver::respond`] for the method and the path (without
//!    the query string; the path matches as sent or percent-decoded);
//! 2. `GET /_matrix/federation/v1/openid/userinfo?access_token=...`: 200 `{"sub": ...}` for a
//!    token given to [`FakeHomeserver::add_openid_token`], else 401 `M_UNKNOWN_TOKEN`;
//! 3. anything else: 404 `M_UNRECOGNIZED`.
//!
//! Every request is recorded when its body has arrived, before the delay
//! ([`FakeHomeserver::set_delay`]) and the answer. Dropping the server closes the listener and
//! every open connection, and ends the delays in progress.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::tls;

/// The path of the OpenID userinfo endpoint.
pub const USERINFO_PATH: &str = "/_matrix/federation/v1/openid/userinfo";

/// At most this many bytes of request line and headers.
const MAX_HEAD: usize = 64 * 1024;
/// At most this many bytes of request body.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// One request as received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// As sent (`GET`, `POST`, ...).
    pub method: String,
    /// The request target with the query string, as sent (an absolute-form target is reduced to
    /// its path and query).
    pub path: String,
    /// Every header in order, names in lower case, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path without the query string.
    pub fn path_only(&self) -> &str {
        path_only(&self.path)
    }

    /// The first query parameter `name`, percent-decoded (`+` as a space).
    pub fn query_param(&self, name: &str) -> Option<String> {
        query_param(&self.path, name)
    }

    /// The body as JSON; panics when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "request body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// A running fake homeserver; stops when dropped.
pub struct FakeHomeserver {
    port: u16,
    tls: bool,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    /// Notified on every recorded request and on stop.
    changed: Condvar,
}

#[derive(Default)]
struct State {
    tokens: HashMap<String, String>,
    /// (upper-case method, path) -> (status, body).
    canned: HashMap<(String, String), (u16, Value)>,
    delay: Duration,
    requests: Vec<RecordedRequest>,
    stopped: bool,
    /// A handle on each open connection, to shut them down on stop.
    conns: HashMap<u64, TcpStream>,
    next_conn: u64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers an accepted connection; None once stopped.
    fn register(&self, stream: &TcpStream) -> Option<u64> {
        let handle = stream.try_clone().ok()?;
        let mut st = self.lock();
        if st.stopped {
            return None;
        }
        let id = st.next_conn;
        st.next_conn += 1;
        st.conns.insert(id, handle);
        Some(id)
    }

    fn unregister(&self, id: u64) {
        self.lock().conns.remove(&id);
    }

    fn record(&self, request: RecordedRequest) {
        self.lock().requests.push(request);
        self.changed.notify_all();
    }

    /// Waits out the configured delay; false when the server stopped meanwhile.
    fn wait_delay(&self) -> bool {
        let mut st = self.lock();
        let deadline = Instant::now() + st.delay;
        loop {
            if st.stopped {
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            st = self
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn answer(&self, request: &RecordedRequest) -> (u16, Value) {
        let st = self.lock();
        let method = request.method.to_ascii_uppercase();
        let path = path_only(&request.path);
        let decoded = percent_decode(path, false);
        for p in [path, decoded.as_str()] {
            if let Some(canned) = st.canned.get(&(method.clone(), p.to_string())) {
                return canned.clone();
            }
        }
        if method == "GET" && path == USERINFO_PATH {
            let sub = query_param(&request.path, "access_token").and_then(|t| st.tokens.get(&t));
            return match sub {
                Some(sub) => (200, json!({ "sub": sub })),
                None => (
                    401,
                    json!({
                        "errcode": "M_UNKNOWN_TOKEN",
                        "error": "Access token unknown or expired",
                    }),
                ),
            };
        }
        (
            404,
            json!({"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}),
        )
    }
}

impl FakeHomeserver {
    /// HTTPS with the shared self-signed certificate, on 127.0.0.1 port 0.
    pub fn start() -> FakeHomeserver {
        FakeHomeserver::spawn(Some(tls::server_config()))
    }

    /// Plain HTTP on 127.0.0.1 port 0.
    pub fn start_plain() -> FakeHomeserver {
        FakeHomeserver::spawn(None)
    }

    fn spawn(config: Option<Arc<rustls::ServerConfig>>) -> FakeHomeserver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake homeserver");
        let port = listener.local_addr().unwrap().port();
        let tls = config.is_some();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let s = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name(format!("fake-hs-{port}"))
            .spawn(move || accept_loop(listener, config, s))
            .expect("spawn the fake homeserver");
        FakeHomeserver {
            port,
            tls,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn server_name(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `https://127.0.0.1:<port>`, or `http://...` for [`FakeHomeserver::start_plain`].
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// GET /_matrix/federation/v1/openid/userinfo?access_token=<token> answers 200 {"sub": sub}
    /// for a registered token; unknown or missing token: 401
    /// {"errcode":"M_UNKNOWN_TOKEN","error":"..."}.
    pub fn add_openid_token(&self, token: &str, sub: &str) {
        self.shared
            .lock()
            .tokens
            .insert(token.to_string(), sub.to_string());
    }

    /// A canned answer for (method, path without query). Overrides built-in routes. A query
    /// string given in `path` is ignored; the method matches in any case. Answers 204 and 304
    /// are sent without a body. A 3xx answer whose body has a string `location` is sent with
    /// that `Location` header (a redirect).
    pub fn respond(&self, method: &str, path: &str, status: u16, body: Value) {
        let key = (method.to_ascii_uppercase(), path_only(path).to_string());
        self.shared.lock().canned.insert(key, (status, body));
    }

    /// Every request answer waits this long first (for timeout tests). Applies to requests
    /// received from now on.
    pub fn set_delay(&self, delay: Duration) {
        self.shared.lock().delay = delay;
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Forgets the requests recorded so far.
    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// Waits until at least `n` requests whose path (with query) starts with `path_prefix`
    /// arrived or `timeout` passed; returns those requests (possibly fewer than `n`).
    pub fn wait_for_requests(
        &self,
        path_prefix: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<RecordedRequest> {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        loop {
            let matching: Vec<RecordedRequest> = st
                .requests
                .iter()
                .filter(|r| r.path.starts_with(path_prefix))
                .cloned()
                .collect();
            let left = deadline.saturating_duration_since(Instant::now());
            if matching.len() >= n || left.is_zero() {
                return matching;
            }
            st = self
                .shared
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl Drop for FakeHomeserver {
    fn drop(&mut self) {
        {
            let mut st = self.shared.lock();
            st.stopped = true;
            for (_, conn) in st.conns.drain() {
                let _ = conn.shutdown(Shutdown::Both);
            }
        }
        self.shared.changed.notify_all();
        // Wake the acceptor so it sees the stop; it closes the listener as it ends.
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
            && let Some(acceptor) = self.acceptor.take()
        {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    config: Option<Arc<rustls::ServerConfig>>,
    shared: Arc<Shared>,
) {
    for stream in listener.incoming() {
        if shared.lock().stopped {
            return;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(_) => {
                // Out of file descriptors and the like: try again shortly.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let Some(id) = shared.register(&stream) else {
            continue;
        };
        let (shared, config) = (shared.clone(), config.clone());
        let spawned = std::thread::Builder::new()
            .name("fake-hs-conn".into())
            .spawn(move || {
                let _ = connection(stream, config, &shared);
                shared.unregister(id);
            });
        if spawned.is_err() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A connection, plain or TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }

    /// Ends the connection politely: close_notify for TLS, FIN, then reads (and drops) what the
    /// client still sends for a moment, so that closing does not reset the answer away.
    fn close(mut self) {
        if let Stream::Tls(s) = &mut self {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
        let tcp = self.tcp();
        let _ = tcp.shutdown(Shutdown::Write);
        let _ = tcp.set_read_timeout(Some(Duration::from_millis(200)));
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            match (&mut &*tcp).read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// What came in on a connection.
enum Incoming {
    /// A request, and whether the connection stays open after the answer.
    Request(RecordedRequest, bool),
    /// Not HTTP as this server understands it: answer 400 and close.
    Bad(&'static str),
}

fn connection(
    stream: TcpStream,
    config: Option<Arc<rustls::ServerConfig>>,
    shared: &Shared,
) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let stream = match config {
        Some(config) => {
            let conn = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
            Stream::Tls(Box::new(rustls::StreamOwned::new(conn, stream)))
        }
        None => Stream::Plain(stream),
    };
    let mut r = BufReader::new(stream);
    loop {
        let (request, keep_alive) = match read_request(&mut r)? {
            None => return Ok(()),
            Some(Incoming::Request(request, keep_alive)) => (request, keep_alive),
            Some(Incoming::Bad(why)) => {
                let body = json!({"errcode": "M_UNRECOGNIZED", "error": why});
                write_response(r.get_mut(), "GET", 400, &body, false)?;
                r.into_inner().close();
                return Ok(());
            }
        };
        let method = request.method.clone();
        shared.record(request.clone());
        if !shared.wait_delay() {
            return Ok(());
        }
        let (status, body) = shared.answer(&request);
        write_response(r.get_mut(), &method, status, &body, keep_alive)?;
        if !keep_alive {
            r.into_inner().close();
            return Ok(());
        }
    }
}

/// Reads one request; None at a clean end of stream before it.
fn read_request(r: &mut BufReader<Stream>) -> io::Result<Option<Incoming>> {
    let mut budget = MAX_HEAD;
    // Empty lines before a request line are ignored (RFC 9112, 2.2).
    let line = loop {
        match read_line(r, &mut budget)? {
            None => return Ok(None),
            Some(l) if l.is_empty() => continue,
            Some(l) => break l,
        }
    };
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Ok(Some(Incoming::Bad("Malformed request line")));
    };
    if !version.starts_with("HTTP/1.") {
        return Ok(Some(Incoming::Bad("Unsupported HTTP version")));
    }
    let mut headers = Vec::new();
    loop {
        let Some(line) = read_line(r, &mut budget)? else {
            return Err(io::ErrorKind::UnexpectedEof.into());
        };
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Ok(Some(Incoming::Bad("Malformed header line")));
        };
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    let has_token = |name: &str, token: &str| {
        header(name).is_some_and(|v| v.split(',').any(|t| t.trim() == token))
    };
    let keep_alive = if version == "HTTP/1.0" {
        has_token("connection", "keep-alive")
    } else {
        !has_token("connection", "close")
    };
    if header("expect").is_some_and(|v| v == "100-continue") {
        let w = r.get_mut();
        w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        w.flush()?;
    }
    let body = if has_token("transfer-encoding", "chunked") {
        match read_chunked(r)? {
            Some(body) => body,
            None => return Ok(Some(Incoming::Bad("Malformed chunked body"))),
        }
    } else {
        match header("content-length").map(|v| v.parse::<usize>()) {
            None => Vec::new(),
            Some(Ok(n)) if n <= MAX_BODY => {
                let mut body = vec![0; n];
                r.read_exact(&mut body)?;
                body
            }
            Some(_) => return Ok(Some(Incoming::Bad("Bad Content-Length"))),
        }
    };
    let request = RecordedRequest {
        method: method.to_string(),
        path: origin_form(target),
        headers,
        body,
    };
    Ok(Some(Incoming::Request(request, keep_alive)))
}

/// A chunked body; None when malformed or too large.
fn read_chunked(r: &mut BufReader<Stream>) -> io::Result<Option<Vec<u8>>> {
    let mut body = Vec::new();
    let mut budget = MAX_HEAD;
    loop {
        let Some(line) = read_line(r, &mut budget)? else {
            return Err(io::ErrorKind::UnexpectedEof.into());
        };
        let size = line.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size, 16) else {
            return Ok(None);
        };
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                match read_line(r, &mut budget)? {
                    None => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Some(l) if l.is_empty() => return Ok(Some(body)),
                    Some(_) => {}
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Ok(None);
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        match read_line(r, &mut budget)? {
            Some(l) if l.is_empty() => {}
            Some(_) => return Ok(None),
            None => return Err(io::ErrorKind::UnexpectedEof.into()),
        }
    }
}

/// A line without its line ending; None at end of stream before it. Spends `budget`.
fn read_line(r: &mut BufReader<Stream>, budget: &mut usize) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = r
        .by_ref()
        .take(*budget as u64 + 1)
        .read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if n > *budget {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "request head too large",
        ));
    }
    *budget -= n;
    let Some(line) = buf.strip_suffix(b"\n") else {
        return Err(io::ErrorKind::UnexpectedEof.into());
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Ok(Some(String::from_utf8_lossy(line).into_owned()))
}

fn write_response(
    w: &mut Stream,
    method: &str,
    status: u16,
    body: &Value,
    keep_alive: bool,
) -> io::Result<()> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status)).into_bytes();
    if let Some(location) = body.get("location").and_then(Value::as_str)
        && (300..400).contains(&status)
    {
        out.extend_from_slice(format!("Location: {location}\r\n").as_bytes());
    }
    if status == 204 || status == 304 {
        out.extend_from_slice(format!("Connection: {connection}\r\n\r\n").as_bytes());
    } else {
        let body = serde_json::to_vec(body).expect("serialize the answer");
        out.extend_from_slice(
            format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        if !method.eq_ignore_ascii_case("HEAD") {
            out.extend_from_slice(&body);
        }
    }
    w.write_all(&out)?;
    w.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// `http://host/p?q` -> `/p?q`; anything else unchanged.
fn origin_form(target: &str) -> String {
    for scheme in ["http://", "https://"] {
        if let Some(rest) = target.strip_prefix(scheme) {
            return match rest.find(['/', '?']) {
                Some(i) if rest[i..].starts_with('?') => format!("/{}", &rest[i..]),
                Some(i) => rest[i..].to_string(),
                None => "/".to_string(),
            };
        }
    }
    target.to_string()
}

fn path_only(target: &str) -> &str {
    target.split(['?', '#']).next().unwrap_or("")
}

/// The first query parameter `name` of `target`, percent-decoded (`+` as a space).
fn query_param(target: &str, name: &str) -> Option<String> {
    let query = target.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or("");
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k, true) == name).then(|| percent_decode(v, true))
    })
}

/// Decodes `%XX` escapes (others are kept as they are); `+` as a space when `plus` is set.
fn percent_decode(s: &str, plus: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
