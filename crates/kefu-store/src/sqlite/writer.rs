//! The single writer: it owns the read-write connection and commits whatever requests
//! are waiting as one transaction (group commit), answering each only once its change
//! is as durable as the store promises.
//!
//! The writer is an async task that takes every job waiting whenever it runs. Where it
//! runs depends on the durability:
//!
//! - [`Durability::Normal`]: on the server's own runtime. Its commits never wait for the
//!   disk (`synchronous=NORMAL`), so it never holds a runtime thread for long. Handing
//!   work to another thread and back costs two wake-ups of sleeping threads per batch
//!   (system calls and, on a virtual machine, interrupts between CPUs); a task woken
//!   inside the runtime costs neither, and while it waits its turn more requests join
//!   its batch.
//! - [`Durability::Full`]: on a thread of its own, since every commit waits for the
//!   disk (`synchronous=FULL`) and the requests arriving meanwhile make the next batch.
//!   Its answers go back to the server's runtime together: one task there wakes the
//!   batch's requests, so that waking them from outside costs one wake-up, not one each.
//!
//! In both, no commit checkpoints (`wal_autocheckpoint=0`): moving a long WAL into the
//! database takes tens of milliseconds, and a writer doing it would stall every request
//! waiting on it. A checkpointer thread with a connection of its own does it instead,
//! beside the writer (a passive checkpoint waits for no one). The WAL starts afresh only
//! when a write transaction begins with all of it moved; under steady writes the
//! checkpointer is always a few commits behind, so once it has moved the bulk, the
//! writer moves those few commits itself between two batches (a short checkpoint) and
//! its next batch restarts the WAL. The WAL stays near [`CHECKPOINT_BYTES`] long. When
//! the checkpointer falls behind (a machine short of CPU, a flood of writes), the WAL
//! would grow for as long as it does: past [`WAL_CEILING_BYTES`] the writer waits for it
//! before its next batch, so the WAL never grows much beyond that.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::runtime::Handle;
use tokio::sync::{Notify, mpsc, oneshot};

use super::Durability;
use super::cache::Cache;
use crate::{CommitObserver, StoreError, StoreResult};

/// Most jobs folded into one transaction.
const MAX_BATCH: usize = 512;
/// The WAL is moved into the database once it is this long (SQLite's own default: 1000
/// pages of 4 KiB), as seen after each batch (a `stat`, a microsecond or two: batches
/// may be few and large, as the request log's once a second under a flood of failing
/// calls).
const CHECKPOINT_BYTES: u64 = 4 * 1024 * 1024;
/// How long the WAL may grow while the checkpointer is moving it before the writer
/// waits for the checkpointer to finish.
const WAL_CEILING_BYTES: u64 = 2 * CHECKPOINT_BYTES;
/// What a WAL file is cut back to when it starts afresh: nothing beyond the commit that
/// restarted it, so that the file's length is the WAL's and says when to checkpoint.
const WAL_FILE_LIMIT: i64 = 0;

/// The checkpointer is waiting for work.
const IDLE: u8 = 0;
/// The checkpointer is moving the WAL.
const MOVING: u8 = 1;
/// The checkpointer has moved the bulk: the writer moves the rest.
const MOVED: u8 = 2;

/// What to do once the batch's fate is known: apply the cache edit and make the
/// answer, or make the commit's failure the answer. Every answer waits for the commit,
/// rejections too: a rejection may rest on an earlier job of the same batch.
type Finish = Box<dyn for<'a> FnOnce(Result<&'a mut Cache, StoreError>) -> Deliver + Send>;
/// Hands a job's answer to the request waiting for it.
type Deliver = Box<dyn FnOnce() + Send>;
/// A job's work: runs inside the batch transaction (or gets `None` when none could be
/// opened, and answers the failure itself).
type Work = Box<dyn FnOnce(Option<&Connection>) -> Option<Done> + Send>;

/// A job for the writer.
struct Job {
    scope: Scope,
    work: Work,
}

/// How a job's writes are undone when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The job may write with several statements: it runs in a savepoint of its own,
    /// rolled back when it fails.
    Savepoint,
    /// The job writes with at most one statement, which SQLite applies whole or not at
    /// all, and fails only when that statement wrote nothing: it needs no savepoint
    /// (two statements and a copy of every page it touches, saved).
    OneStatement,
}

/// A job's result inside the batch. `keep` says whether what it wrote stays (`false`
/// rolls it back to its savepoint).
struct Done {
    keep: bool,
    finish: Finish,
}

