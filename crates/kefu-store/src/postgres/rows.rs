//! How the PostgreSQL store's rows map to the model: every column list and row reader in one place.

use super::*;

pub(super) const APP_COLUMNS: &str = "appid, wechat_id, original_id, account_type, verified, \
    new_kf_enabled, \
     secret_hash, created_at, settings";

pub(super) fn app_from_row(row: &Row) -> Result<App, tokio_postgres::Error> {
    app_from_row_at(row, 0)
}

pub(super) fn app_from_row_at(row: &Row, at: usize) -> Result<App, tokio_postgres::Error> {
    Ok(App {
        appid: row.try_get(at)?,
        wechat_id: row.try_get(at + 1)?,
        original_id: row.try_get(at + 2)?,
        account_type: AccountType::parse(row.try_get(at + 3)?).unwrap_or_default(),
        verified: row.try_get(at + 4)?,
        new_kf_enabled: row.try_get(at + 5)?,
        secret_hash: digest(row.try_get(at + 6)?),
        created_at: row.try_get(at + 7)?,
        settings: row
            .try_get::<_, Json<kefu_api::admin::AppSettings>>(at + 8)
            .map(|json| json.0)
            .unwrap_or_default(),
    })
}

pub(super) const KF_COLUMNS: &str = "kf_id, kf_account, nickname, kf_openid, headimg_version, \
    kf_wx, invite_wx, invite_expire_time, invite_state, online_status, accepted_case, created_at";

pub(super) fn kf_from_row(row: &Row, at: usize) -> Result<Kf, tokio_postgres::Error> {
    let invite_wx: Option<String> = row.try_get(at + 6)?;
    let expire_time: Option<i64> = row.try_get(at + 7)?;
    let state: Option<&str> = row.try_get(at + 8)?;
    let invitation = Invitation::from_columns(invite_wx, expire_time, state);
    Ok(Kf {
        kf_id: row.try_get(at)?,
        kf_account: row.try_get(at + 1)?,
        nickname: row.try_get(at + 2)?,
        kf_openid: row.try_get(at + 3)?,
        headimg_version: row.try_get(at + 4)?,
        kf_wx: row.try_get(at + 5)?,
        invitation,
        online_status: row.try_get(at + 9)?,
        accepted_case: row.try_get(at + 10)?,
        created_at: row.try_get(at + 11)?,
    })
}

pub(super) const TOKEN_COLUMNS: &str =
    "appid, channel, component, issued_at, expires_at, superseded_at";

/// `columns` (a list like [`APP_COLUMNS`]) qualified by a table alias.
pub(super) fn columns_of(alias: &str, columns: &str) -> String {
    columns
        .split(", ")
        .map(|column| format!("{alias}.{column}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn token_from_row(
    row: &Row,
    at: usize,
) -> Result<Option<TokenRecord>, tokio_postgres::Error> {
    let Some(channel) = TokenChannel::parse(row.try_get(at + 1)?) else {
        return Ok(None);
    };
    Ok(Some(TokenRecord {
        appid: Arc::from(row.try_get::<_, &str>(at)?),
        channel,
        component: row.try_get::<_, Option<&str>>(at + 2)?.map(Arc::from),
        issued_at: row.try_get(at + 3)?,
        expires_at: row.try_get(at + 4)?,
        superseded_at: row.try_get(at + 5)?,
    }))
}

pub(super) const LOG_COLUMNS: &str = "rid, appid, method, path, errcode, invoke_time, cost_ms, \
    request_url, \
     request_body, response_body, client_ip, reason";

pub(super) fn logged_from_row(row: &Row) -> Result<LoggedRequest, tokio_postgres::Error> {
    Ok(LoggedRequest {
        rid: row.try_get(0)?,
        appid: row.try_get(1)?,
        method: row.try_get(2)?,
        path: row.try_get(3)?,
        errcode: row.try_get(4)?,
        invoke_time: row.try_get(5)?,
        cost_ms: row.try_get(6)?,
        request_url: row.try_get(7)?,
        request_body: row.try_get(8)?,
        response_body: row.try_get(9)?,
        client_ip: row.try_get(10)?,
        reason: row.try_get(11)?,
    })
}

pub(super) const COMPONENT_COLUMNS: &str = "component_appid, secret_hash, ip_whitelist, created_at";

pub(super) fn component_from_row(row: &Row) -> Result<Component, tokio_postgres::Error> {
    Ok(Component {
        component_appid: row.try_get(0)?,
        secret_hash: digest(row.try_get(1)?),
        ip_whitelist: row
            .try_get::<_, Json<Vec<String>>>(2)
            .map(|json| json.0)
            .unwrap_or_default(),
        created_at: row.try_get(3)?,
    })
}

pub(super) const AUTH_COLUMNS: &str = "component_appid, appid, funcscopes, refresh_hash, previous";

pub(super) fn authorization_from_row(row: &Row) -> Result<Authorization, tokio_postgres::Error> {
    Ok(Authorization {
        component_appid: row.try_get(0)?,
        appid: row.try_get(1)?,
        funcscopes: row
            .try_get::<_, Json<Vec<u32>>>(2)
            .map(|json| json.0)
            .unwrap_or_default(),
        refresh_hash: digest(row.try_get(3)?),
        previous: row
            .try_get::<_, Json<Vec<(Digest, i64)>>>(4)
            .map(|json| json.0)
            .unwrap_or_default(),
    })
}
