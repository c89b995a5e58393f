//! The embedded SQLite store: one file, WAL journal, a single writer with group commit,
//! and an in-memory image of the data serving every read.
//!
//! Reads (token checks, lists) never touch the disk. Writes queue to the writer, which
//! folds whatever is waiting into one transaction and answers each request only after
//! that transaction is as durable as [`Durability`] says (`synchronous=FULL` by
//! default); see the `writer` module for where it runs. A lock file beside the database
//! keeps a second process from opening it, which is what makes the in-memory image
//! exact.

mod cache;
mod schema;
mod writer;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use bytes::Bytes;
use kefu_api::admin::{AccountType, AppPatch, InvitationAction};
use kefu_api::endpoints::kf_add::FIRST_KF_ID;
use kefu_api::endpoints::kf_del::Target;
use kefu_api::{ErrCode, KfAccount, Nickname, WechatId};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use self::cache::{AppEntry, Cache};
use self::writer::{Scope, Writer};
use crate::logbuf::{self, LogBuffer};
use crate::model::{
    App, AppSnapshot, AppSummary, Authorization, CallCount, Component, CounterKey, CurrentToken,
    Digest, Invitation, InviteState, Kf, KfSnapshot, LogLimits, LogUsage, LoggedRequest, NewKf,
    RecordedCall, Snapshot, TokenChannel, TokenRecord, Window,
};
use crate::rules;
use crate::{Store, StoreError, StoreResult};

/// How durable an acknowledged change is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every commit is fsynced before the answer (`synchronous=FULL`): survives power loss.
    #[default]
    Full,
    /// Survives a crash of the process; the last moments may be lost on power loss
    /// (`synchronous=NORMAL`).
    Normal,
}

/// How to open the store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// The database file; created when absent.
    pub path: PathBuf,
    /// How durable acknowledged changes are.
    pub durability: Durability,
    /// How much the request log may hold.
    pub log: LogLimits,
}

impl SqliteOptions {
    /// Options for a file with the default durability and request log bounds.
    pub fn new(path: impl Into<PathBuf>) -> SqliteOptions {
        SqliteOptions {
            path: path.into(),
            durability: Durability::Full,
            log: LogLimits::default(),
        }
    }
}

/// The embedded store. Dropping it finishes the queued writes and closes the file.
pub struct SqliteStore {
    /// Closed (by dropping it) before the lock file is let go.
    writer: Option<Writer>,
    /// When expired tokens and tickets were last forgotten (in the database and the
    /// cache alike).
    purge: rules::PurgeClock,
    images: Arc<Mutex<Connection>>,
    /// Call counters: counted in memory (exact), persisted by `maintain`.
    counters: Mutex<cache::HashMap<CounterKey, Counter>>,
    /// One `maintain` at a time, so that an older snapshot of the counters is never
    /// written after a newer one.
    maintaining: tokio::sync::Mutex<()>,
    /// Recorded calls not yet written: `maintain` writes them in one transaction.
    log: LogBuffer,
    cache: Arc<RwLock<Cache>>,
    /// The stored test clock offset.
    clock_offset: Arc<AtomicI64>,
    _lock: File,
}

fn internal(error: rusqlite::Error) -> StoreError {
    StoreError::Internal(error.to_string())
}

fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::ConstraintViolation)
}

/// A row a snapshot could not load: a clash (duplicate or dangling reference) is the
/// document's fault.
fn restore_error(error: rusqlite::Error, what: &str) -> StoreError {
    if is_unique_violation(&error) {
        StoreError::Conflict(format!("{what}: {error}"))
    } else {
        internal(error)
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl SqliteStore {
    /// The writing connection's `synchronous` setting as SQLite reports it (2 is FULL,
    /// 1 NORMAL): what every commit actually waits for, whatever was asked.
    pub async fn synchronous(&self) -> StoreResult<i64> {
        self.write(|conn| {
            let level = conn
                .pragma_query_value(None, "synchronous", |row| row.get(0))
                .map_err(internal)?;
            Ok((level, |_: &mut Cache| {}))
        })
        .await
    }

    /// Opens (creating if needed) the database, applies migrations and loads the data.
    ///
    /// Fails when another process has the same file open.
    pub fn open(options: &SqliteOptions) -> StoreResult<SqliteStore> {
        if let Some(dir) = options.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Internal(format!("{}: {e}", dir.display())))?;
        }
        let lock_file = lock_path(&options.path);
        let lock = File::create(&lock_file)
            .map_err(|e| StoreError::Internal(format!("{}: {e}", lock_file.display())))?;
        lock.try_lock().map_err(|_| {
            StoreError::Internal(format!(
                "{} is in use by another kefu process (lock {})",
                options.path.display(),
                lock_file.display()
            ))
        })?;

        let mut conn = Connection::open(&options.path).map_err(internal)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(internal)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Internal(format!(
                "cannot use WAL journal (got {mode})"
            )));
        }
        let synchronous = match options.durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", synchronous)
            .map_err(internal)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(internal)?;
        conn.pragma_update(None, "busy_timeout", 5000)
            .map_err(internal)?;
        conn.set_prepared_statement_cache_capacity(64);
        schema::migrate(&mut conn).map_err(internal)?;
        let cache = Arc::new(RwLock::new(load(&conn).map_err(internal)?));
        let counters = Mutex::new(load_counters(&conn).map_err(internal)?);
        let clock_offset: i64 = conn
            .query_row("SELECT offset_secs FROM clock WHERE id = 1", [], |row| {
                row.get(0)
            })
            .optional()
            .map_err(internal)?
            .unwrap_or(0);

        let writer = Writer::start(conn, &options.path, Arc::clone(&cache), options.durability)?;
        // Head images are the one thing not kept in memory; they are read here, beside the
        // writer (WAL lets a reader see the last commit while the writer works).
        let images = Connection::open_with_flags(&options.path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(internal)?;
        Ok(SqliteStore {
            writer: Some(writer),
            purge: rules::PurgeClock::default(),
            images: Arc::new(Mutex::new(images)),
            counters,
            maintaining: tokio::sync::Mutex::new(()),
            log: LogBuffer::new(options.log),
            cache,
            clock_offset: Arc::new(AtomicI64::new(clock_offset)),
            _lock: lock,
        })
    }

    fn read<T>(&self, f: impl FnOnce(&Cache) -> T) -> T {
        f(&self
            .cache
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Runs `f` in the writer, in a savepoint of its own (see [`Writer::submit`]).
    async fn write<T, F, E>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<(T, E)> + Send + 'static,
        E: FnOnce(&mut Cache) + Send + 'static,
    {
        self.write_in(Scope::Savepoint, f).await
    }

    /// [`SqliteStore::write`] for a job that writes with at most one statement and
    /// fails only when that statement wrote nothing ([`Scope::OneStatement`]).
    async fn write_one<T, F, E>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<(T, E)> + Send + 'static,
        E: FnOnce(&mut Cache) + Send + 'static,
    {
        self.write_in(Scope::OneStatement, f).await
    }

    async fn write_in<T, F, E>(&self, scope: Scope, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<(T, E)> + Send + 'static,
        E: FnOnce(&mut Cache) + Send + 'static,
    {
        self.writer
            .as_ref()
            .ok_or_else(|| StoreError::Internal("store closed".to_owned()))?
            .submit(scope, f)
            .await
    }
}

impl SqliteStore {
    /// Records a token (with its value for stable tokens); the family's current token
    /// is superseded at `now + grace_secs`.
    async fn insert_token(
        &self,
        token: TokenRecord,
        hash: Digest,
        value: Option<String>,
        now: i64,
        grace_secs: i64,
        replaces: Option<Option<Digest>>,
    ) -> StoreResult<()> {
        let superseded_at = rules::superseded_at(now, grace_secs);
        self.write(move |conn| {
            let owner_exists = match token.channel {
                TokenChannel::Component => component_exists(conn, &token.appid)?,
                _ => app_exists(conn, &token.appid)?,
            };
            // An authorizer token's platform must exist as well.
            let platform_exists = match token.component.as_deref() {
                Some(platform) => component_exists(conn, platform)?,
                None => true,
            };
            if !owner_exists || !platform_exists {
                return Err(StoreError::NotFound);
            }
            let component = token.component.as_deref();
            if let Some(expected) = replaces {
                let current: Option<Digest> = conn
                    .prepare_cached(
                        "SELECT hash FROM tokens WHERE appid = ?1 AND channel = ?2 AND component IS ?3 \
                         AND superseded_at IS NULL",
                    )
                    .and_then(|mut stmt| {
                        stmt.query_row(params![&*token.appid, token.channel.as_str(), component], |row| row.get(0))
                            .optional()
                    })
                    .map_err(internal)?;
                rules::may_replace(current, expected)?;
            }
            conn.prepare_cached(
                "UPDATE tokens SET superseded_at = ?3, value = NULL \
                 WHERE appid = ?1 AND channel = ?2 AND component IS ?4 AND superseded_at IS NULL",
            )
            .and_then(|mut stmt| stmt.execute(params![&*token.appid, token.channel.as_str(), superseded_at, component]))
            .map_err(internal)?;
            conn.prepare_cached(
                "INSERT INTO tokens (hash, appid, channel, component, issued_at, expires_at, value) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    hash,
                    &*token.appid,
                    token.channel.as_str(),
                    component,
                    token.issued_at,
                    token.expires_at,
                    value
                ])
            })
            .map_err(internal)?;
            Ok(((), move |cache: &mut Cache| {
                cache.insert_token(hash, token, value, Some(superseded_at));
            }))
        })
        .await
    }

    /// Forgets an owner's counters and waiting log records (its rows are deleted).
    fn forget_in_memory(&self, owner: &str) {
        self.counters().retain(|key, _| key.owner != owner);
        self.log.forget(owner);
    }

    fn counters(&self) -> std::sync::MutexGuard<'_, cache::HashMap<CounterKey, Counter>> {
        self.counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

