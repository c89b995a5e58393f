//! How both backends' rows map to the model, in one place: the column lists, and the
//! readers that build a model value from a row. Each backend says only how one column
//! of its row type is read ([`Columns`], in its `rows.rs`).

use std::sync::Arc;

use kefu_api::admin::AccountType;
use serde::de::DeserializeOwned;

use crate::model::{
    App, Authorization, Component, Digest, Fan, FanSession, HistoryRecord, Invitation, Kf,
    LoggedRequest, TokenChannel, TokenRecord,
};

/// One row of a query, read column by column (by position, from 0).
pub(crate) trait Columns {
    /// What a failed read is.
    type Error;
    /// An integer column.
    fn int(&self, at: usize) -> Result<i64, Self::Error>;
    /// An integer column that may be NULL.
    fn opt_int(&self, at: usize) -> Result<Option<i64>, Self::Error>;
    /// A text column.
    fn text(&self, at: usize) -> Result<String, Self::Error>;
    /// A text column that may be NULL.
    fn opt_text(&self, at: usize) -> Result<Option<String>, Self::Error>;
    /// A boolean column.
    fn flag(&self, at: usize) -> Result<bool, Self::Error>;
    /// A SHA-256 digest column.
    fn digest(&self, at: usize) -> Result<Digest, Self::Error>;
    /// A JSON column (`jsonb` on PostgreSQL, `TEXT` on SQLite); one that does not hold
    /// a `T` reads as `T`'s default, as a rule written before a field existed would.
    fn json<T: DeserializeOwned + Default>(&self, at: usize) -> Result<T, Self::Error>;
}

pub(crate) const APP_COLUMNS: &str = "appid, wechat_id, original_id, account_type, verified, \
    new_kf_enabled, secret_hash, created_at, settings";

pub(crate) fn app<R: Columns>(row: &R, at: usize) -> Result<App, R::Error> {
    Ok(App {
        appid: row.text(at)?,
        wechat_id: row.text(at + 1)?,
        original_id: row.text(at + 2)?,
        account_type: AccountType::parse(&row.text(at + 3)?).unwrap_or_default(),
        verified: row.flag(at + 4)?,
        new_kf_enabled: row.flag(at + 5)?,
        secret_hash: row.digest(at + 6)?,
        created_at: row.int(at + 7)?,
        settings: row.json(at + 8)?,
    })
}

pub(crate) const KF_COLUMNS: &str = "kf_id, kf_account, nickname, kf_openid, headimg_version, \
    kf_wx, invite_wx, invite_expire_time, invite_state, online_status, accepted_case, created_at";

pub(crate) fn kf<R: Columns>(row: &R, at: usize) -> Result<Kf, R::Error> {
    let invitation = Invitation::from_columns(
        row.opt_text(at + 6)?,
        row.opt_int(at + 7)?,
        row.opt_text(at + 8)?.as_deref(),
    );
    Ok(Kf {
        kf_id: row.int(at)?,
        kf_account: row.text(at + 1)?,
        nickname: row.text(at + 2)?,
        kf_openid: row.text(at + 3)?,
        headimg_version: row.opt_int(at + 4)?,
        kf_wx: row.opt_text(at + 5)?,
        invitation,
        online_status: row.int(at + 9)?,
        accepted_case: row.int(at + 10)?,
        created_at: row.int(at + 11)?,
    })
}

pub(crate) const TOKEN_COLUMNS: &str =
    "appid, channel, component, issued_at, expires_at, superseded_at";

/// A token record; `None` for a channel this version does not know.
pub(crate) fn token<R: Columns>(row: &R, at: usize) -> Result<Option<TokenRecord>, R::Error> {
    let Some(channel) = TokenChannel::parse(&row.text(at + 1)?) else {
        return Ok(None);
    };
    Ok(Some(TokenRecord {
        appid: Arc::from(row.text(at)?),
        channel,
        component: row.opt_text(at + 2)?.map(Arc::from),
        issued_at: row.int(at + 3)?,
        expires_at: row.int(at + 4)?,
        superseded_at: row.opt_int(at + 5)?,
    }))
}

pub(crate) const LOG_COLUMNS: &str = "rid, appid, method, path, errcode, invoke_time, cost_ms, \
    request_url, request_body, response_body, client_ip, reason";

pub(crate) fn logged<R: Columns>(row: &R) -> Result<LoggedRequest, R::Error> {
    Ok(LoggedRequest {
        rid: row.text(0)?,
        appid: row.opt_text(1)?,
        method: row.text(2)?,
        path: row.text(3)?,
        errcode: row.int(4)?,
        invoke_time: row.int(5)?,
        cost_ms: row.int(6)?,
        request_url: row.text(7)?,
        request_body: row.text(8)?,
        response_body: row.text(9)?,
        client_ip: row.text(10)?,
        reason: row.text(11)?,
    })
}

