//! WeChat's API surface: every path answers HTTP 200 with WeChat's envelope.
//!
//! The handlers' tracing spans are at debug level (`RUST_LOG=kefu_server=debug` shows
//! them): on a busy server, recording a span per call at the default level cost more
//! than much of the call's own work.

mod auth;
mod call;
mod component;
pub(crate) mod edge;
pub(crate) mod kf;
mod log;
mod message;
mod openapi;
pub(crate) mod platform;
pub(crate) mod reply;
pub(crate) mod request;
mod session;
mod token;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use axum::extract::{Request, State};
use axum::http::{self, HeaderValue, header};
use axum::response::Response;
use kefu_api::endpoints::{
    component as component_api, kf_add, kf_del, kf_invite, kf_list, kf_online, kf_session,
    kf_update, kf_uploadheadimg, message as message_api, msgrecord, quota, rid_get, stable_token,
    token as token_api,
};
use kefu_api::{Endpoint, ErrCode, Method};

use self::call::Call;
use self::reply::{Answered, Reply, WxError, new_rid};
use crate::metrics::{Metrics, PathMetrics};
use crate::state::AppState;

pub(crate) use self::log::truncated as log_text;

/// Marks requests that arrived over the HTTPS listener (for the URLs handed out).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Https;

/// What a handler's future is.
pub(crate) type Answer<'a> = Pin<Box<dyn Future<Output = Result<Reply, WxError>> + Send + 'a>>;

/// What answers a call to one of WeChat's paths.
pub(crate) type Handler = for<'a> fn(&'a AppState, &'a Call) -> Answer<'a>;

/// An `async fn(&AppState, &Call) -> Result<Reply, WxError>` as a [`Handler`].
macro_rules! handler {
    ($f:path) => {{
        fn handler<'a>(state: &'a AppState, call: &'a Call) -> Answer<'a> {
            Box::pin($f(state, call))
        }
        handler as Handler
    }};
}

async fn require_get(_: &AppState, _: &Call) -> Result<Reply, WxError> {
    Err(ErrCode::RequireGet.into())
}

async fn require_post(_: &AppState, _: &Call) -> Result<Reply, WxError> {
    Err(ErrCode::RequirePost.into())
}

/// The answer for any path WeChat does not have: `40066 invalid url`, once the body
/// (if any) is read off the connection, which then serves the client's next request.
pub(crate) async fn invalid_url(State(state): State<AppState>, request: Request) -> Response {
    let version = request.version();
    let rid = new_rid(state.clock.now());
    let drained = tokio::time::timeout(
        state.limits.body_timeout,
        request::discard(request.into_body(), request::MAX_DISCARDED_BODY),
    )
    .await
    .unwrap_or(false);
    if let Some(metrics) = &state.metrics {
        metrics.unknown_path();
    }
    let mut response = Answered::error(ErrCode::InvalidUrl, rid).response();
    if !drained && version <= http::Version::HTTP_11 {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// One of WeChat's paths, for the methods it takes or the code that refuses the others.
#[derive(Clone, Copy)]
pub(crate) struct Route<'a> {
    /// The path as registered (an endpoint's path or alias).
    pub(crate) path: &'static str,
    /// What answers the call.
    pub(crate) handler: Handler,
    /// The largest body read (larger is 45002).
    pub(crate) max_body: usize,
    /// The path's metrics, when the server keeps them.
    pub(crate) metrics: Option<&'a PathMetrics>,
}

/// An endpoint's path as registered: its methods, handler, body limit and metrics.
struct Registered {
    method: Method,
    handler: Handler,
    max_body: usize,
    metrics: Option<PathMetrics>,
}

/// Every WeChat endpoint kefu implements, by path (and alias).
///
/// A table rather than axum's router: WeChat's paths are a fixed set with one rule for
/// methods, and finding a request's handler here costs a lookup, where the router
/// cloned services and wrapped futures in layers for every request.
pub(crate) struct Routes {
    paths: HashMap<&'static str, Registered>,
}

/// The table being built, and where each path's metrics are made.
struct Builder<'m> {
    paths: HashMap<&'static str, Registered>,
    metrics: Option<&'m Metrics>,
}