fn stopped() -> StoreError {
    StoreError::Internal("the store writer has stopped".to_owned())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The writer as the store sees it. Dropping it runs the jobs still waiting and closes
/// the connection.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    /// The runtime thread the writer task runs on, when it has one of its own.
    own_runtime: Option<OwnRuntime>,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the writer task when the queue stops being empty.
    wake: Notify,
    /// The read-write connection; `None` once the store is closed.
    conn: Mutex<Option<Connection>>,
    cache: Arc<RwLock<Cache>>,
    replies: Replies,
    /// The database's WAL file.
    wal: PathBuf,
    checkpointer: Checkpointer,
    /// Told of every batch.
    commits: Option<Arc<dyn CommitObserver>>,
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    closed: bool,
}

impl Writer {
    /// Starts the writer over `conn` (already migrated and loaded into `cache`), for
    /// the database at `path`.
    pub(crate) fn start(
        conn: Connection,
        path: &Path,
        cache: Arc<RwLock<Cache>>,
        durability: Durability,
        commits: Option<Arc<dyn CommitObserver>>,
    ) -> StoreResult<Writer> {
        let sqlite = |e: rusqlite::Error| StoreError::Internal(e.to_string());
        let server = Handle::try_current().ok();
        // `synchronous` is set where the connection is opened.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(sqlite)?;
        conn.pragma_update(None, "journal_size_limit", WAL_FILE_LIMIT)
            .map_err(sqlite)?;
        let checkpointer = Checkpointer::start(path)?;
        let (runtime, own_runtime, replies) = match durability {
            Durability::Normal => match server {
                Some(runtime) => (runtime, None, Replies::Inline),
                None => {
                    let (runtime, own) = OwnRuntime::start()?;
                    (runtime, Some(own), Replies::Inline)
                }
            },
            Durability::Full => {
                let (runtime, own) = OwnRuntime::start()?;
                let replies = server.map_or(Replies::Inline, |server| Replies::start(&server));
                (runtime, Some(own), replies)
            }
        };
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let shared = Arc::new(Shared {
            queue: Mutex::default(),
            wake: Notify::new(),
            conn: Mutex::new(Some(conn)),
            cache,
            replies,
            wal: PathBuf::from(wal),
            checkpointer,
            commits,
        });
        runtime.spawn(Arc::clone(&shared).serve());
        Ok(Writer {
            shared,
            own_runtime,
        })
    }

    /// Wraps a closure as a job and waits for its answer.
    ///
    /// `f` runs inside the batch's transaction (in a savepoint of its own for
    /// [`Scope::Savepoint`]): an `Err` rolls back what it did; an `Ok((value, edit))`
    /// keeps it. Either way the answer comes after the batch commits (`edit` applied to
    /// the cache first); if the commit fails, the answer is the commit's error.
    pub(crate) async fn submit<T, F, E>(&self, scope: Scope, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<(T, E)> + Send + 'static,
        E: FnOnce(&mut Cache) + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<StoreResult<T>>();
        let work: Work = Box::new(move |conn| {
            let Some(conn) = conn else {
                let _ = reply.send(Err(stopped()));
                return None;
            };
            Some(match f(conn) {
                Err(error) => Done {
                    keep: false,
                    finish: Box::new(move |outcome: Result<&mut Cache, StoreError>| {
                        let answer = Err(outcome.err().unwrap_or(error));
                        Box::new(move || drop(reply.send(answer)))
                    }),
                },
                Ok((value, edit)) => Done {
                    keep: true,
                    finish: Box::new(move |outcome: Result<&mut Cache, StoreError>| {
                        let answer = outcome.map(|cache| {
                            edit(cache);
                            value
                        });
                        Box::new(move || drop(reply.send(answer)))
                    }),
                },
            })
        });
        let first = {
            let mut queue = lock(&self.shared.queue);
            if queue.closed {
                return Err(stopped());
            }
            queue.jobs.push(Job { scope, work });
            queue.jobs.len() == 1
        };
        if first {
            self.shared.wake.notify_one();
        }
        answer.await.map_err(|_| stopped())?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let waiting = {
            let mut queue = lock(&self.shared.queue);
            queue.closed = true;
            std::mem::take(&mut queue.jobs)
        };
        self.shared.wake.notify_one();
        {
            // Waits for a batch in progress on another thread.
            let mut conn = lock(&self.shared.conn);
            if !waiting.is_empty() {
                self.shared.commit(conn.as_ref(), waiting);
            }
            conn.take();
        }
        drop(self.own_runtime.take());
    }
}

