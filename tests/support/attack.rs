//! Tools for the hostile-traffic tests (`tests/transport.rs`): clients bound to a chosen loopback
//! source address, TLS clients, timed pings, floods, probes for connections the server closed,
//! the server's memory and liveness from `/proc`, and file descriptor limits.
//!
//! Everything here talks to loopback only and gives up by itself: every socket gets read and
//! write timeouts, and every loop is bounded in bytes or time.

#![allow(dead_code)]

use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use socket2::{Domain, Socket, Type};

use super::{Resp, TempDir, TestServer, merge, parse_response, tls};

/// The ping: `GET` on it answers 200 `{}`.
pub const PING: &str = "/_matrix/identity/v2";

/// The second loopback address, for a client that must not share the attacker's address.
pub const OTHER_LOOPBACK: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// A TLS client stream over TCP.
pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

// ---------------------------------------------------------------------------------------------
// Servers

/// Starts oxisd with the test certificate on an HTTPS listener next to the plain one, with
/// `patch` merged into the config; returns it and the HTTPS address.
pub fn start_with_tls(patch: Value) -> (TestServer, SocketAddr) {
    let dir = Arc::new(TempDir::new("tls"));
    std::fs::write(dir.path().join("cert.pem"), tls::CERT_PEM).unwrap();
    std::fs::write(dir.path().join("key.pem"), tls::KEY_PEM).unwrap();
    let mut config = json!({"server": {"tls": {
        "enabled": true,
        "port": 0,
        "certificate": dir.path().join("cert.pem"),
        "privateKey": dir.path().join("key.pem"),
    }}});
    merge(&mut config, &patch);
    let server = TestServer::start_in(dir, config);
    let addr = logged_addr(&server, "TLS listening on https://");
    (server, addr)
}

/// The admin listener's address (`admin.enabled` with `admin.port` 0 picks a free port).
pub fn admin_addr(server: &TestServer) -> SocketAddr {
    logged_addr(server, "admin API at http://")
}

/// The address logged right after `prefix` (`... listening on http://127.0.0.1:1234 ...`).
fn logged_addr(server: &TestServer, prefix: &str) -> SocketAddr {
    let line = server
        .wait_for_log(prefix, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no '{prefix}' in the log"));
    line.split(prefix)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in: {line}"))
}

/// Starts oxisd (base config with `patch`) under `RLIMIT_NOFILE` = `limit`, soft and hard.
// unsafe: setrlimit in the child before exec, through libc (std has no wrapper).
#[allow(unsafe_code)]
pub fn start_with_fd_limit(patch: Value, limit: libc::rlim_t) -> TestServer {
    let dir = Arc::new(TempDir::new("fdlimit"));
    TestServer::start_in_with(dir, patch, move |command| {
        // SAFETY: setrlimit is async-signal-safe, and the closure allocates nothing.
        unsafe {
            command.pre_exec(move || {
                let rl = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            });
        }
    })
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit (servers started afterwards
/// inherit it); returns the new soft limit.
// unsafe: getrlimit and setrlimit through libc (std has no wrapper).
#[allow(unsafe_code)]
pub fn raise_fd_limit() -> libc::rlim_t {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a valid, owned struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl), 0);
        if rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max;
            assert_eq!(
                libc::setrlimit(libc::RLIMIT_NOFILE, &rl),
                0,
                "raise RLIMIT_NOFILE: {}",
                io::Error::last_os_error()
            );
        }
    }
    rl.rlim_cur
}

/// The resident memory of process `pid` in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS for {pid}"))
}

