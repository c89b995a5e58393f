//! Connections: how many may be open, and how long each may take or sit idle (README,
//! "Limits").
//!
//! hyper knows neither an idle timeout nor a bound on connections, and its header
//! timeout cannot tell a client that is slowly sending a request's head from one that
//! is idle between requests. So every connection's bytes pass through [`Watched`],
//! which notes when the connection last moved and whether a request's head has started
//! arriving, and one sweeper closes, each second, the connections that sent part of a
//! head and stalled ([`Limits::header_timeout`]) or sat idle
//! ([`Limits::idle_timeout`]). A [`Gate`] keeps at most
//! [`Limits::max_connections`] open: when it is full, no connection is accepted (new
//! clients wait in the listen backlog) and the idle ones are closed at once to make
//! room, so that the clients that get in are answered as usual.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::config::Limits;

/// The HTTP/2 connection preface: a connection that starts with it is HTTP/2, whose
/// frames (pings, settings) arrive between requests and start no request head.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// What is known of one connection's traffic, in milliseconds since the gate's epoch.
#[derive(Debug)]
pub(crate) struct Activity {
    epoch: Instant,
    /// When a byte last came or went, or a request ended.
    last: AtomicU64,
    /// When the first byte of a request's head arrived while no request was in
    /// flight (0: none is arriving).
    head_since: AtomicU64,
    in_flight: AtomicUsize,
    http2: AtomicBool,
    /// Set by the sweeper: the connection is to be closed.
    close: Notify,
}

impl Activity {
    fn new(epoch: Instant) -> Activity {
        let activity = Activity {
            epoch,
            last: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            http2: AtomicBool::new(false),
            close: Notify::new(),
        };
        activity.touch();
        activity
    }

    fn now_ms(&self) -> u64 {
        // Never 0, which `head_since` reserves for "none".
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    fn touch(&self) {
        self.last.store(self.now_ms(), Ordering::Relaxed);
    }

    fn read(&self, bytes: &[u8], first: bool) {
        if first && bytes.starts_with(H2_PREFACE) {
            self.http2.store(true, Ordering::Relaxed);
        }
        let now = self.now_ms();
        self.last.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Relaxed) == 0
            && !self.http2.load(Ordering::Relaxed)
            && self.head_since.load(Ordering::Relaxed) == 0
        {
            self.head_since.store(now, Ordering::Relaxed);
        }
    }

    /// A request started on the connection; the guard ends it.
    pub(crate) fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_since.store(0, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// Whether the connection has outstayed its welcome at `now`; `pressed` (the gate
    /// is full) closes any connection idle for a second.
    fn expired(&self, limits: &Limits, now: u64, pressed: bool) -> bool {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return false;
        }
        let head_since = self.head_since.load(Ordering::Relaxed);
        if head_since != 0 {
            return now.saturating_sub(head_since) >= millis(limits.header_timeout);
        }
        let idle = now.saturating_sub(self.last.load(Ordering::Relaxed));
        idle >= millis(limits.idle_timeout) || (pressed && idle >= 1000)
    }