impl Shared {
    /// The writer task: takes every job waiting, commits them as one batch, and goes
    /// again once the requests it answered have had their turn.
    async fn serve(self: Arc<Shared>) {
        loop {
            let batch = {
                let mut queue = lock(&self.queue);
                if queue.closed {
                    return;
                }
                let n = queue.jobs.len().min(MAX_BATCH);
                queue.jobs.drain(..n).collect::<Vec<_>>()
            };
            if batch.is_empty() {
                self.wake.notified().await;
                continue;
            }
            {
                let conn = lock(&self.conn);
                self.commit(conn.as_ref(), batch);
            }
            match self.checkpointer.state.load(Ordering::Acquire) {
                MOVED => {
                    self.checkpoint().await;
                    self.checkpointer.state.store(IDLE, Ordering::Release);
                }
                IDLE if self.wal_len() >= CHECKPOINT_BYTES => self.checkpointer.request(),
                MOVING if self.wal_len() >= WAL_CEILING_BYTES => {
                    // Back-pressure: no batch until the checkpointer is done.
                    while self.checkpointer.state.load(Ordering::Acquire) == MOVING {
                        self.checkpointer.done.notified().await;
                    }
                }
                _ => {}
            }
            // The next batch is the larger for letting the requests just answered (and
            // those arriving) run first.
            tokio::task::yield_now().await;
        }
    }

    /// The WAL file's length (0 when there is none).
    fn wal_len(&self) -> u64 {
        std::fs::metadata(&self.wal).map_or(0, |m| m.len())
    }

    /// Moves what is left of the WAL into the database (SQLite syncs the WAL before and
    /// the database after), on a blocking thread: the writer waits for it, the runtime
    /// does not. With no commit beside it, it moves everything, so the next commit starts
    /// the WAL afresh; once the checkpointer has moved the bulk, that is a few commits.
    async fn checkpoint(self: &Arc<Shared>) {
        let shared = Arc::clone(self);
        let done = tokio::task::spawn_blocking(move || {
            let conn = lock(&shared.conn);
            let Some(conn) = conn.as_ref() else {
                return;
            };
            if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                row.get::<_, i64>(0)
            }) {
                tracing::warn!(%error, "checkpoint failed; it is retried");
            }
        });
        let _ = done.await;
    }

    /// Runs one batch in one transaction, applies it to the cache and answers it.
    fn commit(&self, conn: Option<&Connection>, batch: Vec<Job>) {
        let Some(conn) = conn else {
            // Each job answers the failure itself when handed no connection.
            for job in batch {
                let _ = (job.work)(None);
            }
            return;
        };
        let (writes, started) = (batch.len(), std::time::Instant::now());
        let (finishes, committed) = run_batch(conn, batch);
        if let Some(commits) = &self.commits {
            commits.committed(writes, started.elapsed());
        }
        if finishes.is_empty() {
            return;
        }
        let answers: Vec<Deliver> = {
            let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
            finishes
                .into_iter()
                .map(|finish| {
                    finish(match &committed {
                        Ok(()) => Ok(&mut cache),
                        Err(error) => Err(StoreError::Internal(error.clone())),
                    })
                })
                .collect()
        };
        // Answered once the cache shows the batch (its lock is let go by now).
        self.replies.send(answers);
    }
}

/// Runs a statement without parameters, prepared once per connection (the writer runs
/// these few for every batch and job).
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// Runs the jobs in one transaction: what to finish each with, and whether the batch
/// committed.
fn run_batch(conn: &Connection, batch: Vec<Job>) -> (Vec<Finish>, Result<(), String>) {
    if let Err(error) = exec(conn, "BEGIN IMMEDIATE") {
        tracing::error!(%error, "cannot begin a write transaction");
        for job in batch {
            let _ = (job.work)(None);
        }
        return (Vec::new(), Ok(()));
    }
    let mut finishes = Vec::with_capacity(batch.len());
    let mut aborted = None;
    for Job { scope, work } in batch {
        if aborted.is_some() {
            let _ = work(None);
            continue;
        }
        let savepoint = scope == Scope::Savepoint;
        if savepoint && let Err(error) = exec(conn, "SAVEPOINT job") {
            tracing::error!(%error, "cannot open a savepoint");
            let _ = work(None);
            continue;
        }
        let Some(done) = work(Some(conn)) else {
            continue;
        };
        let closed = match (savepoint, done.keep) {
            (false, _) => Ok(()),
            (true, true) => exec(conn, "RELEASE job"),
            (true, false) => conn.execute_batch("ROLLBACK TO job; RELEASE job"),
        };
        finishes.push(done.finish);
        // SQLite rolls the whole transaction back on some failures (disk full, I/O
        // error); then nothing of this batch may be committed job by job.
        match closed {
            Err(error) => aborted = Some(error.to_string()),
            Ok(()) if conn.is_autocommit() => {
                aborted = Some("SQLite rolled the transaction back".to_owned());
            }
            Ok(()) => {}
        }
    }
    if let Some(error) = aborted {
        tracing::error!(%error, "the write transaction was aborted; the batch is lost");
        let _ = conn.execute_batch("ROLLBACK");
        return (finishes, Err(format!("transaction aborted: {error}")));
    }
    match exec(conn, "COMMIT") {
        Ok(()) => (finishes, Ok(())),
        Err(error) => {
            tracing::error!(%error, "commit failed; the batch is lost");
            let _ = conn.execute_batch("ROLLBACK");
            (finishes, Err(format!("commit failed: {error}")))
        }
    }
}