/// Whether process `pid` still runs (it exists and is not a zombie waiting to be reaped).
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Asserts that the server process runs and answers a ping on a new connection (waiting up to
/// `patience` for the first 200).
pub fn assert_serving(server: &TestServer, patience: Duration, after: &str) {
    assert!(is_alive(server.pid()), "the server died after {after}");
    let deadline = Instant::now() + patience;
    loop {
        let result = ping(server.addr, Duration::from_secs(3));
        if result.is_ok() {
            return;
        }
        assert!(
            Instant::now() < deadline && is_alive(server.pid()),
            "no ping answer after {after}: {result:?} (server alive: {})",
            is_alive(server.pid())
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------------
// Clients

/// A TCP connection to `to` from the loopback address `from` (a free port on it), with read and
/// write timeouts of 10 s.
pub fn connect_from(from: IpAddr, to: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(to), Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(from, 0).into())?;
    socket.connect_timeout(&to.into(), timeout)?;
    let stream = TcpStream::from(socket);
    with_timeouts(&stream, Duration::from_secs(10))?;
    Ok(stream)
}

/// A TCP connection to `to` (from 127.0.0.1), with read and write timeouts of 10 s.
pub fn connect(to: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
    with_timeouts(&stream, Duration::from_secs(10))?;
    Ok(stream)
}

fn with_timeouts(stream: &TcpStream, timeout: Duration) -> io::Result<()> {
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)
}

/// A TLS client on `tcp` trusting the test certificate, for `127.0.0.1`. The handshake runs on
/// the first write or read.
pub fn tls_client(tcp: TcpStream) -> TlsStream {
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(tls::client_config(), name).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

/// Reads one response: the head, then a `Content-Length` body, a chunked body, or everything up
/// to the end of the stream. The socket's read timeout bounds each read.
pub fn read_one_response(r: &mut impl Read) -> io::Result<Resp> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let mut eof = false;
    while !eof && !response_complete(&raw) {
        match r.read(&mut buf) {
            Ok(0) => eof = true,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // A TLS peer that closes without close_notify, or a reset after the answer.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
                ) && head_end(&raw).is_some() =>
            {
                eof = true
            }
            Err(e) => {
                let got = String::from_utf8_lossy(&raw[..raw.len().min(200)]).into_owned();
                return Err(io::Error::new(e.kind(), format!("{e} (got {got:?})")));
            }
        }
    }
    if head_end(&raw).is_none() {
        return Err(io::Error::new(
            ErrorKind::UnexpectedEof,
            format!(
                "connection closed before a response head ({} bytes)",
                raw.len()
            ),
        ));
    }
    Ok(parse_response(&raw))
}

fn head_end(raw: &[u8]) -> Option<usize> {
    raw.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Whether `raw` holds a whole response (a head, and a body as long as it says).
fn response_complete(raw: &[u8]) -> bool {
    let Some(end) = head_end(raw) else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    if header("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
        return raw.ends_with(b"0\r\n\r\n");
    }
    match header("content-length:").and_then(|v| v.parse::<usize>().ok()) {
        Some(len) => raw.len() >= end + len,
        // 204, 304 and friends have no body; anything else runs to the end of the stream.
        None => head
            .split_whitespace()
            .nth(1)
            .is_some_and(|s| s.starts_with('1') || s == "204" || s == "304"),
    }
}

/// Sends `head` (a request head, and whatever else) and reads one response.
pub fn exchange(stream: &mut (impl Read + Write), head: &str) -> io::Result<Resp> {
    stream.write_all(head.as_bytes())?;
    stream.flush()?;
    read_one_response(stream)
}

/// A ping on a new connection to `addr`: how long the 200 `{}` took, from connecting to the end
/// of the answer; `Err` when it did not come within `timeout` or was something else.
pub fn ping(addr: SocketAddr, timeout: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    with_timeouts(&stream, timeout).map_err(|e| e.to_string())?;
    let r = exchange(
        &mut stream,
        &format!("GET {PING} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .map_err(|e| format!("after {:?}: {e}", started.elapsed()))?;
    let took = started.elapsed();
    if r.status != 200 || serde_json::from_slice::<Value>(&r.body).ok() != Some(json!({})) {
        return Err(format!("ping answered {} {}", r.status, r.text()));
    }
    Ok(took)
}

/// The slowest of `n` pings on fresh connections, stopping at the first one slower than `bound`
/// (or failing).
pub fn worst_ping(addr: SocketAddr, n: usize, bound: Duration) -> Result<Duration, String> {
    let mut worst = Duration::ZERO;
    for _ in 0..n {
        worst = worst.max(ping(addr, Duration::from_secs(3))?);
        if worst >= bound {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(worst)
}

/// Asserts that 5 pings on fresh connections each answer within `bound`. One more round of 5 is
/// allowed when the first one has a slow ping, so that a single scheduling hiccup on a busy
/// machine does not fail the test; a server that is really held up fails both rounds.
pub fn assert_pings_within(addr: SocketAddr, bound: Duration, during: &str) {
    let first = worst_ping(addr, 5, bound);
    if matches!(first, Ok(worst) if worst < bound) {
        return;
    }
    let second = worst_ping(addr, 5, bound);
    assert!(
        matches!(second, Ok(worst) if worst < bound),
        "pings during {during} must answer within {bound:?}: first round {first:?}, second round {second:?}"
    );
}

/// Whether the peer has closed `stream` (end of stream, or an error such as a reset), without
/// waiting; anything it sent first (a 408, say) is read and dropped. For non-blocking streams.
pub fn closed_by_peer(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match (&mut &*stream).read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

/// Waits until the server has closed every stream in `streams` (non-blocking ones) or `deadline`
/// passed; returns how many are still open.
pub fn wait_until_closed(streams: &[TcpStream], deadline: Instant) -> usize {
    let mut open: Vec<&TcpStream> = streams.iter().collect();
    loop {
        open.retain(|s| !closed_by_peer(s));
        if open.is_empty() || Instant::now() >= deadline {
            return open.len();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What a flood did: the bytes sent and what the server sent back before it closed.
pub struct Flooded {
    pub sent: usize,
    pub received: Vec<u8>,
}

impl Flooded {
    /// The first line the server sent.
    pub fn status_line(&self) -> String {
        let text = String::from_utf8_lossy(&self.received);
        text.lines().next().unwrap_or("").to_string()
    }
}

/// Sends `prefix`, then `filler` over and over, on `stream`, while another thread reads what
/// the server sends. Stops at `max` bytes, after `time`, at the first write error (the server
/// closed: EPIPE, ECONNRESET) or once the server has closed its side. The reader waits at most
/// 5 s for each read.
pub fn flood(
    stream: TcpStream,
    prefix: &[u8],
    filler: &[u8],
    max: usize,
    time: Duration,
) -> Flooded {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let received = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let (mut stream, done, received) =
            (stream.try_clone().unwrap(), done.clone(), received.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => received.lock().unwrap().extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut writer = &stream;
    let started = Instant::now();
    let mut sent = 0;
    if writer.write_all(prefix).is_ok() {
        sent += prefix.len();
        while sent < max && started.elapsed() < time && !done.load(Ordering::SeqCst) {
            if writer.write_all(filler).is_err() {
                break;
            }
            sent += filler.len();
        }
    }
    reader.join().unwrap();
    let received = std::mem::take(&mut *received.lock().unwrap());
    Flooded { sent, received }
}
