//! The deadlines of one connection, kept by its byte stream ([`TimedIo`]), since only the
//! stream sees every read and write:
//!
//! - **idle**: with no request in progress and no byte of the next one, the connection is
//!   closed after `server.idleTimeout`;
//! - **head**: once the first byte of a request head arrived, the whole head must arrive
//!   within `server.readTimeout` (a client dripping its headers cannot hold the connection);
//! - **write**: a write that makes no progress for `server.writeTimeout` ends the connection
//!   (a client that stops reading its answer).
//!
//! While a request is in progress ([`Clock::busy`]), the stream sets no read deadline: the body
//! has its own deadline where it is read, and the handler its own limits.
//!
//! When a connection ends while the client may still be sending (an answer given without
//! reading the body, a head refused as too large, a head cut off by its deadline), closing the
//! socket at once would make the kernel reset the connection, and the client would lose our
//! answer before reading it. So the stream is handed back ([`Leftover`]) for a lingering close:
//! [`linger`] closes our side and discards what still arrives, within a time and byte budget.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Where a connection stands between requests.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request since then.
    Idle(Instant),
    /// Reading a request head that must be complete by then.
    Head(Instant),
    /// A request is being read or answered.
    Busy,
}

/// A connection's phase, shared by its stream and its request handling.
pub struct Clock {
    phase: Mutex<Phase>,
    idle: Duration,
    head: Duration,
    /// An answer was given without reading the whole request.
    unread: AtomicBool,
}

impl Clock {
    /// A clock for a connection that just opened.
    pub fn new(idle: Duration, head: Duration) -> Arc<Clock> {
        Arc::new(Clock {
            phase: Mutex::new(Phase::Idle(Instant::now())),
            idle,
            head,
            unread: AtomicBool::new(false),
        })
    }

    /// The answer leaves part of the request unread: the connection closes after it.
    pub fn left_unread(&self) {
        self.unread.store(true, Ordering::SeqCst);
    }

    /// Whether the client may still be sending when the connection ends.
    fn may_still_send(&self) -> bool {
        self.unread.load(Ordering::SeqCst) || matches!(*self.lock(), Phase::Head(_))
    }

    /// A request head was parsed: no read deadline until [`Clock::idle`].
    pub fn busy(&self) {
        *self.lock() = Phase::Busy;
    }

    /// The answer is ready: the connection waits for its next request from now on.
    pub fn idle(&self) {
        *self.lock() = Phase::Idle(Instant::now());
    }

    fn bytes_arrived(&self) {
        let mut phase = self.lock();
        if let Phase::Idle(_) = *phase {
            *phase = Phase::Head(Instant::now() + self.head);
        }
    }

    fn read_deadline(&self) -> Option<Instant> {
        match *self.lock() {
            Phase::Idle(since) => Some(since + self.idle),
            Phase::Head(deadline) => Some(deadline),
            Phase::Busy => None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Where a [`TimedIo`] leaves its stream when the client may still be sending.
pub type Leftover<T> = Arc<Mutex<Option<T>>>;

/// A byte stream that keeps its connection's [`Clock`] and write deadline.
pub struct TimedIo<T> {
    /// Present until dropped.
    inner: Option<T>,
    leftover: Leftover<T>,
    clock: Arc<Clock>,
    write_timeout: Duration,
    read_timer: Option<Pin<Box<Sleep>>>,
    write_timer: Option<Pin<Box<Sleep>>>,
    /// When the write in progress stalled first; `None` while writes make progress.
    write_stalled: Option<Instant>,
}

impl<T> TimedIo<T> {
    /// Wraps `inner`; `leftover` receives it back for a lingering close.
    pub fn new(
        inner: T,
        clock: Arc<Clock>,
        write_timeout: Duration,
        leftover: Leftover<T>,
    ) -> TimedIo<T> {
        TimedIo {
            inner: Some(inner),
            leftover,
            clock,
            write_timeout,
            read_timer: None,
            write_timer: None,
            write_stalled: None,
        }
    }
}

impl<T> TimedIo<T> {
    /// The stream; it is handed back only when this is dropped, so in practice never gone.
    fn io(&mut self) -> io::Result<Pin<&mut T>>
    where
        T: Unpin,
    {
        self.inner.as_mut().map(Pin::new).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, "the stream was handed back")
        })
    }
}

impl<T> Drop for TimedIo<T> {
    fn drop(&mut self) {
        if self.clock.may_still_send() {
            *self.leftover.lock().unwrap_or_else(|p| p.into_inner()) = self.inner.take();
        }
    }
}

/// Closes our side of `io` and discards what the client still sends, for at most `time` and
/// `bytes`, so that it reads our answer instead of a reset.
pub async fn linger<T: AsyncRead + AsyncWrite + Unpin>(mut io: T, time: Duration, bytes: usize) {
    let drain = async {
        let _ = io.shutdown().await;
        let mut buf = [0u8; 8192];
        let mut seen = 0;
        while seen < bytes {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen += n,
            }
        }
    };
    let _ = tokio::time::timeout(time, drain).await;
}

/// Polls `timer` set to `deadline` (creating or moving it as needed): true when it expired.
fn expired(timer: &mut Option<Pin<Box<Sleep>>>, deadline: Instant, cx: &mut Context<'_>) -> bool {
    let sleep = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
    if sleep.deadline() != deadline {
        sleep.as_mut().reset(deadline);
    }
    sleep.as_mut().poll(cx).is_ready()
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{what} timed out"))
}

impl<T: AsyncWrite + Unpin> TimedIo<T> {
    /// Runs one write-side poll under the write deadline.
    fn write_poll<R>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut T>, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match op(self.io()?, cx) {
            Poll::Ready(result) => {
                self.write_stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let since = *self.write_stalled.get_or_insert_with(Instant::now);
                if expired(&mut self.write_timer, since + self.write_timeout, cx) {
                    return Poll::Ready(Err(timed_out("writing the answer")));
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match this.io()?.poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.clock.bytes_arrived();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if let Some(deadline) = this.clock.read_deadline()
                    && expired(&mut this.read_timer, deadline, cx)
                {
                    return Poll::Ready(Err(timed_out("waiting for a request")));
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .write_poll(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .write_poll(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(|io| io.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().write_poll(cx, |io, cx| io.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().write_poll(cx, |io, cx| io.poll_shutdown(cx))
    }
}
