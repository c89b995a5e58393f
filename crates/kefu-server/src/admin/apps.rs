//! App management and the per-account simulation controls.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use kefu_api::admin::{
    AppPatch, AppSettings, AppView, CallbackView, CreatedApp, InvitationRequest, KfView, NewApp,
};
use kefu_api::endpoints::kf_invite::MAX_BOUND_PER_WORKER;
use kefu_api::{KfAccount, Secret};
use kefu_store::{App, AppSummary, InvitationAnswer};

use super::{Failure, checked_body, json_body};
use crate::secrets::{digest, new_app_secret, new_appid, new_original_id};
use crate::state::AppState;
use crate::wechat::kf::{base_url, kf_info};

fn view(app: &App, kf_count: usize) -> AppView {
    AppView {
        appid: app.appid.clone(),
        wechat_id: app.wechat_id.clone(),
        original_id: app.original_id.clone(),
        account_type: app.account_type,
        verified: app.verified,
        new_kf_enabled: app.new_kf_enabled,
        created_at: app.created_at,
        kf_count,
        callback: app.settings.callback.as_ref().map(CallbackView::from),
        settings: AppSettings {
            callback: None,
            ..app.settings.clone()
        },
    }
}

/// Creates an app from an admin request; the answer carries the secret in clear,
/// the only time it is shown.
pub async fn create_app(state: &AppState, new: NewApp) -> Result<CreatedApp, Failure> {
    let secret: Secret = new
        .secret
        .map_or_else(|| new_app_secret().into(), Into::into);
    let app = App {
        appid: new
            .appid
            .map_or_else(new_appid, |appid| appid.as_str().to_owned()),
        wechat_id: new.wechat_id.as_str().to_owned(),
        original_id: new
            .original_id
            .map_or_else(new_original_id, |id| id.as_str().to_owned()),
        account_type: new.account_type.unwrap_or_default(),
        verified: new.verified.unwrap_or(true),
        new_kf_enabled: new.new_kf_enabled.unwrap_or(true),
        secret_hash: digest(secret.expose()),
        created_at: state.clock.now(),
        settings: new.settings,
    };
    let app = state.store.create_app(app).await?;
    tracing::info!(appid = %app.appid, wechat_id = %app.wechat_id, "app created");
    Ok(CreatedApp {
        app: view(&app, 0),
        secret,
    })
}

pub(super) async fn app_create(
    State(state): State<AppState>,
    request: Request,
) -> Result<(StatusCode, Json<CreatedApp>), Failure> {
    let new: NewApp = checked_body(&state, request).await?;
    Ok((StatusCode::CREATED, Json(create_app(&state, new).await?)))
}

pub(super) async fn app_list(State(state): State<AppState>) -> Result<Json<Vec<AppView>>, Failure> {
    let apps = state.store.apps().await?;
    Ok(Json(
        apps.iter()
            .map(|AppSummary { app, kf_count }| view(app, *kf_count))
            .collect(),
    ))
}

async fn summary(state: &AppState, appid: &str) -> Result<AppView, Failure> {
    let app = state
        .store
        .app(appid)
        .await?
        .ok_or_else(|| Failure::not_found("app"))?;
    let kf_count = state.store.kfs(appid).await?.len();
    Ok(view(&app, kf_count))
}

pub(super) async fn app_get(
    State(state): State<AppState>,
    Path(appid): Path<String>,
) -> Result<Json<AppView>, Failure> {
    Ok(Json(summary(&state, &appid).await?))
}

pub(super) async fn app_update(
    State(state): State<AppState>,
    Path(appid): Path<String>,
    request: Request,
) -> Result<Json<AppView>, Failure> {
    let patch: AppPatch = checked_body(&state, request).await?;
    state.store.update_app(&appid, patch).await?;
    Ok(Json(summary(&state, &appid).await?))
}

pub(super) async fn app_delete(
    State(state): State<AppState>,
    Path(appid): Path<String>,
) -> Result<StatusCode, Failure> {
    state.store.delete_app(&appid).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn app_rotate_secret(
    State(state): State<AppState>,
    Path(appid): Path<String>,
) -> Result<Json<CreatedApp>, Failure> {
    let secret = new_app_secret();
    state.store.set_app_secret(&appid, digest(&secret)).await?;
    Ok(Json(CreatedApp {
        app: summary(&state, &appid).await?,
        secret: secret.into(),
    }))
}

pub(super) fn kf_view(appid: &str, kf: &kefu_store::Kf, base: &str, now: i64) -> KfView {
    KfView {
        kf: kf_info(kf, appid, base, now),
        kf_openid: kf.kf_openid.clone(),
        online_status: kf.online_status,
        accepted_case: kf.accepted_case,
    }
}

pub(super) async fn kf_list(
    State(state): State<AppState>,
    Path(appid): Path<String>,
    request: Request,
) -> Result<Json<Vec<KfView>>, Failure> {
    let now = state.clock.now();
    let base = base_url(&state, &request.into_parts().0);
    let kfs = state.store.kfs(&appid).await?;
    Ok(Json(
        kfs.iter()
            .map(|kf| kf_view(&appid, kf, &base, now))
            .collect(),
    ))
}

pub(super) async fn kf_invitation(
    State(state): State<AppState>,
    Path((appid, kf_account)): Path<(String, String)>,
    request: Request,
) -> Result<Json<KfView>, Failure> {
    let (parts, body) = request.into_parts();
    let base = base_url(&state, &parts);
    let action: InvitationRequest = json_body(&state, Request::from_parts(parts, body)).await?;
    let account = KfAccount::parse(&kf_account).map_err(|_| Failure::not_found("kf account"))?;
    let now = state.clock.now();
    let kf = state
        .store
        .answer_invitation(
            &appid,
            InvitationAnswer {
                kf_account: account,
                action: action.action,
                now,
                max_bound: MAX_BOUND_PER_WORKER,
            },
        )
        .await
        .map_err(|e| match e {
            kefu_store::StoreError::NotFound => Failure::not_found("kf account"),
            other => other.into(),
        })?;
    Ok(Json(kf_view(&appid, &kf, &base, now)))
}
