//! kefu's own surface under `/kefu/v1` (README, "Endpoints"): app management and
//! simulation controls behind `Authorization: Bearer <admin token>`, plus the public
//! head images and health check. Not WeChat's API, so it answers ordinary HTTP statuses.

mod apps;
mod console;
mod fans;
mod health;
mod lapsed;
mod platform;
mod routes;
pub mod stream;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use kefu_api::admin::{
    self as paths, AdminError, AdminErrorCode, Checked, ClockAdvance, ClockView, Invalid,
};
use kefu_store::{Snapshot, StoreError};
use serde::de::DeserializeOwned;

pub use self::apps::create_app;
use self::routes::Recorder;
pub use self::routes::Route;
use crate::clock::MAX_OFFSET_SECS;
use crate::secrets::matches;
use crate::state::AppState;
use crate::wechat::request::{MAX_JSON_BODY, ReadBody, read_body};

/// A failed admin call: a status and an [`AdminError`] body.
#[derive(Debug)]
pub struct Failure {
    code: AdminErrorCode,
    message: String,
}

impl Failure {
    /// A failure with its code (which gives the status) and a sentence.
    pub fn new(code: AdminErrorCode, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn not_found(what: &str) -> Failure {
        Failure::new(AdminErrorCode::NotFound, format!("no such {what}"))
    }

    /// The sentence.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<Invalid> for Failure {
    fn from(invalid: Invalid) -> Failure {
        Failure::new(invalid.code, invalid.message)
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Failure {
        match error {
            StoreError::NotFound => Failure::not_found("app"),
            StoreError::Conflict(message) => Failure::new(AdminErrorCode::Conflict, message),
            StoreError::Invalid(message) => Failure::new(AdminErrorCode::Invalid, message),
            StoreError::Rejected(code) => Failure::new(
                AdminErrorCode::Rejected,
                format!("WeChat's rules refuse it: {code}"),
            ),
            StoreError::Refused(refused) => Failure::new(
                AdminErrorCode::Rejected,
                format!(
                    "WeChat's rules refuse it: {} ({})",
                    refused.reason, refused.code
                ),
            ),
            StoreError::Internal(message) => {
                tracing::error!(cause = %message, "store failure on the admin surface");
                Failure::new(
                    AdminErrorCode::Internal,
                    "storage failure; see the server log",
                )
            }
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = AdminError {
            error: self.code.as_str().to_owned(),
            message: self.message,
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Reads a JSON body of an admin call.
async fn json_body<T: DeserializeOwned>(state: &AppState, request: Request) -> Result<T, Failure> {
    json_body_within(state, request, MAX_JSON_BODY).await
}

/// Reads an admin request body and checks its values with the contract's rules: a
/// malformed body is `invalid_body`, a value that breaks a rule that rule's code.
async fn checked_body<T: Checked>(state: &AppState, request: Request) -> Result<T, Failure> {
    let body: T::Body = json_body(state, request).await?;
    Ok(T::try_from(body)?)
}

/// Reads the query of an admin call: one that is not what the call takes is
/// `invalid_query` (400), as a body is `invalid_body`.
fn query_of<T: DeserializeOwned>(uri: &axum::http::Uri) -> Result<T, Failure> {
    axum::extract::Query::<T>::try_from_uri(uri)
        .map(|query| query.0)
        .map_err(|e| Failure::new(AdminErrorCode::InvalidQuery, e.body_text()))
}

async fn json_body_within<T: DeserializeOwned>(
    state: &AppState,
    request: Request,
    limit: usize,
) -> Result<T, Failure> {
    let (parts, body) = request.into_parts();
    let read = read_body(&parts.headers, body, limit, state.limits.body_timeout).await;
    let bytes = match read.body {
        ReadBody::Whole(bytes) => bytes,
        ReadBody::TooLarge => {
            return Err(Failure::new(
                AdminErrorCode::TooLarge,
                format!("the body is over {} MiB", limit >> 20),
            ));
        }
        ReadBody::Broken => {
            return Err(Failure::new(
                AdminErrorCode::InvalidBody,
                "the body was broken off or too slow to arrive",
            ));
        }
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| Failure::new(AdminErrorCode::InvalidBody, e.to_string()))
}

async fn require_admin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let changes_state = crate::console::changes_state(request.method());
    if changes_state && crate::console::cross_site(request.headers(), request.uri()) {
        return Failure::new(
            AdminErrorCode::Forbidden,
            "a state-changing request from another site is refused",
        )
        .into_response();
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(token) if matches(token, &state.admin_token) => next.run(request).await,
        Some(_) => Failure::new(AdminErrorCode::Unauthorized, "wrong admin token").into_response(),
        None if let Some(csrf) = state.sessions.csrf_of(request.headers()) => {
            // The console's session stands for the token; what it changes must carry
            // the session's CSRF token.
            let sent = request
                .headers()
                .get(crate::console::CSRF_HEADER)
                .and_then(|v| v.to_str().ok());
            if changes_state && sent != Some(csrf.as_str()) {
                return Failure::new(
                    AdminErrorCode::Forbidden,
                    "the console's CSRF token is missing or wrong",
                )
                .into_response();
            }
            next.run(request).await
        }
        None => Failure::new(
            AdminErrorCode::Unauthorized,
            "send the admin token as 'Authorization: Bearer <token>'",
        )
        .into_response(),
    }
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn clock_get(State(state): State<AppState>) -> Json<ClockView> {
    Json(ClockView {
        now: state.clock.now(),
        offset_secs: state.clock.offset(),
        lapsed: None,
    })
}

async fn clock_advance(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<ClockView>, Failure> {
    let advance: ClockAdvance = json_body(&state, request).await?;
    // The clock is shared: the move is made in the store, where moves through other
    // instances add up, and this clock follows (the others within a second). Nothing
    // moves when the store refuses.
    let by = i64::try_from(advance.advance_secs)
        .unwrap_or(i64::MAX)
        .min(MAX_OFFSET_SECS);
    let at_least = state.clock.offset().saturating_add(by).min(MAX_OFFSET_SECS);
    let from = state.clock.now();
    let stored = state
        .store
        .advance_clock_offset(by, at_least, MAX_OFFSET_SECS)
        .await?;
    state.clock.raise_to(stored);
    // One reading of the new time, for what lapsed and for the answer.
    let now = state.clock.now();
    // What lapsed, told before housekeeping forgets any of it. The move is made: a
    // store failure here leaves the report out rather than fail the move (which a
    // client would then make twice).
    let lapsed = match lapsed::between(&state, from, now).await {
        Ok(lapsed) => Some(lapsed),
        Err(error) => {
            tracing::warn!(%error, "what lapsed could not be read");
            None
        }
    };
    // Housekeeping at the new time at once (old request records go), as the next
    // periodic round would.
    crate::startup::maintain(&state).await;
    Ok(Json(ClockView {
        now,
        offset_secs: state.clock.offset(),
        lapsed,
    }))
}

/// The largest export document `POST /kefu/v1/import` takes (head images included).
const MAX_IMPORT_BODY: usize = 512 << 20;

/// `GET /kefu/v1/export`: every app, account, head image, platform and authorization
/// as one JSON document (the format of `kefu export`).
async fn export(State(state): State<AppState>) -> Result<Json<Snapshot>, Failure> {
    Ok(Json(state.store.snapshot().await?))
}

/// `POST /kefu/v1/import`: loads an export document into this server's store, which
/// must hold no app or platform (409 otherwise); all or nothing.
async fn import(State(state): State<AppState>, request: Request) -> Result<StatusCode, Failure> {
    let snapshot: Snapshot = json_body_within(&state, request, MAX_IMPORT_BODY).await?;
    state.store.restore(snapshot).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /kefu/v1/headimg/{appid}/{kf_id}/{version}.jpg`: public, like WeChat's image URLs.
async fn headimg(
    State(state): State<AppState>,
    Path((appid, kf_id, file)): Path<(String, String, String)>,
) -> Result<Response, Failure> {
    let kf_id: i64 = kf_id.parse().map_err(|_| Failure::not_found("image"))?;
    let version = file
        .strip_suffix(".jpg")
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or_else(|| Failure::not_found("image"))?;
    let jpeg = state
        .store
        .kf_headimg(&appid, kf_id, version)
        .await?
        .ok_or_else(|| Failure::not_found("image"))?;
    let mut response = Response::new(Body::from(jpeg));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    // A version's bytes never change: a new upload gets a new URL.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Ok(response)
}

/// The routes that need the admin token, as registered.
fn guarded(routes: Recorder) -> Recorder {
    routes
        .get(paths::APPS, apps::app_list)
        .post(paths::APPS, apps::app_create)
        .get(paths::APP, apps::app_get)
        .patch(paths::APP, apps::app_update)
        .delete(paths::APP, apps::app_delete)
        .post(paths::APP_SECRET, apps::app_rotate_secret)
        .get(paths::APP_KFS, apps::kf_list)
        .post(paths::KF_INVITATION, apps::kf_invitation)
        .post(paths::KF_ONLINE, platform::kf_online)
        .get(paths::FANS, fans::fan_list)
        .post(paths::FANS, fans::fan_create)
        .get(paths::FAN, fans::fan_get)
        .delete(paths::FAN, fans::fan_delete)
        .post(paths::FAN_ACTIONS, fans::fan_act)
        .post(paths::FAN_QUEUE, fans::fan_queue)
        .get(paths::COMPONENTS, platform::component_list)
        .post(paths::COMPONENTS, platform::component_create)
        .get(paths::COMPONENT, platform::component_get)
        .delete(paths::COMPONENT, platform::component_delete)
        .post(paths::COMPONENT_TICKET, platform::ticket_issue)
        .post(
            paths::COMPONENT_AUTHORIZATIONS,
            platform::authorization_create,
        )
        .get(paths::FAULTS, platform::fault_list)
        .post(paths::FAULTS, platform::fault_add)
        .delete(paths::FAULT, platform::fault_delete)
        .post(paths::TOKENS, platform::token_act)
        .get(paths::REQUESTS, platform::request_log)
        .get(paths::REQUESTS_SUMMARY, platform::request_summary)
        .get(paths::CLOCK, clock_get)
        .post(paths::CLOCK, clock_advance)
        .get(paths::CATALOG, console::catalog)
        .post(paths::CATALOG_CHECK, console::catalog_check)
        .get(paths::ERRCODES, console::errcodes)
        .get(paths::APP_TOKENS, console::app_tokens)
        .post(paths::APP_TOKENS, console::app_tokens_post)
        .get(paths::REQUESTS_STREAM, stream::request_stream)
        .get(paths::EXPORT, export)
        .post(paths::IMPORT, import)
        .post(paths::RESET, health::reset)
        .get(paths::METRICS, metrics)
}

/// `GET /kefu/v1/metrics`.
async fn metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    crate::metrics::scrape(&state, &headers).await
}

/// The routes anyone may call, as registered.
fn public(routes: Recorder) -> Recorder {
    routes
        .get(paths::HEALTH, health)
        .get(paths::HEADIMG, headimg)
        .get(paths::LIVEZ, health::livez)
        .get(paths::READYZ, health::readyz)
        .get(paths::OPENAPI, crate::openapi::serve)
}

/// The admin surface's router: every path is one of the contract's constants
/// ([`kefu_api::admin`]).
pub fn router(state: AppState) -> Router<AppState> {
    let (guarded, _) = guarded(Recorder::new()).into_parts();
    let (public, _) = public(Recorder::new()).into_parts();
    public.merge(guarded.route_layer(middleware::from_fn_with_state(state, require_admin)))
}

/// Every route the admin router registers, and whether it needs the admin token.
#[must_use]
pub fn registered_routes() -> Vec<(Route, bool)> {
    let (_, guarded) = guarded(Recorder::new()).into_parts();
    let (_, public) = public(Recorder::new()).into_parts();
    let mut all: Vec<(Route, bool)> = guarded.into_iter().map(|r| (r, true)).collect();
    all.extend(public.into_iter().map(|r| (r, false)));
    all
}

/// What answers any other path under [`paths::PREFIX`].
pub(crate) async fn not_found() -> Failure {
    Failure::not_found("admin endpoint")
}
