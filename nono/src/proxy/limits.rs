//! The bounds a hostile sandbox cannot push the proxy past: how many
//! connections at once, how long each phase may take, how large a
//! request head may be. Bodies are never buffered whole: they stream
//! through hyper with its bounded read buffer.
//!
//! Idle time is measured on the bytes themselves: [`Activity`] wraps a
//! socket and stamps a shared clock on every read or write, and
//! [`idle`] resolves once nothing moved for the limit, in either
//! direction (a long streamed answer with a silent client is not idle).
//! The clock is tokio's, so tests can run it paused.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The proxy's bounds.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Client connections open at once; one more is answered 503 and
    /// closed (a CONNECT tunnel counts until it closes).
    pub max_connections: usize,
    /// Time for a client to send a complete request head.
    pub header_timeout: Duration,
    /// Largest request head (start line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Most header fields in one request.
    pub max_headers: usize,
    /// Time for a name to resolve.
    pub resolve_timeout: Duration,
    /// Time for an upstream TCP connect (each address).
    pub connect_timeout: Duration,
    /// Time for the TLS handshake with a credential's upstream.
    pub tls_timeout: Duration,
    /// A connection (or tunnel) with no byte moving either way for this
    /// long is closed.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 256,
            header_timeout: Duration::from_secs(15),
            max_header_bytes: 64 << 10,
            max_headers: 128,
            resolve_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            tls_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_mins(10),
        }
    }
}

/// When bytes last moved on a connection, in milliseconds since `start`.
#[derive(Clone, Debug)]
pub struct Clock {
    start: Instant,
    last: Arc<AtomicU64>,
}

impl Clock {
    #[must_use]
    pub fn new() -> Clock {
        Clock { start: Instant::now(), last: Arc::new(AtomicU64::new(0)) }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.last.store(self.now_ms(), Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        Duration::from_millis(self.now_ms().saturating_sub(self.last.load(Ordering::Relaxed)))
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}

/// Resolves once `clock` has seen no activity for `limit`.
pub async fn idle(clock: Clock, limit: Duration) {
    loop {
        let quiet = clock.idle_for();
        if quiet >= limit {
            return;
        }
        tokio::time::sleep(limit.saturating_sub(quiet)).await;
    }
}

/// A socket that stamps `clock` whenever bytes move.
pub struct Activity<S> {
    inner: S,
    clock: Clock,
}

impl<S> Activity<S> {
    pub fn new(inner: S, clock: Clock) -> Activity<S> {
        clock.touch();
        Activity { inner, clock }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Activity<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.clock.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Activity<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test(start_paused = true)]
    async fn activity_postpones_the_idle_deadline() {
        let clock = Clock::new();
        let (a, mut b) = tokio::io::duplex(64);
        let mut a = Activity::new(a, clock.clone());
        let limit = Duration::from_millis(300);
        let watch = tokio::spawn(idle(clock.clone(), limit));
        // Keep bytes moving for longer than the limit: not idle.
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            b.write_all(b"x").await.expect("write");
            let mut one = [0u8; 1];
            a.read_exact(&mut one).await.expect("read");
            assert!(!watch.is_finished(), "activity must keep the connection open");
        }
        // Then silence: the watchdog fires.
        watch.await.expect("idle fired");
        assert!(clock.idle_for() >= limit);
    }
}
