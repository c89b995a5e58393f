//! The PostgreSQL store, for several kefu instances serving as one WeChat.
//!
//! Nothing that decides an answer is cached: every token check, list and rule reads
//! the database, so what one instance changes, every other sees on its next request
//! (a token invalidated through one instance is refused by all from the commit on).
//! Invariants are the database's: a unique index keeps one current token per family,
//! row locks (`SELECT … FOR UPDATE` on the app) serialize the account rules, advisory
//! locks serialize token minting per family and bindings per WeChat user, and
//! [`Store::consume`] is counted by a PL/pgSQL function, all or nothing per call. The
//! calls every request makes are batched with their concurrent twins (`batch`).
//!
//! Acknowledged changes commit with the server's `synchronous_commit` (on by default:
//! durable before the answer). Counters and the request log commit without waiting
//! for the disk: like the embedded store, a crash may lose their last second.

mod batch;
mod schema;

use std::borrow::Cow;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use deadpool_postgres::GenericClient;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use kefu_api::ErrCode;
use kefu_api::admin::{AccountType, AppPatch, InvitationAction};
use kefu_api::endpoints::kf_add::FIRST_KF_ID;
use kefu_api::endpoints::kf_del::Target;
use kefu_api::{KfAccount, Nickname, WechatId};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::{NoTls, Row};

use crate::logbuf::{self, LogBuffer};
use crate::model::{
    App, AppSnapshot, AppSummary, Authorization, CallCount, Component, CounterKey, CurrentToken,
    Digest, Invitation, InviteState, Kf, KfSnapshot, LogLimits, LogUsage, LoggedRequest, NewKf,
    RecordedCall, Snapshot, TokenChannel, TokenRecord,
};
use crate::rules;
use crate::{Store, StoreError, StoreResult};

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// A `postgres://` URL; `?options=-c%20search_path%3Dname` puts kefu's tables in
    /// their own schema.
    pub url: String,
    /// Connections kept open (each instance's share of `max_connections`).
    pub pool_size: usize,
    /// How long a request waits for a connection, or for one to be made, before it
    /// fails with `-1 system error`.
    pub timeout: Duration,
    /// How much the request log may hold (the bounds on the store are shared by the
    /// instances; each keeps its own memory within its bound).
    pub log: LogLimits,
}

impl PostgresOptions {
    /// Options for a URL with the default pool (8 connections, 5 s timeout).
    pub fn new(url: impl Into<String>) -> PostgresOptions {
        PostgresOptions {
            url: url.into(),
            pool_size: 8,
            timeout: Duration::from_secs(5),
            log: LogLimits::default(),
        }
    }
}

/// The PostgreSQL store: a connection pool, the batched calls of busy requests and the
/// request log's in-memory part.
pub struct PostgresStore {
    pool: Pool,
    batches: batch::Batches,
    log: LogBuffer,
    vacuum: Arc<Vacuum>,
    /// When this instance last purged expired tokens and tickets.
    purge: rules::PurgeClock,
}

/// What the request log has deleted since its table was last vacuumed, and whether a
/// vacuum is running. PostgreSQL keeps a deleted row's space until a vacuum frees it,
/// and autovacuum looks at a table at most once a minute: a flood of failing calls
/// trims thousands of rows a second, and the table would grow far past the log's bound
/// on disk between its visits.
#[derive(Default)]
struct Vacuum {
    deleted: Mutex<(u64, u64)>,
    running: AtomicBool,
}

fn pg(error: tokio_postgres::Error) -> StoreError {
    // A key PostgreSQL's text cannot hold (U+0000, from a client) names nothing: the
    // lookups check for it first (`storable`), and this catches any other.
    if error.code() == Some(&SqlState::CHARACTER_NOT_IN_REPERTOIRE) {
        return StoreError::NotFound;
    }
    // The server's own words (and SQLSTATE) say far more than "db error".
    let detail = match error.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => error.to_string(),
    };
    StoreError::Internal(format!("postgres: {detail}"))
}

fn is_unique_violation(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// A clash while loading or creating rows is the caller's conflict, anything else the
/// database's failure.
fn conflict_or(error: tokio_postgres::Error, conflict: impl FnOnce() -> String) -> StoreError {
    if is_unique_violation(&error) || error.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) {
        StoreError::Conflict(conflict())
    } else {
        pg(error)
    }
}

fn digest(bytes: &[u8]) -> Digest {
    let mut digest = [0_u8; 32];
    let n = bytes.len().min(32);
    digest[..n].copy_from_slice(&bytes[..n]);
    digest
}

