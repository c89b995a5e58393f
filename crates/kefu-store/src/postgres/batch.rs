//! Batching for the calls every WeChat request makes: the token check, the quota count,
//! the nickname change and the account list, and for minting tokens (a CI farm's
//! workers all fetch a token at once). Concurrent calls of one kind wait for the
//! database together: one task per kind sends whatever calls are waiting as one
//! statement (`unnest` of arrays), and the calls that arrive while that round trip is
//! in flight make the next one. A request thus costs a fraction of a round trip and of
//! a statement's fixed cost in PostgreSQL, instead of a whole one each, which is what
//! bounds a busy server on this backend.
//!
//! Each batch is one statement, so one transaction: it applies whole or not at all, and
//! a batch of changes commits (durably, with `synchronous_commit` on) before any of its
//! calls is answered. A call reads what was committed before it was made: it waits for a
//! round trip that starts after it arrived.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use deadpool_postgres::Pool;
use tokio::sync::{Notify, oneshot};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::{APP_COLUMNS, KF_COLUMNS, TOKEN_COLUMNS, columns, columns_of, family_key, pg};
use crate::model::{App, CounterKey, Digest, Kf, TokenChannel, TokenRecord};
use crate::{CommitObserver, StoreError, StoreResult, rules};

/// Most calls sent in one statement.
const MAX_BATCH: usize = 512;
/// How often a batch's statement is tried again when PostgreSQL picks it as a deadlock
/// victim.
const DEADLOCK_RETRIES: usize = 3;

/// A token with the app it acts for, as the token check reads it.
pub(super) type TokenAndApp = Option<(TokenRecord, Option<Arc<App>>)>;
/// A call's counters with their limits, as [`crate::CounterStore::consume`] takes them.
type Counters = Vec<(CounterKey, u64)>;
/// What counting a call answers: `Err(i)` when its `i`th counter is at its limit.
type Counted = Result<(), usize>;
/// A token to record: it, its hash, the time, and how long the token it replaces lasts.
pub(super) type Mint = (TokenRecord, Digest, i64, i64);

/// Calls of one kind waiting for their round trip.
struct Batcher<Q, A> {
    queue: Mutex<Queue<Q, A>>,
    wake: Notify,
}

struct Queue<Q, A> {
    calls: Vec<(Q, oneshot::Sender<StoreResult<A>>)>,
    closed: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn closed() -> StoreError {
    StoreError::Internal("the store is closed".to_owned())
}

impl<Q: Send + 'static, A: Send + 'static> Batcher<Q, A> {
    /// Starts the task that sends the batches: `run` answers a batch's calls, in order,
    /// or fails them all; `commits` is told of each batch (for the kinds that write).
    fn start<F, Fut>(
        pool: Pool,
        run: F,
        commits: Option<Arc<dyn CommitObserver>>,
    ) -> Arc<Batcher<Q, A>>
    where
        F: Fn(Pool, Vec<Q>) -> Fut + Send + 'static,
        Fut: Future<Output = StoreResult<Vec<StoreResult<A>>>> + Send + 'static,
    {
        let batcher = Arc::new(Batcher {
            queue: Mutex::new(Queue {
                calls: Vec::new(),
                closed: false,
            }),
            wake: Notify::new(),
        });
        tokio::spawn(serve(Arc::downgrade(&batcher), pool, run, commits));
        batcher
    }

    /// Queues a call and waits for its answer.
    async fn call(&self, query: Q) -> StoreResult<A> {
        let (reply, answer) = oneshot::channel();
        let first = {
            let mut queue = lock(&self.queue);
            if queue.closed {
                return Err(closed());
            }
            queue.calls.push((query, reply));
            queue.calls.len() == 1
        };
        if first {
            self.wake.notify_one();
        }
        answer.await.map_err(|_| closed())?
    }

