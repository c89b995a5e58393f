//! The single writer: one thread owns the read-write connection and commits whatever
//! requests are waiting as one transaction (group commit), answering each only after
//! the commit is durable.

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::cache::Cache;
use crate::{StoreError, StoreResult};

/// Most jobs folded into one transaction.
const MAX_BATCH: usize = 512;

/// What to do once the batch's fate is known: apply the cache edit and answer,
/// or answer the commit's error. Every answer waits for the commit, rejections too: a
/// rejection may rest on an earlier job of the same batch.
pub(crate) type Finish = Box<dyn for<'a> FnOnce(Result<&'a mut Cache, StoreError>) + Send>;
/// A job: runs inside the batch transaction (or gets `None` when none could be opened,
/// and answers the failure itself). `keep` says whether what it wrote stays (`false`
/// rolls it back to its savepoint).
pub(crate) type Work = Box<dyn FnOnce(Option<&Connection>) -> Option<Done> + Send>;

/// A job's result inside the batch.
pub(crate) struct Done {
    keep: bool,
    finish: Finish,
}

fn stopped() -> StoreError {
    StoreError::Internal("the store writer has stopped".to_owned())
}

/// Wraps a closure as a job and waits for its answer.
///
/// `f` runs inside a savepoint: an `Err` rolls back what it did; an `Ok((value, edit))`
/// keeps it. Either way the answer comes after the batch commits (`edit` applied to
/// the cache first); if the commit fails, the answer is the commit's error.
pub(crate) async fn submit<T, F, E>(jobs: &mpsc::UnboundedSender<Work>, f: F) -> StoreResult<T>
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
                    let _ = reply.send(Err(outcome.err().unwrap_or(error)));
                }),
            },
            Ok((value, edit)) => Done {
                keep: true,
                finish: Box::new(move |outcome: Result<&mut Cache, StoreError>| {
                    let _ = reply.send(outcome.map(|cache| {
                        edit(cache);
                        value
                    }));
                }),
            },
        })
    });
    jobs.send(work).map_err(|_| stopped())?;
    answer.await.map_err(|_| stopped())?
}

/// Runs a statement without parameters, prepared once per connection (the writer runs
/// these few for every batch and job).
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// The writer thread's loop; returns when every sender is gone.
pub(crate) fn run(
    conn: &Connection,
    mut jobs: mpsc::UnboundedReceiver<Work>,
    cache: &std::sync::RwLock<Cache>,
) {
    let mut batch: Vec<Work> = Vec::with_capacity(MAX_BATCH);
    let mut finishes: Vec<Finish> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        // Let the requests already on their way join this transaction: one commit for
        // them all costs less than one each.
        std::thread::yield_now();
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(error) = exec(conn, "BEGIN IMMEDIATE") {
            tracing::error!(%error, "cannot begin a write transaction");
            // Each job answers the failure itself when handed no connection.
            for job in batch.drain(..) {
                let _ = job(None);
            }
            continue;
        }
        let mut aborted = None;
        for job in batch.drain(..) {
            if aborted.is_some() {
                let _ = job(None);
                continue;
            }
            if let Err(error) = exec(conn, "SAVEPOINT job") {
                tracing::error!(%error, "cannot open a savepoint");
                let _ = job(None);
                continue;
            }
            let Some(done) = job(Some(conn)) else {
                continue;
            };
            let closed = if done.keep {
                exec(conn, "RELEASE job")
            } else {
                conn.execute_batch("ROLLBACK TO job; RELEASE job")
            };
            finishes.push(done.finish);
            // SQLite rolls the whole transaction back on some failures (disk full, I/O
            // error); then nothing of this batch may be committed job by job.
            match closed {
                Err(error) => aborted = Some(error.to_string()),
                Ok(()) if conn.is_autocommit() => {
                    aborted = Some("SQLite rolled the transaction back".to_owned())
                }
                Ok(()) => {}
            }
        }
        if let Some(error) = aborted {
            tracing::error!(%error, "the write transaction was aborted; the batch is lost");
            let _ = conn.execute_batch("ROLLBACK");
            for finish in finishes.drain(..) {
                finish(Err(StoreError::Internal(format!(
                    "transaction aborted: {error}"
                ))));
            }
            continue;
        }
        match exec(conn, "COMMIT") {
            Ok(()) => {
                let mut cache = cache
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                for finish in finishes.drain(..) {
                    finish(Ok(&mut cache));
                }
            }
            Err(error) => {
                tracing::error!(%error, "commit failed; the batch is lost");
                let _ = conn.execute_batch("ROLLBACK");
                for finish in finishes.drain(..) {
                    finish(Err(StoreError::Internal(format!("commit failed: {error}"))));
                }
            }
        }
    }
}
