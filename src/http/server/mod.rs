//! The transport: hyper's HTTP/1.1 server on a tokio runtime, one stack for every listener
//! (public HTTP, HTTPS, admin).
//!
//! Why hyper and not tiny_http (the design card's choice): tiny_http 0.12, unmaintained since
//! 2023, allocates a client's declared `Content-Length` when it drains an unread body (one
//! request aborted the process), reads request heads without a limit, spends a thread and
//! two file descriptors per connection, and stops accepting for good on `EMFILE`. None of that
//! can be fixed from outside. hyper bounds the head while reading it and leaves connections,
//! timeouts and bodies to us; tokio was already linked (mail-send needs it).
//!
//! Each listener group runs on its own current-thread runtime (one I/O thread) with a
//! blocking pool of `workers` threads for the handlers, which stay synchronous. What a stranger
//! can make us hold is bounded here: connections ([`admission`]), time ([`timed_io`], the
//! body deadline, the TLS handshake timeout), memory (the head limit, the body limit checked
//! from `Content-Length` before reading, hyper's read buffer), and threads (the pool). A panic
//! in a handler or in the transport is caught and answered with 500 where an answer is still
//! possible; an accept loop that panics is started again.

pub mod admission;
mod exchange;
mod fd_limit;
mod internal;
mod timed_io;

use std::convert::Infallible;
use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub use admission::{Admission, Cap};
pub use exchange::{Gate, Site};
pub use fd_limit::raise_open_files_limit;
pub use internal::{Internal, InternalListener};

use super::response::{self, Reply};
use super::tls::Certs;
use crate::error::{Error, StartError};
use admission::{Refusal, Ticket};
use timed_io::{Clock, Leftover, TimedIo};

/// How long a shutdown waits for the requests in flight before it gives up on them (within
/// the 30 s systemd gives a stop in `contrib/oxisd.service`).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// Pause after an `accept()` error such as `EMFILE`, so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Idle handler threads exit after this long, giving their memory back.
const WORKER_KEEP_ALIVE: Duration = Duration::from_secs(10);
/// A lingering close lasts at most this long (or `server.readTimeout` when shorter)...
const LINGER_TIME: Duration = Duration::from_secs(5);
/// ... and discards at most this much of what the client still sends.
const LINGER_BYTES: usize = 16 * 1024 * 1024;
/// Refused connections and accept errors are logged at most this often per listener.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The time limits of a listener's connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `server.idleTimeout`: no request in progress and no byte of the next.
    pub idle: Duration,
    /// `server.readTimeout`: a request head, once started (and a body, where it is read).
    pub head: Duration,
    /// `server.writeTimeout`: a write that makes no progress.
    pub write: Duration,
    /// `server.tls.handshakeTimeout`.
    pub handshake: Duration,
    /// `server.maxHeaderSize`: request line and headers.
    pub max_header: usize,
}

impl Limits {
    /// The limits of `server.*`.
    pub fn of(server: &crate::config::ServerConfig) -> Limits {
        Limits {
            idle: Duration::from_secs(server.idle_timeout),
            head: Duration::from_secs(server.read_timeout),
            write: Duration::from_secs(server.write_timeout),
            handshake: Duration::from_secs(server.tls.handshake_timeout),
            max_header: server.max_header_size,
        }
    }
}

/// A bound socket and how its connections are taken.
pub struct Listener {
    /// The socket, bound.
    pub tcp: std::net::TcpListener,
    /// Present on an HTTPS listener.
    pub tls: Option<Arc<Certs>>,
    /// The caps of its group.
    pub admission: Arc<Admission>,
    /// Its own cap inside the group, if any.
    pub cap: Option<Arc<Cap>>,
    /// For the log: "HTTP", "HTTPS", "admin".
    pub name: &'static str,
}

/// Binds `host:port`; `keys` names the config keys the error is about.
pub fn bind(host: &str, port: u16, keys: &str) -> Result<std::net::TcpListener, StartError> {
    let host = crate::util::url::unbracket(host);
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| StartError::setting(keys, format!("cannot resolve '{host}': {e}")))?
        .next()
        .ok_or_else(|| StartError::setting(keys, format!("'{host}' has no address")))?;
    std::net::TcpListener::bind(addr)
        .map_err(|e| StartError::setting(keys, format!("cannot listen on {addr}: {e}")))
}