    fn close(&self) {
        let waiting = {
            let mut queue = lock(&self.queue);
            queue.closed = true;
            std::mem::take(&mut queue.calls)
        };
        for (_, reply) in waiting {
            let _ = reply.send(Err(closed()));
        }
        self.wake.notify_one();
    }
}

/// The task of one kind of call: one round trip at a time, with every call waiting.
async fn serve<Q, A, F, Fut>(
    batcher: Weak<Batcher<Q, A>>,
    pool: Pool,
    run: F,
    commits: Option<Arc<dyn CommitObserver>>,
) where
    F: Fn(Pool, Vec<Q>) -> Fut,
    Fut: Future<Output = StoreResult<Vec<StoreResult<A>>>>,
{
    loop {
        let (queries, replies): (Vec<Q>, Vec<_>) = {
            let Some(batcher) = batcher.upgrade() else {
                return;
            };
            let taken = {
                let mut queue = lock(&batcher.queue);
                if queue.closed {
                    return;
                }
                let n = queue.calls.len().min(MAX_BATCH);
                queue.calls.drain(..n).collect::<Vec<_>>()
            };
            if taken.is_empty() {
                batcher.wake.notified().await;
                continue;
            }
            taken.into_iter().unzip()
        };
        let (writes, started) = (queries.len(), std::time::Instant::now());
        let answered = run(pool.clone(), queries).await;
        if let Some(commits) = &commits {
            commits.committed(writes, started.elapsed());
        }
        match answered {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(answer);
                }
            }
            Err(error) => {
                let message = error.to_string();
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Internal(message.clone())));
                }
            }
        }
    }
}

/// The batched calls of one store.
pub(super) struct Batches {
    tokens: Arc<Batcher<Digest, TokenAndApp>>,
    counts: Arc<Batcher<Counters, Counted>>,
    nicknames: Arc<Batcher<(String, String, String), bool>>,
    lists: Arc<Batcher<String, Option<Arc<Vec<Kf>>>>>,
    mints: Arc<Batcher<Mint, ()>>,
}

impl Batches {
    /// Starts one task per kind of call, on the current runtime; `commits` is told of
    /// the batches that write.
    pub(super) fn start(pool: &Pool, commits: Option<Arc<dyn CommitObserver>>) -> Batches {
        Batches {
            tokens: Batcher::start(pool.clone(), tokens, None),
            counts: Batcher::start(pool.clone(), counts, commits.clone()),
            nicknames: Batcher::start(pool.clone(), nicknames, commits.clone()),
            lists: Batcher::start(pool.clone(), lists, None),
            mints: Batcher::start(pool.clone(), mints, commits),
        }
    }

    /// A token with its app.
    pub(super) async fn token_and_app(&self, hash: Digest) -> StoreResult<TokenAndApp> {
        self.tokens.call(hash).await
    }

    /// Counts a call (see [`crate::CounterStore::consume`]).
    pub(super) async fn consume(&self, counters: Counters) -> StoreResult<Counted> {
        self.counts.call(counters).await
    }

    /// Changes a nickname; `false` when the account does not exist.
    pub(super) async fn set_nickname(
        &self,
        appid: String,
        account: String,
        nickname: String,
    ) -> StoreResult<bool> {
        self.nicknames.call((appid, account, nickname)).await
    }

    /// An app's accounts, oldest first; `None` when the app does not exist.
    pub(super) async fn kfs(&self, appid: String) -> StoreResult<Option<Arc<Vec<Kf>>>> {
        self.lists.call(appid).await
    }

    /// Records a token (see [`crate::TokenStore::issue_token`]); `NotFound` when its owner
    /// (or an authorizer token's platform) does not exist.
    pub(super) async fn mint(&self, mint: Mint) -> StoreResult<()> {
        self.mints.call(mint).await
    }
}

impl Drop for Batches {
    fn drop(&mut self) {
        self.tokens.close();
        self.counts.close();
        self.nicknames.close();
        self.lists.close();
        self.mints.close();
    }
}

/// The distinct values among `queries`, and for each query the index of its value.
fn distinct<T: Clone + Eq + std::hash::Hash>(queries: &[T]) -> (Vec<T>, Vec<usize>) {
    let mut index: HashMap<&T, usize> = HashMap::with_capacity(queries.len());
    let mut values = Vec::with_capacity(queries.len());
    let positions = queries
        .iter()
        .map(|query| {
            *index.entry(query).or_insert_with(|| {
                values.push(query.clone());
                values.len() - 1
            })
        })
        .collect();
    (values, positions)
}

/// Runs a batch's statement, again when PostgreSQL picked it as a deadlock victim
/// (another instance's batch locked the same rows in another order): it was rolled
/// back whole, so nothing of it applied.
async fn retried<T, F, Fut>(run: F) -> Result<T, tokio_postgres::Error>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, tokio_postgres::Error>>,
{
    let mut attempt = 0;
    loop {
        match run().await {
            Err(error) if attempt < DEADLOCK_RETRIES && is_victim(&error) => attempt += 1,
            result => return result,
        }
    }
}

