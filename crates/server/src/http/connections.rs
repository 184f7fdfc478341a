//! The accept loop: what a connection may hold of the server, and for how
//! long (RELIABILITY.md, "Tried as an attacker").
//!
//! - **A cap on open connections** (`max_connections`). At the cap a new
//!   connection is accepted and closed at once, so it neither waits in the
//!   kernel's backlog nor holds a file descriptor for long: on plain HTTP
//!   it is first answered `503 SERVICE_UNAVAILABLE` with `Retry-After: 1`
//!   (without parsing the request), which a client retries; on TLS it is
//!   just closed. A warning says so at most every 10 seconds.
//! - **A header timeout** (`header_timeout_secs`): a new connection must
//!   deliver a whole request head within it, and so must a kept-alive
//!   connection once the first byte of its next request arrives. A client
//!   trickling a head byte by byte is cut off, however slowly it trickles.
//! - **An idle timeout** (`idle_timeout_secs`): a kept-alive connection
//!   with no request in flight and nothing read or written for that long is
//!   closed; so is one whose peer stops reading an answer.
//! - **A per-address allowance** (`max_unfinished_per_address`): one IP
//!   address may hold that many connections that have not yet delivered a
//!   whole request head; a quarter as many while the server is under
//!   pressure (more than three quarters of the cap open) or for
//!   10 s after the address was refused (`addresses.rs`). Beyond it a new connection
//!   from that address is closed at once, unanswered (it costs the server
//!   an accept and a close). One address reopening what the server closes
//!   holds a few slots, never the cap. The last eighth of the cap is a
//!   reserve: a connection from an address already waiting on the server
//!   meets the cap there (the `503` below), so a client that is not can
//!   still connect while many addresses reopen as fast as they can.
//! - **A header timeout that shortens under pressure**
//!   (`header_timeout_under_pressure_secs`): while more than three quarters
//!   of the cap is open, a connection still owing its head has that long
//!   (like Apache's `mod_reqtimeout` minimum rate), so slots held by many
//!   addresses turn over fast.
//! - **TLS** when `tls_cert` and `tls_key` are set (rustls on aws-lc-rs),
//!   the handshake within the header timeout. Plain HTTP sent to the TLS
//!   port is answered with a plain `400` saying so, not a hang.
//!
//! A request in flight has no idle limit here: `request_timeout_secs`
//! bounds it (and its body) in the router.

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::addresses::{Addresses, Unfinished};
use super::faults::DropConnection;
use crate::ops::metrics::Metrics;
use crate::ops::repeated::Repeated;

/// How long connections may take, and how many may be open.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnectionLimits {
    pub(crate) max_connections: usize,
    /// Connections refused at the cap that may be draining at once.
    pub(crate) max_draining: usize,
    pub(crate) header_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    /// Connections one address may hold before they deliver a head.
    pub(crate) max_unfinished_per_address: usize,
    /// The header timeout while more than 3/4 of the cap is open.
    pub(crate) header_timeout_under_pressure: Duration,
}

/// How often a connection that owes its head looks whether the server came
/// under pressure.
const PRESSURE_CHECK: Duration = Duration::from_millis(250);

/// How often the cap's warning, or a failing `accept`'s, may be logged.
const CAP_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// How many refused connections may be draining at once at most (fewer
/// where the open-file limit is low); beyond that they are told and closed
/// without draining.
const REFUSALS_DRAINING: usize = 256;

/// How long a refused connection's request is read and dropped before it
/// is closed.
const REFUSAL_DRAIN: Duration = Duration::from_millis(100);

