//! Quotas and diagnostics: `openapi/quota/get`, `clear_quota`, `clear_quota/v2`,
//! `openapi/quota/clear` and `openapi/rid/get` (docs/behaviour.md, "Platform rules").

use kefu_api::endpoints::quota::{self, MAX_CLEARS_PER_MONTH, Quota, QuotaAnswer};
use kefu_api::endpoints::rid_get::{self, RETENTION_SECS, RequestInfo, RidAnswer};
use kefu_api::endpoints::{check_json_body, parse_json_body};
use kefu_api::{ErrCode, Rid};
use kefu_store::{App, CounterKey, Window};

use super::auth::authorize;
use super::call::Call;
use super::platform::{counted_paths, daily_key, limits};
use super::reply::{Reply, WxError};
use super::token::credentials;
use crate::state::AppState;

/// Reads the token's app, then the JSON body.
async fn app_and_body<T: serde::de::DeserializeOwned>(
    state: &AppState,
    call: &Call,
) -> Result<(std::sync::Arc<App>, T), WxError> {
    let caller = authorize(state, call).await?;
    Ok((caller.app, check_json_body(call.body()?)?))
}

/// A counted API's path, or 76021.
fn counted_path(app: &App, cgi_path: Option<&str>) -> Result<String, ErrCode> {
    match cgi_path {
        Some(path) if path.starts_with('/') && limits(app, path).is_some() => Ok(path.to_owned()),
        _ => Err(ErrCode::CgiPathNotFound),
    }
}

/// Counts a quota clear against the monthly allowance (48006), then resets `paths`.
async fn clear(state: &AppState, app: &App, paths: &[String], now: i64) -> Result<Reply, WxError> {
    let key = CounterKey {
        owner: app.appid.clone(),
        name: "clear_quota".to_owned(),
        window: Window::month_of(now),
    };
    if state
        .store
        .consume(&[(key, MAX_CLEARS_PER_MONTH)])
        .await?
        .is_err()
    {
        return Err(ErrCode::ClearQuotaLimit.into());
    }
    state.store.reset_counters(&app.appid, paths).await?;
    Ok(Reply::Ok)
}

/// `POST /cgi-bin/openapi/quota/get`.
#[tracing::instrument(level = "debug", name = "quota_get", skip_all)]
pub(crate) async fn quota_get(state: &AppState, call: &Call) -> Result<Reply, WxError> {
    let (app, body) = app_and_body::<quota::CgiPath>(state, call).await?;
    let path = counted_path(&app, body.cgi_path.as_deref())?;
    let daily_limit = limits(&app, &path)
        .and_then(|l| l.daily)
        .unwrap_or(u64::MAX);
    let used = state
        .store
        .counter(&daily_key(&app.appid, &path, call.now))
        .await?;
    let quota = Quota {
        daily_limit,
        used,
        remain: daily_limit.saturating_sub(used),
    };
    Reply::json(&QuotaAnswer {
        errcode: ErrCode::Ok,
        errmsg: "ok".to_owned(),
        quota,
    })
}

/// `POST /cgi-bin/openapi/quota/clear`: one API.
#[tracing::instrument(level = "debug", name = "quota_clear", skip_all)]
pub(crate) async fn quota_clear(state: &AppState, call: &Call) -> Result<Reply, WxError> {
    let (app, body) = app_and_body::<quota::CgiPath>(state, call).await?;
    let path = counted_path(&app, body.cgi_path.as_deref())?;
    clear(state, &app, &[path], call.now).await
}

/// `POST /cgi-bin/clear_quota`: every API of the token's app.
#[tracing::instrument(level = "debug", name = "clear_quota", skip_all)]
pub(crate) async fn clear_quota(state: &AppState, call: &Call) -> Result<Reply, WxError> {
    let (app, body) = app_and_body::<quota::ClearQuotaRequest>(state, call).await?;
    match body.appid.as_deref() {
        None | Some("") => return Err(ErrCode::AppidMissing.into()),
        Some(appid) if appid != app.appid => return Err(ErrCode::InvalidAppid.into()),
        Some(_) => {}
    }
    clear(state, &app, &counted_paths(&app), call.now).await
}

/// `POST /cgi-bin/clear_quota/v2`: the same, with the AppSecret instead of a token
/// (for when the token quota itself is spent); shares the monthly allowance.
#[tracing::instrument(level = "debug", name = "clear_quota_v2", skip_all)]
pub(crate) async fn clear_quota_v2(state: &AppState, call: &Call) -> Result<Reply, WxError> {
    let body: quota::ClearQuotaV2Request = parse_json_body(call.body()?)?;
    // No quota is charged: this is the way out of a spent one.
    let app = credentials(
        state,
        call,
        body.appid.as_deref(),
        body.appsecret.as_ref().map(kefu_api::Secret::expose),
        "",
    )
    .await?;
    clear(state, &app, &counted_paths(&app), call.now).await
}

/// `POST /cgi-bin/openapi/rid/get`: malformed 76002, unknown or older than 7 days
/// 76001, another app's 76003.
#[tracing::instrument(level = "debug", name = "rid_get", skip_all)]
pub(crate) async fn rid_get(state: &AppState, call: &Call) -> Result<Reply, WxError> {
    let (app, body) = app_and_body::<rid_get::Request>(state, call).await?;
    let rid = body
        .rid
        .as_deref()
        .and_then(|rid| rid.parse::<Rid>().ok())
        .ok_or(ErrCode::RidError)?;
    let entry = state
        .store
        .logged_request(&rid.to_string())
        .await?
        .filter(|entry| entry.invoke_time > call.now - RETENTION_SECS)
        .ok_or(ErrCode::RidNotFound)?;
    if entry.appid.as_deref() != Some(app.appid.as_str()) {
        return Err(ErrCode::RidNoPermission.into());
    }
    // WeChat shows the query string alone (`access_token=50_Im7xxxx`), as code that
    // parses it expects; kefu's own request log shows the path too.
    let request_url = entry
        .request_url
        .split_once('?')
        .map_or_else(String::new, |(_, query)| query.to_owned());
    let request = RequestInfo {
        invoke_time: entry.invoke_time,
        cost_in_ms: entry.cost_ms,
        request_url,
        request_body: entry.request_body,
        response_body: entry.response_body,
        client_ip: entry.client_ip,
    };
    Reply::json(&RidAnswer {
        errcode: ErrCode::Ok,
        errmsg: "ok".to_owned(),
        request,
    })
}
