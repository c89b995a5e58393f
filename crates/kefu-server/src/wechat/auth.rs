//! Who is calling: the token verdict (SPEC §2.3), the platform permission gate
//! (SPEC §7), bans, the app's right to the kf API (SPEC §6.1) and quotas (SPEC §6.2).

use std::sync::Arc;

use kefu_api::ErrCode;
use kefu_api::admin::AccountType;
use kefu_store::{App, TokenChannel, TokenRecord};

use super::platform::charge;
use super::request::Query;
use crate::secrets::digest;
use crate::state::AppState;
use crate::wechat::internal;

/// The verdict for a token of one of `channels`.
///
/// It depends only on the token and the time: unknown (or of another channel) →
/// 40001; superseded while still valid and past its grace → 40001; past its expiry →
/// 42001 (also when a newer token came after it expired, so an expired token never
/// turns into 40001 later).
pub async fn token_verdict(
    state: &AppState,
    token: &str,
    channels: &[TokenChannel],
    now: i64,
) -> Result<TokenRecord, ErrCode> {
    Ok(verdict(state, token, channels, now).await?.0)
}

/// What a token was found to be, with its app: kept for the rest of the request.
type Found = Option<(TokenRecord, Option<Arc<App>>)>;

tokio::task_local! {
    /// The request's token lookups, by token: the request log's look at the caller and
    /// the handler's check read the store (and hash the token) once between them.
    /// Nothing outlives the request, so no other request (or instance) can be answered
    /// from it.
    static LOOKED_UP: std::cell::RefCell<Vec<(String, Found)>>;
}

/// Runs one request's handling with its own memo of token lookups.
pub async fn with_token_memo<F: std::future::Future>(f: F) -> F::Output {
    LOOKED_UP
        .scope(std::cell::RefCell::new(Vec::new()), f)
        .await
}

/// A token with its app, read from the store once per request.
pub async fn look_up(state: &AppState, token: &str) -> Result<Found, ErrCode> {
    let memo = LOOKED_UP.try_with(|memo| {
        memo.borrow()
            .iter()
            .find(|(seen, _)| seen == token)
            .map(|(_, found)| found.clone())
    });
    if let Ok(Some(found)) = memo {
        return Ok(found);
    }
    let found = state
        .store
        .token_and_app(&digest(token))
        .await
        .map_err(internal)?;
    let _ = LOOKED_UP.try_with(|memo| memo.borrow_mut().push((token.to_owned(), found.clone())));
    Ok(found)
}

/// The verdict, with the token's app.
async fn verdict(
    state: &AppState,
    token: &str,
    channels: &[TokenChannel],
    now: i64,
) -> Result<(TokenRecord, Option<Arc<App>>), ErrCode> {
    let (record, app) = look_up(state, token)
        .await?
        .filter(|(record, _)| channels.contains(&record.channel))
        .ok_or(ErrCode::InvalidCredential)?;
    if record
        .superseded_at
        .is_some_and(|at| now >= at && record.expires_at > at)
    {
        return Err(ErrCode::InvalidCredential);
    }
    if now >= record.expires_at {
        return Err(ErrCode::AccessTokenExpired);
    }
    Ok((record, app))
}

/// The app a business call acts for, and the platform acting for it, if any.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The app.
    pub app: Arc<App>,
    /// The third-party platform, for authorizer tokens.
    pub component: Option<Arc<str>>,
}

/// The tokens that work as `access_token`.
const ACCESS_CHANNELS: &[TokenChannel] = &[
    TokenChannel::Basic,
    TokenChannel::Stable,
    TokenChannel::Authorizer,
];

/// Resolves the query's `access_token` to its app.
pub async fn authorize(state: &AppState, query: &Query<'_>, now: i64) -> Result<Caller, ErrCode> {
    let token = query
        .non_empty("access_token")
        .ok_or(ErrCode::AccessTokenMissing)?;
    let (record, app) = verdict(state, &token, ACCESS_CHANNELS, now).await?;
    let app = app.ok_or(ErrCode::InvalidCredential)?;
    Ok(Caller {
        app,
        component: record.component,
    })
}

/// What an endpoint requires of its caller.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// The API's canonical path (quotas and bans are kept by it).
    pub path: &'static str,
    /// Permission sets, one of which a platform needs for the app.
    pub funcscopes: &'static [u32],
    /// The kf rules of SPEC §6.1 apply; `Some(true)` for `uploadheadimg`, which mini
    /// programs do not have.
    pub kf: Option<bool>,
}

/// Token, then the platform gate (61007), the app's right to the API (65400/48001),
/// the ban (48004) and the quota (45009/45011). A call that passes is counted, even if
/// its body is refused later.
pub async fn admit(
    state: &AppState,
    query: &Query<'_>,
    now: i64,
    rules: Rules,
) -> Result<Arc<App>, ErrCode> {
    let caller = authorize(state, query, now).await?;
    if let Some(component) = &caller.component {
        let authorization = state
            .store
            .authorization(component, &caller.app.appid)
            .await
            .map_err(internal)?;
        let allowed = authorization.is_some_and(|a| {
            a.funcscopes
                .iter()
                .any(|scope| rules.funcscopes.contains(scope))
        });
        if !allowed {
            return Err(ErrCode::ApiUnauthorizedToComponent);
        }
    }
    if let Some(upload) = rules.kf {
        kf_scope(&caller.app, upload)?;
    }
    charge(state, &caller.app, rules.path, now).await?;
    Ok(caller.app)
}

/// Whether the app may call the kf API: sandbox apps and apps without the new kf
/// feature get 65400; unverified official accounts, and mini programs on
/// `uploadheadimg`, get 48001.
pub fn kf_scope(app: &App, upload: bool) -> Result<(), ErrCode> {
    match app.account_type {
        AccountType::Sandbox => return Err(ErrCode::NewKfNotEnabled),
        AccountType::Miniprogram if upload => return Err(ErrCode::ApiUnauthorized),
        AccountType::Service | AccountType::Subscription if !app.verified => {
            return Err(ErrCode::ApiUnauthorized);
        }
        _ => {}
    }
    if app.new_kf_enabled {
        Ok(())
    } else {
        Err(ErrCode::NewKfNotEnabled)
    }
}
