//! `GET /kefu/v1/requests/stream`: the request log as it is written, as server-sent
//! events (README, "The live request log"). Each reader has a bounded queue; a reader
//! too slow to keep up misses calls and is told how many (`event: dropped`). With no
//! reader, a call costs one atomic load. Every stream ends when the server stops.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use http_body::Frame;
use kefu_api::admin::{STREAM_QUEUE, StreamDropped};
use kefu_store::RecordedCall;
use tokio::sync::mpsc;

use super::Failure;
use crate::state::AppState;

/// The most readers at once; past it the stream is refused (429-like `conflict`).
pub const MAX_READERS: usize = 64;

/// How often an idle stream sends a comment, so that proxies and the connection
/// sweeper see it alive (more often when the idle timeout is shorter).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Debug)]
struct Reader {
    queue: mpsc::Sender<Bytes>,
    dropped: Arc<AtomicU64>,
}

/// The readers of the live request log.
#[derive(Debug, Default)]
pub struct Live {
    readers: AtomicUsize,
    closed: AtomicBool,
    list: Mutex<Vec<Reader>>,
}

impl Live {
    /// Hands a recorded call to every reader; one atomic load when there is none.
    pub fn publish(&self, call: &RecordedCall) {
        if self.readers.load(Ordering::Relaxed) == 0 {
            return;
        }
        let entry = super::platform::log_entry(call.details.render(call));
        let Ok(json) = serde_json::to_string(&entry) else {
            return;
        };
        let event = Bytes::from(format!("event: call\ndata: {json}\n\n"));
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        list.retain(|reader| match reader.queue.try_send(event.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                reader.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        self.readers.store(list.len(), Ordering::Relaxed);
    }

    /// A new reader's stream, or `None` when there are too many or the server stops.
    fn subscribe(&self, keep_alive: Duration) -> Option<Stream> {
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        if self.closed.load(Ordering::Relaxed) {
            return None;
        }
        list.retain(|reader| !reader.queue.is_closed());
        if list.len() >= MAX_READERS {
            return None;
        }
        let (queue, events) = mpsc::channel(STREAM_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        list.push(Reader {
            queue,
            dropped: Arc::clone(&dropped),
        });
        self.readers.store(list.len(), Ordering::Relaxed);
        let mut keep_alive = tokio::time::interval(keep_alive);
        keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Some(Stream {
            events,
            dropped,
            keep_alive,
            opened: false,
        })
    }

    /// Ends every stream (the server stops) and refuses new ones.
    pub fn close(&self) {
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        self.closed.store(true, Ordering::Relaxed);
        list.clear();
        self.readers.store(0, Ordering::Relaxed);
    }
}

/// One reader's body: its queued events, a `dropped` event first when calls were
/// missed, and a comment now and then.
struct Stream {
    events: mpsc::Receiver<Bytes>,
    dropped: Arc<AtomicU64>,
    keep_alive: tokio::time::Interval,
    opened: bool,
}

impl http_body::Body for Stream {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if !self.opened {
            // A first comment, so that the reader knows the stream is open.
            self.opened = true;
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
                b": kefu request log\n\n",
            )))));
        }
        match self.events.poll_recv(cx) {
            Poll::Ready(Some(event)) => {
                let dropped = self.dropped.swap(0, Ordering::Relaxed);
                if dropped == 0 {
                    return Poll::Ready(Some(Ok(Frame::data(event))));
                }
                let note = serde_json::to_string(&StreamDropped { dropped }).unwrap_or_default();
                let mut both = format!("event: dropped\ndata: {note}\n\n").into_bytes();
                both.extend_from_slice(&event);
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(both)))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.keep_alive.poll_tick(cx) {
                Poll::Ready(_) => Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
                    b": keep-alive\n\n",
                ))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// `GET /kefu/v1/requests/stream`.
pub(super) async fn request_stream(State(state): State<AppState>) -> Result<Response, Failure> {
    let keep_alive = KEEP_ALIVE
        .min(state.limits.idle_timeout / 2)
        .max(Duration::from_millis(100));
    let stream = state.live.subscribe(keep_alive).ok_or_else(|| {
        Failure::new(
            kefu_api::admin::AdminErrorCode::Conflict,
            format!("the stream has {MAX_READERS} readers already, or the server is stopping"),
        )
    })?;
    let mut response = Response::new(Body::new(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}
