//! The PostgreSQL store's messages to fans, typing and the chat history
//! ([`MessageStore`]).

use kefu_api::endpoints::message::TypingCommand;
use kefu_api::endpoints::msgrecord::HistoryQuery;

use super::*;
use crate::columns::RECORD_COLUMNS;
use crate::model::{FanChange, HistoryRecord};
use crate::roles::*;
use crate::rules::conversation::found;

#[async_trait]
impl MessageStore for PostgresStore {
    async fn send_message(
        &self,
        appid: &str,
        openid: &str,
        text: String,
        worker: Option<&KfAccount>,
        now: i64,
    ) -> StoreResult<FanChange> {
        let worker = worker.map(KfAccount::as_str);
        self.change_fan(appid, openid, worker, |fan, kf| {
            found::send(fan, kf, worker, text, now)
        })
        .await
    }

    async fn record_reply(
        &self,
        appid: &str,
        openid: &str,
        text: String,
        now: i64,
    ) -> StoreResult<FanChange> {
        self.change_fan(appid, openid, None, |fan, _| {
            found::passive_reply(fan, text, now)
        })
        .await
    }

    async fn typing(
        &self,
        appid: &str,
        openid: &str,
        command: TypingCommand,
        now: i64,
    ) -> StoreResult<FanChange> {
        self.change_fan(appid, openid, None, |fan, _| {
            found::typing(fan, command, now)
        })
        .await
    }

    async fn history(&self, appid: &str, query: &HistoryQuery) -> StoreResult<Vec<HistoryRecord>> {
        if !storable(appid) {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
        self.query(
            &format!(
                "SELECT {RECORD_COLUMNS} FROM messages WHERE appid = $1 AND time >= $2 \
                 AND time <= $3 AND msgid >= $4 AND ($7::text IS NULL OR openid = $7) \
                 ORDER BY msgid LIMIT $5 OFFSET $6"
            ),
            &[
                &appid,
                &query.start,
                &query.end,
                &query.from_msgid,
                &limit,
                &offset,
                &query.openid,
            ],
        )
        .await?
        .iter()
        .map(columns::record)
        .collect::<Result<_, _>>()
        .map_err(pg)
    }

    async fn fan_history(
        &self,
        appid: &str,
        openid: &str,
        limit: usize,
    ) -> StoreResult<Vec<HistoryRecord>> {
        if !storable(appid) || !storable(openid) {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.query(
            &format!(
                "SELECT {RECORD_COLUMNS} FROM messages WHERE appid = $1 AND openid = $2 \
                 ORDER BY msgid DESC LIMIT $3"
            ),
            &[&appid, &openid, &limit],
        )
        .await?
        .iter()
        .map(columns::record)
        .collect::<Result<_, _>>()
        .map_err(pg)
    }
}
