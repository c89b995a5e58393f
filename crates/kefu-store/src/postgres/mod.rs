//! The PostgreSQL store, for several kefu instances serving as one WeChat.
//!
//! Nothing that decides an answer is cached: every token check, list and rule reads
//! the database, so what one instance changes, every other sees on its next request
//! (a token invalidated through one instance is refused by all from the commit on).
//! Invariants are the database's: a unique index keeps one current token per family,
//! row locks (`SELECT … FOR UPDATE` on the app) serialize the account rules, advisory
//! locks serialize token minting per family and bindings per WeChat user, and
//! [`CounterStore::consume`](crate::CounterStore::consume) is counted by a PL/pgSQL function,
//! all or nothing per call. The
//! calls every request makes are batched with their concurrent twins (`batch`).
//!
//! Acknowledged changes commit with the server's `synchronous_commit` (on by default:
//! durable before the answer). Counters and the request log commit without waiting
//! for the disk: like the embedded store, a crash may lose their last second.

mod apps;
mod batch;
mod clock;
mod counters;
mod fans;
mod housekeeping;
mod kfs;
mod log;
mod messages;
mod platforms;
mod rows;
mod schema;
mod sessions;
mod snapshots;
mod tokens;

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
use kefu_api::admin::AppPatch;
use kefu_api::endpoints::kf_add::FIRST_KF_ID;
use kefu_api::endpoints::kf_del::Target;
use kefu_api::{KfAccount, Nickname};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::{NoTls, Row};

use self::housekeeping::Vacuum;
use crate::columns;
use crate::columns::{
    APP_COLUMNS, AUTH_COLUMNS, COMPONENT_COLUMNS, KF_COLUMNS, LOG_COLUMNS, TOKEN_COLUMNS,
    columns_of,
};
use crate::logbuf::{self, LogBuffer};
use crate::model::{
    App, AppSnapshot, AppSummary, Authorization, CallCount, Component, CounterKey, CurrentToken,
    Digest, Invitation, InvitationAnswer, Kf, KfSnapshot, LogLimits, LogUsage, LoggedRequest, Mint,
    NewInvitation, NewKf, RecordedCall, Rotation, Snapshot, StableMint, TokenChannel, TokenRecord,
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
    /// Told of every batch of the writes every WeChat request may make (see
    /// [`crate::CommitObserver`]).
    pub commits: Option<Arc<dyn crate::CommitObserver>>,
}

impl PostgresOptions {
    /// Options for a URL with the default pool (8 connections, 5 s timeout).
    pub fn new(url: impl Into<String>) -> PostgresOptions {
        PostgresOptions {
            url: url.into(),
            pool_size: 8,
            timeout: Duration::from_secs(5),
            log: LogLimits::default(),
            commits: None,
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

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
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
            batches: batch::Batches::start(&pool, options.commits.clone()),
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
}

/// Whether PostgreSQL can hold `text` at all: its text type has no U+0000, so a key
/// with one (from a client's query or body) names nothing, rather than failing the
/// statement.
fn storable(text: &str) -> bool {
    !text.contains('\0')
}

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
                "INSERT INTO authorizations ({AUTH_COLUMNS}) VALUES ($1, $2, $3, $4, \
                    $5){on_conflict}"
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
