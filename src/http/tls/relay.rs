//! One HTTPS connection: the TLS handshake, then a relay of plaintext between the client and
//! the plain listener, both sockets non-blocking under one `poll`, with back-pressure both ways
//! (no more is read from one side while the other has not taken what came before).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection};

use super::TlsPeers;

/// Plaintext from the client held for the plain listener before reading stops.
const UP_LIMIT: usize = 64 * 1024;

/// How a relayed connection behaves.
pub struct Settings {
    /// The plain listener.
    pub backend: SocketAddr,
    /// Longest TLS handshake.
    pub handshake_timeout: Duration,
    /// Longest wait to connect to the plain listener or to hand the client its last bytes.
    pub io_timeout: Duration,
    /// A connection with no traffic either way for this long is closed.
    pub idle_timeout: Duration,
    /// Bytes a client may send while no request of its is in progress (a request head, and
    /// whatever body came with it before the head was parsed). tiny_http reads heads without a
    /// limit; this bounds what one connection can make it buffer.
    pub head_limit: usize,
}

/// Serves one HTTPS connection from `peer` until either side closes it.
pub fn serve(
    mut tcp: TcpStream,
    peer: SocketAddr,
    config: Arc<ServerConfig>,
    settings: &Settings,
    peers: &TlsPeers,
) -> io::Result<()> {
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(settings.handshake_timeout))?;
    tcp.set_write_timeout(Some(settings.io_timeout))?;
    let mut conn = ServerConnection::new(config).map_err(io::Error::other)?;
    let deadline = Instant::now() + settings.handshake_timeout;
    while conn.is_handshaking() {
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "handshake too slow",
            ));
        }
        match conn.complete_io(&mut tcp) {
            Ok((0, 0)) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(e) => {
                // Send the alert that says why, if any.
                let _ = conn.write_tls(&mut tcp);
                return Err(e);
            }
        }
    }
    let mut backend = TcpStream::connect_timeout(&settings.backend, settings.io_timeout)?;
    backend.set_nodelay(true)?;
    let relay_addr = backend.local_addr()?;
    peers.insert(relay_addr, peer);
    let result = pump(
        &mut tcp,
        &mut conn,
        &mut backend,
        settings,
        peers,
        relay_addr,
    );
    peers.remove(&relay_addr);
    result
}

fn pump(
    tcp: &mut TcpStream,
    conn: &mut ServerConnection,
    backend: &mut TcpStream,
    settings: &Settings,
    peers: &TlsPeers,
    relay_addr: SocketAddr,
) -> io::Result<()> {
    let mut head_bytes = 0usize;
    let mut requests_seen = 0u64;
    tcp.set_nonblocking(true)?;
    backend.set_nonblocking(true)?;
    let mut up: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut last = Instant::now();
    // The handshake may have read the first request already.
    let mut client_done = drain_plaintext(conn, &mut up, &mut buf)?;
    let mut backend_shut = false;
    loop {
        while conn.wants_write() {
            match conn.write_tls(tcp) {
                Ok(_) => last = Instant::now(),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        while !up.is_empty() {
            match backend.write(&up) {
                Ok(n) => {
                    up.drain(..n);
                    last = Instant::now();
                    let (started, in_flight) = peers.progress(&relay_addr);
                    if started != requests_seen {
                        requests_seen = started;
                        head_bytes = 0;
                    }
                    if !in_flight {
                        head_bytes += n;
                        if head_bytes > settings.head_limit {
                            refuse_head(tcp, conn, settings.io_timeout);
                            return Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                "request head too large",
                            ));
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if client_done && up.is_empty() && !backend_shut {
            // The client sent all it will; the plain side may still answer.
            let _ = backend.shutdown(Shutdown::Write);
            backend_shut = true;
        }

        // A closed client socket reports a hang-up on every poll: leave it out unless there is
        // still something to write to it.
        let client_fd = if client_done && !conn.wants_write() {
            -1
        } else {
            tcp.as_raw_fd()
        };
        let mut fds = [
            poll_fd(
                client_fd,
                !client_done && up.len() < UP_LIMIT,
                conn.wants_write(),
            ),
            poll_fd(backend.as_raw_fd(), !conn.wants_write(), !up.is_empty()),
        ];
        // SAFETY: `fds` is a valid array of pollfd for the duration of the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 1000) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if ready == 0 {
            if last.elapsed() >= settings.idle_timeout {
                return Ok(());
            }
            continue;
        }
        let readable =
            |fd: &libc::pollfd| fd.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0;

        if readable(&fds[0]) && !client_done {
            match conn.read_tls(tcp) {
                Ok(0) => client_done = true,
                Ok(_) => {
                    last = Instant::now();
                    if let Err(e) = conn.process_new_packets() {
                        let _ = conn.write_tls(tcp);
                        return Err(io::Error::other(e));
                    }
                    client_done |= drain_plaintext(conn, &mut up, &mut buf)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }

        if readable(&fds[1]) {
            match backend.read(&mut buf) {
                Ok(0) => {
                    conn.send_close_notify();
                    finish(tcp, conn, settings.io_timeout);
                    return Ok(());
                }
                Ok(n) => {
                    conn.writer().write_all(&buf[..n])?;
                    last = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Answers 431 (the head is too large) and closes the connection.
fn refuse_head(tcp: &mut TcpStream, conn: &mut ServerConnection, timeout: Duration) {
    let body = r#"{"errcode":"M_TOO_LARGE","error":"Request headers are too large"}"#;
    let answer = format!(
        "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if conn.writer().write_all(answer.as_bytes()).is_ok() {
        conn.send_close_notify();
        finish(tcp, conn, timeout);
    }
    // Read and drop what the client is still sending for a moment: closing with unread data
    // would reset the connection and lose the answer.
    let deadline = Instant::now() + Duration::from_secs(2);
    let _ = tcp.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 16 * 1024];
    while Instant::now() < deadline {
        match tcp.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut => {
            }
            Err(_) => break,
        }
    }
}

/// Moves the plaintext rustls has decrypted into `up`; true when the client closed.
fn drain_plaintext(
    conn: &mut ServerConnection,
    up: &mut Vec<u8>,
    buf: &mut [u8],
) -> io::Result<bool> {
    loop {
        match conn.reader().read(buf) {
            Ok(0) => return Ok(true),
            Ok(n) => up.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(true),
            Err(e) => return Err(e),
        }
    }
}

/// Hands the client what is still buffered, waiting at most `timeout`.
fn finish(tcp: &mut TcpStream, conn: &mut ServerConnection, timeout: Duration) {
    if tcp.set_nonblocking(false).is_err() || tcp.set_write_timeout(Some(timeout)).is_err() {
        return;
    }
    while conn.wants_write() {
        if conn.write_tls(tcp).is_err() {
            return;
        }
    }
    let _ = tcp.shutdown(Shutdown::Write);
}

fn poll_fd(fd: i32, read: bool, write: bool) -> libc::pollfd {
    let mut events = 0;
    if read {
        events |= libc::POLLIN;
    }
    if write {
        events |= libc::POLLOUT;
    }
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// Waits until `listener` has a connection to accept, or `timeout`.
pub fn wait_readable(listener: &TcpListener, timeout: Duration) {
    let mut fds = [poll_fd(listener.as_raw_fd(), true, false)];
    // SAFETY: `fds` is a valid array of pollfd for the duration of the call.
    unsafe {
        libc::poll(fds.as_mut_ptr(), 1, timeout.as_millis() as i32);
    }
}
