//! The SQLite store's sessions and waiting queue ([`SessionStore`]).

use kefu_api::endpoints::kf_session::IDLE_SECS;

use super::*;
use crate::columns::FAN_COLUMNS;
use crate::model::{EndedSession, FanChange};
use crate::roles::*;
use crate::rules::conversation::{self, found};

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(
        &self,
        appid: &str,
        openid: &str,
        kf_account: &KfAccount,
        now: i64,
    ) -> StoreResult<FanChange> {
        let account = kf_account.as_str().to_owned();
        self.change_fan(appid, openid, Some(kf_account.as_str()), move |fan, kf| {
            found::create_session(fan, kf, &account, now)
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
        let account = kf_account.as_str().to_owned();
        self.change_fan(appid, openid, Some(kf_account.as_str()), move |fan, kf| {
            found::close_session(fan, kf, &account, now)
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
        self.change_fan(appid, openid, to.map(KfAccount::as_str), move |fan, kf| {
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
        let (appid, kf_account) = (appid.to_owned(), kf_account.to_owned());
        self.read_disk(move |conn| {
            conn.prepare_cached(
                "SELECT openid, session_since FROM fans WHERE appid = ?1 AND session = 'served' \
                 AND session_kf = ?2 AND session_active > ?3 ORDER BY session_since, openid",
            )
            .and_then(|mut stmt| {
                stmt.query_map(params![appid, kf_account, now - IDLE_SECS], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?
                .collect()
            })
        })
        .await
    }

    async fn wait_queue(
        &self,
        appid: &str,
        limit: usize,
    ) -> StoreResult<(u64, Vec<(String, i64)>)> {
        let appid = appid.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read_disk(move |conn| {
            let count: i64 = conn
                .prepare_cached(
                    "SELECT COUNT(*) FROM fans WHERE appid = ?1 AND session = 'waiting'",
                )
                .and_then(|mut stmt| stmt.query_row([&appid], |row| row.get(0)))?;
            let first = conn
                .prepare_cached(
                    "SELECT openid, session_active FROM fans \
                     WHERE appid = ?1 AND session = 'waiting' ORDER BY session_seq LIMIT ?2",
                )
                .and_then(|mut stmt| {
                    stmt.query_map(params![appid, limit], |row| Ok((row.get(0)?, row.get(1)?)))?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })?;
            Ok((u64::try_from(count).unwrap_or(0), first))
        })
        .await
    }

    async fn end_idle_sessions(&self, now: i64) -> StoreResult<Vec<EndedSession>> {
        self.write(move |conn| {
            let idle = conn
                .prepare_cached(&format!(
                    "SELECT appid, {FAN_COLUMNS} FROM fans \
                     WHERE session = 'served' AND session_active <= ?1"
                ))
                .and_then(|mut stmt| {
                    stmt.query_map([now - IDLE_SECS], |row| {
                        Ok((row.get::<_, String>(0)?, columns::fan(row, 1)?))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(internal)?;
            let mut ended = Vec::with_capacity(idle.len());
            let mut counted = Vec::with_capacity(idle.len());
            for (appid, fan) in idle {
                let mut outcome = conversation::settle(fan, now);
                fans::write_outcome(conn, &appid, &mut outcome)?;
                if let Some(kf_account) = outcome.ended {
                    ended.push(EndedSession {
                        appid: appid.clone(),
                        openid: outcome.fan.openid.clone(),
                        kf_account,
                    });
                }
                counted.push((appid, outcome.cases));
            }
            Ok((ended, move |cache: &mut Cache| {
                for (appid, cases) in &counted {
                    fans::cached_cases(cache, appid, cases);
                }
            }))
        })
        .await
    }
}