/// Whether PostgreSQL rolled the statement back to break a deadlock (or a serialization
/// conflict): trying again may succeed.
fn is_victim(error: &tokio_postgres::Error) -> bool {
    matches!(
        error.code(),
        Some(&SqlState::T_R_DEADLOCK_DETECTED | &SqlState::T_R_SERIALIZATION_FAILURE)
    )
}

async fn client(pool: &Pool) -> StoreResult<deadpool_postgres::Object> {
    pool.get()
        .await
        .map_err(|e| StoreError::Internal(format!("postgres unreachable: {e}")))
}

/// Token checks: each distinct token once, with its app (a platform's token has none).
async fn tokens(pool: Pool, hashes: Vec<Digest>) -> StoreResult<Vec<StoreResult<TokenAndApp>>> {
    let (distinct, positions) = distinct(&hashes);
    let keys: Vec<&[u8]> = distinct.iter().map(|hash| &hash[..]).collect();
    let client = client(&pool).await?;
    let stmt = client
        .prepare_cached(&format!(
            "SELECT u.i, {}, {} FROM unnest($1::bytea[]) WITH ORDINALITY AS u(hash, i) \
             JOIN tokens t ON t.hash = u.hash \
             LEFT JOIN apps a ON a.appid = t.appid AND t.channel <> 'component'",
            columns_of("t", TOKEN_COLUMNS),
            columns_of("a", APP_COLUMNS)
        ))
        .await
        .map_err(pg)?;
    let rows = client.query(&stmt, &[&keys]).await.map_err(pg)?;
    let mut found: Vec<TokenAndApp> = vec![None; distinct.len()];
    for row in &rows {
        let i: i64 = row.try_get(0).map_err(pg)?;
        let Some(record) = columns::token(row, 1).map_err(pg)? else {
            continue;
        };
        let app = match row.try_get::<_, Option<&str>>(7).map_err(pg)? {
            Some(_) => Some(Arc::new(columns::app(row, 7).map_err(pg)?)),
            None => None,
        };
        if let Some(slot) = usize::try_from(i - 1).ok().and_then(|i| found.get_mut(i)) {
            *slot = Some((record, app));
        }
    }
    Ok(positions
        .into_iter()
        .map(|i| Ok(found[i].clone()))
        .collect())
}

/// Quota counts: every call's counters in one PL/pgSQL call, in the calls' order, all
/// or nothing per call (`kefu_consume_batch`).
async fn counts(pool: Pool, calls: Vec<Counters>) -> StoreResult<Vec<StoreResult<Counted>>> {
    // The distinct counters, sorted: every instance locks them in the same order.
    let mut keys: Vec<&CounterKey> = calls.iter().flatten().map(|(key, _)| key).collect();
    keys.sort_unstable();
    keys.dedup();
    let key_index: HashMap<&CounterKey, i32> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| (*key, i32::try_from(i + 1).unwrap_or(i32::MAX)))
        .collect();
    let (mut call_no, mut key_no, mut limits) = (Vec::new(), Vec::new(), Vec::new());
    let mut counted = Vec::new();
    for (i, counters) in calls.iter().enumerate() {
        if counters.is_empty() {
            continue;
        }
        counted.push(i);
        let n = i32::try_from(counted.len()).unwrap_or(i32::MAX);
        for (key, limit) in counters {
            call_no.push(n);
            key_no.push(key_index[key]);
            limits.push(i64::try_from(*limit).unwrap_or(i64::MAX));
        }
    }
    let mut answers: Vec<StoreResult<Counted>> = calls.iter().map(|_| Ok(Ok(()))).collect();
    if counted.is_empty() {
        return Ok(answers);
    }
    let owners: Vec<&str> = keys.iter().map(|k| k.owner.as_str()).collect();
    let names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
    let kinds: Vec<&str> = keys.iter().map(|k| k.window.kind()).collect();
    let wins: Vec<i64> = keys.iter().map(|k| k.window.number()).collect();
    let client = client(&pool).await?;
    let stmt = client
        .prepare_cached("SELECT kefu_consume_batch($1, $2, $3, $4, $5, $6, $7)")
        .await
        .map_err(pg)?;
    let params: [&(dyn ToSql + Sync); 7] =
        [&owners, &names, &kinds, &wins, &call_no, &key_no, &limits];
    let row = retried(|| client.query_one(&stmt, &params))
        .await
        .map_err(pg)?;
    let full: Vec<i32> = row.try_get(0).map_err(pg)?;
    for (call, full) in counted.into_iter().zip(full) {
        answers[call] = Ok(match usize::try_from(full) {
            Ok(0) | Err(_) => Ok(()),
            Ok(position) => Err(position - 1),
        });
    }
    Ok(answers)
}