/// What a connection beyond the cap is told (plain HTTP).
const TOO_MANY_CONNECTIONS: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Content-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 94\r\n\r\n\
{\"code\":\"SERVICE_UNAVAILABLE\",\"message\":\"the server has too many open connections, try again\"}";

/// What a plain-HTTP client gets from the TLS port.
const PLAIN_HTTP_ON_TLS_PORT: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: 64\r\n\r\n\
This port speaks HTTPS: send the request with https:// instead.\n";

/// Connections the kernel may hold for the accept loop (capped by
/// `net.core.somaxconn`). Under a flood of connection attempts a short
/// queue overflows, and a client whose SYN is dropped retries a whole
/// second later (RELIABILITY.md, "One address, or many, reopening").
const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `address` (`host:port`), with a long accept queue.
pub(crate) async fn listen(address: &str) -> io::Result<TcpListener> {
    let mut last = None;
    for address in tokio::net::lookup_host(address).await? {
        let socket = if address.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket
            .bind(address)
            .and_then(|()| socket.listen(LISTEN_BACKLOG))
        {
            Ok(listener) => return Ok(listener),
            Err(error) => last = Some(error),
        }
    }
    Err(last
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to listen on")))
}

/// Serves `router` on `listener` until `shutdown` completes, then stops
/// accepting, lets every connection finish its request in flight, and
/// returns once all are closed.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    tls: Option<TlsAcceptor>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusals_draining = Arc::new(Semaphore::new(limits.max_draining));
    let addresses = Arc::new(Addresses::default());
    let (closing, closing_seen) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    let mut at_cap = Repeated::every(CAP_WARNING_INTERVAL);
    let mut accept_failing = Repeated::every(CAP_WARNING_INTERVAL);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(&err, &mut accept_failing).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        accept_failing.log_end("accepting connections works again");
        // One address's connections owing their head: beyond its
        // allowance, closed at once, before it takes a slot.
        let pressured = under_pressure(&slots, limits.max_connections);
        let Some(unfinished) =
            addresses.admit(peer.ip(), limits.max_unfinished_per_address, pressured)
        else {
            metrics.connection_refused();
            drop(stream);
            continue;
        };
        // The last eighth of the cap is a reserve for addresses not already
        // waiting on the server: others meet the cap there.
        let reserved = unfinished.waiting_before > 0
            && slots.available_permits() <= limits.max_connections / 8;
        let slot = if reserved {
            None
        } else {
            Arc::clone(&slots).try_acquire_owned().ok()
        };
        let Some(slot) = slot else {
            metrics.connection_refused();
            if let Some(refused) = at_cap.happened(Instant::now()) {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    refused,
                    "connection limit reached: closing new connections at once"
                );
            }
            if tls.is_none() {
                refuse(stream, &refusals_draining);
            }
            continue;
        };
        at_cap.log_end("connection limit no longer reached");
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            router: router.clone(),
            peer,
            limits,
            closing: closing_seen.clone(),
            metrics: Arc::clone(&metrics),
            unfinished: Arc::new(unfinished),
            slots: Arc::clone(&slots),
        };
        let tls = tls.clone();
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            metrics.connection_opened();
            match tls {
                Some(acceptor) => connection.serve_tls(stream, acceptor).await,
                None => connection.serve_http(stream).await,
            }
            metrics.connection_closed();
            drop(slot);
        });
    }
    drop(listener);
    let _ = closing.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
    Ok(())
}

/// Tells a connection beyond the cap to come back, then closes it: once
/// its request starts to arrive (an answer before the request confuses
/// clients), the `503`, the end of our side, and the rest of what the
/// client sends read and dropped (closing with it unread would reset the
/// connection and could lose the answer), all within [`REFUSAL_DRAIN`], by
/// at most `max_draining` connections at once; others are closed at once.
fn refuse(mut stream: TcpStream, draining: &Arc<Semaphore>) {
    let Ok(permit) = Arc::clone(draining).try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _ = tokio::time::timeout(REFUSAL_DRAIN, async {
            let mut sink = [0_u8; 1024];
            if tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await? == 0 {
                return Ok(());
            }
            stream.write_all(TOO_MANY_CONNECTIONS).await?;
            stream.shutdown().await?;
            while tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await? > 0 {}
            io::Result::Ok(())
        })
        .await;
        drop(permit);
    });
}