fn count_of(n: i64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

impl PostgresStore {
    /// Connects, applies migrations (one instance at a time) and answers the store.
    pub async fn open(options: &PostgresOptions) -> StoreResult<PostgresStore> {
        let mut config = tokio_postgres::Config::from_str(&options.url)
            .map_err(|e| StoreError::Internal(format!("invalid PostgreSQL URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("kefu");
        }
        config.keepalives_idle(Duration::from_secs(30));
        // kefu's statements take arrays of a batch's calls: PostgreSQL's default would
        // plan them afresh at every execution (an `unnest` of a parameter looks cheaper
        // planned for its value), which costs more than running them. Their generic
        // plans (index lookups per element) are right for every batch size.
        let session = match config.get_options() {
            Some(options) => format!("{options} -c plan_cache_mode=force_generic_plan"),
            None => "-c plan_cache_mode=force_generic_plan".to_owned(),
        };
        config.options(&session);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.timeout))
            .create_timeout(Some(options.timeout))
            .recycle_timeout(Some(options.timeout))
            .build()
            .map_err(|e| StoreError::Internal(format!("cannot build the pool: {e}")))?;
        let store = PostgresStore {
            batches: batch::Batches::start(&pool),
            pool,
            log: LogBuffer::new(options.log),
            vacuum: Arc::default(),
            purge: rules::PurgeClock::default(),
        };
        let mut client = store.client().await?;
        schema::migrate(&mut client).await.map_err(pg)?;
        Ok(store)
    }

    async fn client(&self) -> StoreResult<Object> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Internal(format!("postgres unreachable: {e}")))
    }

    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Vec<Row>> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(pg)?;
        client.query(&stmt, params).await.map_err(pg)
    }

    async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Option<Row>> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(pg)?;
        client.query_opt(&stmt, params).await.map_err(pg)
    }

    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<u64> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(pg)?;
        client.execute(&stmt, params).await.map_err(pg)
    }

    /// Records a stable token with its value, provided the family's current token is
    /// still `replaces`; that one is superseded at `now + grace_secs`. One family at a
    /// time, across instances. (Other tokens are minted in batches: `batch::mints`.)
    async fn insert_stable_token(
        &self,
        token: TokenRecord,
        hash: Digest,
        value: String,
        now: i64,
        grace_secs: i64,
        replaces: Option<Digest>,
    ) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let channel = token.channel.as_str();
        let component = token.component.as_deref();
        lock(&tx, &family_key(&token)).await?;
        // The owner (and an authorizer token's platform) must exist, and stays until the
        // commit: a concurrent delete waits, then deletes this token too.
        let owner_sql = match token.channel {
            TokenChannel::Component => {
                "SELECT 1 FROM components WHERE component_appid = $1 FOR KEY SHARE"
            }
            _ => "SELECT 1 FROM apps WHERE appid = $1 FOR KEY SHARE",
        };
        if tx
            .query_opt(owner_sql, &[&&*token.appid])
            .await
            .map_err(pg)?
            .is_none()
        {
            return Err(StoreError::NotFound);
        }
        if let Some(platform) = component
            && tx
                .query_opt(
                    "SELECT 1 FROM components WHERE component_appid = $1 FOR KEY SHARE",
                    &[&platform],
                )
                .await
                .map_err(pg)?
                .is_none()
        {
            return Err(StoreError::NotFound);
        }
        let current = tx
            .query_opt(
                "SELECT hash FROM tokens WHERE appid = $1 AND channel = $2 \
                 AND component IS NOT DISTINCT FROM $3 AND superseded_at IS NULL",
                &[&&*token.appid, &channel, &component],
            )
            .await
            .map_err(pg)?
            .map(|row| row.try_get::<_, Vec<u8>>(0).map(|h| digest(&h)))
            .transpose()
            .map_err(pg)?;
        rules::may_replace(current, replaces)?;
        let superseded_at = rules::superseded_at(now, grace_secs);
        tx.execute(
            "UPDATE tokens SET superseded_at = $4, value = NULL WHERE appid = $1 AND channel = $2 \
             AND component IS NOT DISTINCT FROM $3 AND superseded_at IS NULL",
            &[&&*token.appid, &channel, &component, &superseded_at],
        )
        .await
        .map_err(pg)?;
        tx.execute(
            "INSERT INTO tokens (hash, appid, channel, component, issued_at, expires_at, value) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &&hash[..],
                &&*token.appid,
                &channel,
                &component,
                &token.issued_at,
                &token.expires_at,
                &value,
            ],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)
    }

    /// Deletes an app or platform by `sql` (its own rows cascade) with what it leaves
    /// outside them; `NotFound` when there is none.
    async fn delete_owner(&self, sql: &str, owner: &str) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        if tx.execute(sql, &[&owner]).await.map_err(pg)? == 0 {
            return Err(StoreError::NotFound);
        }
        forget_owner(&tx, owner).await?;
        tx.commit().await.map_err(pg)?;
        self.log.forget(owner);
        Ok(())
    }

    /// One housekeeping round (`Store::maintain`), with the purge due in it.
    async fn housekeep(
        &self,
        now: i64,
        log_before: i64,
        purge: Option<rules::Purge>,
    ) -> StoreResult<()> {
        let flush = self.log.flush(log_before);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        // Diagnostics and housekeeping: no need to wait for the disk.
        tx.batch_execute("SET LOCAL synchronous_commit TO OFF")
            .await
            .map_err(pg)?;
        // Counters first: deleting an app locks its counters before the request log's
        // usage row, and so does this, so neither waits for the other in a circle.
        let [minute, day, month] = rules::oldest_counter_windows(now);
        tx.execute(
            "DELETE FROM counters WHERE (kind = 'minute' AND win < $1) \
             OR (kind = 'day' AND win < $2) OR (kind = 'month' AND win < $3)",
            &[&minute.number(), &day.number(), &month.number()],
        )
        .await
        .map_err(pg)?;
        // A few hundred calls a statement: what the client encodes at once stays small
        // (a second's calls may be thousands of kilobytes-long bodies).
        for entries in flush.entries.chunks(LOG_ROWS_PER_STATEMENT) {
            let column = |f: fn(&LoggedRequest) -> &str| -> Vec<Cow<'_, str>> {
                entries.iter().map(|e| as_text(f(e))).collect()
            };
            let numbers =
                |f: fn(&LoggedRequest) -> i64| -> Vec<i64> { entries.iter().map(f).collect() };
            let appids: Vec<Option<&str>> = entries.iter().map(|e| e.appid.as_deref()).collect();
            tx.execute(
                &format!(
                    "INSERT INTO request_log ({LOG_COLUMNS}, bytes) SELECT * FROM unnest($1::text[], \
                     $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::int8[], \
                     $8::text[], $9::text[], $10::text[], $11::text[], $12::int8[]) ON CONFLICT (rid) DO NOTHING"
                ),
                &[
                    &column(|e| &e.rid),
                    &appids,
                    &column(|e| &e.method),
                    &column(|e| &e.path),
                    &numbers(|e| e.errcode),
                    &numbers(|e| e.invoke_time),
                    &numbers(|e| e.cost_ms),
                    &column(|e| &e.request_url),
                    &column(|e| &e.request_body),
                    &column(|e| &e.response_body),
                    &column(|e| &e.client_ip),
                    &numbers(|e| i64::try_from(e.row_bytes()).unwrap_or(i64::MAX)),
                ],
            )
            .await
            .map_err(pg)?;
        }
        if !flush.counts.is_empty() {
            let owners: Vec<&str> = flush
                .counts
                .iter()
                .map(|c| c.appid.as_deref().unwrap_or(""))
                .collect();
            let paths: Vec<&str> = flush.counts.iter().map(|c| c.path.as_str()).collect();
            let codes: Vec<i64> = flush.counts.iter().map(|c| c.errcode).collect();
            let hours: Vec<i64> = flush.counts.iter().map(|c| c.hour).collect();
            let counts: Vec<i64> = flush
                .counts
                .iter()
                .map(|c| i64::try_from(c.count).unwrap_or(i64::MAX))
                .collect();
            tx.execute(
                "INSERT INTO call_counts (owner, path, errcode, hour, count) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[]) \
                 ON CONFLICT (owner, path, errcode, hour) DO UPDATE SET count = call_counts.count + excluded.count",
                &[&owners, &paths, &codes, &hours, &counts],
            )
            .await
            .map_err(pg)?;
        }
        let expired = tx
            .query_one(
                "WITH gone AS (DELETE FROM request_log WHERE invoke_time < $1 RETURNING bytes) \
                 SELECT count(*), coalesce(sum(bytes), 0)::int8 FROM gone",
                &[&log_before],
            )
            .await
            .map_err(pg)?;
        tx.execute(
            "DELETE FROM call_counts WHERE hour < $1",
            &[&logbuf::hour_of(log_before)],
        )
        .await
        .map_err(pg)?;
        let trimmed = trim_log(&tx, &self.log.limits()).await?;
        if let Some(purge) = purge {
            tx.execute(
                "DELETE FROM component_tickets WHERE expires_at < $1",
                &[&purge.tickets],
            )
            .await
            .map_err(pg)?;
            tx.execute("DELETE FROM tokens WHERE expires_at < $1", &[&purge.tokens])
                .await
                .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        self.log.written(&flush);
        let expired = (
            u64::try_from(expired.try_get::<_, i64>(0).map_err(pg)?).unwrap_or(0),
            u64::try_from(expired.try_get::<_, i64>(1).map_err(pg)?).unwrap_or(0),
        );
        self.vacuum_log_after(
            trimmed.0 + expired.0,
            trimmed.1 + expired.1,
            &self.log.limits(),
        );
        Ok(())
    }

    /// Counts calls deleted from the request log, and once they add up to a good part
    /// of its bounds (`rules::log_needs_vacuum`), vacuums its table in the background,
    /// so that the space they held is used again rather than the table growing. One
    /// vacuum at a time per instance; one that finds another instance's (or
    /// autovacuum's) at work skips its turn.
    fn vacuum_log_after(&self, rows: u64, bytes: u64, limits: &LogLimits) {
        let due = {
            let mut deleted = self
                .vacuum
                .deleted
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            deleted.0 += rows;
            deleted.1 += bytes;
            let due = rules::log_needs_vacuum(deleted.0, deleted.1, limits)
                && !self.vacuum.running.swap(true, Ordering::AcqRel);
            if due {
                *deleted = (0, 0);
            }
            due
        };
        if !due {
            return;
        }
        let pool = self.pool.clone();
        let vacuum = Arc::clone(&self.vacuum);
        tokio::spawn(async move {
            if let Ok(client) = pool.get().await {
                // A failed vacuum costs only space, which the next one frees.
                let _ = client
                    .batch_execute("VACUUM (SKIP_LOCKED) request_log")
                    .await;
            }
            vacuum.running.store(false, Ordering::Release);
        });
    }

    async fn select_kf(
        client: &impl GenericClient,
        appid: &str,
        account: &str,
        for_update: bool,
    ) -> StoreResult<Option<Kf>> {
        let sql = format!(
            "SELECT {KF_COLUMNS} FROM kf_accounts WHERE appid = $1 AND kf_account = $2{}",
            if for_update { " FOR UPDATE" } else { "" }
        );
        client
            .query_opt(&sql, &[&appid, &account])
            .await
            .map_err(pg)?
            .map(|row| kf_from_row(&row, 0))
            .transpose()
            .map_err(pg)
    }
}