/// Nickname changes: one `UPDATE` for all, each account once (the last of several
/// changes to one account wins, as if it came last), in a fixed order.
async fn nicknames(
    pool: Pool,
    changes: Vec<(String, String, String)>,
) -> StoreResult<Vec<StoreResult<bool>>> {
    let mut last: HashMap<(&str, &str), &str> = HashMap::with_capacity(changes.len());
    for (appid, account, nickname) in &changes {
        last.insert((appid.as_str(), account.as_str()), nickname.as_str());
    }
    let mut rows: Vec<((&str, &str), &str)> = last.into_iter().collect();
    rows.sort_unstable();
    let appids: Vec<&str> = rows.iter().map(|((appid, _), _)| *appid).collect();
    let accounts: Vec<&str> = rows.iter().map(|((_, account), _)| *account).collect();
    let nicks: Vec<&str> = rows.iter().map(|(_, nickname)| *nickname).collect();
    let client = client(&pool).await?;
    let stmt = client
        .prepare_cached(
            "UPDATE kf_accounts k SET nickname = u.nickname \
             FROM unnest($1::text[], $2::text[], $3::text[]) AS u(appid, kf_account, nickname) \
             WHERE k.appid = u.appid AND k.kf_account = u.kf_account \
             RETURNING k.appid, k.kf_account",
        )
        .await
        .map_err(pg)?;
    let params: [&(dyn ToSql + Sync); 3] = [&appids, &accounts, &nicks];
    let updated = retried(|| client.query(&stmt, &params)).await.map_err(pg)?;
    let mut changed = std::collections::HashSet::with_capacity(updated.len());
    for row in &updated {
        let appid: String = row.try_get(0).map_err(pg)?;
        let account: String = row.try_get(1).map_err(pg)?;
        changed.insert((appid, account));
    }
    Ok(changes
        .iter()
        .map(|(appid, account, _)| Ok(changed.contains(&(appid.clone(), account.clone()))))
        .collect())
}

/// Account lists: each distinct app once, with its accounts, oldest first.
async fn lists(
    pool: Pool,
    appids: Vec<String>,
) -> StoreResult<Vec<StoreResult<Option<Arc<Vec<Kf>>>>>> {
    let (distinct, positions) = distinct(&appids);
    let client = client(&pool).await?;
    let stmt = client
        .prepare_cached(&format!(
            "SELECT u.i, {} FROM unnest($1::text[]) WITH ORDINALITY AS u(appid, i) \
             JOIN apps a ON a.appid = u.appid LEFT JOIN kf_accounts k ON k.appid = a.appid \
             ORDER BY u.i, k.kf_id",
            columns_of("k", KF_COLUMNS)
        ))
        .await
        .map_err(pg)?;
    let rows = client.query(&stmt, &[&distinct]).await.map_err(pg)?;
    let mut found: Vec<Option<Vec<Kf>>> = vec![None; distinct.len()];
    for row in &rows {
        let i: i64 = row.try_get(0).map_err(pg)?;
        let Some(slot) = usize::try_from(i - 1).ok().and_then(|i| found.get_mut(i)) else {
            continue;
        };
        let list = slot.get_or_insert_with(Vec::new);
        // An app without accounts comes as one row of NULLs.
        if row.try_get::<_, Option<i64>>(1).map_err(pg)?.is_some() {
            list.push(columns::kf(row, 1).map_err(pg)?);
        }
    }
    let found: Vec<Option<Arc<Vec<Kf>>>> =
        found.into_iter().map(|list| list.map(Arc::new)).collect();
    Ok(positions
        .into_iter()
        .map(|i| Ok(found[i].clone()))
        .collect())
}

/// Token mints, in one transaction: each family's lock (in one order on every instance),
/// the owners checked and kept until the commit, every family's current token
/// superseded, and the new tokens inserted. Mints of one family in one batch follow
/// each other as if made one by one: each is superseded by the next (after its grace),
/// and the last is current. One family has one current token, whatever the instances
/// do (the lock, and the `tokens_current` index).
async fn mints(pool: Pool, mints: Vec<Mint>) -> StoreResult<Vec<StoreResult<()>>> {
    let mut client = client(&pool).await?;
    let mut attempt = 0;
    let outcome = loop {
        match mint_batch(&mut client, &mints).await {
            Err(error) if attempt < DEADLOCK_RETRIES && is_victim(&error) => attempt += 1,
            outcome => break outcome.map_err(pg)?,
        }
    };
    Ok(outcome
        .into_iter()
        .map(|found| {
            if found {
                Ok(())
            } else {
                Err(StoreError::NotFound)
            }
        })
        .collect())
}