/// A running group of listeners.
pub struct Running {
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets the requests in flight finish (for at most 20 s), and returns
    /// when the group has stopped.
    pub fn shutdown(mut self) {
        self.stop.send_replace(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Everything a connection of one listener needs.
struct ListenerCtx {
    site: Arc<Site>,
    limits: Limits,
    tls: Option<Arc<Certs>>,
    admission: Arc<Admission>,
    cap: Option<Arc<Cap>>,
    name: &'static str,
}

/// Starts serving `listeners` for `site` on a runtime of its own, named `name`, whose handlers
/// run on at most `workers` threads.
pub fn spawn(
    name: &str,
    workers: usize,
    site: Arc<Site>,
    limits: Limits,
    listeners: Vec<Listener>,
) -> Result<Running, StartError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .max_blocking_threads(workers.max(1))
        .thread_keep_alive(WORKER_KEEP_ALIVE)
        .thread_name(format!("{name}-worker"))
        .build()
        .map_err(|e| StartError::other(format!("cannot start the {name} runtime: {e}")))?;
    let (stop, stopped) = watch::channel(false);
    let mut accepting = Vec::with_capacity(listeners.len());
    let mut groups: Vec<Arc<Admission>> = Vec::new();
    {
        let _entered = runtime.enter();
        for l in listeners {
            l.tcp
                .set_nonblocking(true)
                .map_err(|e| StartError::other(format!("{} listener: {e}", l.name)))?;
            let tcp = TcpListener::from_std(l.tcp)
                .map_err(|e| StartError::other(format!("{} listener: {e}", l.name)))?;
            if !groups.iter().any(|g| Arc::ptr_eq(g, &l.admission)) {
                groups.push(l.admission.clone());
            }
            let ctx = Arc::new(ListenerCtx {
                site: site.clone(),
                limits,
                tls: l.tls,
                admission: l.admission,
                cap: l.cap,
                name: l.name,
            });
            accepting.push((Arc::new(tcp), ctx));
        }
    }
    let thread = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            runtime.block_on(async move {
                for (tcp, ctx) in accepting {
                    tokio::spawn(supervise(tcp, ctx, stopped.clone()));
                }
                let mut stopped = stopped;
                stopping(&mut stopped).await;
                let drained = async {
                    for group in &groups {
                        group.drained().await;
                    }
                };
                if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
                    log::warn!("stopping with requests still in flight after {SHUTDOWN_GRACE:?}");
                }
            });
            runtime.shutdown_timeout(Duration::from_secs(1));
        })
        .map_err(|e| StartError::other(format!("cannot start the {name} thread: {e}")))?;
    Ok(Running {
        stop,
        thread: Some(thread),
    })
}

/// Returns once the group is told to stop.
async fn stopping(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live across an await (it is not Send).
    let _ = stop.wait_for(|s| *s).await;
}