const LOG_COLUMNS: &str = "rid, appid, method, path, errcode, invoke_time, cost_ms, request_url, request_body, \
     response_body, client_ip";

fn logged_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<LoggedRequest> {
    Ok(LoggedRequest {
        rid: row.get(0)?,
        appid: row.get(1)?,
        method: row.get(2)?,
        path: row.get(3)?,
        errcode: row.get(4)?,
        invoke_time: row.get(5)?,
        cost_ms: row.get(6)?,
        request_url: row.get(7)?,
        request_body: row.get(8)?,
        response_body: row.get(9)?,
        client_ip: row.get(10)?,
    })
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Finishes the queued writes and closes the connection while the lock is held.
        drop(self.writer.take());
    }
}

fn load(conn: &Connection) -> rusqlite::Result<Cache> {
    let mut cache = Cache::default();
    let mut apps = conn.prepare(&format!("SELECT {APP_COLUMNS} FROM apps"))?;
    let rows = apps.query_map([], app_from_row)?;
    for app in rows {
        let app = app?;
        cache
            .apps
            .insert(app.appid.clone(), AppEntry::new(Arc::new(app)));
    }
    let mut kfs = conn.prepare(&format!(
        "SELECT appid, {KF_COLUMNS} FROM kf_accounts ORDER BY appid, kf_id"
    ))?;
    let mut rows = kfs.query([])?;
    while let Some(row) = rows.next()? {
        let appid: String = row.get(0)?;
        let kf = kf_from_row(row, 1)?;
        if let Some(list) = cache.kfs_mut(&appid) {
            list.push(kf);
        }
    }
    let mut tokens = conn.prepare(
        "SELECT hash, appid, channel, component, issued_at, expires_at, superseded_at, value \
         FROM tokens ORDER BY issued_at",
    )?;
    let mut rows = tokens.query([])?;
    while let Some(row) = rows.next()? {
        let Some(channel) = TokenChannel::parse(&row.get::<_, String>(2)?) else {
            continue;
        };
        let hash: Digest = row.get(0)?;
        let record = TokenRecord {
            appid: Arc::from(row.get::<_, String>(1)?),
            channel,
            component: row.get::<_, Option<String>>(3)?.map(Arc::from),
            issued_at: row.get(4)?,
            expires_at: row.get(5)?,
            superseded_at: row.get(6)?,
        };
        let value: Option<String> = row.get(7)?;
        cache.insert_token(hash, record, value, None);
    }
    let mut components = conn
        .prepare("SELECT component_appid, secret_hash, ip_whitelist, created_at FROM components")?;
    let mut rows = components.query([])?;
    while let Some(row) = rows.next()? {
        let component = Component {
            component_appid: row.get(0)?,
            secret_hash: row.get(1)?,
            ip_whitelist: serde_json::from_str(&row.get::<_, String>(2)?).unwrap_or_default(),
            created_at: row.get(3)?,
        };
        cache
            .components
            .insert(component.component_appid.clone(), component);
    }
    let mut auths = conn.prepare(&format!("SELECT {AUTH_COLUMNS} FROM authorizations"))?;
    for auth in auths.query_map([], authorization_from_row)? {
        let auth = auth?;
        cache
            .authorizations
            .insert((auth.component_appid.clone(), auth.appid.clone()), auth);
    }
    let mut tickets =
        conn.prepare("SELECT hash, component_appid, expires_at FROM component_tickets")?;
    let mut rows = tickets.query([])?;
    while let Some(row) = rows.next()? {
        cache
            .tickets
            .insert(row.get(0)?, (row.get(1)?, row.get(2)?));
    }
    Ok(cache)
}

fn load_counters(conn: &Connection) -> rusqlite::Result<cache::HashMap<CounterKey, Counter>> {
    let mut counters = cache::HashMap::default();
    let mut stmt = conn.prepare("SELECT owner, name, kind, window, count FROM counters")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let Some(window) = Window::from_parts(&row.get::<_, String>(2)?, row.get(3)?) else {
            continue;
        };
        let key = CounterKey {
            owner: row.get(0)?,
            name: row.get(1)?,
            window,
        };
        let count: i64 = row.get(4)?;
        counters.insert(
            key,
            Counter {
                count: u64::try_from(count).unwrap_or(0),
                dirty: false,
            },
        );
    }
    Ok(counters)
}

const AUTH_COLUMNS: &str = "component_appid, appid, funcscopes, refresh_hash, previous";

fn authorization_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Authorization> {
    Ok(Authorization {
        component_appid: row.get(0)?,
        appid: row.get(1)?,
        funcscopes: serde_json::from_str(&row.get::<_, String>(2)?).unwrap_or_default(),
        refresh_hash: row.get(3)?,
        previous: serde_json::from_str(&row.get::<_, String>(4)?).unwrap_or_default(),
    })
}

/// A counter in memory; `dirty` until persisted by [`Store::maintain`].
#[derive(Debug, Clone, Copy)]
struct Counter {
    count: u64,
    dirty: bool,
}

fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

const APP_COLUMNS: &str = "appid, wechat_id, original_id, account_type, verified, new_kf_enabled, secret_hash, created_at, settings";

fn app_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<App> {
    Ok(App {
        appid: row.get(0)?,
        wechat_id: row.get(1)?,
        original_id: row.get(2)?,
        account_type: AccountType::parse(&row.get::<_, String>(3)?).unwrap_or_default(),
        verified: row.get(4)?,
        new_kf_enabled: row.get(5)?,
        secret_hash: row.get(6)?,
        created_at: row.get(7)?,
        settings: serde_json::from_str(&row.get::<_, String>(8)?).unwrap_or_default(),
    })
}

const KF_COLUMNS: &str = "kf_id, kf_account, nickname, kf_openid, headimg_version, kf_wx, invite_wx, \
     invite_expire_time, invite_state, online_status, accepted_case, created_at";

fn kf_from_row(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Kf> {
    let invite_wx: Option<String> = row.get(at + 6)?;
    let expire_time: Option<i64> = row.get(at + 7)?;
    let state: Option<String> = row.get(at + 8)?;
    let invitation = match (
        invite_wx,
        expire_time,
        state.as_deref().and_then(InviteState::parse),
    ) {
        (Some(invite_wx), Some(expire_time), Some(state)) => Some(Invitation {
            invite_wx,
            expire_time,
            state,
        }),
        _ => None,
    };
    Ok(Kf {
        kf_id: row.get(at)?,
        kf_account: row.get(at + 1)?,
        nickname: row.get(at + 2)?,
        kf_openid: row.get(at + 3)?,
        headimg_version: row.get(at + 4)?,
        kf_wx: row.get(at + 5)?,
        invitation,
        online_status: row.get(at + 9)?,
        accepted_case: row.get(at + 10)?,
        created_at: row.get(at + 11)?,
    })
}

fn select_kf(conn: &Connection, appid: &str, account: &str) -> StoreResult<Option<Kf>> {
    conn.prepare_cached(&format!(
        "SELECT {KF_COLUMNS} FROM kf_accounts WHERE appid = ?1 AND kf_account = ?2"
    ))
    .and_then(|mut stmt| {
        stmt.query_row(params![appid, account], |row| kf_from_row(row, 0))
            .optional()
    })
    .map_err(internal)
}

/// Deletes what an app or platform leaves outside its own rows: tokens, counters and
/// its request records (a new app with the same appid starts afresh).
fn forget_owner(conn: &Connection, owner: &str) -> StoreResult<()> {
    for sql in [
        "DELETE FROM tokens WHERE appid = ?1 OR component = ?1",
        "DELETE FROM counters WHERE owner = ?1",
        "DELETE FROM request_log WHERE appid = ?1",
        "DELETE FROM call_counts WHERE owner = ?1",
    ] {
        conn.prepare_cached(sql)
            .and_then(|mut stmt| stmt.execute([owner]))
            .map_err(internal)?;
    }
    Ok(())
}

/// Deletes the oldest recorded calls until the log is within its bounds on disk,
/// counting what went.
fn trim_log(conn: &Connection, limits: &LogLimits) -> StoreResult<()> {
    loop {
        let (rows, bytes) = stored_log(conn)?;
        let n = rules::calls_to_trim(rows, bytes, limits);
        if n == 0 {
            return Ok(());
        }
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        conn.prepare_cached(
            "DELETE FROM request_log WHERE rowid IN (SELECT rowid FROM request_log ORDER BY rowid LIMIT ?1)",
        )
        .and_then(|mut stmt| stmt.execute([n]))
        .map_err(internal)?;
        conn.prepare_cached("UPDATE log_usage SET dropped = dropped + ?1 WHERE id = 1")
            .and_then(|mut stmt| stmt.execute([n]))
            .map_err(internal)?;
    }
}

/// The recorded calls in the store and their bytes.
fn stored_log(conn: &Connection) -> StoreResult<(u64, u64)> {
    let (rows, bytes): (i64, i64) = conn
        .prepare_cached("SELECT rows, bytes FROM log_usage WHERE id = 1")
        .and_then(|mut stmt| stmt.query_row([], |row| Ok((row.get(0)?, row.get(1)?))))
        .map_err(internal)?;
    Ok((
        u64::try_from(rows).unwrap_or(0),
        u64::try_from(bytes).unwrap_or(0),
    ))
}

fn component_exists(conn: &Connection, component_appid: &str) -> StoreResult<bool> {
    conn.prepare_cached("SELECT 1 FROM components WHERE component_appid = ?1")
        .and_then(|mut stmt| stmt.exists([component_appid]))
        .map_err(internal)
}

fn app_exists(conn: &Connection, appid: &str) -> StoreResult<bool> {
    conn.prepare_cached("SELECT 1 FROM apps WHERE appid = ?1")
        .and_then(|mut stmt| stmt.exists([appid]))
        .map_err(internal)
}

fn count(conn: &Connection, sql: &str, key: &str) -> StoreResult<usize> {
    let count: i64 = conn
        .prepare_cached(sql)
        .and_then(|mut stmt| stmt.query_row([key], |row| row.get(0)))
        .map_err(internal)?;
    Ok(usize::try_from(count).unwrap_or(usize::MAX))
}

fn bound_count(conn: &Connection, wx: &str) -> StoreResult<usize> {
    count(
        conn,
        "SELECT COUNT(*) FROM kf_accounts WHERE kf_wx = ?1",
        wx,
    )
}

fn write_invitation(
    conn: &Connection,
    appid: &str,
    kf_id: i64,
    kf_wx: Option<&str>,
    invitation: Option<&Invitation>,
) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE kf_accounts SET kf_wx = ?3, invite_wx = ?4, invite_expire_time = ?5, invite_state = ?6 \
         WHERE appid = ?1 AND kf_id = ?2",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            appid,
            kf_id,
            kf_wx,
            invitation.map(|i| i.invite_wx.as_str()),
            invitation.map(|i| i.expire_time),
            invitation.map(|i| i.state.as_str()),
        ])
    })
    .map_err(internal)?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all, fields(appid = %app.appid))]
    async fn create_app(&self, app: App) -> StoreResult<Arc<App>> {
        let app = Arc::new(app);
        let stored = Arc::clone(&app);
        self.write(move |conn| {
            if component_exists(conn, &app.appid)? {
                return Err(StoreError::Conflict("the appid is a third-party platform's".to_owned()));
            }
            conn.prepare_cached(
                "INSERT INTO apps (appid, wechat_id, original_id, account_type, verified, new_kf_enabled, \
                 secret_hash, created_at, next_kf_id, settings) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    app.appid,
                    app.wechat_id,
                    app.original_id,
                    app.account_type.as_str(),
                    app.verified,
                    app.new_kf_enabled,
                    app.secret_hash,
                    app.created_at,
                    FIRST_KF_ID,
                    json_text(&app.settings),
                ])
            })
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict("the appid, WeChat ID or original id is taken".to_owned())
                } else {
                    internal(e)
                }
            })?;
            let app = Arc::clone(&app);
            Ok(((), move |cache: &mut Cache| {
                cache.apps.insert(app.appid.clone(), AppEntry::new(app));
            }))
        })
        .await?;
        Ok(stored)
    }

    async fn apps(&self) -> StoreResult<Vec<AppSummary>> {
        let mut apps: Vec<AppSummary> = self.read(|cache| {
            cache
                .apps
                .values()
                .map(|entry| AppSummary {
                    app: Arc::clone(&entry.app),
                    kf_count: entry.kfs.len(),
                })
                .collect()
        });
        apps.sort_by(|a, b| {
            (a.app.created_at, &a.app.appid).cmp(&(b.app.created_at, &b.app.appid))
        });
        Ok(apps)
    }

    async fn app(&self, appid: &str) -> StoreResult<Option<Arc<App>>> {
        Ok(self.read(|cache| cache.apps.get(appid).map(|entry| Arc::clone(&entry.app))))
    }

    #[tracing::instrument(level = "debug", skip(self, patch))]
    async fn update_app(&self, appid: &str, patch: AppPatch) -> StoreResult<Arc<App>> {
        let appid = appid.to_owned();
        self.write(move |conn| {
            // Read inside the write job: the writer is the only one changing apps, so the
            // row (and with it the secret hash) is current.
            let current = conn
                .prepare_cached(&format!("SELECT {APP_COLUMNS} FROM apps WHERE appid = ?1"))
                .and_then(|mut stmt| stmt.query_row([&appid], app_from_row).optional())
                .map_err(internal)?
                .ok_or(StoreError::NotFound)?;
            let (next, renamed) = rules::patched(&current, patch);
            if renamed {
                let has_accounts = conn
                    .prepare_cached("SELECT 1 FROM kf_accounts WHERE appid = ?1 LIMIT 1")
                    .and_then(|mut stmt| stmt.exists([&next.appid]))
                    .map_err(internal)?;
                if has_accounts {
                    return Err(rules::rename_refused());
                }
            }
            conn.prepare_cached(
                "UPDATE apps SET wechat_id = ?2, original_id = ?3, account_type = ?4, verified = ?5, \
                 new_kf_enabled = ?6, settings = ?7 WHERE appid = ?1",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    next.appid,
                    next.wechat_id,
                    next.original_id,
                    next.account_type.as_str(),
                    next.verified,
                    next.new_kf_enabled,
                    json_text(&next.settings),
                ])
            })
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict("the WeChat ID or original id is taken".to_owned())
                } else {
                    internal(e)
                }
            })?;
            let next = Arc::new(next);
            let cached = Arc::clone(&next);
            Ok((next, move |cache: &mut Cache| {
                if let Some(entry) = cache.apps.get_mut(&cached.appid) {
                    entry.app = cached;
                }
            }))
        })
        .await
    }

    async fn set_app_secret(&self, appid: &str, secret_hash: Digest) -> StoreResult<()> {
        let appid = appid.to_owned();
        self.write(move |conn| {
            let changed = conn
                .prepare_cached("UPDATE apps SET secret_hash = ?2 WHERE appid = ?1")
                .and_then(|mut stmt| stmt.execute(params![appid, secret_hash]))
                .map_err(internal)?;
            if changed == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(((), move |cache: &mut Cache| {
                if let Some(entry) = cache.apps.get_mut(&appid) {
                    Arc::make_mut(&mut entry.app).secret_hash = secret_hash;
                }
            }))
        })
        .await
    }

    async fn delete_app(&self, appid: &str) -> StoreResult<()> {
        let owner = appid.to_owned();
        let appid = appid.to_owned();
        self.write(move |conn| {
            let changed = conn
                .prepare_cached("DELETE FROM apps WHERE appid = ?1")
                .and_then(|mut stmt| stmt.execute([&appid]))
                .map_err(internal)?;
            if changed == 0 {
                return Err(StoreError::NotFound);
            }
            forget_owner(conn, &appid)?;
            Ok(((), move |cache: &mut Cache| cache.remove_owner(&appid)))
        })
        .await?;
        self.forget_in_memory(&owner);
        Ok(())
    }

    async fn issue_token(
        &self,
        token: TokenRecord,
        hash: Digest,
        now: i64,
        grace_secs: i64,
    ) -> StoreResult<()> {
        self.insert_token(token, hash, None, now, grace_secs, None)
            .await
    }

    async fn token(&self, hash: &Digest) -> StoreResult<Option<TokenRecord>> {
        Ok(self.read(|cache| cache.tokens.get(hash).cloned()))
    }

    #[tracing::instrument(level = "debug", skip(self, kf), fields(kf_account = %kf.kf_account))]
    async fn add_kf(&self, appid: &str, kf: NewKf) -> StoreResult<Kf> {
        let appid = appid.to_owned();
        self.write(move |conn| {
            let next_id: Option<i64> = conn
                .prepare_cached("SELECT next_kf_id FROM apps WHERE appid = ?1")
                .and_then(|mut stmt| stmt.query_row([&appid], |row| row.get(0)).optional())
                .map_err(internal)?;
            let Some(kf_id) = next_id else { return Err(StoreError::NotFound) };
            let taken = select_kf(conn, &appid, kf.kf_account.as_str())?.is_some();
            rules::may_add_kf(taken, count(conn, "SELECT COUNT(*) FROM kf_accounts WHERE appid = ?1", &appid)?)?;
            conn.prepare_cached(
                "INSERT INTO kf_accounts (appid, kf_id, kf_account, nickname, kf_openid, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![appid, kf_id, kf.kf_account.as_str(), kf.nickname.as_str(), kf.kf_openid, kf.created_at])
            })
            .map_err(|e| {
                if is_unique_violation(&e) { StoreError::Rejected(ErrCode::KfAccountExists) } else { internal(e) }
            })?;
            conn.prepare_cached("UPDATE apps SET next_kf_id = ?2 WHERE appid = ?1")
                .and_then(|mut stmt| stmt.execute(params![appid, kf_id + 1]))
                .map_err(internal)?;
            let record = rules::new_kf_record(kf_id, kf);
            let cached = record.clone();
            Ok((record, move |cache: &mut Cache| {
                if let Some(list) = cache.kfs_mut(&appid) {
                    list.push(cached);
                }
            }))
        })
        .await
    }

    async fn update_kf(
        &self,
        appid: &str,
        account: &KfAccount,
        nickname: &Nickname,
    ) -> StoreResult<()> {
        let (appid, account, nickname) = (
            appid.to_owned(),
            account.as_str().to_owned(),
            nickname.as_str().to_owned(),
        );
        // The hot path of a busy server: one statement, no savepoint, and no RETURNING
        // (SQLite gathers returned rows in a temporary table).
        self.write_one(move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE kf_accounts SET nickname = ?3 WHERE appid = ?1 AND kf_account = ?2",
                )
                .and_then(|mut stmt| stmt.execute(params![appid, account, nickname]))
                .map_err(internal)?;
            if changed == 0 {
                return Err(StoreError::Rejected(ErrCode::InvalidKfAccount));
            }
            Ok(((), move |cache: &mut Cache| {
                if let Some(kf) = cache.kf_by_account_mut(&appid, &account) {
                    kf.nickname = nickname;
                }
            }))
        })
        .await
    }

    async fn delete_kf(&self, appid: &str, target: &Target) -> StoreResult<()> {
        let appid = appid.to_owned();
        let target = target.clone();
        self.write(move |conn| {
            let (sql, key) = match &target {
                Target::Account(account) => (
                    "DELETE FROM kf_accounts WHERE appid = ?1 AND kf_account = ?2 RETURNING kf_id",
                    account.as_str(),
                ),
                Target::OpenId(openid) => (
                    "DELETE FROM kf_accounts WHERE appid = ?1 AND kf_openid = ?2 RETURNING kf_id",
                    openid.as_str(),
                ),
            };
            let kf_id: Option<i64> = conn
                .prepare_cached(sql)
                .and_then(|mut stmt| {
                    stmt.query_row(params![appid, key], |row| row.get(0))
                        .optional()
                })
                .map_err(internal)?;
            let Some(kf_id) = kf_id else {
                return Err(StoreError::Rejected(ErrCode::InvalidKfAccount));
            };
            Ok(((), move |cache: &mut Cache| {
                if let Some(list) = cache.kfs_mut(&appid) {
                    list.retain(|kf| kf.kf_id != kf_id);
                }
            }))
        })
        .await
    }

    async fn kfs_versioned(&self, appid: &str) -> StoreResult<(Arc<Vec<Kf>>, Option<u64>)> {
        self.read(|cache| {
            cache
                .apps
                .get(appid)
                .map(|entry| (Arc::clone(&entry.kfs), Some(entry.version)))
        })
        .ok_or(StoreError::NotFound)
    }

    async fn kfs(&self, appid: &str) -> StoreResult<Arc<Vec<Kf>>> {
        self.read(|cache| cache.apps.get(appid).map(|entry| Arc::clone(&entry.kfs)))
            .ok_or(StoreError::NotFound)
    }

    async fn set_kf_headimg(
        &self,
        appid: &str,
        account: &KfAccount,
        jpeg: Bytes,
    ) -> StoreResult<i64> {
        let (appid, account) = (appid.to_owned(), account.as_str().to_owned());
        self.write(move |conn| {
            let Some(kf) = select_kf(conn, &appid, &account)? else {
                return Err(StoreError::Rejected(ErrCode::InvalidKfAccount));
            };
            let version = kf.headimg_version.unwrap_or(0) + 1;
            conn.prepare_cached(
                "INSERT INTO kf_headimgs (appid, kf_id, version, jpeg) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (appid, kf_id) DO UPDATE SET version = excluded.version, jpeg = excluded.jpeg",
            )
            .and_then(|mut stmt| stmt.execute(params![appid, kf.kf_id, version, &jpeg[..]]))
            .map_err(internal)?;
            conn.prepare_cached("UPDATE kf_accounts SET headimg_version = ?3 WHERE appid = ?1 AND kf_id = ?2")
                .and_then(|mut stmt| stmt.execute(params![appid, kf.kf_id, version]))
                .map_err(internal)?;
            Ok((version, move |cache: &mut Cache| {
                if let Some(kf) = cache.kf_mut(&appid, kf.kf_id) {
                    kf.headimg_version = Some(version);
                }
            }))
        })
        .await
    }

    async fn kf_headimg(
        &self,
        appid: &str,
        kf_id: i64,
        version: i64,
    ) -> StoreResult<Option<Bytes>> {
        let (images, appid) = (Arc::clone(&self.images), appid.to_owned());
        tokio::task::spawn_blocking(move || {
            let conn = images
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let jpeg: Option<Vec<u8>> = conn
                .prepare_cached(
                    "SELECT jpeg FROM kf_headimgs WHERE appid = ?1 AND kf_id = ?2 AND version = ?3",
                )
                .and_then(|mut stmt| {
                    stmt.query_row(params![appid, kf_id, version], |row| row.get(0))
                        .optional()
                })
                .map_err(internal)?;
            Ok(jpeg.map(Bytes::from))
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?
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
        let (appid, account, wx) = (
            appid.to_owned(),
            account.as_str().to_owned(),
            invite_wx.as_str().to_owned(),
        );
        self.write(move |conn| {
            let Some(kf) = select_kf(conn, &appid, &account)? else {
                return Err(StoreError::Rejected(ErrCode::InvalidKfAccount));
            };
            let mut others = conn
                .prepare_cached(&format!(
                    "SELECT {KF_COLUMNS} FROM kf_accounts WHERE appid = ?1 AND (kf_wx = ?2 OR invite_wx = ?2)"
                ))
                .map_err(internal)?;
            let others = others
                .query_map(params![appid, wx], |row| kf_from_row(row, 0))
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<Kf>>>())
                .map_err(internal)?;
            let bound = bound_count(conn, &wx)?;
            let invitation = rules::invite(&kf, &others, bound, &wx, now, expire_time, max_bound)
                .map_err(StoreError::Rejected)?;
            write_invitation(conn, &appid, kf.kf_id, None, Some(&invitation))?;
            Ok(((), move |cache: &mut Cache| {
                if let Some(kf) = cache.kf_mut(&appid, kf.kf_id) {
                    kf.invitation = Some(invitation);
                }
            }))
        })
        .await
    }

    async fn answer_invitation(
        &self,
        appid: &str,
        account: &KfAccount,
        action: InvitationAction,
        now: i64,
        max_bound: usize,
    ) -> StoreResult<Kf> {
        let (appid, account) = (appid.to_owned(), account.as_str().to_owned());
        self.write(move |conn| {
            if !app_exists(conn, &appid)? {
                return Err(StoreError::NotFound);
            }
            let Some(kf) = select_kf(conn, &appid, &account)? else {
                return Err(StoreError::NotFound);
            };
            let bound = bound_count(conn, rules::pending_invitee(&kf, now)?)?;
            let kf = rules::answered(kf, action, now, bound, max_bound)?;
            write_invitation(
                conn,
                &appid,
                kf.kf_id,
                kf.kf_wx.as_deref(),
                kf.invitation.as_ref(),
            )?;
            let cached = kf.clone();
            Ok((kf, move |cache: &mut Cache| {
                if let Some(slot) = cache.kf_mut(&appid, cached.kf_id) {
                    *slot = cached;
                }
            }))
        })
        .await
    }

    async fn set_kf_online(
        &self,
        appid: &str,
        account: &KfAccount,
        status: i64,
        accepted_case: i64,
    ) -> StoreResult<Kf> {
        let (appid, account) = (appid.to_owned(), account.as_str().to_owned());
        self.write(move |conn| {
            let Some(mut kf) = select_kf(conn, &appid, &account)? else { return Err(StoreError::NotFound) };
            conn.prepare_cached(
                "UPDATE kf_accounts SET online_status = ?3, accepted_case = ?4 WHERE appid = ?1 AND kf_id = ?2",
            )
            .and_then(|mut stmt| stmt.execute(params![appid, kf.kf_id, status, accepted_case]))
            .map_err(internal)?;
            kf.online_status = status;
            kf.accepted_case = accepted_case;
            let cached = kf.clone();
            Ok((kf, move |cache: &mut Cache| {
                if let Some(slot) = cache.kf_mut(&appid, cached.kf_id) {
                    *slot = cached;
                }
            }))
        })
        .await
    }

    async fn current_token(
        &self,
        owner: &str,
        channel: TokenChannel,
    ) -> StoreResult<Option<CurrentToken>> {
        Ok(self.read(|cache| {
            let hash = *cache
                .current_tokens
                .get(&(Arc::from(owner), channel, None))?;
            let record = cache.tokens.get(&hash)?.clone();
            // A token superseded by hand is no family's current one.
            record.superseded_at.is_none().then(|| CurrentToken {
                hash,
                value: cache.token_values.get(&hash).cloned(),
                record,
            })
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
        self.insert_token(token, hash, Some(value), now, grace_secs, Some(replaces))
            .await
    }

    async fn set_token_times(
        &self,
        hash: &Digest,
        superseded_at: Option<i64>,
        expires_at: Option<i64>,
    ) -> StoreResult<()> {
        let hash = *hash;
        self.write(move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE tokens SET superseded_at = COALESCE(?2, superseded_at), \
                     expires_at = COALESCE(?3, expires_at) WHERE hash = ?1",
                )
                .and_then(|mut stmt| stmt.execute(params![hash, superseded_at, expires_at]))
                .map_err(internal)?;
            if changed == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(((), move |cache: &mut Cache| {
                if let Some(record) = cache.tokens.get_mut(&hash) {
                    record.superseded_at = superseded_at.or(record.superseded_at);
                    record.expires_at = expires_at.unwrap_or(record.expires_at);
                }
            }))
        })
        .await
    }

    async fn consume(&self, counters: &[(CounterKey, u64)]) -> StoreResult<Result<(), usize>> {
        let mut map = self.counters();
        if let Some(full) = counters
            .iter()
            .position(|(key, limit)| map.get(key).map_or(0, |c| c.count) >= *limit)
        {
            return Ok(Err(full));
        }
        for (key, _) in counters {
            // Looked up by reference: the key is copied only for a counter's first call.
            match map.get_mut(key) {
                Some(counter) => {
                    counter.count += 1;
                    counter.dirty = true;
                }
                None => {
                    map.insert(
                        key.clone(),
                        Counter {
                            count: 1,
                            dirty: true,
                        },
                    );
                }
            }
        }
        Ok(Ok(()))
    }

    async fn counter(&self, key: &CounterKey) -> StoreResult<u64> {
        Ok(self.counters().get(key).map_or(0, |c| c.count))
    }

    async fn reset_counters(&self, owner: &str, names: &[String]) -> StoreResult<()> {
        {
            let mut map = self.counters();
            for (key, counter) in map.iter_mut() {
                if key.owner == owner && names.contains(&key.name) {
                    counter.count = 0;
                    counter.dirty = true;
                }
            }
        }
        let (owner, names) = (owner.to_owned(), names.to_vec());
        // Durable before the answer, like any acknowledged change.
        self.write(move |conn| {
            for name in &names {
                conn.prepare_cached("UPDATE counters SET count = 0 WHERE owner = ?1 AND name = ?2")
                    .and_then(|mut stmt| stmt.execute(params![owner, name]))
                    .map_err(internal)?;
            }
            Ok(((), |_: &mut Cache| {}))
        })
        .await
    }

    fn log_request(&self, call: Arc<RecordedCall>) {
        self.log.push(call);
    }

    async fn logged_request(&self, rid: &str) -> StoreResult<Option<LoggedRequest>> {
        if let Some(entry) = self.log.find(rid) {
            return Ok(Some(entry));
        }
        // Written entries leave the waiting list only after their commit, so one of the
        // two places has it.
        let (reader, rid) = (Arc::clone(&self.images), rid.to_owned());
        tokio::task::spawn_blocking(move || {
            let conn = reader
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            conn.prepare_cached(&format!(
                "SELECT {LOG_COLUMNS} FROM request_log WHERE rid = ?1"
            ))
            .and_then(|mut stmt| stmt.query_row([&rid], logged_from_row).optional())
            .map_err(internal)
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?
    }

    async fn logged_requests(
        &self,
        appid: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<LoggedRequest>> {
        let entries = self.log.newest(appid, limit);
        let (reader, owner) = (Arc::clone(&self.images), appid.map(str::to_owned));
        let sql_limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let written = tokio::task::spawn_blocking(move || {
            let conn = reader
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            conn.prepare_cached(&format!(
                "SELECT {LOG_COLUMNS} FROM request_log WHERE ?1 IS NULL OR appid = ?1 \
                 ORDER BY invoke_time DESC, rowid DESC LIMIT ?2"
            ))
            .and_then(|mut stmt| {
                stmt.query_map(params![owner, sql_limit], logged_from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(internal)
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))??;
        Ok(logbuf::merge(entries, written, limit))
    }

    async fn call_counts(&self, appid: Option<&str>, since: i64) -> StoreResult<Vec<CallCount>> {
        let since_hour = logbuf::hour_of(since);
        let unwritten = self.log.unwritten_counts(appid, since_hour);
        let (reader, owner) = (Arc::clone(&self.images), appid.map(str::to_owned));
        let written = tokio::task::spawn_blocking(move || {
            let conn = reader
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            conn.prepare_cached(
                "SELECT owner, path, errcode, hour, count FROM call_counts \
                 WHERE hour >= ?1 AND (?2 IS NULL OR owner = ?2)",
            )
            .and_then(|mut stmt| {
                stmt.query_map(params![since_hour, owner], |row| {
                    let owner: String = row.get(0)?;
                    Ok(CallCount {
                        appid: (!owner.is_empty()).then_some(owner),
                        path: row.get(1)?,
                        errcode: row.get(2)?,
                        hour: row.get(3)?,
                        count: u64::try_from(row.get::<_, i64>(4)?).unwrap_or(0),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(internal)
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))??;
        Ok(logbuf::sum_counts(written.into_iter().chain(unwritten)))
    }

    async fn log_usage(&self) -> StoreResult<LogUsage> {
        let (memory_calls, memory_bytes, dropped_in_memory) = self.log.usage();
        let reader = Arc::clone(&self.images);
        let (rows, bytes, dropped) = tokio::task::spawn_blocking(move || {
            let conn = reader
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            conn.prepare_cached("SELECT rows, bytes, dropped FROM log_usage WHERE id = 1")
                .and_then(|mut stmt| {
                    stmt.query_row([], |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, i64>(1)?,
                            row.get::<_, i64>(2)?,
                        ))
                    })
                })
                .map_err(internal)
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))??;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(LogUsage {
            rows: count(rows),
            bytes: count(bytes),
            dropped_from_store: count(dropped),
            dropped_in_memory,
            memory_calls,
            memory_bytes,
        })
    }

    async fn maintain(&self, now: i64, log_before: i64) -> StoreResult<()> {
        let _one_at_a_time = self.maintaining.lock().await;
        let dirty: Vec<(CounterKey, u64)> = {
            let mut map = self.counters();
            map.retain(|key, counter| counter.dirty || !rules::counter_is_stale(key.window, now));
            map.iter_mut()
                .filter(|(_, counter)| counter.dirty)
                .map(|(key, counter)| {
                    counter.dirty = false;
                    (key.clone(), counter.count)
                })
                .collect()
        };
        let mut flush = self.log.flush(log_before);
        let log = std::mem::take(&mut flush.entries);
        let counts = std::mem::take(&mut flush.counts);
        let limits = self.log.limits();
        let purge = self.purge.due(now);
        let [oldest_minute, oldest_day, oldest_month] = rules::oldest_counter_windows(now);
        let result = self
            .write(move |conn| {
                for entry in &log {
                    conn.prepare_cached(&format!(
                        "INSERT INTO request_log ({LOG_COLUMNS}, bytes) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT (rid) DO NOTHING"
                    ))
                    .and_then(|mut stmt| {
                        stmt.execute(params![
                            entry.rid,
                            entry.appid,
                            entry.method,
                            entry.path,
                            entry.errcode,
                            entry.invoke_time,
                            entry.cost_ms,
                            entry.request_url,
                            entry.request_body,
                            entry.response_body,
                            entry.client_ip,
                            i64::try_from(entry.row_bytes()).unwrap_or(i64::MAX),
                        ])
                    })
                    .map_err(internal)?;
                }
                for count in &counts {
                    conn.prepare_cached(
                        "INSERT INTO call_counts (owner, path, errcode, hour, count) VALUES (?1, ?2, ?3, ?4, ?5) \
                         ON CONFLICT (owner, path, errcode, hour) DO UPDATE SET count = count + excluded.count",
                    )
                    .and_then(|mut stmt| {
                        stmt.execute(params![
                            count.appid.as_deref().unwrap_or(""),
                            count.path,
                            count.errcode,
                            count.hour,
                            i64::try_from(count.count).unwrap_or(i64::MAX),
                        ])
                    })
                    .map_err(internal)?;
                }
                for (key, count) in &dirty {
                    conn.prepare_cached(
                        "INSERT INTO counters (owner, name, kind, window, count, updated_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                         ON CONFLICT (owner, name, kind, window) DO UPDATE SET count = excluded.count, \
                         updated_at = excluded.updated_at",
                    )
                    .and_then(|mut stmt| {
                        stmt.execute(params![
                            key.owner,
                            key.name,
                            key.window.kind(),
                            key.window.number(),
                            i64::try_from(*count).unwrap_or(i64::MAX),
                            now
                        ])
                    })
                    .map_err(internal)?;
                }
                conn.prepare_cached(
                    "DELETE FROM counters WHERE (kind = 'minute' AND window < ?1) \
                     OR (kind = 'day' AND window < ?2) OR (kind = 'month' AND window < ?3)",
                )
                .and_then(|mut stmt| {
                    stmt.execute([oldest_minute.number(), oldest_day.number(), oldest_month.number()])
                })
                .map_err(internal)?;
                conn.prepare_cached("DELETE FROM request_log WHERE invoke_time < ?1")
                    .and_then(|mut stmt| stmt.execute([log_before]))
                    .map_err(internal)?;
                conn.prepare_cached("DELETE FROM call_counts WHERE hour < ?1")
                    .and_then(|mut stmt| stmt.execute([logbuf::hour_of(log_before)]))
                    .map_err(internal)?;
                trim_log(conn, &limits)?;
                if let Some(purge) = purge {
                    conn.prepare_cached("DELETE FROM component_tickets WHERE expires_at < ?1")
                        .and_then(|mut stmt| stmt.execute([purge.tickets]))
                        .map_err(internal)?;
                    conn.prepare_cached("DELETE FROM tokens WHERE expires_at < ?1")
                        .and_then(|mut stmt| stmt.execute([purge.tokens]))
                        .map_err(internal)?;
                }
                Ok(((), move |cache: &mut Cache| {
                    if let Some(purge) = purge {
                        cache.tickets.retain(|_, (_, expires_at)| *expires_at >= purge.tickets);
                        cache.purge_tokens(purge.tokens);
                    }
                }))
            })
            .await;
        if result.is_ok() {
            self.log.written(&flush);
        }
        if result.is_err() {
            if purge.is_some() {
                self.purge.missed();
            }
            // Not persisted: keep the counts dirty for the next round.
            let mut map = self.counters();
            for counter in map.values_mut() {
                counter.dirty = true;
            }
        }
        result
    }

    async fn clock_offset(&self) -> StoreResult<i64> {
        Ok(self.clock_offset.load(Ordering::Relaxed))
    }

    async fn advance_clock_offset(&self, by: i64, at_least: i64, at_most: i64) -> StoreResult<i64> {
        let stored = Arc::clone(&self.clock_offset);
        self.write(move |conn| {
            let offset: i64 = conn
                .prepare_cached(
                    "INSERT INTO clock (id, offset_secs) VALUES (1, min(max(?1, ?2), ?3)) ON CONFLICT (id) \
                     DO UPDATE SET offset_secs = max(offset_secs, min(max(offset_secs + ?1, ?2), ?3)) \
                     RETURNING offset_secs",
                )
                .and_then(|mut stmt| stmt.query_row(params![by, at_least, at_most], |row| row.get(0)))
                .map_err(internal)?;
            Ok((offset, move |_: &mut Cache| {
                stored.fetch_max(offset, Ordering::Relaxed);
            }))
        })
        .await
    }

    async fn snapshot(&self) -> StoreResult<Snapshot> {
        // Inside a write job: no change can land halfway through.
        let cache = Arc::clone(&self.cache);
        self.write(move |conn| {
            let cache = cache
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut next_ids = conn
                .prepare("SELECT appid, next_kf_id FROM apps")
                .map_err(internal)?;
            let next_ids: HashMap<String, i64> = next_ids
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                .and_then(|rows| rows.collect())
                .map_err(internal)?;
            let mut images = conn
                .prepare("SELECT appid, kf_id, jpeg FROM kf_headimgs")
                .map_err(internal)?;
            let mut images: HashMap<(String, i64), Vec<u8>> = images
                .query_map([], |row| Ok(((row.get(0)?, row.get(1)?), row.get(2)?)))
                .and_then(|rows| rows.collect())
                .map_err(internal)?;
            let apps: Vec<AppSnapshot> = cache
                .apps
                .values()
                .map(|entry| AppSnapshot {
                    app: (*entry.app).clone(),
                    next_kf_id: next_ids
                        .get(&entry.app.appid)
                        .copied()
                        .unwrap_or(FIRST_KF_ID),
                    kf_accounts: entry
                        .kfs
                        .iter()
                        .map(|kf| KfSnapshot {
                            headimg: images
                                .remove(&(entry.app.appid.clone(), kf.kf_id))
                                .map(Bytes::from),
                            kf: kf.clone(),
                        })
                        .collect(),
                })
                .collect();
            let components: Vec<Component> = cache.components.values().cloned().collect();
            let authorizations: Vec<Authorization> =
                cache.authorizations.values().cloned().collect();
            let mut snapshot = Snapshot {
                version: Snapshot::VERSION,
                apps,
                components,
                authorizations,
            };
            rules::in_snapshot_order(&mut snapshot);
            Ok((snapshot, |_: &mut Cache| {}))
        })
        .await
    }

    async fn restore(&self, snapshot: Snapshot) -> StoreResult<()> {
        snapshot.check()?;
        self.write(move |conn| {
            let held: i64 = conn
                .query_row("SELECT (SELECT COUNT(*) FROM apps) + (SELECT COUNT(*) FROM components)", [], |row| row.get(0))
                .map_err(internal)?;
            if held > 0 {
                return Err(StoreError::Conflict("the store is not empty".to_owned()));
            }
            for entry in &snapshot.apps {
                let app = &entry.app;
                conn.prepare_cached(
                    "INSERT INTO apps (appid, wechat_id, original_id, account_type, verified, new_kf_enabled, \
                     secret_hash, created_at, next_kf_id, settings) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        app.appid, app.wechat_id, app.original_id, app.account_type.as_str(), app.verified,
                        app.new_kf_enabled, app.secret_hash, app.created_at, entry.next_kf_id, json_text(&app.settings),
                    ])
                })
                .map_err(|e| restore_error(e, &app.appid))?;
                for account in &entry.kf_accounts {
                    let kf = &account.kf;
                    let invitation = kf.invitation.as_ref();
                    conn.prepare_cached(&format!(
                        "INSERT INTO kf_accounts (appid, {KF_COLUMNS}) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
                    ))
                    .and_then(|mut stmt| {
                        stmt.execute(params![
                            app.appid, kf.kf_id, kf.kf_account, kf.nickname, kf.kf_openid, kf.headimg_version,
                            kf.kf_wx, invitation.map(|i| i.invite_wx.as_str()), invitation.map(|i| i.expire_time),
                            invitation.map(|i| i.state.as_str()), kf.online_status, kf.accepted_case, kf.created_at,
                        ])
                    })
                    .map_err(|e| restore_error(e, &kf.kf_account))?;
                    if let (Some(jpeg), Some(version)) = (&account.headimg, kf.headimg_version) {
                        conn.prepare_cached("INSERT INTO kf_headimgs (appid, kf_id, version, jpeg) VALUES (?1, ?2, ?3, ?4)")
                            .and_then(|mut stmt| stmt.execute(params![app.appid, kf.kf_id, version, &jpeg[..]]))
                            .map_err(internal)?;
                    }
                }
            }
            for component in &snapshot.components {
                conn.prepare_cached(
                    "INSERT INTO components (component_appid, secret_hash, ip_whitelist, created_at) VALUES (?1, ?2, ?3, ?4)",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        component.component_appid, component.secret_hash,
                        json_text(&component.ip_whitelist), component.created_at
                    ])
                })
                .map_err(|e| restore_error(e, &component.component_appid))?;
            }
            for auth in &snapshot.authorizations {
                conn.prepare_cached(&format!("INSERT INTO authorizations ({AUTH_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"))
                    .and_then(|mut stmt| {
                        stmt.execute(params![
                            auth.component_appid, auth.appid, json_text(&auth.funcscopes),
                            auth.refresh_hash, json_text(&auth.previous),
                        ])
                    })
                    .map_err(|e| restore_error(e, &auth.appid))?;
            }
            let fresh = load(conn).map_err(internal)?;
            Ok(((), move |cache: &mut Cache| *cache = fresh))
        })
        .await
    }

    async fn create_component(&self, component: Component) -> StoreResult<()> {
        self.write(move |conn| {
            if app_exists(conn, &component.component_appid)? {
                return Err(StoreError::Conflict("the appid is an official account's".to_owned()));
            }
            conn.prepare_cached(
                "INSERT INTO components (component_appid, secret_hash, ip_whitelist, created_at) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    component.component_appid,
                    component.secret_hash,
                    json_text(&component.ip_whitelist),
                    component.created_at
                ])
            })
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict("the component_appid is taken".to_owned())
                } else {
                    internal(e)
                }
            })?;
            Ok(((), move |cache: &mut Cache| {
                cache.components.insert(component.component_appid.clone(), component);
            }))
        })
        .await
    }

    async fn components(&self) -> StoreResult<Vec<(Component, Vec<Authorization>)>> {
        let mut list: Vec<(Component, Vec<Authorization>)> = self.read(|cache| {
            cache
                .components
                .values()
                .map(|component| {
                    let mut auths: Vec<Authorization> = cache
                        .authorizations
                        .values()
                        .filter(|a| a.component_appid == component.component_appid)
                        .cloned()
                        .collect();
                    auths.sort_by(|a, b| a.appid.cmp(&b.appid));
                    (component.clone(), auths)
                })
                .collect()
        });
        list.sort_by(|a, b| {
            (a.0.created_at, &a.0.component_appid).cmp(&(b.0.created_at, &b.0.component_appid))
        });
        Ok(list)
    }

    async fn component(&self, component_appid: &str) -> StoreResult<Option<Component>> {
        Ok(self.read(|cache| cache.components.get(component_appid).cloned()))
    }

    async fn delete_component(&self, component_appid: &str) -> StoreResult<()> {
        let owner = component_appid.to_owned();
        let component_appid = component_appid.to_owned();
        self.write(move |conn| {
            let changed = conn
                .prepare_cached("DELETE FROM components WHERE component_appid = ?1")
                .and_then(|mut stmt| stmt.execute([&component_appid]))
                .map_err(internal)?;
            if changed == 0 {
                return Err(StoreError::NotFound);
            }
            forget_owner(conn, &component_appid)?;
            Ok(((), move |cache: &mut Cache| {
                cache.remove_owner(&component_appid)
            }))
        })
        .await?;
        self.forget_in_memory(&owner);
        Ok(())
    }

    async fn add_ticket(
        &self,
        component_appid: &str,
        hash: Digest,
        expires_at: i64,
    ) -> StoreResult<()> {
        let component_appid = component_appid.to_owned();
        self.write(move |conn| {
            if !component_exists(conn, &component_appid)? {
                return Err(StoreError::NotFound);
            }
            conn.prepare_cached("INSERT INTO component_tickets (hash, component_appid, expires_at) VALUES (?1, ?2, ?3)")
                .and_then(|mut stmt| stmt.execute(params![hash, component_appid, expires_at]))
                .map_err(internal)?;
            Ok(((), move |cache: &mut Cache| {
                cache.tickets.insert(hash, (component_appid, expires_at));
            }))
        })
        .await
    }

    async fn ticket(&self, hash: &Digest) -> StoreResult<Option<(String, i64)>> {
        Ok(self.read(|cache| cache.tickets.get(hash).cloned()))
    }

    async fn authorize(&self, authorization: Authorization) -> StoreResult<()> {
        self.write(move |conn| {
            if !component_exists(conn, &authorization.component_appid)?
                || !app_exists(conn, &authorization.appid)?
            {
                return Err(StoreError::NotFound);
            }
            conn.prepare_cached(&format!(
                "INSERT OR REPLACE INTO authorizations ({AUTH_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"
            ))
            .and_then(|mut stmt| {
                stmt.execute(params![
                    authorization.component_appid,
                    authorization.appid,
                    json_text(&authorization.funcscopes),
                    authorization.refresh_hash,
                    json_text(&authorization.previous),
                ])
            })
            .map_err(internal)?;
            Ok(((), move |cache: &mut Cache| {
                let key = (
                    authorization.component_appid.clone(),
                    authorization.appid.clone(),
                );
                cache.authorizations.insert(key, authorization);
            }))
        })
        .await
    }

    async fn authorization(
        &self,
        component_appid: &str,
        appid: &str,
    ) -> StoreResult<Option<Authorization>> {
        Ok(self.read(|cache| {
            cache
                .authorizations
                .get(&(component_appid.to_owned(), appid.to_owned()))
                .cloned()
        }))
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
        let (component_appid, appid) = (component_appid.to_owned(), appid.to_owned());
        self.write(move |conn| {
            let current = conn
                .prepare_cached(&format!(
                    "SELECT {AUTH_COLUMNS} FROM authorizations WHERE component_appid = ?1 AND appid = ?2"
                ))
                .and_then(|mut stmt| stmt.query_row(params![component_appid, appid], authorization_from_row).optional())
                .map_err(internal)?;
            let Some(mut auth) = current else { return Err(StoreError::Rejected(ErrCode::RefreshTokenInvalid)) };
            rules::rotate(&mut auth, presented, next, now, overlap_secs)?;
            conn.prepare_cached(
                "UPDATE authorizations SET refresh_hash = ?3, previous = ?4 WHERE component_appid = ?1 AND appid = ?2",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![auth.component_appid, auth.appid, auth.refresh_hash, json_text(&auth.previous)])
            })
            .map_err(internal)?;
            Ok(((), move |cache: &mut Cache| {
                cache.authorizations.insert((auth.component_appid.clone(), auth.appid.clone()), auth);
            }))
        })
        .await
    }
}
