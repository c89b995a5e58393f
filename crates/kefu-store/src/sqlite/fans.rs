//! The SQLite store's fans ([`FanStore`]), and how every change to a fan is written:
//! read under the writer, decided by `rules::conversation`, written with its records
//! and the accounts' session counts in the same transaction.

use kefu_api::admin::{DeliveryWindows, FanAction, MAX_FANS_PER_APP};

use super::*;
use crate::columns::{FAN_COLUMNS, FanValues};
use crate::model::{Fan, FanChange, FanSession};
use crate::roles::*;
use crate::rules::conversation::{self, Outcome, found};

#[async_trait]
impl FanStore for SqliteStore {
    async fn create_fan(&self, appid: &str, fan: Fan) -> StoreResult<Fan> {
        let appid = appid.to_owned();
        self.write(move |conn| {
            if !app_exists(conn, &appid)? {
                return Err(StoreError::NotFound);
            }
            if count(conn, "SELECT COUNT(*) FROM fans WHERE appid = ?1", &appid)?
                >= MAX_FANS_PER_APP
            {
                return Err(StoreError::Conflict(format!(
                    "the app has {MAX_FANS_PER_APP} fans, the most it keeps"
                )));
            }
            insert_fan(conn, &appid, &fan).map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("the app has a fan {} already", fan.openid))
                } else {
                    internal(e)
                }
            })?;
            Ok((fan, |_: &mut Cache| {}))
        })
        .await
    }

    async fn fans(&self, appid: &str) -> StoreResult<Vec<Fan>> {
        if self.read(|cache| !cache.apps.contains_key(appid)) {
            return Err(StoreError::NotFound);
        }
        let appid = appid.to_owned();
        self.read_disk(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {FAN_COLUMNS} FROM fans WHERE appid = ?1 ORDER BY created_at, openid"
            ))
            .and_then(|mut stmt| {
                stmt.query_map([&appid], |row| columns::fan(row, 0))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
        })
        .await
    }

    async fn fan(&self, appid: &str, openid: &str) -> StoreResult<Option<Fan>> {
        let (appid, openid) = (appid.to_owned(), openid.to_owned());
        self.read_disk(move |conn| select_fan(conn, &appid, &openid))
            .await
    }

    async fn delete_fan(&self, appid: &str, openid: &str, now: i64) -> StoreResult<()> {
        let (appid, openid) = (appid.to_owned(), openid.to_owned());
        self.write(move |conn| {
            let Some(fan) = select_fan(conn, &appid, &openid).map_err(internal)? else {
                return Err(StoreError::NotFound);
            };
            let outcome = conversation::settle(fan, now);
            let mut cases = outcome.cases;
            if let Some(FanSession::Served { kf_account, .. }) = outcome.fan.session {
                cases.push((kf_account, -1));
            }
            count_cases(conn, &appid, &cases)?;
            for sql in [
                "DELETE FROM messages WHERE appid = ?1 AND openid = ?2",
                "DELETE FROM fans WHERE appid = ?1 AND openid = ?2",
            ] {
                conn.prepare_cached(sql)
                    .and_then(|mut stmt| stmt.execute([&appid, &openid]))
                    .map_err(internal)?;
            }
            Ok(((), move |cache: &mut Cache| {
                cached_cases(cache, &appid, &cases)
            }))
        })
        .await
    }

    async fn fan_act(
        &self,
        appid: &str,
        openid: &str,
        action: &FanAction,
        rules: &DeliveryWindows,
        now: i64,
    ) -> StoreResult<FanChange> {
        let (action, rules) = (action.clone(), *rules);
        self.change_fan(appid, openid, None, move |fan, _| {
            found::act(fan, &action, &rules, now)
        })
        .await
    }
}

impl SqliteStore {
    /// Runs `f` on the reading connection (beside the writer, on a blocking thread).
    pub(super) async fn read_disk<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let reader = Arc::clone(&self.images);
        tokio::task::spawn_blocking(move || {
            let conn = reader
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&conn).map_err(internal)
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?
    }

    /// Changes a fan in one transaction: reads it (and, when named, an account of the
    /// app), lets `decide` rule on them, then writes the fan, its records and the
    /// accounts' session counts.
    pub(super) async fn change_fan<F>(
        &self,
        appid: &str,
        openid: &str,
        kf_account: Option<&str>,
        decide: F,
    ) -> StoreResult<FanChange>
    where
        F: FnOnce(Option<Fan>, Option<Kf>) -> StoreResult<Outcome> + Send + 'static,
    {
        let (appid, openid) = (appid.to_owned(), openid.to_owned());
        let kf_account = kf_account.map(str::to_owned);
        self.write(move |conn| {
            let fan = select_fan(conn, &appid, &openid).map_err(internal)?;
            let kf = match &kf_account {
                Some(account) => kfs::select_kf(conn, &appid, account)?,
                None => None,
            };
            let mut outcome = decide(fan, kf)?;
            write_outcome(conn, &appid, &mut outcome)?;
            let cases = outcome.cases;
            let change = FanChange {
                fan: outcome.fan,
                began: outcome.began,
                ended: outcome.ended,
            };
            Ok((change, move |cache: &mut Cache| {
                cached_cases(cache, &appid, &cases);
            }))
        })
        .await
    }
}

pub(super) fn select_fan(
    conn: &Connection,
    appid: &str,
    openid: &str,
) -> rusqlite::Result<Option<Fan>> {
    conn.prepare_cached(&format!(
        "SELECT {FAN_COLUMNS} FROM fans WHERE appid = ?1 AND openid = ?2"
    ))
    .and_then(|mut stmt| {
        stmt.query_row(params![appid, openid], |row| columns::fan(row, 0))
            .optional()
    })
}