pub(crate) const COMPONENT_COLUMNS: &str = "component_appid, secret_hash, ip_whitelist, created_at";

pub(crate) fn component<R: Columns>(row: &R) -> Result<Component, R::Error> {
    Ok(Component {
        component_appid: row.text(0)?,
        secret_hash: row.digest(1)?,
        ip_whitelist: row.json(2)?,
        created_at: row.int(3)?,
    })
}

pub(crate) const AUTH_COLUMNS: &str = "component_appid, appid, funcscopes, refresh_hash, previous";

pub(crate) fn authorization<R: Columns>(row: &R) -> Result<Authorization, R::Error> {
    Ok(Authorization {
        component_appid: row.text(0)?,
        appid: row.text(1)?,
        funcscopes: row.json(2)?,
        refresh_hash: row.digest(3)?,
        previous: row.json(4)?,
    })
}

/// `columns` (a list like [`APP_COLUMNS`]) qualified by a table alias.
pub(crate) fn columns_of(alias: &str, columns: &str) -> String {
    columns
        .split(", ")
        .map(|column| format!("{alias}.{column}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) const FAN_COLUMNS: &str = "openid, nickname, following, created_at, windows, \
    last_exchange, typing_until, session, session_kf, session_since, session_active, session_seq";

/// A fan, from [`FAN_COLUMNS`] at `at`.
pub(crate) fn fan<R: Columns>(row: &R, at: usize) -> Result<Fan, R::Error> {
    let session = match row.opt_text(at + 7)?.as_deref() {
        Some("served") => Some(FanSession::Served {
            kf_account: row.opt_text(at + 8)?.unwrap_or_default(),
            since: row.opt_int(at + 9)?.unwrap_or(0),
            active: row.opt_int(at + 10)?.unwrap_or(0),
        }),
        Some("waiting") => Some(FanSession::Waiting {
            since: row.opt_int(at + 9)?.unwrap_or(0),
            latest: row.opt_int(at + 10)?.unwrap_or(0),
            seq: row.opt_int(at + 11)?.unwrap_or(0),
        }),
        _ => None,
    };
    Ok(Fan {
        openid: row.text(at)?,
        nickname: row.text(at + 1)?,
        following: row.flag(at + 2)?,
        created_at: row.int(at + 3)?,
        windows: row.json(at + 4)?,
        last_exchange: row.opt_int(at + 5)?,
        typing_until: row.opt_int(at + 6)?,
        session,
    })
}

/// A fan's columns after the key, in [`FAN_COLUMNS`]' order from `nickname` on: what
/// both backends write.
#[derive(Debug)]
pub(crate) struct FanValues {
    pub(crate) nickname: String,
    pub(crate) following: bool,
    pub(crate) created_at: i64,
    pub(crate) windows: String,
    pub(crate) last_exchange: Option<i64>,
    pub(crate) typing_until: Option<i64>,
    pub(crate) session: Option<&'static str>,
    pub(crate) session_kf: Option<String>,
    pub(crate) session_since: Option<i64>,
    pub(crate) session_active: Option<i64>,
    pub(crate) session_seq: Option<i64>,
}

impl FanValues {
    pub(crate) fn of(fan: &Fan) -> FanValues {
        let (session, session_kf, session_since, session_active, session_seq) = match &fan.session {
            Some(FanSession::Served {
                kf_account,
                since,
                active,
            }) => (
                Some("served"),
                Some(kf_account.clone()),
                Some(*since),
                Some(*active),
                None,
            ),
            Some(FanSession::Waiting { since, seq, latest }) => (
                Some("waiting"),
                None,
                Some(*since),
                Some(*latest),
                Some(*seq),
            ),
            None => (None, None, None, None, None),
        };
        FanValues {
            nickname: fan.nickname.clone(),
            following: fan.following,
            created_at: fan.created_at,
            windows: serde_json::to_string(&fan.windows).unwrap_or_else(|_| "{}".to_owned()),
            last_exchange: fan.last_exchange,
            typing_until: fan.typing_until,
            session,
            session_kf,
            session_since,
            session_active,
            session_seq,
        }
    }
}

pub(crate) const RECORD_COLUMNS: &str = "msgid, openid, opercode, text, time, worker";

/// A history record, from [`RECORD_COLUMNS`].
pub(crate) fn record<R: Columns>(row: &R) -> Result<HistoryRecord, R::Error> {
    Ok(HistoryRecord {
        msgid: row.int(0)?,
        openid: row.text(1)?,
        opercode: row.int(2)?,
        text: row.text(3)?,
        time: row.int(4)?,
        worker: row.text(5)?,
    })
}