/// A failed `accept`: a connection reset before it was taken needs nothing;
/// running out of file descriptors or memory is waited out briefly, so the
/// loop does not spin (and logged at most once per
/// [`CAP_WARNING_INTERVAL`], since it can fail 20 times a second).
async fn accept_failed(error: &io::Error, failing: &mut Repeated) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    ) {
        return;
    }
    if let Some(since) = failing.happened(Instant::now()) {
        tracing::warn!(%error, failed = since, "accepting a connection failed; retrying every 50 ms");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// One accepted connection's share of the server.
struct Connection {
    router: Router,
    /// The client's address, on every request as `ConnectInfo` (the
    /// simulation's endpoints answer loopback clients only).
    peer: std::net::SocketAddr,
    limits: ConnectionLimits,
    closing: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    /// Its place in its address's allowance until its first head arrives.
    unfinished: Arc<Unfinished>,
    /// The open connections' slots, to see the pressure.
    slots: Arc<Semaphore>,
}

impl Connection {
    /// Whether more than three quarters of the cap is open.
    fn under_pressure(&self) -> bool {
        under_pressure(&self.slots, self.limits.max_connections)
    }

    /// How long a head may take now.
    fn header_timeout(&self) -> Duration {
        if self.under_pressure() {
            self.limits
                .header_timeout
                .min(self.limits.header_timeout_under_pressure)
        } else {
            self.limits.header_timeout
        }
    }

    /// TLS first: plain HTTP is told to use HTTPS; the handshake must end
    /// within the header timeout.
    async fn serve_tls(self, mut stream: TcpStream, acceptor: TlsAcceptor) {
        let mut first = [0_u8; 1];
        let deadline = self.header_timeout();
        match tokio::time::timeout(deadline, stream.peek(&mut first)).await {
            Ok(Ok(1)) if first[0] != TLS_HANDSHAKE_RECORD => {
                let _ = tokio::time::timeout(deadline, async {
                    let _ = stream.write_all(PLAIN_HTTP_ON_TLS_PORT).await;
                    let _ = stream.shutdown().await;
                })
                .await;
                return;
            }
            Ok(Ok(1)) => {}
            Ok(_) => return,
            Err(_) => {
                self.metrics.connection_timed_out();
                return;
            }
        }
        match tokio::time::timeout(deadline, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => self.serve_http(stream).await,
            Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
            Err(_) => self.metrics.connection_timed_out(),
        }
    }

    /// HTTP/1.1 with keep-alive, under the header and idle timeouts.
    async fn serve_http<S>(mut self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let clock = Arc::new(ConnectionClock::new());
        let io = TokioIo::new(Watched {
            inner: stream,
            clock: Arc::clone(&clock),
        });
        let router = self.router.clone();
        let service_clock = Arc::clone(&clock);
        let peer = axum::extract::ConnectInfo(self.peer);
        let unfinished = Arc::clone(&self.unfinished);
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            // A whole head arrived: the address's allowance has its place back.
            unfinished.finish();
            let in_flight = InFlight::begin(Arc::clone(&service_clock));
            let router = router.clone();
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(peer);
            async move {
                let Ok(response) = router.oneshot(request).await;
                drop(in_flight);
                // An injected `drop`: hyper closes the connection on a
                // service error, with no answer.
                if response.extensions().get::<DropConnection>().is_some() {
                    return Err(DroppedOnPurpose);
                }
                Ok(response)
            }
        });
        let connection = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
        let mut connection = pin!(connection);
        let mut closing = *self.closing.borrow();
        if closing {
            connection.as_mut().graceful_shutdown();
        }
        let (slots, cap) = (Arc::clone(&self.slots), self.limits.max_connections);
        let pressured = move || under_pressure(&slots, cap);
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                    return;
                }
                () = clock.expired(self.limits, &pressured) => {
                    self.metrics.connection_timed_out();
                    return;
                }
                changed = self.closing.changed(), if !closing => {
                    closing = true;
                    if changed.is_ok() {
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
        }
    }
}

/// Why a connection was closed with no answer: a failure injected on
/// purpose (`card-member simulate fault add --kind drop`).
#[derive(Debug)]
struct DroppedOnPurpose;

impl std::fmt::Display for DroppedOnPurpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("closed with no answer: an injected failure")
    }
}

impl std::error::Error for DroppedOnPurpose {}

/// Whether more than three quarters of `max_connections` are open.
fn under_pressure(slots: &Semaphore, max_connections: usize) -> bool {
    let open = max_connections.saturating_sub(slots.available_permits());
    open * 4 > max_connections * 3
}

