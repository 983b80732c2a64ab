//! Accepted connections: who the peer is (fixed at accept), how many connections may be
//! open (in total and per peer), and how long one may sit without a call.
//!
//! * [`incoming`] turns a listener into the stream of connections tonic serves. Over a
//!   limit, a connection is accepted and closed at once (the client sees it closed; the
//!   loop goes on). An accept error other than a vanished client (`EMFILE`, `ENFILE`,
//!   `ENOBUFS`, …) makes the loop wait before the next `accept` (10 ms doubling to 1 s),
//!   so it never spins while the condition lasts.
//! * [`Conn`] wraps the socket: it closes a connection whose client has not sent the
//!   HTTP/2 connection preface within the handshake timeout, and one with no call in
//!   flight for the idle timeout. Its [`ConnInfo`] carries the unix peer's identity
//!   ([`Peer`]: `SO_PEERCRED` uid/gid/pid and `SO_PEERGROUPS` groups, read once here).
//! * [`ConnLayer`] puts that [`Peer`] into each request's extensions (where
//!   `imaged_grpc::auth` reads it) and counts the calls in flight on the connection.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use imaged_grpc::auth::Peer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::time::{Instant, Sleep};
use tonic::transport::server::{Connected, TlsConnectInfo};

use crate::peercred;

/// The HTTP/2 client connection preface (`PRI * HTTP/2.0…`) is this long.
const PREFACE_LEN: usize = crate::authority::PREFACE.len();
/// The first wait after an accept error, doubled after each further error.
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(10);
/// The longest wait after an accept error.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Refusals and accept errors are logged at most this often (with the count since).
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Connection limits and timeouts (from the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Open connections over all listeners.
    pub(crate) max_connections: usize,
    /// Open connections of one peer: one uid on unix sockets, one IP address on TCP.
    pub(crate) max_connections_per_peer: usize,
    /// Time from accept to the end of the client's HTTP/2 connection preface.
    pub(crate) handshake_timeout: Duration,
    /// Time a connection may stay open with no call in flight.
    pub(crate) idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            max_connections_per_peer: 128,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// Counters of the accept loops (rendered as metrics).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// `accept` calls made.
    pub(crate) accept_calls: AtomicU64,
    /// Connections served.
    pub(crate) accepted: AtomicU64,
    /// Connections closed at once: over a limit, or the peer unidentifiable.
    pub(crate) refused: AtomicU64,
    /// `accept` failures that made the loop wait.
    pub(crate) accept_errors: AtomicU64,
    /// Connections closed by the handshake or the idle timeout.
    pub(crate) timed_out: AtomicU64,
    /// Connections open now.
    pub(crate) open: AtomicU64,
}

impl Stats {
    /// The counters in the Prometheus text format.
    pub(crate) fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "# HELP imaged_connections_open Open gRPC connections (all listeners).\n\
             # TYPE imaged_connections_open gauge\nimaged_connections_open {}\n\
             # HELP imaged_connections_accepted_total Connections accepted and served.\n\
             # TYPE imaged_connections_accepted_total counter\nimaged_connections_accepted_total {}\n\
             # HELP imaged_connections_refused_total Connections closed at once (over a limit, or peer unidentifiable).\n\
             # TYPE imaged_connections_refused_total counter\nimaged_connections_refused_total {}\n\
             # HELP imaged_connections_timed_out_total Connections closed by the handshake or idle timeout.\n\
             # TYPE imaged_connections_timed_out_total counter\nimaged_connections_timed_out_total {}\n\
             # HELP imaged_accept_calls_total accept(2) calls made by the accept loops.\n\
             # TYPE imaged_accept_calls_total counter\nimaged_accept_calls_total {}\n\
             # HELP imaged_accept_errors_total accept(2) failures (e.g. EMFILE), each followed by a wait.\n\
             # TYPE imaged_accept_errors_total counter\nimaged_accept_errors_total {}\n",
            get(&self.open),
            get(&self.accepted),
            get(&self.refused),
            get(&self.timed_out),
            get(&self.accept_calls),
            get(&self.accept_errors),
        )
    }
}