/// Runs the accept loop of a listener, and starts it again if it panics.
async fn supervise(tcp: Arc<TcpListener>, ctx: Arc<ListenerCtx>, stop: watch::Receiver<bool>) {
    loop {
        let task = tokio::spawn(accept_loop(tcp.clone(), ctx.clone(), stop.clone()));
        match task.await {
            Err(e) if e.is_panic() => {
                log::error!(
                    "{} listener: the accept loop panicked; starting it again",
                    ctx.name
                );
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
            _ => return,
        }
    }
}

/// Logs at most once per [`WARN_EVERY`].
struct Throttle(Option<Instant>);

impl Throttle {
    fn ready(&mut self) -> bool {
        let now = Instant::now();
        if self
            .0
            .is_some_and(|last| now.duration_since(last) < WARN_EVERY)
        {
            return false;
        }
        self.0 = Some(now);
        true
    }
}

async fn accept_loop(
    tcp: Arc<TcpListener>,
    ctx: Arc<ListenerCtx>,
    mut stop: watch::Receiver<bool>,
) {
    let mut refusals = Throttle(None);
    let mut errors = Throttle(None);
    loop {
        let accepted = tokio::select! {
            accepted = tcp.accept() => accepted,
            _ = stopping(&mut stop) => return,
        };
        match accepted {
            Ok((stream, peer)) => match ctx.admission.admit(peer.ip(), ctx.cap.as_ref()) {
                Ok(ticket) => {
                    tokio::spawn(serve_connection(
                        stream,
                        peer,
                        ticket,
                        ctx.clone(),
                        stop.clone(),
                    ));
                }
                Err(refusal) => {
                    drop(stream);
                    if refusals.ready() {
                        let why = match refusal {
                            Refusal::Total => {
                                "the connection limit is reached (server.maxConnections, server.tls.maxConnections)"
                            }
                            Refusal::PerAddress => {
                                "too many connections from one address (server.maxConnectionsPerAddress)"
                            }
                        };
                        log::warn!(
                            "{} listener: refusing connections, {why}; latest from {peer}",
                            ctx.name
                        );
                    }
                }
            },
            // The client went away before we took its connection: nothing to do.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                // Out of file descriptors (EMFILE, ENFILE) or memory: wait for some to be
                // given back, and go on accepting.
                if errors.ready() {
                    log::warn!("{} listener: accept failed, retrying: {e}", ctx.name);
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Serves one accepted connection until it closes; `_ticket` holds its place.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    _ticket: Ticket,
    ctx: Arc<ListenerCtx>,
    stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let Some(certs) = &ctx.tls else {
        return serve_http(stream, peer, &ctx, stop).await;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(certs.get());
    match tokio::time::timeout(ctx.limits.handshake, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => serve_http(tls, peer, &ctx, stop).await,
        Ok(Err(e)) => log::debug!("{} connection from {peer}: handshake failed: {e}", ctx.name),
        Err(_) => log::debug!("{} connection from {peer}: handshake timed out", ctx.name),
    }
}

/// Speaks HTTP/1.1 over `io` until the connection closes or the server stops.
async fn serve_http<T>(io: T, peer: SocketAddr, ctx: &ListenerCtx, mut stop: watch::Receiver<bool>)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = ctx.limits;
    let clock = Clock::new(limits.idle, limits.head);
    let leftover: Leftover<T> = Arc::default();
    let io = TokioIo::new(TimedIo::new(
        io,
        clock.clone(),
        limits.write,
        leftover.clone(),
    ));
    let site = ctx.site.clone();
    let service = hyper::service::service_fn(move |rq| {
        clock.busy();
        let (site, clock) = (site.clone(), clock.clone());
        async move {
            let public = site.public;
            let response = CatchUnwind(Box::pin(exchange::exchange(site, peer, rq)))
                .await
                .unwrap_or_else(|_| {
                    log::error!("a request from {peer} panicked in the transport");
                    response::into_response(Reply::from(Error::internal("panic")), public, true)
                });
            if response.headers().contains_key(hyper::header::CONNECTION) {
                clock.left_unread();
            }
            clock.idle();
            Ok::<_, Infallible>(response)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .keep_alive(true)
        // A client may shut down its sending side after its request and still read the answer.
        .half_close(true)
        .max_header_size(limits.max_header)
        // The read buffer holds a head (bounded above) and then body bytes as they come.
        .max_buf_size(limits.max_header.max(8192) + 8192)
        // Our own clock keeps the head and idle deadlines (hyper's would count idle time
        // between requests as head time).
        .header_read_timeout(None);
    {
        // In a block of its own: the connection (and so the stream) is dropped at its end.
        let conn = builder.serve_connection(io, service);
        let mut conn = std::pin::pin!(conn);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    log::debug!("{} connection from {peer}: {e}", ctx.name);
                }
            }
            _ = stopping(&mut stop) => {
                // Finish the request in progress, if any, then close.
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
    }
    let left = leftover.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(io) = left {
        timed_io::linger(io, limits.head.min(LINGER_TIME), LINGER_BYTES).await;
    }
}

/// A future whose panics come out as `Err`, so one bad request cannot take its connection's
/// task down without an answer.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}
