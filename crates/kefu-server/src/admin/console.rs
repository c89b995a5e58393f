//! The admin calls the web console is built on (README, "Console"): the catalog and
//! the errcode table, the contract's check of a request, an app's tokens and console
//! tokens.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use kefu_api::admin::{
    AdminErrorCode, AppTokenAction, CONSOLE_TOKEN_SECS, CheckAnswer, CheckRequest, ConsoleToken,
    ErrcodeView, MAX_TOKENS_SHOWN, TokenVerdict, TokenView,
};
use kefu_api::catalog::{EntryView, entries, entry};
use kefu_api::endpoint::Sent;
use kefu_api::endpoints::token::GRACE_SECS;
use kefu_store::{Digest, Mint, TokenChannel, TokenRecord};

use super::{Failure, json_body};
use crate::secrets::{digest, new_access_token};
use crate::state::AppState;

/// `GET /kefu/v1/catalog`: every WeChat endpoint, with its schemas and example.
pub(super) async fn catalog() -> Json<Vec<EntryView>> {
    Json(
        entries()
            .iter()
            .map(kefu_api::catalog::Entry::view)
            .collect(),
    )
}

/// `GET /kefu/v1/errcodes`: the errcode table.
pub(super) async fn errcodes() -> Json<Vec<ErrcodeView>> {
    Json(ErrcodeView::table())
}

/// `POST /kefu/v1/catalog/{name}/check`: the contract's check of a request, as the
/// server makes it before anything else.
pub(super) async fn catalog_check(
    State(state): State<AppState>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Json<CheckAnswer>, Failure> {
    let endpoint = entry(&name).ok_or_else(|| Failure::not_found("endpoint"))?;
    let sent: CheckRequest = json_body(&state, request).await?;
    let answer = match endpoint.check(&Sent {
        query: &sent.query,
        body: sent.body.as_bytes(),
    }) {
        Ok(()) => CheckAnswer {
            ok: true,
            errcode: 0,
            reason: String::new(),
        },
        Err(refused) => CheckAnswer {
            ok: false,
            errcode: refused.code.code(),
            reason: refused.reason,
        },
    };
    Ok(Json(answer))
}

/// `GET /kefu/v1/apps/{appid}/tokens`: the app's tokens, newest first, with their state
/// at the server clock's now.
pub(super) async fn app_tokens(
    State(state): State<AppState>,
    Path(appid): Path<String>,
) -> Result<Json<Vec<TokenView>>, Failure> {
    if state.store.app(&appid).await?.is_none() {
        return Err(Failure::not_found("app"));
    }
    let now = state.clock.now();
    let owned = state.store.owner_tokens(&appid, MAX_TOKENS_SHOWN).await?;
    Ok(Json(
        owned
            .into_iter()
            .map(|(hash, record)| TokenView {
                hash: hex(&hash),
                kind: record.channel.as_str().to_owned(),
                component_appid: record.component.as_deref().map(str::to_owned),
                issued_at: record.issued_at,
                superseded_at: record.superseded_at,
                expires_at: record.expires_at,
                state: token_state(&record, now).to_owned(),
            })
            .collect(),
    ))
}

/// How a token stands at `now` (expiry wins, as the token check has it).
fn token_state(record: &TokenRecord, now: i64) -> &'static str {
    match record.superseded_at {
        _ if now >= record.expires_at => "expired",
        Some(at) if now >= at => "superseded",
        Some(_) => "in_grace",
        None => "live",
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn unhex(text: &str) -> Option<Digest> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut digest = [0_u8; 32];
    for (at, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[at * 2..at * 2 + 2], 16).ok()?;
    }
    Some(digest)
}

/// `POST /kefu/v1/apps/{appid}/tokens`: with no body (or `{}`), a console token for the
/// app (no quota; it supersedes only the previous console token, after the usual
/// 5-minute grace); with an [`AppTokenAction`], one of the app's tokens invalidated or
/// expired now.
pub(super) async fn app_tokens_post(
    State(state): State<AppState>,
    Path(appid): Path<String>,
    request: Request,
) -> Result<Response, Failure> {
    let empty = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|length| length == "0")
        || http_body::Body::is_end_stream(request.body());
    let action: AppTokenAction = if empty {
        AppTokenAction::default()
    } else {
        json_body(&state, request).await?
    };
    let Some(verdict) = action.action else {
        return Ok(console_token(&state, &appid).await?.into_response());
    };
    let hash = match (&action.hash, &action.access_token) {
        (Some(hash), _) => unhex(hash).ok_or_else(|| {
            Failure::new(AdminErrorCode::InvalidBody, "hash must be 64 hex digits")
        })?,
        (None, Some(token)) => digest(token.expose()),
        (None, None) => {
            return Err(Failure::new(
                AdminErrorCode::InvalidBody,
                "name the token by its hash or its value (access_token)",
            ));
        }
    };
    // Only the app's own tokens.
    match state.store.token(&hash).await? {
        Some(record) if *record.appid == *appid => {}
        _ => return Err(Failure::not_found("token of this app")),
    }
    let now = state.clock.now();
    let (superseded_at, expires_at) = match verdict {
        TokenVerdict::Invalidate => (Some(now), None),
        TokenVerdict::Expire => (None, Some(now)),
    };
    state
        .store
        .set_token_times(&hash, superseded_at, expires_at)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn console_token(
    state: &AppState,
    appid: &str,
) -> Result<(StatusCode, Json<ConsoleToken>), Failure> {
    let app = state
        .store
        .app(appid)
        .await?
        .ok_or_else(|| Failure::not_found("app"))?;
    let now = state.clock.now();
    let secs = i64::try_from(CONSOLE_TOKEN_SECS).unwrap_or(i64::MAX);
    let access_token = new_access_token();
    state
        .store
        .issue_token(Mint {
            token: TokenRecord {
                appid: app.appid.as_str().into(),
                channel: TokenChannel::Console,
                component: None,
                issued_at: now,
                expires_at: now.saturating_add(secs),
                superseded_at: None,
            },
            hash: digest(&access_token),
            now,
            grace_secs: i64::try_from(GRACE_SECS).unwrap_or(0),
        })
        .await?;
    state.minted(TokenChannel::Console);
    Ok((
        StatusCode::CREATED,
        Json(ConsoleToken {
            access_token: access_token.into(),
            expires_in: CONSOLE_TOKEN_SECS,
        }),
    ))
}
