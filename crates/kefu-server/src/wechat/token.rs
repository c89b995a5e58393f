//! `GET /cgi-bin/token` and `POST /cgi-bin/stable_token`.

use kefu_api::endpoints::parse_json_body;
use kefu_api::endpoints::stable_token::{
    self, FORCE_REFRESH_SPACING_SECS, MAX_FORCE_REFRESH_PER_DAY, REUSE_MARGIN_SECS,
};
use kefu_api::endpoints::token::{
    self as token_api, AccessToken, EXPIRES_IN, GRACE_SECS, GRANT_TYPE,
};
use kefu_api::{Endpoint, ErrCode};
use kefu_store::{
    App, CounterKey, Mint, StableMint, StoreError, TokenChannel, TokenRecord, Window,
};

use super::call::Call;
use super::platform::{charge, check_ip};
use super::reply::{Reply, WxError};
use crate::secrets::{digest, matches, new_access_token, token_hint};
use crate::state::AppState;

const EXPIRES_IN_SECS: i64 = EXPIRES_IN as i64;
const GRACE: i64 = GRACE_SECS as i64;
/// How often a stable-token decision is retaken when another instance minted first.
const MAX_STABLE_ATTEMPTS: u32 = 3;

/// Checks an app's credentials, in the order: appid (41002), secret (41004), a
/// platform's appid (61024), unknown appid (40013), wrong secret (40125), IP
/// whitelist (40164), then bans and the quota of `path`.
pub(crate) async fn credentials(
    state: &AppState,
    call: &Call,
    appid: Option<&str>,
    secret: Option<&str>,
    path: &str,
) -> Result<std::sync::Arc<App>, WxError> {
    let appid = appid
        .filter(|v| !v.is_empty())
        .ok_or(ErrCode::AppidMissing)?;
    let secret = secret
        .filter(|v| !v.is_empty())
        .ok_or(ErrCode::AppsecretMissing)?;
    let Some(app) = state.store.app(appid).await? else {
        if state.store.component(appid).await?.is_some() {
            return Err(ErrCode::ComponentMustUseComponentToken.into());
        }
        return Err(ErrCode::InvalidAppid.into());
    };
    call.found_caller(&app.appid);
    if !matches(secret, &app.secret_hash) {
        return Err(ErrCode::InvalidAppsecret.into());
    }
    check_ip(
        &app.settings.ip_whitelist,
        call.ip,
        ErrCode::IpNotInWhitelist,
    )?;
    charge(state, &app, path, call.now).await?;
    Ok(app)
}

fn record(app: &App, channel: TokenChannel, now: i64) -> TokenRecord {
    TokenRecord {
        appid: app.appid.as_str().into(),
        channel,
        component: None,
        issued_at: now,
        expires_at: now + EXPIRES_IN_SECS,
        superseded_at: None,
    }
}

/// `GET /cgi-bin/token`: `grant_type` (40002) first, then [`credentials`]; mints a
/// token that supersedes the app's previous one after a 5-minute grace.
#[tracing::instrument(level = "debug", name = "token_get", skip_all)]
pub(crate) async fn token_get(state: &AppState, call: &Call) -> Result<Reply, WxError> {
    let now = call.now;
    let query = call.query();
    if query.get("grant_type").as_deref() != Some(GRANT_TYPE) {
        return Err(ErrCode::InvalidGrantType.into());
    }
    let appid = query.get("appid");
    let secret = query.get("secret");
    let app = credentials(
        state,
        call,
        appid.as_deref(),
        secret.as_deref(),
        token_api::GetToken::PATH,
    )
    .await?;
    let access_token = new_access_token();
    state
        .store
        .issue_token(Mint {
            token: record(&app, TokenChannel::Basic, now),
            hash: digest(&access_token),
            now,
            grace_secs: GRACE,
        })
        .await?;
    state.minted(TokenChannel::Basic);
    tracing::info!(appid = %app.appid, token = token_hint(&access_token), "token issued");
    Reply::json(&AccessToken {
        access_token: access_token.into(),
        expires_in: EXPIRES_IN,
    })
}

