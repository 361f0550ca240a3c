//! The accept loop, and what bounds each connection it accepts.
//!
//! Every connection is either serving a request (from the moment its headers are parsed until
//! its answer's body has been sent, however long a long poll or an event stream lasts) or
//! waiting for one. Only a waiting connection is timed: a new one must deliver its first
//! request's headers (after the TLS handshake, if any) within the header timeout of being
//! accepted; a kept-alive one may wait the idle timeout for the next request, and once that
//! request's first byte arrives its headers must be complete within the header timeout. A
//! connection past its time is dropped (closed without an answer). hyper's own
//! `header_read_timeout` is left off: its clock also runs while a kept-alive connection waits for
//! its next request, so it cannot tell a slow header from an idle connection.
//!
//! At most `max_connections` are open (fewer if the descriptor limit leaves less room, see
//! [`connection_cap`]). To accept one more at the cap, the connection that has been waiting
//! longest (by accept order) is closed; if every connection is serving a request, the loop stops
//! accepting until one is done, and new clients wait in the kernel's listen backlog. The same
//! eviction answers running out of descriptors (`EMFILE`), so half-open clients never lock
//! others out: `/health` is answered however many of them there are.
//!
//! At shutdown the loop stops accepting, waiting connections are closed at once, and each one
//! serving a request finishes it and closes.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, Response};
use futures::task::AtomicWaker;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::Service;

use crate::config::ServerConfig;
use crate::http::body::BodyDeadline;

/// Descriptors left for everything but connections (store files and pool connections, the
/// listener, the runtime) when the descriptor limit sizes the connection cap; half the limit
/// when it is under twice this.
pub const RESERVED_DESCRIPTORS: u64 = 128;

/// Largest buffer hyper reads a request into (its default is about 400 KiB): request heads
/// longer than this get 431, and it bounds what each of thousands of half-open connections
/// can make the server hold.
const MAX_READ_BUFFER: usize = 64 * 1024;

