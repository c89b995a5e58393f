//! Third-party platforms: `api_component_token` and `api_authorizer_token` (docs/behaviour.md).

use kefu_api::ErrCode;
use kefu_api::endpoints::component::{
    AuthorizerAccessToken, AuthorizerTokenRequest, ComponentAccessToken, ComponentTokenRequest,
    REFRESH_OVERLAP_SECS,
};
use kefu_api::endpoints::parse_json_body;
use kefu_api::endpoints::token::{EXPIRES_IN, GRACE_SECS};
use kefu_store::{Mint, Rotation, TokenChannel, TokenRecord};

use super::auth::token_verdict;
use super::call::Call;
use super::platform::check_ip;
use super::reply::{Reply, WxError};
use crate::secrets::{digest, matches, new_access_token, new_refresh_token, token_hint};
use crate::state::AppState;

const EXPIRES_IN_SECS: i64 = EXPIRES_IN as i64;
const GRACE: i64 = GRACE_SECS as i64;

fn present(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty())
}

async fn component_token(
    state: &AppState,
    call: &Call,
    body: ComponentTokenRequest,
) -> Result<Reply, WxError> {
    let now = call.now;
    let component_appid =
        present(body.component_appid.as_deref()).ok_or(ErrCode::ComponentAppidMissing)?;
    let component = state
        .store
        .component(component_appid)
        .await?
        .ok_or(ErrCode::InvalidComponent)?;
    call.found_caller(&component.component_appid);
    let secret = present(
        body.component_appsecret
            .as_ref()
            .map(kefu_api::Secret::expose),
    )
    .ok_or(ErrCode::AppsecretMissing)?;
    if !matches(secret, &component.secret_hash) {
        return Err(ErrCode::InvalidAppsecret.into());
    }
    check_ip(
        &component.ip_whitelist,
        call.ip,
        ErrCode::ClientIpNotRegistered,
    )?;
    let ticket = present(
        body.component_verify_ticket
            .as_ref()
            .map(kefu_api::Secret::expose),
    )
    .ok_or(ErrCode::ComponentTicketInvalid)?;
    let (owner, expires_at) = state
        .store
        .ticket(&digest(ticket))
        .await?
        .ok_or(ErrCode::ComponentTicketInvalid)?;
    if owner != component.component_appid {
        return Err(ErrCode::ComponentTicketInvalid.into());
    }
    if now >= expires_at {
        return Err(ErrCode::ComponentTicketExpired.into());
    }
    let token = new_access_token();
    let record = TokenRecord {
        appid: component.component_appid.as_str().into(),
        channel: TokenChannel::Component,
        component: None,
        issued_at: now,
        expires_at: now + EXPIRES_IN_SECS,
        superseded_at: None,
    };
    state
        .store
        .issue_token(Mint {
            token: record,
            hash: digest(&token),
            now,
            grace_secs: GRACE,
        })
        .await?;
    state.minted(TokenChannel::Component);
    tracing::info!(
        component = %component.component_appid,
        token = token_hint(&token),
        "component token issued"
    );
    Reply::json(&ComponentAccessToken {
        component_access_token: token.into(),
        expires_in: EXPIRES_IN,
    })
}

/// `POST /cgi-bin/component/api_component_token`: platform (41018, 61011), secret
/// (41004, 40125), the platform's IP list (61004), the ticket (61006, 61005).
#[tracing::instrument(level = "debug", name = "api_component_token", skip_all)]
pub(crate) async fn api_component_token(state: &AppState, call: &Call) -> Result<Reply, WxError> {
    let body = match parse_json_body::<ComponentTokenRequest>(call.body()?) {
        Err(ErrCode::EmptyPostData) => ComponentTokenRequest::default(),
        parsed => parsed?,
    };
    component_token(state, call, body).await
}

/// `POST /cgi-bin/component/api_authorizer_token?component_access_token=…` (also
/// `access_token=`): the component token (41001, 40001, 42001), an empty body 41018,
/// a platform other than the token's 61011, an unknown authorization or refresh
/// token 61023. Answers a new refresh token; the one sent works 5 more minutes.
#[tracing::instrument(level = "debug", name = "api_authorizer_token", skip_all)]
pub(crate) async fn api_authorizer_token(state: &AppState, call: &Call) -> Result<Reply, WxError> {
    let now = call.now;
    let query = call.query();
    let token = query
        .non_empty("component_access_token")
        .or_else(|| query.non_empty("access_token"))
        .ok_or(ErrCode::AccessTokenMissing)?;
    let component = token_verdict(state, call, &token, &[TokenChannel::Component])
        .await?
        .0
        .appid;
    let body = match parse_json_body::<AuthorizerTokenRequest>(call.body()?) {
        Err(ErrCode::EmptyPostData) => return Err(ErrCode::ComponentAppidMissing.into()),
        parsed => parsed?,
    };
    let component_appid =
        present(body.component_appid.as_deref()).ok_or(ErrCode::ComponentAppidMissing)?;
    if component_appid != &*component {
        return Err(ErrCode::InvalidComponent.into());
    }
    let appid = present(body.authorizer_appid.as_deref()).ok_or(ErrCode::RefreshTokenInvalid)?;
    let presented = present(
        body.authorizer_refresh_token
            .as_ref()
            .map(kefu_api::Secret::expose),
    )
    .ok_or(ErrCode::RefreshTokenInvalid)?;
    let refresh = new_refresh_token();
    state
        .store
        .rotate_refresh_token(Rotation {
            component_appid: component_appid.to_owned(),
            appid: appid.to_owned(),
            presented: digest(presented),
            next: digest(&refresh),
            now,
            overlap_secs: REFRESH_OVERLAP_SECS,
        })
        .await?;
    let token = new_access_token();
    let record = TokenRecord {
        appid: appid.into(),
        channel: TokenChannel::Authorizer,
        component: Some(component),
        issued_at: now,
        expires_at: now + EXPIRES_IN_SECS,
        superseded_at: None,
    };
    state
        .store
        .issue_token(Mint {
            token: record,
            hash: digest(&token),
            now,
            grace_secs: GRACE,
        })
        .await?;
    state.minted(TokenChannel::Authorizer);
    tracing::info!(appid, token = token_hint(&token), "authorizer token issued");
    let answer = AuthorizerAccessToken {
        authorizer_access_token: token.into(),
        expires_in: EXPIRES_IN,
        authorizer_refresh_token: refresh.into(),
    };
    Reply::json(&answer)
}