async fn mint_batch(
    client: &mut deadpool_postgres::Object,
    mints: &[Mint],
) -> Result<Vec<bool>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let mut families: Vec<String> = mints.iter().map(|(token, ..)| family_key(token)).collect();
    families.sort_unstable();
    families.dedup();
    let lock = tx
        .prepare_cached(
            "SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0))) \
             FROM (SELECT k FROM unnest($1::text[]) AS k ORDER BY k) AS families",
        )
        .await?;
    tx.query_one(&lock, &[&families]).await?;
    // The owners that exist, share-locked until the commit: a concurrent delete waits,
    // then deletes these tokens too.
    let (mut apps, mut platforms) = (Vec::new(), Vec::new());
    for (token, ..) in mints {
        match token.channel {
            TokenChannel::Component => platforms.push(&*token.appid),
            _ => apps.push(&*token.appid),
        }
        if let Some(platform) = &token.component {
            platforms.push(platform);
        }
    }
    let mut present = std::collections::HashSet::new();
    for (table, ids, sql) in [
        (
            "apps",
            &apps,
            "SELECT appid FROM apps WHERE appid = ANY($1) ORDER BY appid FOR KEY SHARE",
        ),
        (
            "components",
            &platforms,
            "SELECT component_appid FROM components WHERE component_appid = ANY($1) \
             ORDER BY component_appid FOR KEY SHARE",
        ),
    ] {
        if ids.is_empty() {
            continue;
        }
        let stmt = tx.prepare_cached(sql).await?;
        for row in tx.query(&stmt, &[ids]).await? {
            present.insert((table, row.try_get::<_, String>(0)?));
        }
    }
    let found: Vec<bool> = mints
        .iter()
        .map(|(token, ..)| {
            let owner = match token.channel {
                TokenChannel::Component => "components",
                _ => "apps",
            };
            present.contains(&(owner, token.appid.to_string()))
                && token
                    .component
                    .as_ref()
                    .is_none_or(|p| present.contains(&("components", p.to_string())))
        })
        .collect();
    // Per family, in the batch's order: when each token stops being current.
    let mut last: HashMap<String, usize> = HashMap::new();
    let mut superseded_at: Vec<Option<i64>> = vec![None; mints.len()];
    let (mut s_appid, mut s_channel, mut s_component, mut s_at) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, (token, _, now, grace)) in mints.iter().enumerate() {
        if !found[i] {
            continue;
        }
        match last.insert(family_key(token), i) {
            Some(previous) => superseded_at[previous] = Some(rules::superseded_at(*now, *grace)),
            None => {
                s_appid.push(&*token.appid);
                s_channel.push(token.channel.as_str());
                s_component.push(token.component.as_deref());
                s_at.push(rules::superseded_at(*now, *grace));
            }
        }
    }
    if !s_appid.is_empty() {
        let supersede = tx
            .prepare_cached(
                "UPDATE tokens t SET superseded_at = u.at, value = NULL \
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[]) \
                 AS u(appid, channel, component, at) \
                 WHERE t.appid = u.appid AND t.channel = u.channel \
                 AND t.component IS NOT DISTINCT FROM u.component AND t.superseded_at IS NULL",
            )
            .await?;
        tx.execute(&supersede, &[&s_appid, &s_channel, &s_component, &s_at])
            .await?;
        let (mut hashes, mut appids, mut channels, mut components) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut issued, mut expires, mut ends) = (Vec::new(), Vec::new(), Vec::new());
        for (i, (token, hash, ..)) in mints.iter().enumerate() {
            if !found[i] {
                continue;
            }
            hashes.push(&hash[..]);
            appids.push(&*token.appid);
            channels.push(token.channel.as_str());
            components.push(token.component.as_deref());
            issued.push(token.issued_at);
            expires.push(token.expires_at);
            ends.push(superseded_at[i]);
        }
        let insert = tx
            .prepare_cached(
                "INSERT INTO tokens \
                 (hash, appid, channel, component, issued_at, expires_at, superseded_at) \
                 SELECT * FROM unnest($1::bytea[], $2::text[], $3::text[], $4::text[], \
                 $5::int8[], $6::int8[], $7::int8[])",
            )
            .await?;
        tx.execute(
            &insert,
            &[
                &hashes,
                &appids,
                &channels,
                &components,
                &issued,
                &expires,
                &ends,
            ],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(found)
}
