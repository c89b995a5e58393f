//! WeChat's API surface: every path answers HTTP 200 with WeChat's envelope.
//!
//! The handlers' tracing spans are at debug level (`RUST_LOG=kefu_server=debug` shows
//! them): on a busy server, recording a span per call at the default level cost more
//! than much of the call's own work.

pub mod auth;
mod component;
pub(crate) mod kf;
pub mod observe;
mod openapi;
pub mod platform;
pub mod reply;
pub mod request;
mod token;

pub use self::observe::ClientIp;

use axum::Router;
use axum::extract::State;
use axum::handler::Handler;
use axum::routing::{MethodRouter, get, post};
use kefu_api::endpoints::{
    component as component_api, kf_add, kf_del, kf_invite, kf_list, kf_online, kf_update,
    kf_uploadheadimg, quota, rid_get, stable_token, token as token_api,
};
use kefu_api::{Endpoint, ErrCode, Method};
use kefu_store::StoreError;

use self::reply::Reply;
use crate::state::AppState;

/// Marks requests that arrived over the HTTPS listener (for the URLs handed out).
#[derive(Debug, Clone, Copy)]
pub struct Https;

/// Maps a store failure to the code a client sees; internal causes are logged here,
/// once, and the client sees `-1 system error` with its rid.
pub(crate) fn internal(error: StoreError) -> ErrCode {
    match error {
        StoreError::Rejected(code) => code,
        // The app vanished while the request was in flight: its tokens died with it.
        StoreError::NotFound => ErrCode::InvalidCredential,
        StoreError::Conflict(message) | StoreError::Internal(message) => {
            tracing::error!(cause = %message, "store failure answered as -1");
            ErrCode::SystemError
        }
    }
}

async fn require_get(State(state): State<AppState>) -> Reply {
    Reply::error(ErrCode::RequireGet, state.clock.now())
}

async fn require_post(State(state): State<AppState>) -> Reply {
    Reply::error(ErrCode::RequirePost, state.clock.now())
}

/// The answer for any path WeChat does not have.
pub(crate) async fn invalid_url(State(state): State<AppState>) -> Reply {
    Reply::error(ErrCode::InvalidUrl, state.clock.now())
}

/// Registers a handler under the endpoint's path and aliases, answering 43001/43002
/// to the other methods.
fn route<E: Endpoint, H, T>(router: Router<AppState>, handler: H) -> Router<AppState>
where
    H: Handler<T, AppState>,
    T: 'static,
{
    // HEAD is answered explicitly: axum would otherwise run the GET handler for it, and
    // a `curl -I` on `/cgi-bin/token` or `kfaccount/del` must not mint or delete anything.
    let methods: MethodRouter<AppState> = match E::METHOD {
        Method::Get => get(handler).head(require_get).fallback(require_get),
        Method::Post => post(handler).fallback(require_post),
        Method::GetOrPost => get(handler.clone())
            .head(require_post)
            .post(handler)
            .fallback(require_post),
    };
    std::iter::once(E::PATH)
        .chain(E::ALIASES.iter().copied())
        .fold(router, |router, path| router.route(path, methods.clone()))
}

/// Every WeChat endpoint kefu implements, behind the [`observe::observe`] middleware.
pub fn router(state: AppState) -> Router<AppState> {
    let router = Router::new();
    let router = route::<stable_token::GetStableToken, _, _>(router, token::stable_token_post);
    let router = route::<quota::GetQuota, _, _>(router, openapi::quota_get);
    let router = route::<quota::ClearApiQuota, _, _>(router, openapi::quota_clear);
    let router = route::<quota::ClearQuota, _, _>(router, openapi::clear_quota);
    let router = route::<quota::ClearQuotaV2, _, _>(router, openapi::clear_quota_v2);
    let router = route::<rid_get::GetRid, _, _>(router, openapi::rid_get);
    let router =
        route::<component_api::ComponentToken, _, _>(router, component::api_component_token);
    let router =
        route::<component_api::AuthorizerToken, _, _>(router, component::api_authorizer_token);
    let router = route::<token_api::GetToken, _, _>(router, token::token_get);
    let router = route::<kf_add::AddKfAccount, _, _>(router, kf::kf_add);
    let router = route::<kf_update::UpdateKfAccount, _, _>(router, kf::kf_update);
    let router = route::<kf_del::DelKfAccount, _, _>(router, kf::kf_del);
    let router = route::<kf_uploadheadimg::UploadHeadImg, _, _>(router, kf::kf_upload_headimg);
    let router = route::<kf_list::GetKfList, _, _>(router, kf::kf_list);
    let router = route::<kf_online::GetOnlineKfList, _, _>(router, kf::kf_online_list);
    route::<kf_invite::InviteWorker, _, _>(router, kf::kf_invite).layer(
        axum::middleware::from_fn_with_state(state, observe::observe),
    )
}
