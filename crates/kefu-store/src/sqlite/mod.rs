//! The embedded SQLite store: one file, WAL journal, a single writer with group commit,
//! and an in-memory image of the data serving every read.
//!
//! Reads (token checks, lists) never touch the disk. Writes queue to the writer, which
//! folds whatever is waiting into one transaction and answers each request only after
//! that transaction is as durable as [`Durability`] says (`synchronous=FULL` by
//! default); see the `writer` module for where it runs. A lock file beside the database
//! keeps a second process from opening it, which is what makes the in-memory image
//! exact.

mod apps;
mod cache;
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
mod writer;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use bytes::Bytes;
use kefu_api::admin::AppPatch;
use kefu_api::endpoints::kf_add::FIRST_KF_ID;
use kefu_api::endpoints::kf_del::Target;
use kefu_api::{ErrCode, KfAccount, Nickname};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use self::cache::{AppEntry, Cache};
use self::rows::json_text;
use self::writer::{Scope, Writer};
use crate::columns;
use crate::columns::{APP_COLUMNS, AUTH_COLUMNS, COMPONENT_COLUMNS, KF_COLUMNS, LOG_COLUMNS};
use crate::logbuf::{self, LogBuffer};
use crate::model::{
    App, AppSnapshot, AppSummary, Authorization, CallCount, Component, CounterKey, CurrentToken,
    Digest, Invitation, InvitationAnswer, Kf, KfSnapshot, LogLimits, LogUsage, LoggedRequest, Mint,
    NewInvitation, NewKf, RecordedCall, Rotation, Snapshot, StableMint, TokenChannel, TokenRecord,
    Window,
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
    /// Told of every batch the writer commits.
    pub commits: Option<Arc<dyn crate::CommitObserver>>,
}

impl SqliteOptions {
    /// Options for a file with the default durability and request log bounds.
    pub fn new(path: impl Into<PathBuf>) -> SqliteOptions {
        SqliteOptions {
            path: path.into(),
            durability: Durability::Full,
            log: LogLimits::default(),
            commits: None,
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
    matches!(
        error,
        rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::ConstraintViolation
    )
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

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// The writing connection's `synchronous` setting as SQLite reports it (2 is FULL,
    /// 1 NORMAL): what every commit actually waits for, whatever was asked (feature
    /// `test-support`).
    #[cfg(feature = "test-support")]
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

        let writer = Writer::start(
            conn,
            &options.path,
            Arc::clone(&cache),
            options.durability,
            options.commits.clone(),
        )?;
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

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Finishes the queued writes and closes the connection while the lock is held.
        drop(self.writer.take());
    }
}

fn load(conn: &Connection) -> rusqlite::Result<Cache> {
    let mut cache = Cache::default();
    let mut apps = conn.prepare(&format!("SELECT {APP_COLUMNS} FROM apps"))?;
    let rows = apps.query_map([], |row| columns::app(row, 0))?;
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
        let kf = columns::kf(row, 1)?;
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
    for auth in auths.query_map([], |row| columns::authorization(row))? {
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

/// A counter in memory; `dirty` until persisted by [`Store::maintain`](crate::Store::maintain).
#[derive(Debug, Clone, Copy)]
struct Counter {
    count: u64,
    dirty: bool,
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
