//! `GET /cgi-bin/token`.

use axum::extract::{RawQuery, State};
use kefu_api::ErrCode;
use kefu_api::endpoints::token::{AccessToken, EXPIRES_IN, GRACE_SECS, GRANT_TYPE};
use kefu_store::{TokenChannel, TokenRecord};

use super::internal;
use super::reply::Reply;
use super::request::Query;
use crate::secrets::{digest, matches, new_access_token, token_hint};
use crate::state::AppState;

/// Checks the credentials in the order `grant_type` (40002), `appid` (41002),
/// `secret` (41004), unknown appid (40013), wrong secret (40125), then mints a token
/// that supersedes the app's previous one after a 5-minute grace.
#[tracing::instrument(name = "token_get", skip_all)]
pub async fn token_get(State(state): State<AppState>, RawQuery(query): RawQuery) -> Reply {
    let now = state.clock.now();
    match mint(&state, &Query::new(query.as_deref()), now).await {
        Ok(token) => Reply::json(&token, now),
        Err(code) => Reply::error(code, now),
    }
}

async fn mint(state: &AppState, query: &Query<'_>, now: i64) -> Result<AccessToken, ErrCode> {
    if query.get("grant_type").as_deref() != Some(GRANT_TYPE) {
        return Err(ErrCode::InvalidGrantType);
    }
    let appid = query.non_empty("appid").ok_or(ErrCode::AppidMissing)?;
    let secret = query.non_empty("secret").ok_or(ErrCode::AppsecretMissing)?;
    let app = state
        .store
        .app(&appid)
        .await
        .map_err(internal)?
        .ok_or(ErrCode::InvalidAppid)?;
    if !matches(&secret, &app.secret_hash) {
        return Err(ErrCode::InvalidAppsecret);
    }
    let access_token = new_access_token();
    let expires_in = i64::try_from(EXPIRES_IN).unwrap_or(i64::MAX);
    let record = TokenRecord {
        appid: app.appid.as_str().into(),
        channel: TokenChannel::Basic,
        issued_at: now,
        expires_at: now + expires_in,
        superseded_at: None,
    };
    let grace = i64::try_from(GRACE_SECS).unwrap_or(i64::MAX);
    state
        .store
        .issue_token(record, digest(&access_token), now, grace)
        .await
        .map_err(internal)?;
    tracing::info!(appid = %app.appid, token = token_hint(&access_token), "token issued");
    Ok(AccessToken {
        access_token,
        expires_in: EXPIRES_IN,
    })
}