/// `POST /cgi-bin/stable_token`: the current stable token while it has 5 minutes or
/// more left; a new one (the old one living out its time) otherwise; with
/// `force_refresh`, a new one at once and the old one dead — unless the current one
/// is under 30 s old or 20 forced refreshes were made today, when the current one
/// comes back unchanged.
#[tracing::instrument(level = "debug", name = "stable_token", skip_all)]
pub(crate) async fn stable_token_post(state: &AppState, call: &Call) -> Result<Reply, WxError> {
    let now = call.now;
    // Credentials sent in the query instead (with no body) are missing: 41002.
    let body: stable_token::Request = match parse_json_body(call.body()?) {
        Err(ErrCode::EmptyPostData) => stable_token::Request::default(),
        parsed => parsed?,
    };
    if body.appid.as_deref().is_none_or(str::is_empty) {
        return Err(ErrCode::AppidMissing.into());
    }
    if body.grant_type.as_deref() != Some(GRANT_TYPE) {
        return Err(ErrCode::InvalidGrantType.into());
    }
    let path = stable_token::GetStableToken::PATH;
    let app = credentials(
        state,
        call,
        body.appid.as_deref(),
        body.secret.as_ref().map(kefu_api::Secret::expose),
        path,
    )
    .await?;
    // Concurrent callers must agree on one token: decide and mint one at a time in
    // this process, and, across processes, mint only if the current token is still
    // the one decided on (else decide again: the other caller's token is now current).
    let lock = state.stable_locks.of(&app.appid);
    let _one_at_a_time = lock.lock().await;
    let force = body.force_refresh.unwrap_or(false);
    let mut attempts = 0;
    let access_token = loop {
        let current = state
            .store
            .current_token(&app.appid, TokenChannel::Stable)
            .await?;
        let replaces = current.as_ref().map(|current| current.hash);
        let live = current.and_then(|current| {
            let alive = current.record.expires_at > now;
            alive
                .then_some(current.value.map(|value| (current.record, value)))
                .flatten()
        });
        if let Some((record, value)) = &live {
            let reuse = if force {
                let too_soon = now - record.issued_at < FORCE_REFRESH_SPACING_SECS;
                too_soon || !force_refresh_allowed(state, &app, now).await?
            } else {
                record.expires_at - now >= REUSE_MARGIN_SECS
            };
            if reuse {
                let expires_in = u64::try_from(record.expires_at - now).unwrap_or(0);
                return Reply::json(&AccessToken {
                    access_token: value.clone().into(),
                    expires_in,
                });
            }
        }
        let access_token = new_access_token();
        // Forced: the old token dies now. Rotation: it lives out its (under 5 minutes
        // of) time.
        let grace = match &live {
            Some((record, _)) if !force => record.expires_at - now,
            _ => 0,
        };
        let minted = state
            .store
            .issue_stable_token(StableMint {
                mint: Mint {
                    token: record(&app, TokenChannel::Stable, now),
                    hash: digest(&access_token),
                    now,
                    grace_secs: grace,
                },
                value: access_token.clone(),
                replaces,
            })
            .await;
        match minted {
            Ok(()) => {
                state.minted(TokenChannel::Stable);
                break access_token;
            }
            Err(StoreError::Conflict(_)) if attempts < MAX_STABLE_ATTEMPTS => attempts += 1,
            Err(error) => return Err(error.into()),
        }
    };
    tracing::info!(appid = %app.appid, token = token_hint(&access_token), force, "stable token \
        issued");
    Reply::json(&AccessToken {
        access_token: access_token.into(),
        expires_in: EXPIRES_IN,
    })
}

/// Counts a forced refresh against the day's allowance; `false` once it is spent.
async fn force_refresh_allowed(state: &AppState, app: &App, now: i64) -> Result<bool, WxError> {
    let key = CounterKey {
        owner: app.appid.clone(),
        name: "stable_token#force".to_owned(),
        window: Window::day_of(now),
    };
    let counted = state
        .store
        .consume(&[(key, MAX_FORCE_REFRESH_PER_DAY)])
        .await?;
    Ok(counted.is_ok())
}
