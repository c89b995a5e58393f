//! The single writer: one thread owns the read-write connection and commits whatever
//! requests are waiting as one transaction (group commit), answering each only after
//! the commit is durable.

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::cache::Cache;
use crate::{StoreError, StoreResult};

/// Most jobs folded into one transaction.
const MAX_BATCH: usize = 512;

/// What to do once the batch's fate is known: apply the cache edit and answer `Ok`,
/// or answer the commit's error.
pub(crate) type Finish = Box<dyn for<'a> FnOnce(Result<&'a mut Cache, StoreError>) + Send>;
/// A job: runs inside the batch transaction (or gets `None` when the store is gone)
/// and answers at once (rejected: nothing it did is kept) or hands back a [`Finish`].
pub(crate) type Work = Box<dyn FnOnce(Option<&Connection>) -> Option<Finish> + Send>;

fn stopped() -> StoreError {
    StoreError::Internal("the store writer has stopped".to_owned())
}

/// Wraps a closure as a job and waits for its answer.
///
/// `f` runs inside a savepoint: an `Err` rolls back what it did and is answered at once;
/// an `Ok((value, edit))` is answered with `value` after the batch commits and `edit`
/// was applied to the cache.
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
        match f(conn) {
            Err(error) => {
                let _ = reply.send(Err(error));
                None
            }
            Ok((value, edit)) => Some(Box::new(move |outcome: Result<&mut Cache, StoreError>| {
                let _ = reply.send(outcome.map(|cache| {
                    edit(cache);
                    value
                }));
            })),
        }
    });
    jobs.send(work).map_err(|_| stopped())?;
    answer.await.map_err(|_| stopped())?
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
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(error) = conn.execute_batch("BEGIN IMMEDIATE") {
            tracing::error!(%error, "cannot begin a write transaction");
            // Each job answers the failure itself when handed no connection.
            for job in batch.drain(..) {
                let _ = job(None);
            }
            continue;
        }
        for job in batch.drain(..) {
            if let Err(error) = conn.execute_batch("SAVEPOINT job") {
                tracing::error!(%error, "cannot open a savepoint");
                let _ = job(None);
                continue;
            }
            match job(Some(conn)) {
                Some(finish) => {
                    let _ = conn.execute_batch("RELEASE job");
                    finishes.push(finish);
                }
                None => {
                    let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
                }
            }
        }
        match conn.execute_batch("COMMIT") {
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
