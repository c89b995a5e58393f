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

use std::collections::HashMap;
use std::pin::Pin;

use axum::Extension;
use axum::extract::{Request, State};
use axum::http;
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

/// What answers a request for one of WeChat's paths.
pub type Handler = fn(AppState, Request) -> Pin<Box<dyn Future<Output = Reply> + Send>>;

/// A handler taking the state and the request, as a [`Handler`].
macro_rules! handler {
    ($f:path) => {
        (|state, request| Box::pin($f(State(state), request))) as Handler
    };
    ($f:path, ip) => {
        (|state, request: Request| {
            let ip = request
                .extensions()
                .get::<ClientIp>()
                .copied()
                .map(Extension);
            Box::pin($f(State(state), ip, request))
        }) as Handler
    };
}

fn require_get(state: AppState, _: Request) -> Pin<Box<dyn Future<Output = Reply> + Send>> {
    Box::pin(async move { Reply::error(ErrCode::RequireGet, state.clock.now()) })
}

fn require_post(state: AppState, _: Request) -> Pin<Box<dyn Future<Output = Reply> + Send>> {
    Box::pin(async move { Reply::error(ErrCode::RequirePost, state.clock.now()) })
}

/// The answer for any path WeChat does not have.
pub(crate) async fn invalid_url(State(state): State<AppState>) -> Reply {
    Reply::error(ErrCode::InvalidUrl, state.clock.now())
}

/// One of WeChat's paths: the methods it takes and what answers them.
#[derive(Clone, Copy)]
struct Route {
    method: Method,
    handler: Handler,
}

/// Every WeChat endpoint kefu implements, by path (and alias).
///
/// A table rather than axum's router: WeChat's paths are a fixed set with one rule for
/// methods, and finding a request's handler here costs a lookup, where the router
/// cloned services and wrapped futures in layers for every request.
pub struct Routes(HashMap<&'static str, Route>);

impl Default for Routes {
    fn default() -> Routes {
        Routes::new()
    }
}

impl Routes {
    /// The table.
    #[must_use]
    pub fn new() -> Routes {
        let mut routes = Routes(HashMap::new());
        routes.add::<stable_token::GetStableToken>(handler!(token::stable_token_post, ip));
        routes.add::<quota::GetQuota>(handler!(openapi::quota_get));
        routes.add::<quota::ClearApiQuota>(handler!(openapi::quota_clear));
        routes.add::<quota::ClearQuota>(handler!(openapi::clear_quota));
        routes.add::<quota::ClearQuotaV2>(handler!(openapi::clear_quota_v2, ip));
        routes.add::<rid_get::GetRid>(handler!(openapi::rid_get));
        routes.add::<component_api::ComponentToken>(handler!(component::api_component_token, ip));
        routes.add::<component_api::AuthorizerToken>(handler!(component::api_authorizer_token));
        routes.add::<token_api::GetToken>(handler!(token::token_get, ip));
        routes.add::<kf_add::AddKfAccount>(handler!(kf::kf_add));
        routes.add::<kf_update::UpdateKfAccount>(handler!(kf::kf_update));
        routes.add::<kf_del::DelKfAccount>(handler!(kf::kf_del));
        routes.add::<kf_uploadheadimg::UploadHeadImg>(handler!(kf::kf_upload_headimg));
        routes.add::<kf_list::GetKfList>(handler!(kf::kf_list));
        routes.add::<kf_online::GetOnlineKfList>(handler!(kf::kf_online_list));
        routes.add::<kf_invite::InviteWorker>(handler!(kf::kf_invite));
        routes
    }

    /// Registers a handler under the endpoint's path and aliases.
    fn add<E: Endpoint>(&mut self, handler: Handler) {
        let route = Route {
            method: E::METHOD,
            handler,
        };
        for path in std::iter::once(E::PATH).chain(E::ALIASES.iter().copied()) {
            self.0.insert(path, route);
        }
    }

    /// What answers `method` on `path`: its handler, or 43001/43002 for the other
    /// methods. HEAD is a method like the others: a `curl -I` on `/cgi-bin/token` or
    /// `kfaccount/del` must not mint or delete anything. `None` for a path WeChat does
    /// not have.
    #[must_use]
    pub fn handler(&self, path: &str, method: &http::Method) -> Option<Handler> {
        let route = self.0.get(path)?;
        let get = method == http::Method::GET;
        let post = method == http::Method::POST;
        Some(match route.method {
            Method::Get if get => route.handler,
            Method::Post if post => route.handler,
            Method::GetOrPost if get || post => route.handler,
            Method::Get => require_get,
            Method::Post | Method::GetOrPost => require_post,
        })
    }
}
