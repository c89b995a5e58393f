//! `GET /kefu/v1/livez` and `GET /kefu/v1/readyz` (README, "Running kefu in CI"):
//! public, for container runtimes, load balancers and `kefu healthcheck`.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use kefu_api::admin::Readiness;

use crate::state::AppState;

/// How long the store has to answer before the server is called unavailable.
const READY_WITHIN: Duration = Duration::from_secs(5);

/// The process answers.
pub(super) async fn livez() -> Json<Readiness> {
    Json(Readiness::live())
}

/// The store answers within [`READY_WITHIN`] and its schema is this build's.
pub(super) async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let verdict = match tokio::time::timeout(READY_WITHIN, state.store.ready()).await {
        Ok(_) if state.reset_lock.try_read().is_err() => {
            Err("the store is being reset to its fixtures".to_owned())
        }
        Ok(verdict) => verdict,
        Err(_) => Err(format!(
            "the store did not answer within {} s",
            READY_WITHIN.as_secs()
        )),
    };
    match verdict {
        Ok(()) => (StatusCode::OK, Json(Readiness::ready())),
        Err(reason) => {
            tracing::warn!(%reason, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Readiness::unavailable(reason)),
            )
        }
    }
}

/// `POST /kefu/v1/reset`: back to the fixtures (204).
pub(super) async fn reset(State(state): State<AppState>) -> Result<StatusCode, super::Failure> {
    crate::fixtures::reset(&state).await?;
    Ok(StatusCode::NO_CONTENT)
}