/// The first byte of every TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// What a connection is doing, for its timeouts. Times are milliseconds
/// since the connection opened.
struct ConnectionClock {
    opened: Instant,
    /// Requests being answered.
    in_flight: AtomicUsize,
    /// Requests answered so far.
    answered: AtomicU64,
    /// When the connection last started to wait for a request head (opened,
    /// or its last answer was handed over).
    waiting_since: AtomicU64,
    /// When the first byte of the next head arrived, plus one; 0 while none
    /// has.
    head_since: AtomicU64,
    /// When a byte was last read or written.
    last_io: AtomicU64,
    /// Wakes [`ConnectionClock::expired`] when the deadline's rule changes
    /// (a request begins or ends, a head starts).
    changed: tokio::sync::Notify,
}

impl ConnectionClock {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            answered: AtomicU64::new(0),
            waiting_since: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            last_io: AtomicU64::new(0),
            changed: tokio::sync::Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn read(&self) {
        let now = self.now();
        self.last_io.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Acquire) == 0
            && self
                .head_since
                .compare_exchange(0, now + 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.changed.notify_one();
        }
    }

    fn wrote(&self) {
        self.last_io.store(self.now(), Ordering::Relaxed);
    }

    /// When the connection must be closed, in milliseconds since it opened;
    /// `None` while a request is in flight. `pressured`: the server is
    /// under pressure, and a head is owed within the shorter timeout.
    fn deadline(&self, limits: ConnectionLimits, pressured: bool) -> Option<u64> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let millis = |duration: Duration| u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        let head_since = self.head_since.load(Ordering::Acquire);
        let waiting_since = self.waiting_since.load(Ordering::Acquire);
        let header_timeout = if pressured {
            limits
                .header_timeout
                .min(limits.header_timeout_under_pressure)
        } else {
            limits.header_timeout
        };
        if head_since > 0 {
            return Some(head_since - 1 + millis(header_timeout));
        }
        if self.answered.load(Ordering::Acquire) == 0 {
            // A new connection owes a whole head within the header timeout.
            return Some(waiting_since + millis(header_timeout));
        }
        let quiet_since = waiting_since.max(self.last_io.load(Ordering::Relaxed));
        Some(quiet_since + millis(limits.idle_timeout))
    }

    /// Completes when the connection has overstayed a limit. A connection
    /// owing a head looks at the pressure every [`PRESSURE_CHECK`].
    async fn expired(&self, limits: ConnectionLimits, pressured: impl Fn() -> bool) {
        loop {
            let now = self.now();
            let owes_head = self.in_flight.load(Ordering::Acquire) == 0
                && (self.head_since.load(Ordering::Acquire) > 0
                    || self.answered.load(Ordering::Acquire) == 0);
            let wait = match self.deadline(limits, owes_head && pressured()) {
                Some(deadline) if deadline <= now => return,
                Some(deadline) => Duration::from_millis(deadline - now),
                None => Duration::MAX,
            };
            let wait = if owes_head {
                wait.min(PRESSURE_CHECK)
            } else {
                wait
            };
            tokio::select! {
                () = tokio::time::sleep(wait.min(Duration::from_secs(3600))) => {}
                () = self.changed.notified() => {}
            }
        }
    }
}

/// A request being answered on a connection; ending it starts the wait for
/// the next head.
struct InFlight(Arc<ConnectionClock>);

impl InFlight {
    fn begin(clock: Arc<ConnectionClock>) -> Self {
        clock.in_flight.fetch_add(1, Ordering::AcqRel);
        clock.head_since.store(0, Ordering::Release);
        clock.changed.notify_one();
        Self(clock)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let clock = &self.0;
        clock.answered.fetch_add(1, Ordering::AcqRel);
        clock.waiting_since.store(clock.now(), Ordering::Release);
        clock.in_flight.fetch_sub(1, Ordering::AcqRel);
        clock.changed.notify_one();
    }
}