/// Whose connection it is, for the per-peer limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum PeerKey {
    /// A unix-socket peer's uid.
    Uid(u32),
    /// A TCP peer's address.
    Ip(IpAddr),
}

impl std::fmt::Display for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerKey::Uid(u) => write!(f, "uid={u}"),
            PeerKey::Ip(ip) => write!(f, "ip={ip}"),
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_peer: HashMap<PeerKey, usize>,
}

/// The open connections of every listener, against the limits.
#[derive(Debug)]
pub(crate) struct Table {
    limits: Limits,
    counts: Mutex<Counts>,
    stats: Arc<Stats>,
}

impl Table {
    /// An empty table.
    pub(crate) fn new(limits: Limits, stats: Arc<Stats>) -> Arc<Self> {
        Arc::new(Self {
            limits,
            counts: Mutex::new(Counts::default()),
            stats,
        })
    }

    /// The counters.
    pub(crate) fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Room for one more connection of `key`, or `None` over a limit.
    fn admit(self: &Arc<Self>, key: PeerKey) -> Option<Permit> {
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = c.per_peer.get(&key).copied().unwrap_or(0);
        if c.total >= self.limits.max_connections || mine >= self.limits.max_connections_per_peer {
            return None;
        }
        c.total += 1;
        c.per_peer.insert(key, mine + 1);
        self.stats.open.fetch_add(1, Ordering::Relaxed);
        Some(Permit {
            table: Arc::clone(self),
            key,
        })
    }

    /// Which limit refused a connection ([`Table::admit`] said `None`).
    fn over_limit_reason(&self) -> &'static str {
        let c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if c.total >= self.limits.max_connections {
            "max_connections"
        } else {
            "max_connections_per_peer"
        }
    }
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
struct Permit {
    table: Arc<Table>,
    key: PeerKey,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut c = self
            .table
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_peer.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                c.per_peer.remove(&self.key);
            }
        }
        self.table.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Calls in flight on one connection, and since when there were none.
#[derive(Debug)]
struct Activity {
    calls: AtomicUsize,
    idle_since: Mutex<Instant>,
    /// The connection's reader, woken when the last call ends (to arm the idle timer).
    waker: Mutex<Option<Waker>>,
}

impl Activity {
    fn begin(self: &Arc<Self>) -> CallGuard {
        self.calls.fetch_add(1, Ordering::SeqCst);
        CallGuard(Arc::clone(self))
    }
}

/// One call in flight; held by the response body until hyper drops it (stream ended or
/// reset).
#[derive(Debug)]
struct CallGuard(Arc<Activity>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        let a = &self.0;
        *a.idle_since.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
        if a.calls.fetch_sub(1, Ordering::SeqCst) == 1
            && let Some(w) = a
                .waker
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
        {
            w.wake();
        }
    }
}

/// What tonic puts into every request's extensions for a [`Conn`].
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    peer: Option<Peer>,
    activity: Arc<Activity>,
}

/// An accepted socket, admitted under the limits, closed by the handshake and idle
/// timeouts.
#[derive(Debug)]
pub(crate) struct Conn<S> {
    io: S,
    info: ConnInfo,
    limits: Limits,
    stats: Arc<Stats>,
    accepted_at: Instant,
    preface_left: usize,
    timer: Pin<Box<Sleep>>,
    _permit: Permit,
}

impl<S> Conn<S> {
    fn new(io: S, peer: Option<Peer>, permit: Permit, limits: Limits) -> Self {
        let now = Instant::now();
        let stats = Arc::clone(&permit.table.stats);
        Self {
            io,
            info: ConnInfo {
                peer,
                activity: Arc::new(Activity {
                    calls: AtomicUsize::new(0),
                    idle_since: Mutex::new(now),
                    waker: Mutex::new(None),
                }),
            },
            limits,
            stats,
            accepted_at: now,
            preface_left: PREFACE_LEN,
            timer: Box::pin(tokio::time::sleep_until(now + limits.handshake_timeout)),
            _permit: permit,
        }
    }