/// How long the accept loop waits for an evicted connection to go before it looks again.
const EVICTION_WAIT: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` until `shutdown` completes, then closes down gracefully (see the
/// module's doc): the whole HTTP side of [`crate::startup::run`].
pub async fn serve<F>(listener: TcpListener, app: Router, config: &ServerConfig, shutdown: F) -> io::Result<()>
where
    F: Future<Output = ()> + Send,
{
    let limits = Limits {
        header_ms: millis(config.header_timeout),
        idle_ms: millis(config.idle_timeout),
    };
    let body_deadline = BodyDeadline::new(config.body_timeout);
    let tls = config.tls.as_ref().map(|t| t.acceptor());
    let open = Arc::new(Connections::new(connection_cap(config.max_connections)));
    let mut shutdown = pin!(shutdown);
    let mut failures = FailureLog::default();
    let mut next_id = 0u64;
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let tcp = match accepted {
            Ok((tcp, _peer)) => tcp,
            // The client gave up before we took it: nothing to do.
            Err(e) if is_connection_error(&e) => continue,
            // Out of descriptors or memory: free some, then try again.
            Err(e) => {
                failures.note(&e);
                open.relieve().await;
                continue;
            }
        };
        // At the cap, the new connection waits (and the loop with it) until there is room.
        tokio::select! {
            () = &mut shutdown => break,
            () = open.room() => {}
        }
        // Answers are small and latency matters (long polls, claim → complete loops): no Nagle.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        next_id += 1;
        let guard = Open {
            id: next_id,
            open: open.clone(),
        };
        let task = ConnectionTask {
            app: app.clone(),
            connection: open.insert(next_id),
            limits,
            body_deadline,
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            task.run(tcp, tls).await;
            drop(guard);
        });
    }
    drop(listener);
    open.stop_all();
    open.all_gone().await;
    Ok(())
}

/// The cap the accept loop keeps: `configured`, but never more than the soft descriptor limit
/// leaves after [`RESERVED_DESCRIPTORS`] (a connection is one descriptor; past the limit the
/// store could not open a file or a pool connection either).
pub fn connection_cap(configured: usize) -> usize {
    let Some(limit) = descriptor_limit() else {
        return configured.max(1);
    };
    let room = usize::try_from(limit - RESERVED_DESCRIPTORS.min(limit / 2)).unwrap_or(usize::MAX);
    if room < configured {
        tracing::warn!(
            max_connections = configured,
            descriptor_limit = limit,
            cap = room,
            "the descriptor limit leaves room for fewer connections than configured; raise it (ulimit -n) to allow more"
        );
    }
    configured.min(room).max(1)
}

/// The soft limit on open descriptors, if there is one.
#[cfg(unix)]
pub fn descriptor_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

#[cfg(not(unix))]
pub fn descriptor_limit() -> Option<u64> {
    None
}

/// Raises the soft descriptor limit to the hard one, as Go programs do at start, so the
/// connection cap is not held at a low default soft limit (often 1,024) the system would let
/// the process raise. Answers the limit before and after, or why it was left alone.
#[cfg(unix)]
pub fn raise_descriptor_limit() -> io::Result<(Option<u64>, Option<u64>)> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let before = getrlimit(Resource::Nofile);
    if before.current == before.maximum {
        return Ok((before.current, before.current));
    }
    let raised = Rlimit {
        current: before.maximum,
        maximum: before.maximum,
    };
    setrlimit(Resource::Nofile, raised)?;
    Ok((before.current, getrlimit(Resource::Nofile).current))
}

#[cfg(not(unix))]
pub fn raise_descriptor_limit() -> io::Result<(Option<u64>, Option<u64>)> {
    Ok((None, None))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Errors of one pending connection (it was reset before it was accepted), as opposed to
/// errors of the listener (out of descriptors or memory).
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Logs accept failures at most once a second: under a flood there is one per attempt.
#[derive(Default)]
struct FailureLog {
    last: Option<Instant>,
    since: u64,
}

impl FailureLog {
    fn note(&mut self, e: &io::Error) {
        self.since += 1;
        if self.last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            tracing::warn!(
                error = %e,
                failures = self.since,
                "cannot accept a connection; closing the longest-waiting idle one, if any, to make room"
            );
            self.last = Some(Instant::now());
            self.since = 0;
        }
    }
}

/// The timeouts of a waiting connection, in milliseconds.
#[derive(Debug, Clone, Copy)]
struct Limits {
    header_ms: u64,
    idle_ms: u64,
}

/// The open connections, by accept order.
struct Connections {
    cap: usize,
    epoch: Instant,
    by_id: Mutex<BTreeMap<u64, Arc<Connection>>>,
    /// Notified whenever a connection has gone.
    ended: Notify,
}

impl Connections {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            epoch: Instant::now(),
            by_id: Mutex::new(BTreeMap::new()),
            ended: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Connection>>> {
        // The map stays consistent whatever panicked while holding it.
        self.by_id.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn insert(&self, id: u64) -> Arc<Connection> {
        let connection = Arc::new(Connection::new(self.epoch));
        self.lock().insert(id, connection.clone());
        connection
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
        self.ended.notify_waiters();
    }

    /// Closes the connection that has been waiting longest, unless one is already closing;
    /// false when every connection is serving a request.
    fn evict_one(&self) -> bool {
        let by_id = self.lock();
        if by_id.values().any(|c| c.evicted.load(Relaxed)) {
            return true;
        }
        let Some(victim) = by_id.values().find(|c| c.busy.load(Relaxed) == 0) else {
            return false;
        };
        victim.evicted.store(true, Relaxed);
        victim.waker.wake();
        true
    }

    /// Returns once one more connection fits under the cap, evicting a waiting one if need be
    /// (only when one more is there to take its place: an idle connection is never closed for
    /// one that may not come).
    async fn room(&self) {
        loop {
            let mut ended = pin!(self.ended.notified());
            ended.as_mut().enable();
            if self.lock().len() < self.cap {
                return;
            }
            self.evict_one();
            // A connection serving a request becomes evictable when it is done, without
            // ending: look again now and then.
            let _ = tokio::time::timeout(EVICTION_WAIT, ended).await;
        }
    }

    /// Tells every connection the server is shutting down (see [`Close::Shutdown`]).
    fn stop_all(&self) {
        for c in self.lock().values() {
            c.stopping.store(true, Relaxed);
            c.waker.wake();
        }
    }

    /// Returns when every connection has gone.
    async fn all_gone(&self) {
        loop {
            let mut ended = pin!(self.ended.notified());
            ended.as_mut().enable();
            if self.lock().is_empty() {
                return;
            }
            ended.await;
        }
    }

    /// After accepting failed for want of resources: closes a waiting connection and waits for
    /// it to go (or a moment, when none is waiting).
    async fn relieve(&self) {
        let mut ended = pin!(self.ended.notified());
        ended.as_mut().enable();
        if self.evict_one() {
            let _ = tokio::time::timeout(EVICTION_WAIT, ended).await;
        } else {
            tokio::time::sleep(EVICTION_WAIT).await;
        }
    }
}

/// Removes its connection from [`Connections`] when the connection's task ends (or panics).
struct Open {
    id: u64,
    open: Arc<Connections>,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.open.remove(self.id);
    }
}

/// Marks the time since it was last waiting for a request.
const NEVER: u64 = u64::MAX;

/// What the accept loop and the connection's own task know of one connection. Written by the
/// connection's task (and read by the accept loop when it looks for one to evict).
struct Connection {
    epoch: Instant,
    /// Requests whose answer is not yet sent in full.
    busy: AtomicU32,
    /// Whether it has ever had a request (a new connection's clock runs from its accept).
    served: AtomicBool,
    /// Milliseconds since `epoch` when it began waiting: accepted, or an answer was sent.
    waiting_since: AtomicU64,
    /// When the first byte arrived after `waiting_since`; [`NEVER`] before.
    first_byte_at: AtomicU64,
    evicted: AtomicBool,
    /// The server is shutting down.
    stopping: AtomicBool,
    /// Wakes the connection's [`Closing`] when the accept loop evicts it or stops.
    waker: AtomicWaker,
}

/// Why a connection is to be closed before it ends by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    /// The TLS handshake or a request's headers took longer than the header timeout.
    SlowHeaders,
    Idle,
    /// The cap was reached (or descriptors ran out) and it had waited longest.
    Evicted,
    /// The server is shutting down: close now if waiting, else once the request in progress
    /// is answered.
    Shutdown,
}

impl Connection {
    fn new(epoch: Instant) -> Self {
        let connection = Self {
            epoch,
            busy: AtomicU32::new(0),
            served: AtomicBool::new(false),
            waiting_since: AtomicU64::new(0),
            first_byte_at: AtomicU64::new(NEVER),
            evicted: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        };
        connection.waiting_since.store(connection.now_ms(), Relaxed);
        connection
    }

    fn now_ms(&self) -> u64 {
        millis(self.epoch.elapsed())
    }

    /// When a waiting connection must be closed, and why; `None` while it serves a request.
    fn deadline(&self, limits: Limits) -> Option<(u64, Close)> {
        if self.busy.load(Relaxed) > 0 {
            return None;
        }
        let since = self.waiting_since.load(Relaxed);
        if !self.served.load(Relaxed) {
            return Some((since.saturating_add(limits.header_ms), Close::SlowHeaders));
        }
        Some(match self.first_byte_at.load(Relaxed) {
            NEVER => (since.saturating_add(limits.idle_ms), Close::Idle),
            first => (first.saturating_add(limits.header_ms), Close::SlowHeaders),
        })
    }

    /// Completes when the connection must be closed: out of time while waiting, evicted, or
    /// the server shutting down (once; polled again, it goes on timing the connection).
    fn closing(&self, limits: Limits) -> Closing<'_> {
        Closing {
            connection: self,
            limits,
            armed: NEVER,
            told_to_stop: false,
            sleep: tokio::time::sleep_until(self.epoch),
        }
    }
}

pin_project! {
    /// See [`Connection::closing`]. It is polled with the connection's HTTP future in the same
    /// task, after it, so it sees a request begin or end (the deadline move) without a wake-up of
    /// its own: per request it costs a few atomic loads and at most one move of its timer.
    struct Closing<'a> {
        connection: &'a Connection,
        limits: Limits,
        // When the timer is due (ms since `epoch`); `NEVER` when it is not armed.
        armed: u64,
        told_to_stop: bool,
        #[pin]
        sleep: tokio::time::Sleep,
    }
}

impl Future for Closing<'_> {
    type Output = Close;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Close> {
        let mut this = self.project();
        let c = *this.connection;
        c.waker.register(cx.waker());
        if !*this.told_to_stop && c.stopping.load(Relaxed) {
            *this.told_to_stop = true;
            return Poll::Ready(Close::Shutdown);
        }
        if c.evicted.load(Relaxed) {
            // The accept loop may have looked just before a request arrived.
            if c.busy.load(Relaxed) == 0 {
                return Poll::Ready(Close::Evicted);
            }
            c.evicted.store(false, Relaxed);
        }
        loop {
            match c.deadline(*this.limits) {
                // Due sooner than the timer: move the timer (a later deadline is found when the
                // timer fires, so an answer sent does not move it).
                Some((at, why)) if at < *this.armed => {
                    if at <= c.now_ms() {
                        return Poll::Ready(why);
                    }
                    this.sleep.as_mut().reset(c.epoch + Duration::from_millis(at));
                    *this.armed = at;
                }
                Some(_) => {}
                // Serving a request: nothing is due, and once it has ended nothing is due
                // sooner than the shorter timeout after; looking again at that period is
                // never late.
                None if *this.armed == NEVER => {
                    let period = this.limits.header_ms.min(this.limits.idle_ms).max(1);
                    let at = c.now_ms().saturating_add(period);
                    this.sleep.as_mut().reset(c.epoch + Duration::from_millis(at));
                    *this.armed = at;
                }
                None => {}
            }
            ready!(this.sleep.as_mut().poll(cx));
            *this.armed = NEVER;
        }
    }
}

/// A request in progress on a connection, from its headers until its answer is sent.
struct Busy(Arc<Connection>);

impl Busy {
    fn start(connection: &Arc<Connection>) -> Self {
        connection.busy.fetch_add(1, Relaxed);
        connection.served.store(true, Relaxed);
        Self(connection.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let c = &self.0;
        if c.busy.fetch_sub(1, Relaxed) == 1 {
            c.waiting_since.store(c.now_ms(), Relaxed);
            c.first_byte_at.store(NEVER, Relaxed);
        }
    }
}

/// One accepted connection's task.
struct ConnectionTask {
    app: Router,
    connection: Arc<Connection>,
    limits: Limits,
    body_deadline: BodyDeadline,
}

impl ConnectionTask {
    async fn run(self, tcp: TcpStream, tls: Option<TlsAcceptor>) {
        let io = Watched {
            io: tcp,
            connection: self.connection.clone(),
        };
        let Some(acceptor) = tls else {
            return self.serve(io).await;
        };
        let connection = self.connection.clone();
        let handshake = tokio::select! {
            biased;
            handshake = acceptor.accept(io) => handshake,
            why = connection.closing(self.limits) => {
                tracing::debug!(reason = ?why, "closed a connection during its TLS handshake");
                return;
            }
        };
        match handshake {
            Ok(stream) => self.serve(stream).await,
            Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
        }
    }

    async fn serve<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let service = Answering {
            app: self.app,
            connection: self.connection.clone(),
            body_deadline: self.body_deadline,
        };
        let mut http = hyper::server::conn::http1::Builder::new();
        // Timed by `Connection::closing` instead (see the module's doc).
        http.header_read_timeout(None).max_buf_size(MAX_READ_BUFFER);
        let mut http = pin!(http.serve_connection(TokioIo::new(io), service));
        let mut closing = pin!(self.connection.closing(self.limits));
        loop {
            tokio::select! {
                // The connection first, then `closing`, which reads what it did (see `Closing`).
                biased;
                done = http.as_mut() => {
                    if let Err(e) = done {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                why = &mut closing => {
                    if why == Close::Shutdown && self.connection.busy.load(Relaxed) > 0 {
                        // Answer the request in progress, then close.
                        http.as_mut().graceful_shutdown();
                        continue;
                    }
                    tracing::debug!(reason = ?why, "closed a waiting connection");
                    return;
                }
            }
        }
    }
}

/// The connection's socket, noting when the first byte of a request arrives.
struct Watched {
    io: TcpStream,
    connection: Arc<Connection>,
}

impl AsyncRead for Watched {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        let c = &this.connection;
        if buf.filled().len() > before && c.first_byte_at.load(Relaxed) == NEVER {
            c.first_byte_at.store(c.now_ms(), Relaxed);
        }
        read
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The router as one connection's hyper service: each request marks the connection busy until
/// its answer has been sent.
struct Answering {
    app: Router,
    connection: Arc<Connection>,
    body_deadline: BodyDeadline,
}

impl hyper::service::Service<Request<Incoming>> for Answering {
    type Response = Response<Answer>;
    type Error = Infallible;
    type Future = Answered<<Router as Service<Request<Body>>>::Future>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let busy = Busy::start(&self.connection);
        let req = req.map(|body| self.body_deadline.apply(body));
        Answered {
            future: self.app.clone().call(req),
            busy: Some(busy),
        }
    }
}

pin_project! {
    /// The router's answer to come; it hands the request's [`Busy`] to the answer's body.
    struct Answered<F> {
        #[pin]
        future: F,
        busy: Option<Busy>,
    }
}

impl<F> Future for Answered<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Answer>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answer = ready!(this.future.poll(cx));
        let busy = this.busy.take();
        Poll::Ready(answer.map(|response| response.map(|body| Answer { body, _busy: busy })))
    }
}

pin_project! {
    /// An answer's body: the connection serves its request until hyper has sent it and lets
    /// it go (an event stream: until the stream ends).
    pub struct Answer {
        #[pin]
        body: Body,
        _busy: Option<Busy>,
    }
}

impl http_body::Body for Answer {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            header_ms: 10,
            idle_ms: 100,
        }
    }

    #[test]
    fn a_waiting_connection_is_timed_by_what_it_is_waiting_for() {
        let c = Arc::new(Connection::new(Instant::now()));
        let since = c.waiting_since.load(Relaxed);
        // New: its headers are due the header timeout after the accept, bytes or not.
        assert!(matches!(c.deadline(limits()), Some((at, Close::SlowHeaders)) if at == since + 10));
        c.first_byte_at.store(since + 5, Relaxed);
        assert!(matches!(c.deadline(limits()), Some((at, Close::SlowHeaders)) if at == since + 10));
        // Serving a request: nothing is due.
        let busy = Busy::start(&c);
        assert!(c.deadline(limits()).is_none());
        drop(busy);
        // Kept alive: idle until a byte comes, then the header timeout from that byte.
        let idle_since = c.waiting_since.load(Relaxed);
        assert!(matches!(c.deadline(limits()), Some((at, Close::Idle)) if at == idle_since + 100));
        c.first_byte_at.store(idle_since + 50, Relaxed);
        assert!(matches!(c.deadline(limits()), Some((at, Close::SlowHeaders)) if at == idle_since + 60));
    }

    #[test]
    fn eviction_takes_the_oldest_waiting_connection_once() {
        let open = Connections::new(3);
        let first = open.insert(1);
        let _busy = Busy::start(&first);
        let second = open.insert(2);
        let third = open.insert(3);
        assert!(open.evict_one());
        assert!(!first.evicted.load(Relaxed), "serving a request");
        assert!(second.evicted.load(Relaxed));
        // Until the evicted one has gone, no other is taken.
        assert!(open.evict_one());
        assert!(!third.evicted.load(Relaxed));
        open.remove(2);
        assert!(open.evict_one());
        assert!(third.evicted.load(Relaxed));
        open.remove(3);
        assert!(!open.evict_one(), "only a busy connection is left");
    }

    #[test]
    fn the_cap_never_passes_the_descriptor_limit() {
        let cap = connection_cap(usize::MAX);
        match descriptor_limit() {
            Some(limit) => assert!((cap as u64) < limit, "{cap} of {limit}"),
            None => assert_eq!(cap, usize::MAX),
        }
        assert_eq!(connection_cap(0), 1);
        assert_eq!(connection_cap(3), 3);
    }
}