/// A stream that tells its connection's clock when bytes move.
struct Watched<S> {
    inner: S,
    clock: Arc<ConnectionClock>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.read();
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(written)) if written > 0) {
            self.clock.wrote();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(written)) if written > 0) {
            self.clock.wrote();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Raises this process's open-file limit to its hard limit and returns the
/// limit in force (`None` where it cannot be read).
pub(crate) fn raise_open_file_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(error) => {
            tracing::warn!(%error, "cannot raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft)
        }
    }
}

/// File descriptors kept for everything but client connections: the
/// database, its WAL, log files, outgoing connections.
const RESERVED_FILES: u64 = 64;

/// The connection cap to run with, and how many refused connections may
/// drain at once: the setting, lowered (with a warning) where the
/// open-file limit would be reached first. Of the files the limit leaves
/// after [`RESERVED_FILES`], connections may take three quarters.
pub(crate) fn effective_max_connections(
    setting: usize,
    open_file_limit: Option<u64>,
) -> (usize, usize) {
    let Some(limit) = open_file_limit else {
        return (setting.max(1), REFUSALS_DRAINING);
    };
    let room = usize::try_from(limit.saturating_sub(RESERVED_FILES)).unwrap_or(usize::MAX);
    let allowed = (room / 4).saturating_mul(3).max(1);
    let connections = if setting > allowed {
        tracing::warn!(
            max_connections = setting,
            open_file_limit = limit,
            lowered_to = allowed,
            "max_connections is above what the open-file limit allows; lowering it"
        );
        allowed
    } else {
        setting.max(1)
    };
    let draining = room.saturating_sub(connections).min(REFUSALS_DRAINING);
    (connections, draining)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ConnectionLimits = ConnectionLimits {
        max_connections: 10,
        max_draining: 10,
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(30),
        max_unfinished_per_address: 4,
        header_timeout_under_pressure: Duration::from_secs(2),
    };

    #[test]
    fn under_pressure_a_head_is_owed_within_the_shorter_timeout() {
        let clock = ConnectionClock::new();
        assert_eq!(clock.deadline(LIMITS, true), Some(2_000));
        clock.read();
        let partial = clock.deadline(LIMITS, true).unwrap();
        assert!(
            partial <= 2_000 + clock.now(),
            "a head that started is held to it too"
        );
    }

    #[test]
    fn a_new_connection_owes_its_head_within_the_header_timeout() {
        let clock = ConnectionClock::new();
        assert_eq!(clock.deadline(LIMITS, false), Some(10_000));
    }

    #[test]
    fn a_request_in_flight_has_no_connection_deadline() {
        let clock = Arc::new(ConnectionClock::new());
        let in_flight = InFlight::begin(Arc::clone(&clock));
        assert_eq!(clock.deadline(LIMITS, false), None);
        drop(in_flight);
        let deadline = clock.deadline(LIMITS, false).unwrap();
        assert!(
            (30_000..31_000).contains(&deadline),
            "idle after an answer: {deadline}"
        );
    }

    #[test]
    fn the_first_byte_of_the_next_head_starts_the_header_timeout() {
        let clock = Arc::new(ConnectionClock::new());
        drop(InFlight::begin(Arc::clone(&clock)));
        clock.read();
        let deadline = clock.deadline(LIMITS, false).unwrap();
        assert!((10_000..11_000).contains(&deadline), "{deadline}");
    }

    #[test]
    fn the_refusal_is_a_complete_http_answer() {
        let text = std::str::from_utf8(TOO_MANY_CONNECTIONS).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{head}"
        );
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["code"], "SERVICE_UNAVAILABLE");
        let text = std::str::from_utf8(PLAIN_HTTP_ON_TLS_PORT).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{head}"
        );
    }

    #[test]
    fn the_cap_leaves_room_for_the_servers_own_files() {
        assert_eq!(
            effective_max_connections(1000, Some(1_048_576)),
            (1000, 256)
        );
        assert_eq!(effective_max_connections(1000, Some(1024)), (720, 240));
        assert_eq!(effective_max_connections(1000, Some(200)), (102, 34));
        assert_eq!(effective_max_connections(1000, None), (1000, 256));
        assert_eq!(effective_max_connections(0, Some(1024)), (1, 256));
    }
}
