//! `GET /kefu/v1/requests/stream`: the request log as it is written, as server-sent
//! events (README, "Console", "The live request log"). Each reader has a bounded queue;
//! a reader too slow to keep up misses calls and is told how many, where they would have
//! been (`event: dropped`). With no
//! reader, a call costs one atomic load. Every stream ends when the server stops; one
//! opened with a console session ends within [`SESSION_CHECK`] of the session's end.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use http_body::Frame;
use kefu_api::admin::{STREAM_QUEUE, StreamDropped};
use kefu_store::{Digest, RecordedCall};
use tokio::sync::mpsc;

use super::Failure;
use crate::console::Sessions;
use crate::state::AppState;

/// The most readers at once; past it the stream is refused (429-like `conflict`). With
/// each reader's queue of at most `STREAM_QUEUE` calls (a few KiB each), the readers
/// hold at most a few tens of MiB, however slowly they read.
pub const MAX_READERS: usize = 16;

/// How often an idle stream sends a comment, so that proxies and the connection
/// sweeper see it alive (more often when the idle timeout is shorter).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How often a stream opened with a console session looks whether the session is still
/// live (signed out or expired: the stream ends).
pub const SESSION_CHECK: Duration = Duration::from_millis(250);

#[derive(Debug)]
struct Reader {
    queue: mpsc::Sender<Bytes>,
    /// Calls missed since the reader was last told.
    dropped: AtomicU64,
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
        list.retain(|reader| {
            // A reader that missed calls is told so first, in its place in the stream,
            // as soon as its queue has room again.
            let missed = reader.dropped.load(Ordering::Relaxed);
            if missed > 0 {
                let note =
                    serde_json::to_string(&StreamDropped { dropped: missed }).unwrap_or_default();
                let note = Bytes::from(format!("event: dropped\ndata: {note}\n\n"));
                match reader.queue.try_send(note) {
                    Ok(()) => reader.dropped.store(0, Ordering::Relaxed),
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        reader.dropped.fetch_add(1, Ordering::Relaxed);
                        return true;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
            match reader.queue.try_send(event.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    reader.dropped.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
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
        list.push(Reader {
            queue,
            dropped: AtomicU64::new(0),
        });
        self.readers.store(list.len(), Ordering::Relaxed);
        let mut keep_alive = tokio::time::interval(keep_alive);
        keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Some(Stream {
            events,
            keep_alive,
            opened: false,
            session: None,
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

/// One reader's body: its queued events, and a comment now and then.
struct Stream {
    events: mpsc::Receiver<Bytes>,
    keep_alive: tokio::time::Interval,
    opened: bool,
    /// The console session the stream was opened with, if any: it lasts as long.
    session: Option<SessionBound>,
}

/// A console session a stream lives no longer than.
struct SessionBound {
    sessions: Arc<Sessions>,
    id: Digest,
    check: tokio::time::Interval,
}

impl SessionBound {
    /// Whether the session has ended, by the last look (taken when the check is due).
    fn ended(&mut self, cx: &mut Context<'_>) -> bool {
        while self.check.poll_tick(cx).is_ready() {
            if !self.sessions.is_live(&self.id) {
                return true;
            }
        }
        false
    }
}

impl http_body::Body for Stream {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self
            .session
            .as_mut()
            .is_some_and(|session| session.ended(cx))
        {
            return Poll::Ready(None);
        }
        if !self.opened {
            // A first comment, so that the reader knows the stream is open.
            self.opened = true;
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
                b": kefu request log\n\n",
            )))));
        }
        match self.events.poll_recv(cx) {
            Poll::Ready(Some(event)) => Poll::Ready(Some(Ok(Frame::data(event)))),
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

/// `GET /kefu/v1/requests/stream`: with the admin token the stream lasts until the
/// server stops; with a console session (and no token), until that session ends too.
pub(super) async fn request_stream(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let keep_alive = KEEP_ALIVE
        .min(state.limits.idle_timeout / 2)
        .max(Duration::from_millis(100));
    let session = if headers.contains_key(header::AUTHORIZATION) {
        None
    } else {
        state.sessions.session_of(&headers).map(|id| {
            let mut check = tokio::time::interval(SESSION_CHECK);
            check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            SessionBound {
                sessions: Arc::clone(&state.sessions),
                id,
                check,
            }
        })
    };
    let mut stream = state.live.subscribe(keep_alive).ok_or_else(|| {
        Failure::new(
            kefu_api::admin::AdminErrorCode::Conflict,
            format!("the stream has {MAX_READERS} readers already, or the server is stopping"),
        )
    })?;
    stream.session = session;
    let mut response = Response::new(Body::new(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use http_body_util::BodyExt;
    use kefu_store::{CallDetails, LoggedRequest};

    use super::*;

    struct Plain;

    impl CallDetails for Plain {
        fn render(&self, call: &RecordedCall) -> LoggedRequest {
            LoggedRequest {
                rid: call.rid.clone(),
                appid: call.appid.clone(),
                method: "POST".to_owned(),
                path: call.path.to_string(),
                errcode: call.errcode,
                invoke_time: call.invoke_time,
                cost_ms: 0,
                request_url: call.path.to_string(),
                request_body: String::new(),
                response_body: String::new(),
                client_ip: "127.0.0.1".to_owned(),
                reason: String::new(),
            }
        }

        fn size(&self) -> usize {
            64
        }
    }

    fn call(n: usize) -> RecordedCall {
        RecordedCall {
            rid: format!("rid-{n}"),
            appid: None,
            path: Cow::Borrowed("/customservice/kfaccount/add"),
            errcode: 0,
            invoke_time: 1,
            details: Box::new(Plain),
        }
    }

    async fn next(stream: &mut Stream) -> Option<String> {
        let frame = stream.frame().await?.ok()?;
        Some(String::from_utf8_lossy(frame.data_ref()?).into_owned())
    }

    #[tokio::test]
    async fn a_slow_reader_is_told_how_many_calls_it_missed() {
        let live = Live::default();
        live.publish(&call(0)); // nobody reads: nothing is kept
        let mut stream = live.subscribe(Duration::from_secs(3600)).unwrap();
        assert!(next(&mut stream).await.unwrap().starts_with(": kefu"));
        for n in 1..=STREAM_QUEUE + 10 {
            live.publish(&call(n));
        }
        // The queue holds the first STREAM_QUEUE calls; the ten after them are missed,
        // and the reader is told so where they would have been.
        let mut first = String::new();
        while !first.contains("event: call") {
            first = next(&mut stream).await.unwrap();
        }
        assert!(first.starts_with("event: call\n"), "{first}");
        assert!(first.contains("\"rid\":\"rid-1\""), "{first}");
        for _ in 1..STREAM_QUEUE {
            next(&mut stream).await.unwrap();
        }
        live.publish(&call(999));
        let told = next(&mut stream).await.unwrap();
        assert_eq!(told, "event: dropped\ndata: {\"dropped\":10}\n\n");
        let after = next(&mut stream).await.unwrap();
        assert!(after.starts_with("event: call\n"), "{after}");
        assert!(after.contains("\"rid\":\"rid-999\""), "{after}");
        // The server stops: the stream ends, and no new one opens.
        live.close();
        assert!(next(&mut stream).await.is_none());
        assert!(live.subscribe(Duration::from_secs(1)).is_none());
    }

    #[tokio::test]
    async fn readers_are_bounded() {
        let live = Live::default();
        let streams: Vec<_> = (0..MAX_READERS)
            .map(|_| live.subscribe(Duration::from_secs(1)).unwrap())
            .collect();
        assert!(live.subscribe(Duration::from_secs(1)).is_none());
        drop(streams);
        assert!(live.subscribe(Duration::from_secs(1)).is_some());
    }
}