/// Deletes the oldest recorded calls until the log is within its bounds on disk,
/// counting what went, and answers how many calls and bytes it deleted. The usage row
/// is locked first, so that instances trimming at once take turns.
async fn trim_log(client: &impl GenericClient, limits: &LogLimits) -> StoreResult<(u64, u64)> {
    let mut deleted = (0, 0);
    loop {
        let row = client
            .query_one(
                "SELECT rows, bytes FROM log_usage WHERE id = 1 FOR UPDATE",
                &[],
            )
            .await
            .map_err(pg)?;
        let count = |i: usize| -> StoreResult<u64> {
            Ok(u64::try_from(row.try_get::<_, i64>(i).map_err(pg)?).unwrap_or(0))
        };
        let n = rules::calls_to_trim(count(0)?, count(1)?, limits);
        if n == 0 {
            return Ok(deleted);
        }
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let gone = client
            .query_one(
                "WITH gone AS (DELETE FROM request_log WHERE seq IN \
                 (SELECT seq FROM request_log ORDER BY seq LIMIT $1) RETURNING bytes) \
                 SELECT count(*), coalesce(sum(bytes), 0)::int8 FROM gone",
                &[&n],
            )
            .await
            .map_err(pg)?;
        let rows: i64 = gone.try_get(0).map_err(pg)?;
        let bytes: i64 = gone.try_get(1).map_err(pg)?;
        deleted.0 += u64::try_from(rows).unwrap_or(0);
        deleted.1 += u64::try_from(bytes).unwrap_or(0);
        client
            .execute(
                "UPDATE log_usage SET dropped = dropped + $1 WHERE id = 1",
                &[&rows],
            )
            .await
            .map_err(pg)?;
        if rows == 0 {
            return Ok(deleted);
        }
    }
}

/// Whether PostgreSQL can hold `text` at all: its text type has no U+0000, so a key
/// with one (from a client's query or body) names nothing, rather than failing the
/// statement.
fn storable(text: &str) -> bool {
    !text.contains('\0')
}

/// Most recorded calls written by one statement.
const LOG_ROWS_PER_STATEMENT: usize = 256;

/// `text` as PostgreSQL can hold it: a U+0000 (which a client's body may carry) becomes
/// U+FFFD, so that one odd call cannot keep the request log from being written.
fn as_text(text: &str) -> Cow<'_, str> {
    if storable(text) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.replace('\0', "\u{fffd}"))
    }
}

/// The advisory lock key of a token's family: mints of one family take turns, across
/// instances.
fn family_key(token: &TokenRecord) -> String {
    format!(
        "token:{}:{}:{}",
        token.appid,
        token.channel.as_str(),
        token.component.as_deref().unwrap_or("")
    )
}

/// Takes a transaction-scoped advisory lock on `key`.
async fn lock(client: &impl GenericClient, key: &str) -> StoreResult<()> {
    client
        .execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&key],
        )
        .await
        .map_err(pg)
        .map(drop)
}

/// How many accounts `wx` is bound to, across apps.
async fn bound_count(client: &impl GenericClient, wx: &str) -> StoreResult<usize> {
    let n: i64 = client
        .query_one("SELECT count(*) FROM kf_accounts WHERE kf_wx = $1", &[&wx])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(pg)?;
    Ok(count_of(n))
}

async fn write_invitation(
    client: &impl GenericClient,
    appid: &str,
    kf_id: i64,
    kf_wx: Option<&str>,
    invitation: Option<&Invitation>,
) -> StoreResult<()> {
    client
        .execute(
            "UPDATE kf_accounts SET kf_wx = $3, invite_wx = $4, invite_expire_time = $5, \
             invite_state = $6 WHERE appid = $1 AND kf_id = $2",
            &[
                &appid,
                &kf_id,
                &kf_wx,
                &invitation.map(|i| i.invite_wx.as_str()),
                &invitation.map(|i| i.expire_time),
                &invitation.map(|i| i.state.as_str()),
            ],
        )
        .await
        .map_err(pg)
        .map(drop)
}

/// Deletes what an app or platform leaves outside its own rows.
async fn forget_owner(client: &impl GenericClient, owner: &str) -> StoreResult<()> {
    for sql in [
        "DELETE FROM tokens WHERE appid = $1 OR component = $1",
        "DELETE FROM counters WHERE owner = $1",
        "DELETE FROM request_log WHERE appid = $1",
        "DELETE FROM call_counts WHERE owner = $1",
    ] {
        client.execute(sql, &[&owner]).await.map_err(pg)?;
    }
    Ok(())
}

const APP_COLUMNS: &str = "appid, wechat_id, original_id, account_type, verified, new_kf_enabled, \
     secret_hash, created_at, settings";

fn app_from_row(row: &Row) -> Result<App, tokio_postgres::Error> {
    app_from_row_at(row, 0)
}

