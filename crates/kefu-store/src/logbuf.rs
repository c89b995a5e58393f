//! The request log's in-memory part, shared by both backends: recording a call costs
//! no database work on the request path. Failed calls (the only ones whose rid a
//! client sees) wait here until `maintain` writes them; every call also goes to a
//! bounded list of the newest, which `GET /kefu/v1/requests` reads first. Calls are
//! kept as the request path recorded them and rendered only when read or written.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::model::{LoggedRequest, RecordedCall};

/// A call as kept here.
type Call = Arc<RecordedCall>;

/// The most failed calls kept waiting for `maintain`; past it the oldest are dropped
/// (the log is a diagnostic).
const MAX_PENDING: usize = 100_000;
/// How many of the newest calls, failed or not, are kept in memory.
const RECENT: usize = 4096;

#[derive(Default)]
struct Inner {
    next: u64,
    /// Numbered, so that a flush removes exactly what it wrote.
    pending: VecDeque<(u64, Call)>,
    recent: VecDeque<Call>,
}

/// Calls recorded in memory.
#[derive(Default)]
pub(crate) struct LogBuffer(Mutex<Inner>);

/// What a flush is to write, and the mark to confirm once it is written.
pub(crate) struct Flush {
    pub(crate) entries: Vec<LoggedRequest>,
    mark: Option<u64>,
}

impl LogBuffer {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a call.
    pub(crate) fn push(&self, entry: Call) {
        let mut inner = self.lock();
        if entry.errcode != 0 {
            let seq = inner.next;
            inner.next += 1;
            inner.pending.push_back((seq, Arc::clone(&entry)));
            if inner.pending.len() > MAX_PENDING {
                inner.pending.pop_front();
            }
        }
        inner.recent.push_back(entry);
        let dropped = if inner.recent.len() > RECENT {
            inner.recent.pop_front()
        } else {
            None
        };
        // The oldest call is freed after the lock is let go.
        drop(inner);
        drop(dropped);
    }

    /// A call still in memory, by rid.
    pub(crate) fn find(&self, rid: &str) -> Option<LoggedRequest> {
        let inner = self.lock();
        inner
            .recent
            .iter()
            .rev()
            .find(|entry| entry.rid == rid)
            .or_else(|| {
                inner
                    .pending
                    .iter()
                    .rev()
                    .map(|(_, entry)| entry)
                    .find(|entry| entry.rid == rid)
            })
            .map(|entry| entry.render())
    }

    /// The newest calls in memory, of one app or all, newest first.
    pub(crate) fn newest(&self, appid: Option<&str>, limit: usize) -> Vec<LoggedRequest> {
        self.lock()
            .recent
            .iter()
            .rev()
            .filter(|entry| appid.is_none_or(|id| entry.appid.as_deref() == Some(id)))
            .take(limit)
            .map(|entry| entry.render())
            .collect()
    }

    /// Forgets calls made before `log_before` and answers the waiting calls to write.
    pub(crate) fn flush(&self, log_before: i64) -> Flush {
        let mut inner = self.lock();
        inner.recent.retain(|entry| entry.invoke_time >= log_before);
        let waiting: Vec<Call> = inner
            .pending
            .iter()
            .filter(|(_, entry)| entry.invoke_time >= log_before)
            .map(|(_, entry)| Arc::clone(entry))
            .collect();
        let mark = inner.pending.back().map(|(seq, _)| *seq);
        drop(inner);
        Flush {
            entries: waiting.iter().map(|entry| entry.render()).collect(),
            mark,
        }
    }

    /// Drops what `flush` handed out, once it is written.
    pub(crate) fn written(&self, flush: &Flush) {
        let Some(last) = flush.mark else { return };
        let mut inner = self.lock();
        while inner.pending.front().is_some_and(|(seq, _)| *seq <= last) {
            inner.pending.pop_front();
        }
    }

    /// Forgets an owner's calls (its rows are deleted).
    pub(crate) fn forget(&self, owner: &str) {
        let mut inner = self.lock();
        inner
            .pending
            .retain(|(_, entry)| entry.appid.as_deref() != Some(owner));
        inner
            .recent
            .retain(|entry| entry.appid.as_deref() != Some(owner));
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
