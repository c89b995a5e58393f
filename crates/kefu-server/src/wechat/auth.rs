//! Who is calling: the token verdict, the platform permission gate, bans, the app's
//! right to the kf API and quotas (docs/behaviour.md, "Platform rules").

use std::sync::Arc;

use kefu_api::ErrCode;
use kefu_api::admin::AccountType;
use kefu_store::{App, TokenChannel, TokenRecord};

use super::call::Call;
use super::platform::charge;
use super::reply::WxError;
use crate::clock::utc;
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
) -> Result<(TokenRecord, Option<Arc<App>>), WxError> {
    let now = call.now;
    let Some((record, app)) = call.look_up(state, token).await? else {
        return Err(WxError::because(
            ErrCode::InvalidCredential,
            "no such token: kefu never issued it, or forgot it 7 days after it expired",
        ));
    };
    if !channels.contains(&record.channel) {
        return Err(WxError::because(
            ErrCode::InvalidCredential,
            format!(
                "the token is a {} token, which this API does not take",
                channel_name(record.channel)
            ),
        ));
    }
    if let Some(at) = record.superseded_at
        && now >= at
        && record.expires_at > at
    {
        return Err(WxError::because(
            ErrCode::InvalidCredential,
            format!(
                "the token was replaced by a newer one; its grace ended at {}",
                utc(at)
            ),
        ));
    }
    if now >= record.expires_at {
        return Err(WxError::because(
            ErrCode::AccessTokenExpired,
            format!(
                "the token expired at {} (issued at {})",
                utc(record.expires_at),
                utc(record.issued_at)
            ),
        ));
    }
    Ok((record, app))
}

/// How a reason names a token's channel.
fn channel_name(channel: TokenChannel) -> &'static str {
    match channel {
        TokenChannel::Basic => "/cgi-bin/token",
        TokenChannel::Stable => "stable_token",
        TokenChannel::Component => "component_access_token",
        TokenChannel::Authorizer => "authorizer_access_token",
        TokenChannel::Console => "console",
    }
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
    TokenChannel::Console,
];

/// Resolves the query's `access_token` to its app.
pub(crate) async fn authorize(state: &AppState, call: &Call) -> Result<Caller, WxError> {
    let token = call.query().non_empty("access_token").ok_or_else(|| {
        WxError::because(
            ErrCode::AccessTokenMissing,
            "the query has no access_token (or an empty one)",
        )
    })?;
    let (record, app) = token_verdict(state, call, &token, ACCESS_CHANNELS).await?;
    let app = app.ok_or_else(|| {
        WxError::because(ErrCode::InvalidCredential, "the token's app was deleted")
    })?;
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
    /// Which kinds of app may call it.
    pub(crate) scope: Scope,
}

impl Rules {
    /// The rules of an endpoint: its path, the permission sets a platform needs, and its
    /// scope.
    pub(crate) const fn of<E: kefu_api::Endpoint>(
        funcscopes: &'static [u32],
        scope: Scope,
    ) -> Rules {
        Rules {
            path: E::PATH,
            funcscopes,
            scope,
        }
    }
}

/// Which kinds of app may call an API (docs/behaviour.md, "Platform rules").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The customer service (kf) API: the accounts, sessions and history. `upload` is
    /// `uploadheadimg`, which mini programs do not have.
    Kf {
        /// Whether it is `uploadheadimg`.
        upload: bool,
    },
    /// Customer service messages: any verified account (and sandbox test accounts,
    /// which WeChat lets send them), whatever its kf switch.
    Messages,
}

/// Token, then the platform gate (61007), the app's right to the API (65400/48001),
/// the ban (48004) and the quota (45009/45011). A call that passes is counted, even if
/// its body is refused later.
pub(crate) async fn admit(
    state: &AppState,
    call: &Call,
    rules: Rules,
) -> Result<Arc<App>, WxError> {
    let caller = authorize(state, call).await?;
    if let Some(component) = &caller.component {
        let authorization = state
            .store
            .authorization(component, &caller.app.appid)
            .await?;
        let reason = match authorization {
            None => Some(format!(
                "platform {component} is no longer authorized by {}",
                caller.app.appid
            )),
            Some(a)
                if !a
                    .funcscopes
                    .iter()
                    .any(|scope| rules.funcscopes.contains(scope)) =>
            {
                Some(format!(
                    "{} authorized platform {component} for permission sets {:?}; {} needs \
                        one of {:?}",
                    caller.app.appid, a.funcscopes, rules.path, rules.funcscopes
                ))
            }
            Some(_) => None,
        };
        if let Some(reason) = reason {
            return Err(WxError::because(
                ErrCode::ApiUnauthorizedToComponent,
                reason,
            ));
        }
    }
    match rules.scope {
        Scope::Kf { upload } => kf_scope(&caller.app, upload)?,
        Scope::Messages => message_scope(&caller.app)?,
    }
    charge(state, &caller.app, rules.path, call.now).await?;
    Ok(caller.app)
}

/// Whether the app may send customer service messages: an official account must be
/// verified (48001); mini programs and sandbox test accounts may.
pub(crate) fn message_scope(app: &App) -> Result<(), WxError> {
    match app.account_type {
        AccountType::Service | AccountType::Subscription if !app.verified => Err(WxError::because(
            ErrCode::ApiUnauthorized,
            "the official account is not verified",
        )),
        _ => Ok(()),
    }
}

/// Whether the app may call the kf API: sandbox apps and apps without the new kf
/// feature get 65400; unverified official accounts, and mini programs on
/// `uploadheadimg`, get 48001.
pub(crate) fn kf_scope(app: &App, upload: bool) -> Result<(), WxError> {
    match app.account_type {
        AccountType::Sandbox => {
            return Err(WxError::because(
                ErrCode::NewKfNotEnabled,
                "a sandbox (test) account cannot use the customer service API",
            ));
        }
        AccountType::Miniprogram if upload => {
            return Err(WxError::because(
                ErrCode::ApiUnauthorized,
                "a mini program has no kf head images",
            ));
        }
        AccountType::Service | AccountType::Subscription if !app.verified => {
            return Err(WxError::because(
                ErrCode::ApiUnauthorized,
                "the official account is not verified",
            ));
        }
        _ => {}
    }
    if app.new_kf_enabled {
        Ok(())
    } else {
        Err(WxError::because(
            ErrCode::NewKfNotEnabled,
            "the app has not enabled the new customer service feature (new_kf_enabled)",
        ))
    }
}