fn app_from_row_at(row: &Row, at: usize) -> Result<App, tokio_postgres::Error> {
    Ok(App {
        appid: row.try_get(at)?,
        wechat_id: row.try_get(at + 1)?,
        original_id: row.try_get(at + 2)?,
        account_type: AccountType::parse(row.try_get(at + 3)?).unwrap_or_default(),
        verified: row.try_get(at + 4)?,
        new_kf_enabled: row.try_get(at + 5)?,
        secret_hash: digest(row.try_get(at + 6)?),
        created_at: row.try_get(at + 7)?,
        settings: row
            .try_get::<_, Json<kefu_api::admin::AppSettings>>(at + 8)
            .map(|json| json.0)
            .unwrap_or_default(),
    })
}

const KF_COLUMNS: &str = "kf_id, kf_account, nickname, kf_openid, headimg_version, kf_wx, \
     invite_wx, invite_expire_time, invite_state, online_status, accepted_case, created_at";

fn kf_from_row(row: &Row, at: usize) -> Result<Kf, tokio_postgres::Error> {
    let invite_wx: Option<String> = row.try_get(at + 6)?;
    let expire_time: Option<i64> = row.try_get(at + 7)?;
    let state: Option<&str> = row.try_get(at + 8)?;
    let invitation = match (invite_wx, expire_time, state.and_then(InviteState::parse)) {
        (Some(invite_wx), Some(expire_time), Some(state)) => Some(Invitation {
            invite_wx,
            expire_time,
            state,
        }),
        _ => None,
    };
    Ok(Kf {
        kf_id: row.try_get(at)?,
        kf_account: row.try_get(at + 1)?,
        nickname: row.try_get(at + 2)?,
        kf_openid: row.try_get(at + 3)?,
        headimg_version: row.try_get(at + 4)?,
        kf_wx: row.try_get(at + 5)?,
        invitation,
        online_status: row.try_get(at + 9)?,
        accepted_case: row.try_get(at + 10)?,
        created_at: row.try_get(at + 11)?,
    })
}

const TOKEN_COLUMNS: &str = "appid, channel, component, issued_at, expires_at, superseded_at";

/// `columns` (a list like [`APP_COLUMNS`]) qualified by a table alias.
fn columns_of(alias: &str, columns: &str) -> String {
    columns
        .split(", ")
        .map(|column| format!("{alias}.{column}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn token_from_row(row: &Row, at: usize) -> Result<Option<TokenRecord>, tokio_postgres::Error> {
    let Some(channel) = TokenChannel::parse(row.try_get(at + 1)?) else {
        return Ok(None);
    };
    Ok(Some(TokenRecord {
        appid: Arc::from(row.try_get::<_, &str>(at)?),
        channel,
        component: row.try_get::<_, Option<&str>>(at + 2)?.map(Arc::from),
        issued_at: row.try_get(at + 3)?,
        expires_at: row.try_get(at + 4)?,
        superseded_at: row.try_get(at + 5)?,
    }))
}

const LOG_COLUMNS: &str = "rid, appid, method, path, errcode, invoke_time, cost_ms, request_url, \
     request_body, response_body, client_ip";

fn logged_from_row(row: &Row) -> Result<LoggedRequest, tokio_postgres::Error> {
    Ok(LoggedRequest {
        rid: row.try_get(0)?,
        appid: row.try_get(1)?,
        method: row.try_get(2)?,
        path: row.try_get(3)?,
        errcode: row.try_get(4)?,
        invoke_time: row.try_get(5)?,
        cost_ms: row.try_get(6)?,
        request_url: row.try_get(7)?,
        request_body: row.try_get(8)?,
        response_body: row.try_get(9)?,
        client_ip: row.try_get(10)?,
    })
}

const COMPONENT_COLUMNS: &str = "component_appid, secret_hash, ip_whitelist, created_at";

fn component_from_row(row: &Row) -> Result<Component, tokio_postgres::Error> {
    Ok(Component {
        component_appid: row.try_get(0)?,
        secret_hash: digest(row.try_get(1)?),
        ip_whitelist: row
            .try_get::<_, Json<Vec<String>>>(2)
            .map(|json| json.0)
            .unwrap_or_default(),
        created_at: row.try_get(3)?,
    })
}

const AUTH_COLUMNS: &str = "component_appid, appid, funcscopes, refresh_hash, previous";

fn authorization_from_row(row: &Row) -> Result<Authorization, tokio_postgres::Error> {
    Ok(Authorization {
        component_appid: row.try_get(0)?,
        appid: row.try_get(1)?,
        funcscopes: row
            .try_get::<_, Json<Vec<u32>>>(2)
            .map(|json| json.0)
            .unwrap_or_default(),
        refresh_hash: digest(row.try_get(3)?),
        previous: row
            .try_get::<_, Json<Vec<(Digest, i64)>>>(4)
            .map(|json| json.0)
            .unwrap_or_default(),
    })
}

async fn insert_app(
    client: &impl GenericClient,
    app: &App,
    next_kf_id: i64,
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO apps (appid, wechat_id, original_id, account_type, verified, \
             new_kf_enabled, secret_hash, created_at, next_kf_id, settings) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 \
             WHERE NOT EXISTS (SELECT 1 FROM components WHERE component_appid = $1)",
            &[
                &app.appid,
                &app.wechat_id,
                &app.original_id,
                &app.account_type.as_str(),
                &app.verified,
                &app.new_kf_enabled,
                &&app.secret_hash[..],
                &app.created_at,
                &next_kf_id,
                &Json(&app.settings),
            ],
        )
        .await
}

async fn insert_component(
    client: &impl GenericClient,
    component: &Component,
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO components (component_appid, secret_hash, ip_whitelist, created_at) \
             SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM apps WHERE appid = $1)",
            &[
                &component.component_appid,
                &&component.secret_hash[..],
                &Json(&component.ip_whitelist),
                &component.created_at,
            ],
        )
        .await
}

/// Records an authorization; with `replace`, over an existing one.
async fn insert_authorization(
    client: &impl GenericClient,
    auth: &Authorization,
    replace: bool,
) -> Result<u64, tokio_postgres::Error> {
    let on_conflict = if replace {
        " ON CONFLICT (component_appid, appid) DO UPDATE SET funcscopes = excluded.funcscopes, \
         refresh_hash = excluded.refresh_hash, previous = excluded.previous"
    } else {
        ""
    };
    client
        .execute(
            &format!(
                "INSERT INTO authorizations ({AUTH_COLUMNS}) VALUES ($1, $2, $3, $4, $5){on_conflict}"
            ),
            &[
                &auth.component_appid,
                &auth.appid,
                &Json(&auth.funcscopes),
                &&auth.refresh_hash[..],
                &Json(&auth.previous),
            ],
        )
        .await
}

