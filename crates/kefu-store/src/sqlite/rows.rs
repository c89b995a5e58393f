//! How the SQLite store's rows map to the model: every column list and row reader in one place.

use super::*;

pub(super) const APP_COLUMNS: &str = "appid, wechat_id, original_id, account_type, verified, \
    new_kf_enabled, secret_hash, created_at, settings";

pub(super) fn app_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<App> {
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

pub(super) const KF_COLUMNS: &str = "kf_id, kf_account, nickname, kf_openid, headimg_version, \
    kf_wx, invite_wx, invite_expire_time, invite_state, online_status, accepted_case, created_at";

pub(super) fn kf_from_row(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Kf> {
    let invite_wx: Option<String> = row.get(at + 6)?;
    let expire_time: Option<i64> = row.get(at + 7)?;
    let state: Option<String> = row.get(at + 8)?;
    let invitation = Invitation::from_columns(invite_wx, expire_time, state.as_deref());
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

pub(super) const LOG_COLUMNS: &str = "rid, appid, method, path, errcode, invoke_time, cost_ms, \
    request_url, request_body, \
     response_body, client_ip, reason";

pub(super) fn logged_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<LoggedRequest> {
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
        reason: row.get(11)?,
    })
}

pub(super) const AUTH_COLUMNS: &str = "component_appid, appid, funcscopes, refresh_hash, previous";

pub(super) fn authorization_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Authorization> {
    Ok(Authorization {
        component_appid: row.get(0)?,
        appid: row.get(1)?,
        funcscopes: serde_json::from_str(&row.get::<_, String>(2)?).unwrap_or_default(),
        refresh_hash: row.get(3)?,
        previous: serde_json::from_str(&row.get::<_, String>(4)?).unwrap_or_default(),
    })
}

pub(super) fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}