impl Builder<'_> {
    /// Registers a handler under the endpoint's path and aliases.
    fn add<E: Endpoint>(&mut self, handler: Handler) {
        for path in std::iter::once(E::PATH).chain(E::ALIASES.iter().copied()) {
            let registered = Registered {
                method: E::METHOD,
                handler,
                max_body: E::MAX_BODY,
                metrics: self.metrics.map(|metrics| metrics.path(path)),
            };
            self.paths.insert(path, registered);
        }
    }
}

impl Routes {
    /// The table; each path's handles on `metrics` are made here, once.
    pub(crate) fn new(metrics: Option<&Metrics>) -> Routes {
        let mut routes = Builder {
            paths: HashMap::new(),
            metrics,
        };
        routes.add::<stable_token::GetStableToken>(handler!(token::stable_token_post));
        routes.add::<quota::GetQuota>(handler!(openapi::quota_get));
        routes.add::<quota::ClearApiQuota>(handler!(openapi::quota_clear));
        routes.add::<quota::ClearQuota>(handler!(openapi::clear_quota));
        routes.add::<quota::ClearQuotaV2>(handler!(openapi::clear_quota_v2));
        routes.add::<rid_get::GetRid>(handler!(openapi::rid_get));
        routes.add::<component_api::ComponentToken>(handler!(component::api_component_token));
        routes.add::<component_api::AuthorizerToken>(handler!(component::api_authorizer_token));
        routes.add::<token_api::GetToken>(handler!(token::token_get));
        routes.add::<kf_add::AddKfAccount>(handler!(kf::kf_add));
        routes.add::<kf_update::UpdateKfAccount>(handler!(kf::kf_update));
        routes.add::<kf_del::DelKfAccount>(handler!(kf::kf_del));
        routes.add::<kf_uploadheadimg::UploadHeadImg>(handler!(kf::kf_upload_headimg));
        routes.add::<kf_list::GetKfList>(handler!(kf::kf_list));
        routes.add::<kf_online::GetOnlineKfList>(handler!(kf::kf_online_list));
        routes.add::<kf_invite::InviteWorker>(handler!(kf::kf_invite));
        routes.add::<kf_session::CreateSession>(handler!(session::session_create));
        routes.add::<kf_session::CloseSession>(handler!(session::session_close));
        routes.add::<kf_session::GetSession>(handler!(session::session_get));
        routes.add::<kf_session::GetSessionList>(handler!(session::session_list));
        routes.add::<kf_session::GetWaitCase>(handler!(session::wait_case));
        routes.add::<msgrecord::GetMsgList>(handler!(session::msg_list));
        routes.add::<msgrecord::GetRecord>(handler!(session::msg_record));
        routes.add::<message_api::SendMessage>(handler!(message::send));
        routes.add::<message_api::SendTyping>(handler!(message::typing));
        Routes {
            paths: routes.paths,
        }
    }

    /// Every path served, with the methods it takes.
    pub(crate) fn paths(&self) -> impl Iterator<Item = (&'static str, Method)> + '_ {
        self.paths
            .iter()
            .map(|(path, registered)| (*path, registered.method))
    }

    /// What answers `method` on `path`: its handler, or 43001/43002 for the other
    /// methods. HEAD is a method like the others: a `curl -I` on `/cgi-bin/token` or
    /// `kfaccount/del` must not mint or delete anything. `None` for a path WeChat does
    /// not have.
    pub(crate) fn find(&self, path: &str, method: &http::Method) -> Option<Route<'_>> {
        let (path, registered) = self.paths.get_key_value(path)?;
        let get = method == http::Method::GET;
        let post = method == http::Method::POST;
        let handler = match registered.method {
            Method::Get if get => registered.handler,
            Method::Post if post => registered.handler,
            Method::GetOrPost if get || post => registered.handler,
            Method::Get => handler!(require_get),
            Method::Post | Method::GetOrPost => handler!(require_post),
        };
        Some(Route {
            path,
            handler,
            max_body: registered.max_body,
            metrics: registered.metrics.as_ref(),
        })
    }
}
