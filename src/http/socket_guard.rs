//! Socket timeouts for tiny_http's connections, which tiny_http itself does not offer.
//!
//! tiny_http accepts connections on its own thread and never sets read or write timeouts, so a
//! client that stops sending would hold a thread forever. This guard watches the process's
//! sockets (Linux `/proc/self/fd`) a few times a second. For every accepted connection on our
//! listening port it sets `SO_RCVTIMEO`/`SO_SNDTIMEO` (and `TCP_NODELAY`), and it shuts down connections that have
//! sat without a request for `server.idleTimeout` (a client dripping its headers, or an idle
//! keep-alive). Workers report when a request starts and ends, so a request in progress is never
//! cut. Elsewhere than Linux the guard does nothing and says so at start.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the guard looks at the sockets.
const TICK: Duration = Duration::from_millis(250);

/// Shared between the guard thread and the workers.
pub struct SocketGuard {
    port: u16,
    read_timeout: Duration,
    write_timeout: Duration,
    idle_timeout: Duration,
    conns: Mutex<HashMap<SocketAddr, Conn>>,
}

struct Conn {
    fd: i32,
    last_activity: Instant,
    in_flight: u32,
    seen_by_scan: bool,
    closed: bool,
}

impl SocketGuard {
    /// A guard for connections accepted on `port`.
    pub fn new(port: u16, read: Duration, write: Duration, idle: Duration) -> Arc<SocketGuard> {
        Arc::new(SocketGuard {
            port,
            read_timeout: read,
            write_timeout: write,
            idle_timeout: idle,
            conns: Mutex::new(HashMap::new()),
        })
    }

    /// Starts the watching thread; it stops when `stop` becomes true.
    pub fn spawn(self: &Arc<Self>, stop: Arc<AtomicBool>) {
        if !cfg!(target_os = "linux") {
            log::warn!(
                "socket timeouts are only enforced on Linux; put a reverse proxy in front of oxisd"
            );
            return;
        }
        let guard = self.clone();
        let spawned = std::thread::Builder::new()
            .name("socket-guard".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    guard.scan();
                    std::thread::sleep(TICK);
                }
            });
        if let Err(e) = spawned {
            log::warn!("cannot start the socket guard, connections have no timeouts: {e}");
        }
    }

    /// A worker started a request from `peer`. A connection the guard has not seen yet gets
    /// its timeouts now, before the worker reads the body: a read that is already blocked would
    /// not notice timeouts set later.
    pub fn request_started(&self, peer: SocketAddr) {
        let known = {
            let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
            let conn = conns.entry(peer).or_insert_with(|| Conn {
                fd: -1,
                last_activity: Instant::now(),
                in_flight: 0,
                seen_by_scan: false,
                closed: false,
            });
            conn.in_flight += 1;
            conn.last_activity = Instant::now();
            conn.fd >= 0
        };
        if known {
            return;
        }
        let found = sys::accepted_sockets(self.port)
            .into_iter()
            .find(|(_, p)| *p == peer);
        if let Some((fd, _)) = found {
            sys::set_timeouts(fd, self.read_timeout, self.write_timeout);
            let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(conn) = conns.get_mut(&peer) {
                conn.fd = fd;
            }
        }
    }

    /// A worker finished a request from `peer`.
    pub fn request_finished(&self, peer: SocketAddr) {
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(conn) = conns.get_mut(&peer) {
            conn.in_flight = conn.in_flight.saturating_sub(1);
            conn.last_activity = Instant::now();
        }
    }

    fn scan(&self) {
        let found = sys::accepted_sockets(self.port);
        let now = Instant::now();
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        for conn in conns.values_mut() {
            conn.seen_by_scan = false;
        }
        for (fd, peer) in found {
            let conn = conns.entry(peer).or_insert_with(|| Conn {
                fd: -1,
                last_activity: now,
                in_flight: 0,
                seen_by_scan: false,
                closed: false,
            });
            conn.seen_by_scan = true;
            if conn.fd != fd {
                conn.fd = fd;
                sys::set_timeouts(fd, self.read_timeout, self.write_timeout);
            }
            let idle =
                conn.in_flight == 0 && now.duration_since(conn.last_activity) > self.idle_timeout;
            if idle && !conn.closed && sys::still_is(fd, self.port, peer) {
                log::debug!("closing idle connection from {peer}");
                sys::shutdown(fd);
                conn.closed = true;
            }
        }
        // Forget connections that are gone, but keep those a worker is still answering.
        conns.retain(|_, c| c.seen_by_scan || c.in_flight > 0);
    }
}

#[cfg(target_os = "linux")]
mod sys {
    use std::mem::{MaybeUninit, size_of};
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::time::Duration;

