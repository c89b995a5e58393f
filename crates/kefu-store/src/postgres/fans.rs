//! The PostgreSQL store's fans ([`FanStore`]), and how every change to a fan is
//! written: the fan's row locked, the change decided by `rules::conversation`, then
//! written with its records and the accounts' session counts in one transaction, so
//! that concurrent calls on one fan, through any instance, take turns.

use kefu_api::admin::{DeliveryWindows, FanAction, MAX_FANS_PER_APP};

use super::*;
use crate::columns::{FAN_COLUMNS, FanValues};
use crate::model::{Fan, FanChange, FanSession};
use crate::roles::*;
use crate::rules::conversation::{self, Outcome, found};

#[async_trait]
impl FanStore for PostgresStore {
    async fn create_fan(&self, appid: &str, fan: Fan) -> StoreResult<Fan> {
        if !storable(appid) {
            return Err(StoreError::NotFound);
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        // The app holds still (and its fans are counted) until the commit.
        if tx
            .query_opt("SELECT 1 FROM apps WHERE appid = $1 FOR UPDATE", &[&appid])
            .await
            .map_err(pg)?
            .is_none()
        {
            return Err(StoreError::NotFound);
        }
        let fans: i64 = tx
            .query_one("SELECT count(*) FROM fans WHERE appid = $1", &[&appid])
            .await
            .map_err(pg)?
            .try_get(0)
            .map_err(pg)?;
        if usize::try_from(fans).unwrap_or(usize::MAX) >= MAX_FANS_PER_APP {
            return Err(StoreError::Conflict(format!(
                "the app has {MAX_FANS_PER_APP} fans, the most it keeps"
            )));
        }
        insert_fan(&tx, appid, &fan)
            .await
            .map_err(|e| conflict_or(e, || format!("the app has a fan {} already", fan.openid)))?;
        tx.commit().await.map_err(pg)?;
        Ok(fan)
    }

    async fn fans(&self, appid: &str) -> StoreResult<Vec<Fan>> {
        if !storable(appid)
            || self
                .query_opt("SELECT 1 FROM apps WHERE appid = $1", &[&appid])
                .await?
                .is_none()
        {
            return Err(StoreError::NotFound);
        }
        self.query(
            &format!("SELECT {FAN_COLUMNS} FROM fans WHERE appid = $1 ORDER BY created_at, openid COLLATE \"C\""),
            &[&appid],
        )
        .await?
        .iter()
        .map(|row| columns::fan(row, 0))
        .collect::<Result<_, _>>()
        .map_err(pg)
    }

    async fn fan(&self, appid: &str, openid: &str) -> StoreResult<Option<Fan>> {
        if !storable(appid) || !storable(openid) {
            return Ok(None);
        }
        self.query_opt(
            &format!("SELECT {FAN_COLUMNS} FROM fans WHERE appid = $1 AND openid = $2"),
            &[&appid, &openid],
        )
        .await?
        .map(|row| columns::fan(&row, 0))
        .transpose()
        .map_err(pg)
    }

    async fn delete_fan(&self, appid: &str, openid: &str, now: i64) -> StoreResult<()> {
        if !storable(appid) || !storable(openid) {
            return Err(StoreError::NotFound);
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let Some(fan) = select_fan(&tx, appid, openid).await? else {
            return Err(StoreError::NotFound);
        };
        let outcome = conversation::settle(fan, now);
        let mut cases = outcome.cases;
        if let Some(FanSession::Served { kf_account, .. }) = outcome.fan.session {
            cases.push((kf_account, -1));
        }
        count_cases(&tx, appid, &cases).await?;
        for sql in [
            "DELETE FROM messages WHERE appid = $1 AND openid = $2",
            "DELETE FROM fans WHERE appid = $1 AND openid = $2",
        ] {
            tx.execute(sql, &[&appid, &openid]).await.map_err(pg)?;
        }
        tx.commit().await.map_err(pg)
    }

    async fn fan_act(
        &self,
        appid: &str,
        openid: &str,
        action: &FanAction,
        rules: &DeliveryWindows,
        now: i64,
    ) -> StoreResult<FanChange> {
        self.change_fan(appid, openid, None, |fan, _| {
            found::act(fan, action, rules, now)
        })
        .await
    }
}

impl PostgresStore {
    /// Changes a fan in one transaction: locks it (and reads, when named, an account of
    /// the app), lets `decide` rule on them, then writes the fan, its records and the
    /// accounts' session counts.
    pub(super) async fn change_fan<F>(
        &self,
        appid: &str,
        openid: &str,
        kf_account: Option<&str>,
        decide: F,
    ) -> StoreResult<FanChange>
    where
        F: FnOnce(Option<Fan>, Option<Kf>) -> StoreResult<Outcome> + Send,
    {
        if !storable(appid) || !storable(openid) || !kf_account.is_none_or(storable) {
            return decide(None, None).map(|outcome| FanChange {
                fan: outcome.fan,
                began: None,
                ended: None,
            });
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let fan = select_fan(&tx, appid, openid).await?;
        lock_history(&tx, appid).await?;
        // Locked: an account deleted meanwhile is not begun a session with.
        let kf = match kf_account {
            Some(account) => Self::select_kf(&tx, appid, account, true).await?,
            None => None,
        };
        let mut outcome = decide(fan, kf)?;
        write_outcome(&tx, appid, &mut outcome).await?;
        tx.commit().await.map_err(pg)?;
        Ok(FanChange {
            fan: outcome.fan,
            began: outcome.began,
            ended: outcome.ended,
        })
    }
}

/// A fan, its row locked until the transaction ends.
pub(super) async fn select_fan(
    client: &impl GenericClient,
    appid: &str,
    openid: &str,
) -> StoreResult<Option<Fan>> {
    client
        .query_opt(
            &format!("SELECT {FAN_COLUMNS} FROM fans WHERE appid = $1 AND openid = $2 FOR UPDATE"),
            &[&appid, &openid],
        )
        .await
        .map_err(pg)?
        .map(|row| columns::fan(&row, 0))
        .transpose()
        .map_err(pg)
}

/// Takes the app's history for the rest of the transaction. The app's records then
/// commit in msgid order, so that a reader paging by msgid never passes one that
/// commits later. Every writer of a fan takes its locks in one order: the fan, the
/// app's history, then accounts (by name).
pub(super) async fn lock_history(client: &impl GenericClient, appid: &str) -> StoreResult<()> {
    client
        .execute(
            "SELECT pg_advisory_xact_lock(hashtext('kefu.messages:' || $1))",
            &[&appid],
        )
        .await
        .map_err(pg)
        .map(drop)
}

/// Writes what a rule decided: the fan (with its place in the queue, when it joined
/// it), its records, and the accounts' session counts.
pub(super) async fn write_outcome(
    client: &impl GenericClient,
    appid: &str,
    outcome: &mut Outcome,
) -> StoreResult<()> {
    if outcome.enqueued
        && let Some(FanSession::Waiting { seq, .. }) = &mut outcome.fan.session
    {
        *seq = client
            .query_one("SELECT nextval('fan_queue_seq')", &[])
            .await
            .map_err(pg)?
            .try_get(0)
            .map_err(pg)?;
    }
    fan_row(
        client,
        "UPDATE fans SET nickname = $3, following = $4, created_at = $5, \
            windows = $6::text::jsonb, last_exchange = $7, typing_until = $8, session = $9, \
            session_kf = $10, session_since = $11, session_active = $12, session_seq = $13 \
         WHERE appid = $1 AND openid = $2",
        appid,
        &outcome.fan,
    )
    .await
    .map_err(pg)?;
    for (time, record) in &outcome.records {
        client
            .execute(
                "INSERT INTO messages (appid, openid, opercode, text, time, worker) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &appid,
                    &outcome.fan.openid,
                    &record.opercode,
                    &as_text(&record.text),
                    time,
                    &record.worker,
                ],
            )
            .await
            .map_err(pg)?;
    }
    count_cases(client, appid, &outcome.cases).await
}

/// Applies changes of accounts' session counts.
pub(super) async fn count_cases(
    client: &impl GenericClient,
    appid: &str,
    cases: &[(String, i64)],
) -> StoreResult<()> {
    // One order of row locks for every writer, so that two never wait on each other.
    let mut cases = cases.to_vec();
    cases.sort();
    for (account, delta) in &cases {
        client
            .execute(
                "UPDATE kf_accounts SET accepted_case = greatest(0, accepted_case + $3) \
                 WHERE appid = $1 AND kf_account = $2",
                &[&appid, account, delta],
            )
            .await
            .map_err(pg)?;
    }
    Ok(())
}

/// Adds each app's fans and history to an export.
pub(super) async fn snapshot_fans(
    client: &impl GenericClient,
    apps: &mut [AppSnapshot],
) -> StoreResult<()> {
    for entry in apps {
        let appid = entry.app.appid.as_str();
        entry.fans = client
            .query(
                &format!(
                    "SELECT {FAN_COLUMNS} FROM fans WHERE appid = $1 ORDER BY created_at, openid COLLATE \"C\""
                ),
                &[&appid],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(|row| columns::fan(row, 0))
            .collect::<Result<_, _>>()
            .map_err(pg)?;
        entry.history = client
            .query(
                &format!(
                    "SELECT {} FROM messages WHERE appid = $1 ORDER BY msgid",
                    columns::RECORD_COLUMNS
                ),
                &[&appid],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(columns::record)
            .collect::<Result<_, _>>()
            .map_err(pg)?;
    }
    Ok(())
}

/// Inserts a new fan row.
async fn insert_fan(
    client: &impl GenericClient,
    appid: &str,
    fan: &Fan,
) -> Result<u64, tokio_postgres::Error> {
    let sql = format!(
        "INSERT INTO fans (appid, {FAN_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7, $8, $9, $10, $11, $12, $13)"
    );
    fan_row(client, &sql, appid, fan).await
}

/// Runs `sql` with a fan row's values as $1 to $13 (appid, openid, then the columns).
async fn fan_row(
    client: &impl GenericClient,
    sql: &str,
    appid: &str,
    fan: &Fan,
) -> Result<u64, tokio_postgres::Error> {
    let values = FanValues::of(fan);
    client
        .execute(
            sql,
            &[
                &appid,
                &fan.openid,
                &values.nickname,
                &values.following,
                &values.created_at,
                &values.windows,
                &values.last_exchange,
                &values.typing_until,
                &values.session,
                &values.session_kf,
                &values.session_since,
                &values.session_active,
                &values.session_seq,
            ],
        )
        .await
}

/// Loads an app's fans and history from an import, counts each account's sessions
/// from the fans, and moves the record ids past the loaded ones.
pub(super) async fn restore_fans(
    client: &impl GenericClient,
    entry: &AppSnapshot,
) -> StoreResult<()> {
    let appid = entry.app.appid.as_str();
    for fan in &entry.fans {
        insert_fan(client, appid, fan)
            .await
            .map_err(|e| conflict_or(e, || format!("{}: taken", fan.openid)))?;
    }
    for record in &entry.history {
        client
            .execute(
                "INSERT INTO messages (msgid, appid, openid, opercode, text, time, worker) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &record.msgid,
                    &appid,
                    &as_text(&record.openid),
                    &record.opercode,
                    &as_text(&record.text),
                    &record.time,
                    &as_text(&record.worker),
                ],
            )
            .await
            .map_err(|e| conflict_or(e, || format!("msgid {}: taken", record.msgid)))?;
    }
    client
        .execute(
            "UPDATE kf_accounts k SET accepted_case = (SELECT count(*) FROM fans f \
                WHERE f.appid = k.appid AND f.session = 'served' AND f.session_kf = k.kf_account) \
             WHERE k.appid = $1",
            &[&appid],
        )
        .await
        .map_err(pg)?;
    client
        .batch_execute(
            "SELECT setval(pg_get_serial_sequence('messages', 'msgid'), \
                 greatest((SELECT max(msgid) FROM messages), 1)); \
             SELECT setval('fan_queue_seq', greatest((SELECT max(session_seq) FROM fans), 1))",
        )
        .await
        .map_err(pg)
}