#[async_trait]
impl Store for PostgresStore {
    async fn create_app(&self, app: App) -> StoreResult<Arc<App>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        // Apps and platforms share one id space: one creation per id at a time.
        lock(&tx, &format!("id:{}", app.appid)).await?;
        let inserted = insert_app(&tx, &app, FIRST_KF_ID).await.map_err(|e| {
            conflict_or(e, || {
                "the appid, WeChat ID or original id is taken".to_owned()
            })
        })?;
        if inserted == 0 {
            return Err(StoreError::Conflict(
                "the appid is a third-party platform's".to_owned(),
            ));
        }
        tx.commit().await.map_err(pg)?;
        Ok(Arc::new(app))
    }

    async fn apps(&self) -> StoreResult<Vec<AppSummary>> {
        let rows = self
            .query(
                &format!(
                    "SELECT {APP_COLUMNS}, (SELECT count(*) FROM kf_accounts k WHERE k.appid = a.appid) \
                     FROM apps a ORDER BY created_at, appid COLLATE \"C\""
                ),
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(AppSummary {
                    app: Arc::new(app_from_row(row)?),
                    kf_count: count_of(row.try_get(9)?),
                })
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(pg)
    }

    async fn app(&self, appid: &str) -> StoreResult<Option<Arc<App>>> {
        if !storable(appid) {
            return Ok(None);
        }
        self.query_opt(
            &format!("SELECT {APP_COLUMNS} FROM apps WHERE appid = $1"),
            &[&appid],
        )
        .await?
        .map(|row| app_from_row(&row).map(Arc::new))
        .transpose()
        .map_err(pg)
    }

    async fn update_app(&self, appid: &str, patch: AppPatch) -> StoreResult<Arc<App>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let current = tx
            .query_opt(
                &format!("SELECT {APP_COLUMNS} FROM apps WHERE appid = $1 FOR UPDATE"),
                &[&appid],
            )
            .await
            .map_err(pg)?
            .ok_or(StoreError::NotFound)?;
        let current = app_from_row(&current).map_err(pg)?;
        let (next, renamed) = rules::patched(&current, patch);
        if renamed
            && tx
                .query_opt(
                    "SELECT 1 FROM kf_accounts WHERE appid = $1 LIMIT 1",
                    &[&appid],
                )
                .await
                .map_err(pg)?
                .is_some()
        {
            return Err(rules::rename_refused());
        }
        tx.execute(
            "UPDATE apps SET wechat_id = $2, original_id = $3, account_type = $4, verified = $5, \
             new_kf_enabled = $6, settings = $7 WHERE appid = $1",
            &[
                &next.appid,
                &next.wechat_id,
                &next.original_id,
                &next.account_type.as_str(),
                &next.verified,
                &next.new_kf_enabled,
                &Json(&next.settings),
            ],
        )
        .await
        .map_err(|e| conflict_or(e, || "the WeChat ID or original id is taken".to_owned()))?;
        tx.commit().await.map_err(pg)?;
        Ok(Arc::new(next))
    }

    async fn set_app_secret(&self, appid: &str, secret_hash: Digest) -> StoreResult<()> {
        let changed = self
            .execute(
                "UPDATE apps SET secret_hash = $2 WHERE appid = $1",
                &[&appid, &&secret_hash[..]],
            )
            .await?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_app(&self, appid: &str) -> StoreResult<()> {
        self.delete_owner("DELETE FROM apps WHERE appid = $1", appid)
            .await
    }

    async fn issue_token(
        &self,
        token: TokenRecord,
        hash: Digest,
        now: i64,
        grace_secs: i64,
    ) -> StoreResult<()> {
        self.batches.mint((token, hash, now, grace_secs)).await
    }

    async fn token(&self, hash: &Digest) -> StoreResult<Option<TokenRecord>> {
        let row = self
            .query_opt(
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = $1"),
                &[&&hash[..]],
            )
            .await?;
        match row {
            Some(row) => token_from_row(&row, 0).map_err(pg),
            None => Ok(None),
        }
    }

    async fn token_and_app(
        &self,
        hash: &Digest,
    ) -> StoreResult<Option<(TokenRecord, Option<Arc<App>>)>> {
        // Batched with the concurrent checks: the token left-joined with its app (a
        // platform's token has none).
        self.batches.token_and_app(*hash).await
    }

    async fn add_kf(&self, appid: &str, kf: NewKf) -> StoreResult<Kf> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        // The app's row lock makes adds to one app take turns: the count below stays true
        // until the commit.
        let kf_id: i64 = tx
            .query_opt(
                "SELECT next_kf_id FROM apps WHERE appid = $1 FOR UPDATE",
                &[&appid],
            )
            .await
            .map_err(pg)?
            .ok_or(StoreError::NotFound)?
            .try_get(0)
            .map_err(pg)?;
        let row = tx
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE kf_account = $2) FROM kf_accounts WHERE appid = $1",
                &[&appid, &kf.kf_account.as_str()],
            )
            .await
            .map_err(pg)?;
        let (total, same): (i64, i64) = (row.try_get(0).map_err(pg)?, row.try_get(1).map_err(pg)?);
        rules::may_add_kf(same > 0, count_of(total))?;
        tx.execute(
            "INSERT INTO kf_accounts (appid, kf_id, kf_account, nickname, kf_openid, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &appid,
                &kf_id,
                &kf.kf_account.as_str(),
                &kf.nickname.as_str(),
                &kf.kf_openid,
                &kf.created_at,
            ],
        )
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Rejected(ErrCode::KfAccountExists)
            } else {
                pg(e)
            }
        })?;
        tx.execute(
            "UPDATE apps SET next_kf_id = $2 WHERE appid = $1",
            &[&appid, &(kf_id + 1)],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(rules::new_kf_record(kf_id, kf))
    }

    async fn update_kf(
        &self,
        appid: &str,
        account: &KfAccount,
        nickname: &Nickname,
    ) -> StoreResult<()> {
        // Batched with the concurrent changes: one statement, one commit for all.
        let changed = self
            .batches
            .set_nickname(
                appid.to_owned(),
                account.as_str().to_owned(),
                nickname.as_str().to_owned(),
            )
            .await?;
        if !changed {
            return Err(StoreError::Rejected(ErrCode::InvalidKfAccount));
        }
        Ok(())
    }

    async fn delete_kf(&self, appid: &str, target: &Target) -> StoreResult<()> {
        let (sql, key) = match target {
            Target::Account(account) => (
                "DELETE FROM kf_accounts WHERE appid = $1 AND kf_account = $2",
                account.as_str(),
            ),
            Target::OpenId(openid) => (
                "DELETE FROM kf_accounts WHERE appid = $1 AND kf_openid = $2",
                openid.as_str(),
            ),
        };
        if self.execute(sql, &[&appid, &key]).await? == 0 {
            return Err(StoreError::Rejected(ErrCode::InvalidKfAccount));
        }
        Ok(())
    }

    async fn kfs(&self, appid: &str) -> StoreResult<Arc<Vec<Kf>>> {
        // Batched with the concurrent reads: the app row (for NotFound) left-joined with
        // its accounts.
        self.batches
            .kfs(appid.to_owned())
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn set_kf_headimg(
        &self,
        appid: &str,
        account: &KfAccount,
        jpeg: Bytes,
    ) -> StoreResult<i64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let Some(kf) = Self::select_kf(&tx, appid, account.as_str(), true).await? else {
            return Err(StoreError::Rejected(ErrCode::InvalidKfAccount));
        };
        let version = kf.headimg_version.unwrap_or(0) + 1;
        tx.execute(
            "INSERT INTO kf_headimgs (appid, kf_id, version, jpeg) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (appid, kf_id) DO UPDATE SET version = excluded.version, jpeg = excluded.jpeg",
            &[&appid, &kf.kf_id, &version, &&jpeg[..]],
        )
        .await
        .map_err(pg)?;
        tx.execute(
            "UPDATE kf_accounts SET headimg_version = $3 WHERE appid = $1 AND kf_id = $2",
            &[&appid, &kf.kf_id, &version],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(version)
    }

    async fn kf_headimg(
        &self,
        appid: &str,
        kf_id: i64,
        version: i64,
    ) -> StoreResult<Option<Bytes>> {
        self.query_opt(
            "SELECT jpeg FROM kf_headimgs WHERE appid = $1 AND kf_id = $2 AND version = $3",
            &[&appid, &kf_id, &version],
        )
        .await?
        .map(|row| row.try_get::<_, Vec<u8>>(0).map(Bytes::from))
        .transpose()
        .map_err(pg)
    }

    async fn invite_kf(
        &self,
        appid: &str,
        account: &KfAccount,
        invite_wx: &WechatId,
        now: i64,
        expire_time: i64,
        max_bound: usize,
    ) -> StoreResult<()> {
        let wx = invite_wx.as_str();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        // The app's accounts and the user's bindings (across apps) hold still until the
        // commit.
        tx.execute("SELECT 1 FROM apps WHERE appid = $1 FOR UPDATE", &[&appid])
            .await
            .map_err(pg)?;
        lock(&tx, &format!("wx:{wx}")).await?;
        let Some(kf) = Self::select_kf(&tx, appid, account.as_str(), false).await? else {
            return Err(StoreError::Rejected(ErrCode::InvalidKfAccount));
        };
        let others = tx
            .query(
                &format!(
                    "SELECT {KF_COLUMNS} FROM kf_accounts WHERE appid = $1 AND (kf_wx = $2 OR invite_wx = $2)"
                ),
                &[&appid, &wx],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(|row| kf_from_row(row, 0))
            .collect::<Result<Vec<Kf>, _>>()
            .map_err(pg)?;
        let bound = bound_count(&tx, wx).await?;
        let invitation = rules::invite(&kf, &others, bound, wx, now, expire_time, max_bound)
            .map_err(StoreError::Rejected)?;
        write_invitation(&tx, appid, kf.kf_id, None, Some(&invitation)).await?;
        tx.commit().await.map_err(pg)
    }

    async fn answer_invitation(
        &self,
        appid: &str,
        account: &KfAccount,
        action: InvitationAction,
        now: i64,
        max_bound: usize,
    ) -> StoreResult<Kf> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        if tx
            .query_opt("SELECT 1 FROM apps WHERE appid = $1 FOR UPDATE", &[&appid])
            .await
            .map_err(pg)?
            .is_none()
        {
            return Err(StoreError::NotFound);
        }
        let Some(kf) = Self::select_kf(&tx, appid, account.as_str(), true).await? else {
            return Err(StoreError::NotFound);
        };
        let invitee = rules::pending_invitee(&kf, now)?.to_owned();
        lock(&tx, &format!("wx:{invitee}")).await?;
        let bound = bound_count(&tx, &invitee).await?;
        let kf = rules::answered(kf, action, now, bound, max_bound)?;
        write_invitation(
            &tx,
            appid,
            kf.kf_id,
            kf.kf_wx.as_deref(),
            kf.invitation.as_ref(),
        )
        .await?;
        tx.commit().await.map_err(pg)?;
        Ok(kf)
    }

    async fn set_kf_online(
        &self,
        appid: &str,
        account: &KfAccount,
        status: i64,
        accepted_case: i64,
    ) -> StoreResult<Kf> {
        let row = self
            .query_opt(
                &format!(
                    "UPDATE kf_accounts SET online_status = $3, accepted_case = $4 \
                     WHERE appid = $1 AND kf_account = $2 RETURNING {KF_COLUMNS}"
                ),
                &[&appid, &account.as_str(), &status, &accepted_case],
            )
            .await?
            .ok_or(StoreError::NotFound)?;
        kf_from_row(&row, 0).map_err(pg)
    }

    async fn current_token(
        &self,
        owner: &str,
        channel: TokenChannel,
    ) -> StoreResult<Option<CurrentToken>> {
        let Some(row) = self
            .query_opt(
                &format!(
                    "SELECT {TOKEN_COLUMNS}, hash, value FROM tokens WHERE appid = $1 AND channel = $2 \
                     AND component IS NULL AND superseded_at IS NULL"
                ),
                &[&owner, &channel.as_str()],
            )
            .await?
        else {
            return Ok(None);
        };
        let Some(record) = token_from_row(&row, 0).map_err(pg)? else {
            return Ok(None);
        };
        Ok(Some(CurrentToken {
            hash: digest(row.try_get(6).map_err(pg)?),
            value: row.try_get(7).map_err(pg)?,
            record,
        }))
    }

    async fn issue_stable_token(
        &self,
        token: TokenRecord,
        hash: Digest,
        value: String,
        now: i64,
        grace_secs: i64,
        replaces: Option<Digest>,
    ) -> StoreResult<()> {
        self.insert_stable_token(token, hash, value, now, grace_secs, replaces)
            .await
    }

    async fn set_token_times(
        &self,
        hash: &Digest,
        superseded_at: Option<i64>,
        expires_at: Option<i64>,
    ) -> StoreResult<()> {
        let changed = self
            .execute(
                "UPDATE tokens SET superseded_at = COALESCE($2, superseded_at), \
                 expires_at = COALESCE($3, expires_at) WHERE hash = $1",
                &[&&hash[..], &superseded_at, &expires_at],
            )
            .await?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn consume(&self, counters: &[(CounterKey, u64)]) -> StoreResult<Result<(), usize>> {
        // Batched with the concurrent counts: one call of `kefu_consume_batch`.
        self.batches.consume(counters.to_vec()).await
    }

    async fn counter(&self, key: &CounterKey) -> StoreResult<u64> {
        let row = self
            .query_opt(
                "SELECT count FROM counters WHERE owner = $1 AND name = $2 AND kind = $3 AND win = $4",
                &[
                    &key.owner,
                    &key.name,
                    &key.window.kind(),
                    &key.window.number(),
                ],
            )
            .await?;
        let count: i64 = match row {
            Some(row) => row.try_get(0).map_err(pg)?,
            None => 0,
        };
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn reset_counters(&self, owner: &str, names: &[String]) -> StoreResult<()> {
        self.execute(
            "UPDATE counters SET count = 0 WHERE owner = $1 AND name = ANY($2)",
            &[&owner, &names],
        )
        .await
        .map(drop)
    }

    fn log_request(&self, call: Arc<RecordedCall>) {
        self.log.push(call);
    }

    async fn logged_request(&self, rid: &str) -> StoreResult<Option<LoggedRequest>> {
        if let Some(entry) = self.log.find(rid) {
            return Ok(Some(entry));
        }
        self.query_opt(
            &format!("SELECT {LOG_COLUMNS} FROM request_log WHERE rid = $1"),
            &[&rid],
        )
        .await?
        .map(|row| logged_from_row(&row))
        .transpose()
        .map_err(pg)
    }

    async fn logged_requests(
        &self,
        appid: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<LoggedRequest>> {
        let entries = self.log.newest(appid, limit);
        let sql_limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let written = self
            .query(
                &format!(
                    "SELECT {LOG_COLUMNS} FROM request_log WHERE $1::text IS NULL OR appid = $1 \
                     ORDER BY invoke_time DESC, seq DESC LIMIT $2"
                ),
                &[&appid, &sql_limit],
            )
            .await?
            .iter()
            .map(logged_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(pg)?;
        Ok(logbuf::merge(entries, written, limit))
    }

    async fn call_counts(&self, appid: Option<&str>, since: i64) -> StoreResult<Vec<CallCount>> {
        let since_hour = logbuf::hour_of(since);
        let unwritten = self.log.unwritten_counts(appid, since_hour);
        let rows = self
            .query(
                "SELECT owner, path, errcode, hour, count FROM call_counts \
                 WHERE hour >= $1 AND ($2::text IS NULL OR owner = $2)",
                &[&since_hour, &appid],
            )
            .await?;
        let mut written = Vec::with_capacity(rows.len());
        for row in rows {
            let owner: String = row.try_get(0).map_err(pg)?;
            written.push(CallCount {
                appid: (!owner.is_empty()).then_some(owner),
                path: row.try_get(1).map_err(pg)?,
                errcode: row.try_get(2).map_err(pg)?,
                hour: row.try_get(3).map_err(pg)?,
                count: u64::try_from(row.try_get::<_, i64>(4).map_err(pg)?).unwrap_or(0),
            });
        }
        Ok(logbuf::sum_counts(written.into_iter().chain(unwritten)))
    }

    async fn log_usage(&self) -> StoreResult<LogUsage> {
        let (memory_calls, memory_bytes, dropped_in_memory) = self.log.usage();
        let row = self
            .query_opt(
                "SELECT rows, bytes, dropped FROM log_usage WHERE id = 1",
                &[],
            )
            .await?;
        let count = |i: usize| -> StoreResult<u64> {
            Ok(match &row {
                Some(row) => u64::try_from(row.try_get::<_, i64>(i).map_err(pg)?).unwrap_or(0),
                None => 0,
            })
        };
        Ok(LogUsage {
            rows: count(0)?,
            bytes: count(1)?,
            dropped_from_store: count(2)?,
            dropped_in_memory,
            memory_calls,
            memory_bytes,
        })
    }

    async fn maintain(&self, now: i64, log_before: i64) -> StoreResult<()> {
        let purge = self.purge.due(now);
        let result = self.housekeep(now, log_before, purge).await;
        if result.is_err() && purge.is_some() {
            self.purge.missed();
        }
        result
    }

    async fn clock_offset(&self) -> StoreResult<i64> {
        match self
            .query_opt("SELECT offset_secs FROM clock WHERE id = 1", &[])
            .await?
        {
            Some(row) => row.try_get(0).map_err(pg),
            None => Ok(0),
        }
    }

    async fn advance_clock_offset(&self, by: i64, at_least: i64, at_most: i64) -> StoreResult<i64> {
        self.query_opt(
            "INSERT INTO clock AS c (id, offset_secs) \
             VALUES (1, LEAST(GREATEST($1::int8, $2::int8), $3::int8)) \
             ON CONFLICT (id) DO UPDATE SET offset_secs = \
             GREATEST(c.offset_secs, LEAST(GREATEST(c.offset_secs + $1::int8, $2::int8), $3::int8)) \
             RETURNING offset_secs",
            &[&by, &at_least, &at_most],
        )
        .await?
        .ok_or_else(|| StoreError::Internal("the clock row is missing".to_owned()))?
        .try_get(0)
        .map_err(pg)
    }

    async fn snapshot(&self) -> StoreResult<Snapshot> {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg)?;
        let mut apps = Vec::new();
        let mut index = HashMap::new();
        for row in tx
            .query(&format!("SELECT {APP_COLUMNS}, next_kf_id FROM apps"), &[])
            .await
            .map_err(pg)?
        {
            let app = app_from_row(&row).map_err(pg)?;
            index.insert(app.appid.clone(), apps.len());
            apps.push(AppSnapshot {
                next_kf_id: row.try_get(9).map_err(pg)?,
                app,
                kf_accounts: Vec::new(),
            });
        }
        for row in tx
            .query(
                &format!(
                    "SELECT k.appid, {}, h.jpeg FROM kf_accounts k LEFT JOIN kf_headimgs h \
                     ON h.appid = k.appid AND h.kf_id = k.kf_id",
                    columns_of("k", KF_COLUMNS)
                ),
                &[],
            )
            .await
            .map_err(pg)?
        {
            let appid: &str = row.try_get(0).map_err(pg)?;
            let kf = kf_from_row(&row, 1).map_err(pg)?;
            let headimg: Option<Vec<u8>> = row.try_get(13).map_err(pg)?;
            if let Some(&at) = index.get(appid) {
                apps[at].kf_accounts.push(KfSnapshot {
                    kf,
                    headimg: headimg.map(Bytes::from),
                });
            }
        }
        let components = tx
            .query(&format!("SELECT {COMPONENT_COLUMNS} FROM components"), &[])
            .await
            .map_err(pg)?
            .iter()
            .map(component_from_row)
            .collect::<Result<_, _>>()
            .map_err(pg)?;
        let authorizations = tx
            .query(&format!("SELECT {AUTH_COLUMNS} FROM authorizations"), &[])
            .await
            .map_err(pg)?
            .iter()
            .map(authorization_from_row)
            .collect::<Result<_, _>>()
            .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        let mut snapshot = Snapshot {
            version: Snapshot::VERSION,
            apps,
            components,
            authorizations,
        };
        rules::in_snapshot_order(&mut snapshot);
        Ok(snapshot)
    }

    async fn restore(&self, snapshot: Snapshot) -> StoreResult<()> {
        snapshot.check()?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        // No app or platform may appear while the snapshot loads.
        tx.batch_execute("LOCK TABLE apps, components IN SHARE ROW EXCLUSIVE MODE")
            .await
            .map_err(pg)?;
        let held: i64 = tx
            .query_one(
                "SELECT (SELECT count(*) FROM apps) + (SELECT count(*) FROM components)",
                &[],
            )
            .await
            .and_then(|row| row.try_get(0))
            .map_err(pg)?;
        if held > 0 {
            return Err(StoreError::Conflict("the store is not empty".to_owned()));
        }
        for entry in &snapshot.apps {
            let app = &entry.app;
            // `Snapshot::check` refused an id that is both an app and a platform.
            insert_app(&tx, app, entry.next_kf_id)
                .await
                .map_err(|e| conflict_or(e, || format!("{}: taken", app.appid)))?;
            for account in &entry.kf_accounts {
                let kf = &account.kf;
                let invitation = kf.invitation.as_ref();
                tx.execute(
                    &format!(
                        "INSERT INTO kf_accounts (appid, {KF_COLUMNS}) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
                    ),
                    &[
                        &app.appid,
                        &kf.kf_id,
                        &kf.kf_account,
                        &kf.nickname,
                        &kf.kf_openid,
                        &kf.headimg_version,
                        &kf.kf_wx,
                        &invitation.map(|i| i.invite_wx.as_str()),
                        &invitation.map(|i| i.expire_time),
                        &invitation.map(|i| i.state.as_str()),
                        &kf.online_status,
                        &kf.accepted_case,
                        &kf.created_at,
                    ],
                )
                .await
                .map_err(|e| conflict_or(e, || format!("{}: taken", kf.kf_account)))?;
                if let (Some(jpeg), Some(version)) = (&account.headimg, kf.headimg_version) {
                    tx.execute(
                        "INSERT INTO kf_headimgs (appid, kf_id, version, jpeg) VALUES ($1, $2, $3, $4)",
                        &[&app.appid, &kf.kf_id, &version, &&jpeg[..]],
                    )
                    .await
                    .map_err(pg)?;
                }
            }
        }
        for component in &snapshot.components {
            insert_component(&tx, component)
                .await
                .map_err(|e| conflict_or(e, || format!("{}: taken", component.component_appid)))?;
        }
        for auth in &snapshot.authorizations {
            insert_authorization(&tx, auth, false).await.map_err(|e| {
                conflict_or(e, || {
                    format!(
                        "{} on {}: unknown app or platform",
                        auth.appid, auth.component_appid
                    )
                })
            })?;
        }
        tx.commit().await.map_err(pg)
    }

    async fn create_component(&self, component: Component) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        lock(&tx, &format!("id:{}", component.component_appid)).await?;
        let inserted = insert_component(&tx, &component)
            .await
            .map_err(|e| conflict_or(e, || "the component_appid is taken".to_owned()))?;
        if inserted == 0 {
            return Err(StoreError::Conflict(
                "the appid is an official account's".to_owned(),
            ));
        }
        tx.commit().await.map_err(pg)
    }

    async fn components(&self) -> StoreResult<Vec<(Component, Vec<Authorization>)>> {
        let client = self.client().await?;
        let components = client
            .query(&format!("SELECT {COMPONENT_COLUMNS} FROM components"), &[])
            .await
            .map_err(pg)?;
        let auths = client
            .query(
                &format!("SELECT {AUTH_COLUMNS} FROM authorizations ORDER BY appid COLLATE \"C\""),
                &[],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(authorization_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(pg)?;
        components
            .iter()
            .map(|row| {
                let component = component_from_row(row).map_err(pg)?;
                let mine = auths
                    .iter()
                    .filter(|a| a.component_appid == component.component_appid)
                    .cloned()
                    .collect();
                Ok((component, mine))
            })
            .collect()
    }

    async fn component(&self, component_appid: &str) -> StoreResult<Option<Component>> {
        if !storable(component_appid) {
            return Ok(None);
        }
        self.query_opt(
            &format!("SELECT {COMPONENT_COLUMNS} FROM components WHERE component_appid = $1"),
            &[&component_appid],
        )
        .await?
        .map(|row| component_from_row(&row))
        .transpose()
        .map_err(pg)
    }

    async fn delete_component(&self, component_appid: &str) -> StoreResult<()> {
        self.delete_owner(
            "DELETE FROM components WHERE component_appid = $1",
            component_appid,
        )
        .await
    }

    async fn add_ticket(
        &self,
        component_appid: &str,
        hash: Digest,
        expires_at: i64,
    ) -> StoreResult<()> {
        let client = self.client().await?;
        let inserted = client
            .execute(
                "INSERT INTO component_tickets (hash, component_appid, expires_at) \
                 SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM components WHERE component_appid = $2)",
                &[&&hash[..], &component_appid, &expires_at],
            )
            .await
            .map_err(|e| {
                // The platform was deleted meanwhile.
                if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) {
                    StoreError::NotFound
                } else {
                    pg(e)
                }
            })?;
        if inserted == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn ticket(&self, hash: &Digest) -> StoreResult<Option<(String, i64)>> {
        self.query_opt(
            "SELECT component_appid, expires_at FROM component_tickets WHERE hash = $1",
            &[&&hash[..]],
        )
        .await?
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .transpose()
        .map_err(pg)
    }

    async fn authorize(&self, authorization: Authorization) -> StoreResult<()> {
        let client = self.client().await?;
        insert_authorization(&client, &authorization, true)
            .await
            .map_err(|e| {
                if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) {
                    StoreError::NotFound
                } else {
                    pg(e)
                }
            })
            .map(drop)
    }

    async fn authorization(
        &self,
        component_appid: &str,
        appid: &str,
    ) -> StoreResult<Option<Authorization>> {
        if !storable(component_appid) || !storable(appid) {
            return Ok(None);
        }
        self.query_opt(
            &format!(
                "SELECT {AUTH_COLUMNS} FROM authorizations WHERE component_appid = $1 AND appid = $2"
            ),
            &[&component_appid, &appid],
        )
        .await?
        .map(|row| authorization_from_row(&row))
        .transpose()
        .map_err(pg)
    }

    async fn rotate_refresh_token(
        &self,
        component_appid: &str,
        appid: &str,
        presented: Digest,
        next: Digest,
        now: i64,
        overlap_secs: i64,
    ) -> StoreResult<()> {
        if !storable(component_appid) || !storable(appid) {
            return Err(StoreError::Rejected(ErrCode::RefreshTokenInvalid));
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let Some(row) = tx
            .query_opt(
                &format!(
                    "SELECT {AUTH_COLUMNS} FROM authorizations WHERE component_appid = $1 AND appid = $2 FOR UPDATE"
                ),
                &[&component_appid, &appid],
            )
            .await
            .map_err(pg)?
        else {
            return Err(StoreError::Rejected(ErrCode::RefreshTokenInvalid));
        };
        let mut auth = authorization_from_row(&row).map_err(pg)?;
        rules::rotate(&mut auth, presented, next, now, overlap_secs)?;
        insert_authorization(&tx, &auth, true).await.map_err(pg)?;
        tx.commit().await.map_err(pg)
    }
}