    /// Whether a timeout has expired: `Ready(Err)` closes the connection. Registers the
    /// wake-ups that make it fire.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let (deadline, what) = if self.preface_left > 0 {
            (
                self.accepted_at + self.limits.handshake_timeout,
                "no HTTP/2 connection preface within handshake_timeout",
            )
        } else {
            let a = &self.info.activity;
            *a.waker.lock().unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
            if a.calls.load(Ordering::SeqCst) > 0 {
                return Poll::Pending;
            }
            let since = *a.idle_since.lock().unwrap_or_else(PoisonError::into_inner);
            (since + self.limits.idle_timeout, "no call for idle_timeout")
        };
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.stats.timed_out.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("closing a connection: {what}");
                Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, what))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Conn<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(r) => {
                let n = buf.filled().len() - before;
                this.preface_left = this.preface_left.saturating_sub(n);
                Poll::Ready(r)
            }
            Poll::Pending => match this.poll_deadline(cx) {
                Poll::Ready(e) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Conn<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl<S> Connected for Conn<S> {
    type ConnectInfo = ConnInfo;
    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

/// An accepted socket and whose it is (or why that could not be read).
pub(crate) type Accepted<Io> = (Io, Result<(PeerKey, Option<Peer>), String>);

/// A listener [`incoming`] accepts on.
pub(crate) trait Accept: Send + 'static {
    /// The accepted socket.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Accepts one connection and says whose it is (the identity read now, once).
    fn accept(&mut self) -> impl Future<Output = io::Result<Accepted<Self::Io>>> + Send;
}

impl Accept for UnixListener {
    type Io = UnixStream;
    async fn accept(&mut self) -> io::Result<Accepted<UnixStream>> {
        let (s, _) = UnixListener::accept(self).await?;
        let who = identify(&s);
        Ok((s, who))
    }
}

impl Accept for TcpListener {
    type Io = TcpStream;
    async fn accept(&mut self) -> io::Result<Accepted<TcpStream>> {
        let (s, addr) = TcpListener::accept(self).await?;
        // As tonic's own TCP incoming does: small gRPC frames go out at once.
        let _ = s.set_nodelay(true);
        Ok((s, Ok((PeerKey::Ip(addr.ip()), None))))
    }
}

/// The unix peer's identity as the kernel recorded it at `connect(2)`.
fn identify(s: &UnixStream) -> Result<(PeerKey, Option<Peer>), String> {
    let cred = s
        .peer_cred()
        .map_err(|e| format!("cannot read the peer's credentials (SO_PEERCRED): {e}"))?;
    let groups = peercred::peer_groups(s.as_fd())
        .map_err(|e| format!("cannot read the peer's groups (SO_PEERGROUPS): {e}"))?;
    let peer = Peer {
        uid: cred.uid(),
        gid: cred.gid(),
        groups,
        pid: cred.pid(),
    };
    Ok((PeerKey::Uid(peer.uid), Some(peer)))
}

fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Logs a repeated event at most every [`LOG_EVERY`], with how many were not logged.
#[derive(Debug, Default)]
struct Throttle {
    last: Option<Instant>,
    quiet: u64,
}

impl Throttle {
    fn log(&mut self, f: impl FnOnce(u64)) {
        let now = Instant::now();
        if self.last.is_some_and(|t| now < t + LOG_EVERY) {
            self.quiet += 1;
            return;
        }
        f(self.quiet);
        self.last = Some(now);
        self.quiet = 0;
    }
}

struct Loop<L> {
    listener: L,
    table: Arc<Table>,
    backoff: Duration,
    refusals: Throttle,
    errors: Throttle,
}

impl<L: Accept> Loop<L> {
    /// The next admitted connection; refuses, skips and waits as needed.
    async fn next(&mut self) -> Conn<L::Io> {
        let stats = Arc::clone(self.table.stats());
        loop {
            stats.accept_calls.fetch_add(1, Ordering::Relaxed);
            let (io, who) = match self.listener.accept().await {
                Ok(a) => a,
                Err(e) if transient(&e) => continue,
                Err(e) => {
                    stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                    let wait = self.backoff;
                    self.errors.log(|quiet| {
                        tracing::warn!(
                            "accept failed: {e}; waiting {wait:?} before accepting again \
                             ({quiet} more since the last report)"
                        );
                    });
                    tokio::time::sleep(wait).await;
                    self.backoff = (wait * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            self.backoff = BACKOFF_MIN;
            let (key, peer) = match who {
                Ok(w) => w,
                Err(why) => {
                    stats.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("connection closed: {why}");
                    continue;
                }
            };
            match self.table.admit(key) {
                Some(permit) => {
                    stats.accepted.fetch_add(1, Ordering::Relaxed);
                    return Conn::new(io, peer, permit, self.table.limits);
                }
                None => {
                    // `io` is dropped here: the client sees the connection closed.
                    stats.refused.fetch_add(1, Ordering::Relaxed);
                    let reason = self.table.over_limit_reason();
                    self.refusals.log(|quiet| {
                        tracing::warn!(
                            peer = %key,
                            "connection refused: {reason} reached ({quiet} more refused \
                             since the last report)"
                        );
                    });
                }
            }
        }
    }
}

/// The connections accepted on `listener`, admitted by `table`, for tonic's
/// `serve_with_incoming_shutdown`. It never yields an error (errors are handled here).
pub(crate) fn incoming<L: Accept>(
    listener: L,
    table: Arc<Table>,
) -> impl Stream<Item = Result<Conn<L::Io>, Infallible>> + Send + 'static {
    let state = Loop {
        listener,
        table,
        backoff: BACKOFF_MIN,
        refusals: Throttle::default(),
        errors: Throttle::default(),
    };
    futures_util::stream::unfold(state, |mut state| async move {
        let conn = state.next().await;
        Some((Ok(conn), state))
    })
}

/// Puts the connection's [`Peer`] into each request's extensions and counts the calls in
/// flight (for the idle timeout). Serve with `Server::builder().layer(ConnLayer)`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ConnLayer;

impl<S> tower::Layer<S> for ConnLayer {
    type Service = ConnService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ConnService { inner }
    }
}

/// The service of [`ConnLayer`].
#[derive(Debug, Clone)]
pub(crate) struct ConnService<S> {
    inner: S,
}

type Req = http::Request<tonic::body::Body>;
type Resp = http::Response<tonic::body::Body>;

impl<S> tower::Service<Req> for ConnService<S>
where
    S: tower::Service<Req, Response = Resp> + Send,
    S::Future: Send + 'static,
{
    type Response = Resp;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Resp, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Req) -> Self::Future {
        let ext = req.extensions();
        let info = ext.get::<ConnInfo>().cloned().or_else(|| {
            ext.get::<TlsConnectInfo<ConnInfo>>()
                .map(|t| t.get_ref().clone())
        });
        let guard = info.map(|info| {
            if let Some(peer) = info.peer {
                req.extensions_mut().insert(peer);
            }
            info.activity.begin()
        });
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            Ok(match guard {
                Some(g) => resp.map(|b| {
                    tonic::body::Body::new(Guarded {
                        inner: b,
                        _guard: g,
                    })
                }),
                None => resp,
            })
        })
    }
}

/// A response body that keeps its call counted until hyper drops it.
struct Guarded {
    inner: tonic::body::Body,
    _guard: CallGuard,
}

impl http_body::Body for Guarded {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;