/// Writes what a rule decided: the fan (with its place in the queue, when it joined
/// it), its records, and the accounts' session counts.
pub(super) fn write_outcome(
    conn: &Connection,
    appid: &str,
    outcome: &mut Outcome,
) -> StoreResult<()> {
    if outcome.enqueued
        && let Some(FanSession::Waiting { seq, .. }) = &mut outcome.fan.session
    {
        *seq = conn
            .query_row(
                // The app's queue alone orders its fans (index fans_waiting).
                "SELECT coalesce(max(session_seq), 0) + 1 FROM fans \
                 WHERE appid = ?1 AND session = 'waiting'",
                [appid],
                |row| row.get(0),
            )
            .map_err(internal)?;
    }
    write_fan(conn, appid, &outcome.fan)?;
    for (time, record) in &outcome.records {
        conn.prepare_cached(
            "INSERT INTO messages (appid, openid, opercode, text, time, worker) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                appid,
                outcome.fan.openid,
                record.opercode,
                record.text,
                time,
                record.worker
            ])
        })
        .map_err(internal)?;
    }
    count_cases(conn, appid, &outcome.cases)
}

/// Writes a fan's row (it exists).
fn write_fan(conn: &Connection, appid: &str, fan: &Fan) -> StoreResult<()> {
    fan_row(
        conn,
        "UPDATE fans SET nickname = ?3, following = ?4, created_at = ?5, windows = ?6, \
            last_exchange = ?7, typing_until = ?8, session = ?9, session_kf = ?10, \
            session_since = ?11, session_active = ?12, session_seq = ?13 \
         WHERE appid = ?1 AND openid = ?2",
        appid,
        fan,
    )
    .map_err(internal)?;
    Ok(())
}

/// Applies changes of accounts' session counts.
pub(super) fn count_cases(
    conn: &Connection,
    appid: &str,
    cases: &[(String, i64)],
) -> StoreResult<()> {
    for (account, delta) in cases {
        conn.prepare_cached(
            "UPDATE kf_accounts SET accepted_case = max(0, accepted_case + ?3) \
             WHERE appid = ?1 AND kf_account = ?2",
        )
        .and_then(|mut stmt| stmt.execute(params![appid, account, delta]))
        .map_err(internal)?;
    }
    Ok(())
}

/// The same changes, in the image.
pub(super) fn cached_cases(cache: &mut Cache, appid: &str, cases: &[(String, i64)]) {
    for (account, delta) in cases {
        if let Some(kf) = cache.kf_by_account_mut(appid, account) {
            kf.accepted_case = (kf.accepted_case + delta).max(0);
        }
    }
}

/// Adds each app's fans and history to an export.
pub(super) fn snapshot_fans(conn: &Connection, apps: &mut [AppSnapshot]) -> StoreResult<()> {
    for entry in apps {
        let appid = entry.app.appid.clone();
        entry.fans = conn
            .prepare_cached(&format!(
                "SELECT {FAN_COLUMNS} FROM fans WHERE appid = ?1 ORDER BY created_at, openid"
            ))
            .and_then(|mut stmt| {
                stmt.query_map([&appid], |row| columns::fan(row, 0))?
                    .collect()
            })
            .map_err(internal)?;
        entry.history = conn
            .prepare_cached(&format!(
                "SELECT {} FROM messages WHERE appid = ?1 ORDER BY msgid",
                columns::RECORD_COLUMNS
            ))
            .and_then(|mut stmt| {
                stmt.query_map([&appid], |row| columns::record(row))?
                    .collect()
            })
            .map_err(internal)?;
    }
    Ok(())
}

/// Inserts a new fan row.
fn insert_fan(conn: &Connection, appid: &str, fan: &Fan) -> rusqlite::Result<usize> {
    fan_row(
        conn,
        &format!(
            "INSERT INTO fans (appid, {FAN_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
        ),
        appid,
        fan,
    )
}

/// Runs `sql` with a fan row's values as ?1 to ?13 (appid, openid, then the columns).
fn fan_row(conn: &Connection, sql: &str, appid: &str, fan: &Fan) -> rusqlite::Result<usize> {
    let values = FanValues::of(fan);
    conn.prepare_cached(sql).and_then(|mut stmt| {
        stmt.execute(params![
            appid,
            fan.openid,
            values.nickname,
            values.following,
            values.created_at,
            values.windows,
            values.last_exchange,
            values.typing_until,
            values.session,
            values.session_kf,
            values.session_since,
            values.session_active,
            values.session_seq,
        ])
    })
}

/// Loads an app's fans and history from an import, then counts each account's
/// sessions from the fans.
pub(super) fn restore_fans(conn: &Connection, entry: &AppSnapshot) -> StoreResult<()> {
    let appid = &entry.app.appid;
    for fan in &entry.fans {
        insert_fan(conn, appid, fan).map_err(|e| restore_error(e, &fan.openid))?;
    }
    for record in &entry.history {
        conn.prepare_cached(
            "INSERT INTO messages (msgid, appid, openid, opercode, text, time, worker) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                record.msgid,
                appid,
                record.openid,
                record.opercode,
                record.text,
                record.time,
                record.worker
            ])
        })
        .map_err(|e| restore_error(e, &format!("msgid {}", record.msgid)))?;
    }
    conn.prepare_cached(
        "UPDATE kf_accounts SET accepted_case = (SELECT COUNT(*) FROM fans f \
            WHERE f.appid = kf_accounts.appid AND f.session = 'served' \
            AND f.session_kf = kf_accounts.kf_account) WHERE appid = ?1",
    )
    .and_then(|mut stmt| stmt.execute([appid]))
    .map_err(internal)?;
    Ok(())
}
