//! Who is calling: the token verdict (SPEC §2.3), the platform permission gate
//! (SPEC §7), bans, the app's right to the kf API (SPEC §6.1) and quotas (SPEC §6.2).

use std::sync::Arc;

use kefu_api::ErrCode;
use kefu_api::admin::AccountType;
use kefu_store::{App, TokenChannel, TokenRecord};

use super::call::Call;
use super::internal;
use super::platform::charge;
use crate::state::AppState;

/// The verdict for a token of one of `channels`, with its app.
///
/// It depends only on the token and the time: unknown (or of another channel) →
/// 40001; superseded while still valid and past its grace → 40001; past its expiry →
/// 42001 (also when a newer token came after it expired, so an expired token never
/// turns into 40001 later).
pub(crate) async fn token_verdict(
    state: &AppState,
    call: &Call,
    token: &str,
    channels: &[TokenChannel],
) -> Result<(TokenRecord, Option<Arc<App>>), ErrCode> {
    let now = call.now;
    let (record, app) = call
        .look_up(state, token)
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
pub(crate) struct Caller {
    /// The app.
    pub(crate) app: Arc<App>,
    /// The third-party platform, for authorizer tokens.
    pub(crate) component: Option<Arc<str>>,
}

/// The tokens that work as `access_token`.
const ACCESS_CHANNELS: &[TokenChannel] = &[
    TokenChannel::Basic,
    TokenChannel::Stable,
    TokenChannel::Authorizer,
];

/// Resolves the query's `access_token` to its app.
pub(crate) async fn authorize(state: &AppState, call: &Call) -> Result<Caller, ErrCode> {
    let token = call
        .query()
        .non_empty("access_token")
        .ok_or(ErrCode::AccessTokenMissing)?;
    let (record, app) = token_verdict(state, call, &token, ACCESS_CHANNELS).await?;
    let app = app.ok_or(ErrCode::InvalidCredential)?;
    Ok(Caller {
        app,
        component: record.component,
    })
}

/// What an endpoint requires of its caller.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    /// The API's canonical path (quotas and bans are kept by it).
    pub(crate) path: &'static str,
    /// Permission sets, one of which a platform needs for the app.
    pub(crate) funcscopes: &'static [u32],
    /// The kf rules of SPEC §6.1 apply; `Some(true)` for `uploadheadimg`, which mini
    /// programs do not have.
    pub(crate) kf: Option<bool>,
}

/// Token, then the platform gate (61007), the app's right to the API (65400/48001),
/// the ban (48004) and the quota (45009/45011). A call that passes is counted, even if
/// its body is refused later.
pub(crate) async fn admit(
    state: &AppState,
    call: &Call,
    rules: Rules,
) -> Result<Arc<App>, ErrCode> {
    let caller = authorize(state, call).await?;
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
    charge(state, &caller.app, rules.path, call.now).await?;
    Ok(caller.app)
}

/// Whether the app may call the kf API: sandbox apps and apps without the new kf
/// feature get 65400; unverified official accounts, and mini programs on
/// `uploadheadimg`, get 48001.
pub(crate) fn kf_scope(app: &App, upload: bool) -> Result<(), ErrCode> {
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
