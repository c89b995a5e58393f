//! The admin calls the web console is built on (README, "Console"): the catalog and
//! the errcode table, the contract's check of a request, and console tokens.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use kefu_api::admin::{CONSOLE_TOKEN_SECS, CheckAnswer, CheckRequest, ConsoleToken, ErrcodeView};
use kefu_api::catalog::{EntryView, entries, entry};
use kefu_api::endpoint::Sent;
use kefu_api::endpoints::token::GRACE_SECS;
use kefu_store::{Mint, TokenChannel, TokenRecord};

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

/// `POST /kefu/v1/apps/{appid}/tokens`: a console token for the app (no quota; it
/// supersedes only the previous console token, after the usual 5-minute grace).
pub(super) async fn console_token(
    State(state): State<AppState>,
    Path(appid): Path<String>,
) -> Result<(StatusCode, Json<ConsoleToken>), Failure> {
    let app = state
        .store
        .app(&appid)
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
        .await
        .map_err(|error| match error {
            kefu_store::StoreError::NotFound => Failure::not_found("app"),
            other => Failure::from(other),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(ConsoleToken {
            access_token: access_token.into(),
            expires_in: CONSOLE_TOKEN_SECS,
        }),
    ))
}