    /// Resolves when the sweeper closes the connection.
    pub(crate) async fn closed(&self) {
        self.close.notified().await;
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A request in flight on a connection.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A connection's byte stream, noting its activity.
#[derive(Debug)]
pub(crate) struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
    first_read: bool,
}

impl<T> Watched<T> {
    pub(crate) fn new(inner: T, activity: Arc<Activity>) -> Watched<T> {
        Watched {
            inner,
            activity,
            first_read: true,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && buf.filled().len() > before
        {
            let first = std::mem::take(&mut self.first_read);
            self.activity.read(&buf.filled()[before..], first);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled
            && n > 0
        {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled
            && n > 0
        {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The bound on open connections, and the sweeper of the ones that outstay.
#[derive(Debug)]
pub(crate) struct Gate {
    limits: Limits,
    epoch: Instant,
    permits: Arc<Semaphore>,
    open: Mutex<Vec<Weak<Activity>>>,
    /// Whether the bound was hit and not yet logged as relieved (one log line each).
    full: AtomicBool,
    relieve: Arc<Notify>,
}

/// Room for one more connection, before it is accepted.
#[derive(Debug)]
pub(crate) struct Room(OwnedSemaphorePermit);

/// An open connection's place at the gate: its activity and its permit.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub(crate) activity: Arc<Activity>,
    _permit: OwnedSemaphorePermit,
}

impl Gate {
    /// A gate for `limits.max_connections` connections; starts its sweeper on the
    /// current runtime (it stops with the gate).
    pub(crate) fn start(limits: Limits) -> Arc<Gate> {
        let gate = Arc::new(Gate {
            limits,
            epoch: Instant::now(),
            permits: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            open: Mutex::new(Vec::new()),
            full: AtomicBool::new(false),
            relieve: Arc::new(Notify::new()),
        });
        tokio::spawn(sweep(Arc::downgrade(&gate), Arc::clone(&gate.relieve)));
        gate
    }

    /// Waits for room for one more connection. When the gate is full it says so once,
    /// closes the idle connections, and waits.
    pub(crate) async fn room(&self) -> Room {
        let permit = loop {
            if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
                break permit;
            }
            if !self.full.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    max_connections = self.limits.max_connections,
                    "connection limit reached: new connections wait while idle ones are \
                        closed (--max-connections)"
                );
            }
            self.relieve.notify_one();
            // Woken as a connection closes (or, at the latest, to ask for room again).
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                Arc::clone(&self.permits).acquire_owned(),
            )
            .await
            .map(|permit| permit.map(drop));
        };
        if self.permits.available_permits() > self.limits.max_connections / 10
            && self.full.swap(false, Ordering::Relaxed)
        {
            tracing::info!("connections below the limit again");
        }
        Room(permit)
    }

    /// Watches a connection just accepted into `room`: from now on its silences count
    /// (not while it was being waited for).
    pub(crate) fn admit(&self, room: Room) -> Admitted {
        let activity = Arc::new(Activity::new(self.epoch));
        self.lock().push(Arc::downgrade(&activity));
        Admitted {
            activity,
            _permit: room.0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Weak<Activity>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Closes the connections that outstayed (when `pressed`, any idle for a second);
    /// forgets the closed ones.
    fn sweep_once(&self, pressed: bool) {
        let now = self.epoch.elapsed();
        let now = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
        let mut closing = Vec::new();
        self.lock().retain(|weak| match weak.upgrade() {
            Some(activity) => {
                if activity.expired(&self.limits, now, pressed) {
                    closing.push(activity);
                }
                true
            }
            None => false,
        });
        for activity in closing {
            activity.close.notify_one();
        }
    }
}

/// Every second, and whenever the gate is full: closes what outstayed.
async fn sweep(gate: Weak<Gate>, relieve: Arc<Notify>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let pressed = tokio::select! {
            _ = tick.tick() => false,
            () = relieve.notified() => true,
        };
        let Some(gate) = gate.upgrade() else { return };
        gate.sweep_once(pressed);
    }
}

/// Raises the process's soft limit on open files to its hard limit (the usual soft
/// limit, 1,024, is far below what a server needs), and answers how many connections
/// fit under it with room for the store's files and the rest.
pub(crate) fn raise_open_file_limit(wanted: usize) -> usize {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    /// Descriptors kept for everything that is not a client connection.
    const RESERVED: u64 = 128;
    let limit = getrlimit(Resource::Nofile);
    let soft = match (limit.current, limit.maximum) {
        (Some(current), Some(maximum)) if current < maximum => {
            match setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(maximum),
                    maximum: Some(maximum),
                },
            ) {
                Ok(()) => maximum,
                Err(error) => {
                    tracing::warn!(%error, current, maximum, "cannot raise the open-file limit");
                    current
                }
            }
        }
        (current, _) => current.unwrap_or(u64::MAX),
    };
    let room = usize::try_from(soft.saturating_sub(RESERVED).max(16)).unwrap_or(usize::MAX);
    if wanted > room {
        tracing::warn!(
            max_connections = room,
            wanted,
            open_file_limit = soft,
            "the open-file limit allows fewer connections than configured"
        );
        room
    } else {
        wanted
    }
}