/// The thread that moves the WAL into the database beside the writer, on a connection
/// of its own. It stops when the writer is dropped.
struct Checkpointer {
    /// [`IDLE`], [`MOVING`] or [`MOVED`]: only the writer moves it out of `MOVED`.
    state: Arc<AtomicU8>,
    /// Told each time the checkpointer leaves [`MOVING`].
    done: Arc<Notify>,
    start: std::sync::mpsc::SyncSender<()>,
}

impl Checkpointer {
    fn start(path: &Path) -> StoreResult<Checkpointer> {
        let conn = Connection::open(path)
            .map_err(|e| StoreError::Internal(format!("cannot open the checkpointer: {e}")))?;
        let state = Arc::new(AtomicU8::new(IDLE));
        let (start, requests) = std::sync::mpsc::sync_channel::<()>(1);
        let shared = Arc::clone(&state);
        let done = Arc::new(Notify::new());
        let told = Arc::clone(&done);
        std::thread::Builder::new()
            .name("kefu-sqlite-checkpoint".to_owned())
            .spawn(move || {
                let _ = conn.pragma_update(None, "journal_size_limit", WAL_FILE_LIMIT);
                while requests.recv().is_ok() {
                    let moved = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                        row.get::<_, i64>(0)
                    });
                    let next = match moved {
                        Ok(_) => MOVED,
                        Err(error) => {
                            tracing::warn!(%error, "checkpoint failed; it is retried");
                            IDLE
                        }
                    };
                    shared.store(next, Ordering::Release);
                    told.notify_one();
                }
            })
            .map_err(|e| StoreError::Internal(format!("cannot start the checkpointer: {e}")))?;
        Ok(Checkpointer { state, done, start })
    }

    /// Has the checkpointer move the WAL (it is idle).
    fn request(&self) {
        self.state.store(MOVING, Ordering::Release);
        if self.start.try_send(()).is_err() {
            self.state.store(IDLE, Ordering::Release);
        }
    }
}

/// How a batch's answers reach the requests waiting for them.
enum Replies {
    /// Delivered by the writer task itself (it runs on the server's runtime, or there
    /// is no other).
    Inline,
    /// Delivered by a task on the server's runtime, a batch at a time.
    Task(mpsc::UnboundedSender<Vec<Deliver>>),
}

impl Replies {
    fn start(runtime: &Handle) -> Replies {
        let (sender, mut batches) = mpsc::unbounded_channel::<Vec<Deliver>>();
        runtime.spawn(async move {
            while let Some(batch) = batches.recv().await {
                for deliver in batch {
                    deliver();
                }
            }
        });
        Replies::Task(sender)
    }

    fn send(&self, answers: Vec<Deliver>) {
        let answers = match self {
            Replies::Task(sender) => match sender.send(answers) {
                Ok(()) => return,
                // The server's runtime is gone: deliver here.
                Err(mpsc::error::SendError(answers)) => answers,
            },
            Replies::Inline => answers,
        };
        for deliver in answers {
            deliver();
        }
    }
}

/// A runtime on a thread of its own, running the writer task until the store closes.
struct OwnRuntime {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl OwnRuntime {
    fn start() -> StoreResult<(Handle, OwnRuntime)> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| StoreError::Internal(format!("cannot start the writer: {e}")))?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("kefu-sqlite-writer".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let _ = stopped.await;
                });
            })
            .map_err(|e| StoreError::Internal(format!("cannot start the writer: {e}")))?;
        let own = OwnRuntime {
            stop: Some(stop),
            thread: Some(thread),
        };
        Ok((handle, own))
    }
}

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