    /// Accepted TCP connections of this process on local port `port`: (fd, peer address).
    pub fn accepted_sockets(port: u16) -> Vec<(i32, SocketAddr)> {
        let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in dir.flatten() {
            let Some(fd) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            // Cheap filter first: only sockets are links to "socket:[inode]".
            match std::fs::read_link(entry.path()) {
                Ok(target)
                    if target
                        .as_os_str()
                        .as_encoded_bytes()
                        .starts_with(b"socket:") => {}
                _ => continue,
            }
            if local_port(fd) != Some(port) {
                continue;
            }
            // The listening socket has no peer, so this keeps only accepted connections.
            if let Some(peer) = peer(fd) {
                out.push((fd, peer));
            }
        }
        out
    }

    /// True when `fd` is still the connection from `peer` on `port`.
    pub fn still_is(fd: i32, port: u16, peer_addr: SocketAddr) -> bool {
        local_port(fd) == Some(port) && peer(fd) == Some(peer_addr)
    }

    pub fn set_timeouts(fd: i32, read: Duration, write: Duration) {
        // No Nagle: tiny_http writes the head and the body of a response separately, and a
        // client's delayed ACK would otherwise hold the second write back by 40 ms.
        let one: libc::c_int = 1;
        // SAFETY: `one` is a valid c_int that outlives the call; the size matches.
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&one as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        for (opt, d) in [(libc::SO_RCVTIMEO, read), (libc::SO_SNDTIMEO, write)] {
            let tv = libc::timeval {
                tv_sec: d.as_secs() as _,
                tv_usec: d.subsec_micros() as _,
            };
            // SAFETY: `tv` is a valid timeval that outlives the call; the size matches.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    opt,
                    (&tv as *const libc::timeval).cast(),
                    size_of::<libc::timeval>() as libc::socklen_t,
                );
            }
        }
    }

    pub fn shutdown(fd: i32) {
        // SAFETY: shutdown only changes the socket's state; tiny_http still owns and closes fd.
        unsafe {
            libc::shutdown(fd, libc::SHUT_RDWR);
        }
    }

    fn local_port(fd: i32) -> Option<u16> {
        addr(fd, false).map(|a| a.port())
    }

    fn peer(fd: i32) -> Option<SocketAddr> {
        addr(fd, true)
    }

    fn addr(fd: i32, peer: bool) -> Option<SocketAddr> {
        let mut storage = MaybeUninit::<libc::sockaddr_storage>::zeroed();
        let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: storage is large enough for any socket address and len says so.
        let rc = unsafe {
            if peer {
                libc::getpeername(fd, storage.as_mut_ptr().cast(), &mut len)
            } else {
                libc::getsockname(fd, storage.as_mut_ptr().cast(), &mut len)
            }
        };
        if rc != 0 {
            return None;
        }
        // SAFETY: the kernel filled the storage (it was zeroed before).
        let storage = unsafe { storage.assume_init() };
        match i32::from(storage.ss_family) {
            libc::AF_INET => {
                // SAFETY: the family says this is a sockaddr_in.
                let sin: libc::sockaddr_in =
                    unsafe { std::ptr::read((&storage as *const libc::sockaddr_storage).cast()) };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: the family says this is a sockaddr_in6.
                let sin6: libc::sockaddr_in6 =
                    unsafe { std::ptr::read((&storage as *const libc::sockaddr_storage).cast()) };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    use std::net::SocketAddr;
    use std::time::Duration;

    pub fn accepted_sockets(_port: u16) -> Vec<(i32, SocketAddr)> {
        Vec::new()
    }
    pub fn still_is(_fd: i32, _port: u16, _peer: SocketAddr) -> bool {
        false
    }
    pub fn set_timeouts(_fd: i32, _read: Duration, _write: Duration) {}
    pub fn shutdown(_fd: i32) {}
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn idle_connections_are_shut_down() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (_server_side, peer) = listener.accept().unwrap();
        let guard = SocketGuard::new(
            port,
            Duration::from_secs(5),
            Duration::from_secs(5),
            Duration::from_millis(50),
        );
        guard.scan();
        assert!(guard.conns.lock().unwrap().contains_key(&peer));
        std::thread::sleep(Duration::from_millis(80));
        guard.scan();
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut buf = [0u8; 1];
        // The server side was shut down: the client reads end-of-stream, not a timeout.
        assert_eq!(client.read(&mut buf).unwrap(), 0);
    }

    #[test]
    fn requests_in_flight_are_not_cut() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (_server_side, peer) = listener.accept().unwrap();
        let guard = SocketGuard::new(
            port,
            Duration::from_secs(5),
            Duration::from_secs(5),
            Duration::from_millis(20),
        );
        guard.request_started(peer);
        std::thread::sleep(Duration::from_millis(50));
        guard.scan();
        client
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = [0u8; 1];
        let err = client.read(&mut buf).unwrap_err();
        assert!(matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ));
    }
}
