//! The PostgreSQL store's sessions and waiting queue ([`SessionStore`]).

use kefu_api::endpoints::kf_session::IDLE_SECS;

use super::*;
use crate::columns::FAN_COLUMNS;
use crate::model::{EndedSession, FanChange};
use crate::roles::*;
use crate::rules::conversation::{self, found};

#[async_trait]
impl SessionStore for PostgresStore {
    async fn create_session(
        &self,
        appid: &str,
        openid: &str,
        kf_account: &KfAccount,
        now: i64,
    ) -> StoreResult<FanChange> {
        let account = kf_account.as_str();
        self.change_fan(appid, openid, Some(account), |fan, kf| {
            found::create_session(fan, kf, account, now)
        })
        .await
    }

    async fn close_session(
        &self,
        appid: &str,
        openid: &str,
        kf_account: &KfAccount,
        now: i64,
    ) -> StoreResult<FanChange> {
        let account = kf_account.as_str();
        self.change_fan(appid, openid, Some(account), |fan, kf| {
            found::close_session(fan, kf, account, now)
        })
        .await
    }

    async fn enqueue(
        &self,
        appid: &str,
        openid: &str,
        to: Option<&KfAccount>,
        now: i64,
    ) -> StoreResult<FanChange> {
        self.change_fan(appid, openid, to.map(KfAccount::as_str), |fan, kf| {
            found::enqueue(fan, kf, now)
        })
        .await
    }

    async fn sessions_of(
        &self,
        appid: &str,
        kf_account: &str,
        now: i64,
    ) -> StoreResult<Vec<(String, i64)>> {
        if !storable(appid) || !storable(kf_account) {
            return Ok(Vec::new());
        }
        self.query(
            "SELECT openid, session_since FROM fans WHERE appid = $1 AND session = 'served' \
             AND session_kf = $2 AND session_active > $3 ORDER BY session_since, openid COLLATE \"C\"",
            &[&appid, &kf_account, &(now - IDLE_SECS)],
        )
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(pg)
    }

    async fn wait_queue(
        &self,
        appid: &str,
        limit: usize,
    ) -> StoreResult<(u64, Vec<(String, i64)>)> {
        if !storable(appid) {
            return Ok((0, Vec::new()));
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .query(
                "SELECT openid, session_active, count(*) OVER () FROM fans \
                 WHERE appid = $1 AND session = 'waiting' ORDER BY session_seq LIMIT $2",
                &[&appid, &limit],
            )
            .await?;
        let count: i64 = match rows.first() {
            Some(row) => row.try_get(2).map_err(pg)?,
            None => 0,
        };
        let first = rows
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(pg)?;
        Ok((u64::try_from(count).unwrap_or(0), first))
    }

    async fn end_idle_sessions(&self, now: i64) -> StoreResult<Vec<EndedSession>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        // Another instance ending the same sessions skips the rows this one holds; the
        // order is every writer's order of locks (an app's records, then its accounts).
        let idle = tx
            .query(
                &format!(
                    "SELECT appid, {FAN_COLUMNS} FROM fans \
                     WHERE session = 'served' AND session_active <= $1 \
                     ORDER BY appid COLLATE \"C\", session_kf COLLATE \"C\" \
                     FOR UPDATE SKIP LOCKED"
                ),
                &[&(now - IDLE_SECS)],
            )
            .await
            .map_err(pg)?;
        let mut ended = Vec::with_capacity(idle.len());
        let mut locked: Option<String> = None;
        for row in &idle {
            let appid: String = row.try_get(0).map_err(pg)?;
            if locked.as_deref() != Some(appid.as_str()) {
                fans::lock_history(&tx, &appid).await?;
                locked = Some(appid.clone());
            }
            let mut outcome = conversation::settle(columns::fan(row, 1).map_err(pg)?, now);
            fans::write_outcome(&tx, &appid, &mut outcome).await?;
            if let Some(kf_account) = outcome.ended {
                ended.push(EndedSession {
                    appid,
                    openid: outcome.fan.openid,
                    kf_account,
                });
            }
        }
        tx.commit().await.map_err(pg)?;
        Ok(ended)
    }
}
