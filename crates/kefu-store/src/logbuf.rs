//! The request log's in-memory part, shared by both backends: recording a call costs
//! no database work on the request path. Failed calls (the only ones whose rid a
//! client sees) wait here until `maintain` writes them; every call also goes to a
//! list of the newest, which `GET /kefu/v1/requests` reads first, and is counted by
//! app, path, errcode and hour. Calls are kept as the request path recorded them and
//! rendered only when read or written.
//!
//! Everything here is bounded ([`LogLimits`]): the newest calls and the waiting ones
//! each within half of the memory bound, at most [`LogLimits::per_second`] calls waiting
//! between two writes; what does not fit is dropped, oldest first, and counted. The
//! counts themselves are bounded by what they are kept by: apps and platforms the
//! store knows, the fixed set of WeChat paths, and errcodes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::model::{CallCount, LogFilter, LogLimits, LoggedRequest, RecordedCall};

/// A call as kept here.
type Call = Arc<RecordedCall>;

/// The most of the newest calls kept in memory, within the memory bound.
const RECENT: usize = 4096;

/// A count's key: app, path, errcode, hour.
type CountKey = (Option<String>, std::borrow::Cow<'static, str>, i64, i64);

struct Inner {
    next: u64,
    /// Numbered, so that a flush removes exactly what it wrote.
    pending: VecDeque<(u64, Call, usize)>,
    pending_bytes: usize,
    recent: VecDeque<(Call, usize)>,
    recent_bytes: usize,
    /// Calls counted since the last flush.
    counts: HashMap<CountKey, u64>,
    /// Failed calls dropped before they were written.
    dropped: u64,
    /// The last call of the flush being written: calls up to it that leave memory are
    /// being written, not dropped.
    writing: Option<u64>,
}

/// Calls recorded in memory.
pub(crate) struct LogBuffer {
    limits: LogLimits,
    inner: Mutex<Inner>,
}

/// What a flush is to write, and the mark to confirm once it is written.
pub(crate) struct Flush {
    pub(crate) entries: Vec<LoggedRequest>,
    pub(crate) counts: Vec<CallCount>,
    mark: Option<u64>,
}

/// The hour (since the epoch) of a Unix time.
pub(crate) fn hour_of(time: i64) -> i64 {
    time.div_euclid(3600)
}

impl LogBuffer {
    pub(crate) fn new(limits: LogLimits) -> LogBuffer {
        LogBuffer {
            limits,
            inner: Mutex::new(Inner {
                next: 0,
                pending: VecDeque::new(),
                pending_bytes: 0,
                recent: VecDeque::new(),
                recent_bytes: 0,
                counts: HashMap::new(),
                dropped: 0,
                writing: None,
            }),
        }
    }

    /// The bounds in force.
    pub(crate) fn limits(&self) -> LogLimits {
        self.limits
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a call.
    pub(crate) fn push(&self, entry: Call) {
        let size = entry.details.size();
        let half = self.limits.memory_bytes / 2;
        let mut freed = Vec::new();
        let mut inner = self.lock();
        let key = (
            entry.appid.clone(),
            entry.path.clone(),
            entry.errcode,
            hour_of(entry.invoke_time),
        );
        *inner.counts.entry(key).or_default() += 1;
        if entry.errcode != 0 {
            let seq = inner.next;
            inner.next += 1;
            inner.pending.push_back((seq, Arc::clone(&entry), size));
            inner.pending_bytes += size;
            while inner.pending.len() > self.limits.per_second
                || (inner.pending_bytes > half && inner.pending.len() > 1)
            {
                let Some((seq, call, size)) = inner.pending.pop_front() else {
                    break;
                };
                inner.pending_bytes -= size;
                if inner.writing.is_none_or(|last| seq > last) {
                    inner.dropped += 1;
                }
                freed.push(call);
            }
        }
        inner.recent.push_back((entry, size));
        inner.recent_bytes += size;
        while inner.recent.len() > RECENT || (inner.recent_bytes > half && inner.recent.len() > 1) {
            let Some((call, size)) = inner.recent.pop_front() else {
                break;
            };
            inner.recent_bytes -= size;
            freed.push(call);
        }
        // The calls let go are freed after the lock is.
        drop(inner);
        drop(freed);
    }

    /// A call still in memory, by rid.
    pub(crate) fn find(&self, rid: &str) -> Option<LoggedRequest> {
        let inner = self.lock();
        inner
            .recent
            .iter()
            .rev()
            .map(|(entry, _)| entry)
            .find(|entry| entry.rid == rid)
            .or_else(|| {
                inner
                    .pending
                    .iter()
                    .rev()
                    .map(|(_, entry, _)| entry)
                    .find(|entry| entry.rid == rid)
            })
            .map(|entry| entry.render())
    }

    /// The newest calls in memory, of one app or all, newest first.
    pub(crate) fn newest(&self, filter: LogFilter<'_>, limit: usize) -> Vec<LoggedRequest> {
        self.lock()
            .recent
            .iter()
            .rev()
            .map(|(entry, _)| entry)
            .filter(|entry| filter.matches(entry.appid.as_deref(), &entry.path, entry.errcode))
            .take(limit)
            .map(|entry| entry.render())
            .collect()
    }

    /// The counts not yet written, of one app or all, from `since_hour` on.
    pub(crate) fn unwritten_counts(&self, appid: Option<&str>, since_hour: i64) -> Vec<CallCount> {
        self.lock()
            .counts
            .iter()
            .filter(|((owner, _, _, hour), _)| {
                *hour >= since_hour && appid.is_none_or(|id| owner.as_deref() == Some(id))
            })
            .map(|((owner, path, errcode, hour), count)| CallCount {
                appid: owner.clone(),
                path: path.to_string(),
                errcode: *errcode,
                hour: *hour,
                count: *count,
            })
            .collect()
    }

    /// Calls in memory, their bytes, and the failed calls dropped before being written.
    pub(crate) fn usage(&self) -> (u64, u64, u64) {
        let inner = self.lock();
        let calls = inner.recent.len() + inner.pending.len();
        let bytes = inner.recent_bytes + inner.pending_bytes;
        (
            u64::try_from(calls).unwrap_or(u64::MAX),
            u64::try_from(bytes).unwrap_or(u64::MAX),
            inner.dropped,
        )
    }

    /// Forgets calls made before `log_before` and answers the waiting calls and the
    /// counts to write. The counts leave memory here: a flush that fails loses them
    /// (they are a diagnostic, like the rest of the log).
    pub(crate) fn flush(&self, log_before: i64) -> Flush {
        let mut inner = self.lock();
        let mut freed = Vec::new();
        while inner
            .recent
            .front()
            .is_some_and(|(entry, _)| entry.invoke_time < log_before)
        {
            if let Some((call, size)) = inner.recent.pop_front() {
                inner.recent_bytes -= size;
                freed.push(call);
            }
        }
        let waiting: Vec<Call> = inner
            .pending
            .iter()
            .filter(|(_, entry, _)| entry.invoke_time >= log_before)
            .map(|(_, entry, _)| Arc::clone(entry))
            .collect();
        let mark = inner.pending.back().map(|(seq, _, _)| *seq);
        inner.writing = mark;
        let counts = std::mem::take(&mut inner.counts);
        drop(inner);
        drop(freed);
        Flush {
            entries: waiting.iter().map(|entry| entry.render()).collect(),
            counts: counts
                .into_iter()
                .map(|((appid, path, errcode, hour), count)| CallCount {
                    appid,
                    path: path.into_owned(),
                    errcode,
                    hour,
                    count,
                })
                .collect(),
            mark,
        }
    }

    /// Drops what `flush` handed out, once it is written.
    pub(crate) fn written(&self, flush: &Flush) {
        let Some(last) = flush.mark else { return };
        let mut inner = self.lock();
        inner.writing = None;
        while inner
            .pending
            .front()
            .is_some_and(|(seq, _, _)| *seq <= last)
        {
            if let Some((_, _, size)) = inner.pending.pop_front() {
                inner.pending_bytes -= size;
            }
        }
    }

    /// Forgets every call and count, and what was dropped (the store was emptied).
    pub(crate) fn clear(&self) {
        let mut inner = self.lock();
        inner.pending.clear();
        inner.pending_bytes = 0;
        inner.recent.clear();
        inner.recent_bytes = 0;
        inner.counts.clear();
        inner.dropped = 0;
        inner.writing = None;
    }

    /// Forgets an owner's calls and counts (its rows are deleted).
    pub(crate) fn forget(&self, owner: &str) {
        let mut inner = self.lock();
        let mine = |entry: &Call| entry.appid.as_deref() == Some(owner);
        let mut freed = 0;
        inner.pending.retain(|(_, entry, size)| {
            let keep = !mine(entry);
            if !keep {
                freed += size;
            }
            keep
        });
        inner.pending_bytes -= freed;
        let mut freed = 0;
        inner.recent.retain(|(entry, size)| {
            let keep = !mine(entry);
            if !keep {
                freed += size;
            }
            keep
        });
        inner.recent_bytes -= freed;
        inner
            .counts
            .retain(|(appid, _, _, _), _| appid.as_deref() != Some(owner));
    }
}

/// Adds the written calls to those found in memory, without repeats, up to `limit`.
pub(crate) fn merge(
    mut entries: Vec<LoggedRequest>,
    written: Vec<LoggedRequest>,
    limit: usize,
) -> Vec<LoggedRequest> {
    for entry in written {
        if entries.len() >= limit {
            break;
        }
        if !entries.iter().any(|seen| seen.rid == entry.rid) {
            entries.push(entry);
        }
    }
    entries
}

/// Adds counts of the same app, path, errcode and hour together, in a stable order.
pub(crate) fn sum_counts(counts: impl IntoIterator<Item = CallCount>) -> Vec<CallCount> {
    let mut summed: HashMap<(Option<String>, String, i64, i64), u64> = HashMap::new();
    for count in counts {
        *summed
            .entry((count.appid, count.path, count.errcode, count.hour))
            .or_default() += count.count;
    }
    let mut summed: Vec<CallCount> = summed
        .into_iter()
        .map(|((appid, path, errcode, hour), count)| CallCount {
            appid,
            path,
            errcode,
            hour,
            count,
        })
        .collect();
    summed.sort();
    summed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CallDetails;

    struct Sized(usize);

    impl CallDetails for Sized {
        fn render(&self, call: &RecordedCall) -> LoggedRequest {
            LoggedRequest {
                rid: call.rid.clone(),
                appid: call.appid.clone(),
                method: "GET".to_owned(),
                path: call.path.to_string(),
                errcode: call.errcode,
                invoke_time: call.invoke_time,
                cost_ms: 0,
                request_url: String::new(),
                request_body: String::new(),
                response_body: String::new(),
                client_ip: String::new(),
                reason: String::new(),
            }
        }

        fn size(&self) -> usize {
            self.0
        }
    }

    fn call(n: usize, errcode: i64, size: usize) -> Call {
        Arc::new(RecordedCall {
            rid: format!("r{n}"),
            appid: Some("wx1".to_owned()),
            path: "/cgi-bin/token".into(),
            errcode,
            invoke_time: 7200,
            details: Box::new(Sized(size)),
        })
    }

    #[test]
    fn a_flood_of_failures_is_kept_within_the_bounds_and_still_counted() {
        let log = LogBuffer::new(LogLimits {
            memory_bytes: 100_000,
            per_second: 100,
            ..LogLimits::default()
        });
        for n in 0..10_000 {
            log.push(call(n, 45009, 1000));
        }
        let (calls, bytes, dropped) = log.usage();
        assert!(bytes <= 100_000, "{bytes}");
        assert!(calls <= 100 + 50, "{calls}");
        assert_eq!(
            dropped,
            10_000 - 50,
            "the waiting calls fit in half the memory"
        );
        // The newest are the ones kept.
        assert!(log.find("r9999").is_some());
        assert!(log.find("r0").is_none());
        let flush = log.flush(0);
        assert_eq!(flush.entries.len(), 50);
        assert_eq!(
            flush.counts,
            vec![CallCount {
                appid: Some("wx1".to_owned()),
                path: "/cgi-bin/token".to_owned(),
                errcode: 45009,
                hour: 2,
                count: 10_000
            }],
            "every call is counted, kept or not"
        );
        log.written(&flush);
        assert!(log.unwritten_counts(None, 0).is_empty());
    }

    #[test]
    fn calls_pushed_out_while_being_written_are_not_counted_as_dropped() {
        let log = LogBuffer::new(LogLimits {
            per_second: 10,
            ..LogLimits::default()
        });
        for n in 0..10 {
            log.push(call(n, 45009, 100));
        }
        let flush = log.flush(0);
        assert_eq!(flush.entries.len(), 10);
        // While those ten are written, ten more push them out of memory.
        for n in 10..20 {
            log.push(call(n, 45009, 100));
        }
        log.written(&flush);
        assert_eq!(log.usage().2, 0, "all twenty are written or waiting");
        log.push(call(20, 45009, 100));
        assert_eq!(log.usage().2, 1, "one waiting call is pushed out unwritten");
    }

    #[test]
    fn successes_are_only_kept_among_the_newest() {
        let log = LogBuffer::new(LogLimits::default());
        for n in 0..(RECENT + 10) {
            log.push(call(n, 0, 10));
        }
        let flush = log.flush(0);
        assert!(flush.entries.is_empty(), "nothing waits to be written");
        assert_eq!(log.usage().0, RECENT as u64);
        assert_eq!(log.usage().2, 0, "successes are never counted as dropped");
    }

    #[test]
    fn forgetting_an_owner_frees_its_bytes() {
        let log = LogBuffer::new(LogLimits::default());
        log.push(call(1, 40001, 500));
        log.forget("wx1");
        assert_eq!(log.usage(), (0, 0, 0));
        assert!(log.unwritten_counts(None, 0).is_empty());
    }
}
