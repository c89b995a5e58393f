//! Simulated fans (docs/behaviour.md, "Fans"): made, listed, shown with their timeline,
//! and moved through what fans do on their phones; and the online simulation's
//! sessions, which fans make real.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use kefu_api::admin::{
    FanActed, FanAction, FanView, NewFan, QueueRequest, SessionView, TIMELINE_LEN, TimelineEntry,
    WindowView,
};
use kefu_api::endpoints::kf_session::IDLE_SECS;
use kefu_api::endpoints::message::WindowKind;
use kefu_api::{KfAccount, Openid};
use kefu_store::{Fan, FanSession, StoreError};

use super::{Failure, checked_body, json_body};
use crate::push::push_for;
use crate::secrets::new_openid;
use crate::state::AppState;

/// A fan as the admin surface shows it at `now`, with `timeline` (newest first).
pub(crate) fn fan_view(fan: &Fan, now: i64, timeline: Vec<TimelineEntry>) -> FanView {
    let session = match fan.session_at(now) {
        Some(FanSession::Served {
            kf_account,
            since,
            active,
        }) => SessionView::Served {
            kf_account: kf_account.clone(),
            since: *since,
            idle_until: active.saturating_add(IDLE_SECS),
        },
        Some(FanSession::Waiting { since, .. }) => SessionView::Waiting { since: *since },
        None => SessionView::None,
    };
    let windows: Vec<WindowView> = WindowKind::ALL
        .iter()
        .filter_map(|kind| fan.windows.get(*kind).map(|grant| (*kind, grant)))
        .filter(|(_, grant)| fan.following && grant.is_open(now))
        .map(|(kind, grant)| WindowView {
            kind,
            opened_at: grant.opened_at,
            expires_at: grant.expires_at,
            limit: grant.limit,
            used: grant.used,
            left: grant.limit.map(|limit| limit.saturating_sub(grant.used)),
        })
        .collect();
    FanView {
        openid: fan.openid.clone(),
        nickname: fan.nickname.clone(),
        following: fan.following,
        created_at: fan.created_at,
        session,
        can_send: fan.following
            && WindowKind::ALL
                .iter()
                .any(|kind| fan.windows.get(*kind).is_some_and(|g| g.has_room(now))),
        windows,
        typing_until: fan.typing_until.filter(|until| now < *until),
        last_exchange: fan.last_exchange,
        timeline,
    }
}

fn openid_of(raw: &str) -> Result<Openid, Failure> {
    Openid::parse(raw).map_err(|_| Failure::not_found("fan"))
}

fn fan_missing(error: StoreError) -> Failure {
    match error {
        StoreError::NotFound => Failure::not_found("fan"),
        other => other.into(),
    }
}

/// `GET /kefu/v1/apps/{appid}/fans`.
pub(super) async fn fan_list(
    State(state): State<AppState>,
    Path(appid): Path<String>,
) -> Result<Json<Vec<FanView>>, Failure> {
    let now = state.clock.now();
    let fans = state.store.fans(&appid).await?;
    Ok(Json(
        fans.iter()
            .map(|fan| fan_view(fan, now, Vec::new()))
            .collect(),
    ))
}

/// `POST /kefu/v1/apps/{appid}/fans`.
pub(super) async fn fan_create(
    State(state): State<AppState>,
    Path(appid): Path<String>,
    request: Request,
) -> Result<(StatusCode, Json<FanView>), Failure> {
    let new: NewFan = checked_body(&state, request).await?;
    let now = state.clock.now();
    let openid = new
        .openid
        .map_or_else(new_openid, |openid| openid.as_str().to_owned());
    let fan = state
        .store
        .create_fan(&appid, Fan::new(openid, new.nickname, now))
        .await?;
    Ok((StatusCode::CREATED, Json(fan_view(&fan, now, Vec::new()))))
}

/// The view of one fan with its timeline.
async fn view_of(state: &AppState, appid: &str, openid: &str) -> Result<FanView, Failure> {
    let now = state.clock.now();
    let fan = state
        .store
        .fan(appid, openid)
        .await?
        .ok_or_else(|| Failure::not_found("fan"))?;
    let timeline = state
        .store
        .fan_history(appid, openid, TIMELINE_LEN)
        .await?
        .into_iter()
        .map(|record| TimelineEntry {
            msgid: record.msgid,
            time: record.time,
            opercode: record.opercode,
            text: record.text,
            worker: record.worker,
        })
        .collect();
    Ok(fan_view(&fan, now, timeline))
}

/// `GET /kefu/v1/apps/{appid}/fans/{openid}`: the fan, its windows and session, and its
/// timeline.
pub(super) async fn fan_get(
    State(state): State<AppState>,
    Path((appid, openid)): Path<(String, String)>,
) -> Result<Json<FanView>, Failure> {
    let openid = openid_of(&openid)?;
    Ok(Json(view_of(&state, &appid, openid.as_str()).await?))
}

/// `DELETE /kefu/v1/apps/{appid}/fans/{openid}`.
pub(super) async fn fan_delete(
    State(state): State<AppState>,
    Path((appid, openid)): Path<(String, String)>,
) -> Result<StatusCode, Failure> {
    let openid = openid_of(&openid)?;
    state
        .store
        .delete_fan(&appid, openid.as_str(), state.clock.now())
        .await
        .map_err(fan_missing)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /kefu/v1/apps/{appid}/fans/{openid}/actions`: the fan does something; the
/// developer's server hears of it when the app has a callback.
pub(super) async fn fan_act(
    State(state): State<AppState>,
    Path((appid, openid)): Path<(String, String)>,
    request: Request,
) -> Result<Json<FanActed>, Failure> {
    let openid = openid_of(&openid)?;
    let action: FanAction = checked_body(&state, request).await?;
    let app = state
        .store
        .app(&appid)
        .await?
        .ok_or_else(|| Failure::not_found("app"))?;
    let now = state.clock.now();
    let before = state
        .store
        .fan(&appid, openid.as_str())
        .await?
        .ok_or_else(|| Failure::not_found("fan"))?;
    let change = state
        .store
        .fan_act(&appid, openid.as_str(), &action, &app.settings.windows, now)
        .await
        .map_err(fan_missing)?;
    state.pushes.sessions(&appid, &change, now);
    let served = matches!(before.session_at(now), Some(FanSession::Served { .. }));
    let pushed = app.settings.callback.is_some()
        && push_for(&action, before.following, served)
            .is_some_and(|told| state.pushes.queue(&appid, openid.as_str(), told, now));
    Ok(Json(FanActed {
        fan: view_of(&state, &appid, openid.as_str()).await?,
        pushed,
    }))
}

/// `POST /kefu/v1/apps/{appid}/fans/{openid}/queue`: the fan waits for an account (or
/// is served by the one named, when it can take it).
pub(super) async fn fan_queue(
    State(state): State<AppState>,
    Path((appid, openid)): Path<(String, String)>,
    request: Request,
) -> Result<Json<FanView>, Failure> {
    let openid = openid_of(&openid)?;
    let queue: QueueRequest = json_body(&state, request).await?;
    let now = state.clock.now();
    let change = state
        .store
        .enqueue(&appid, openid.as_str(), queue.kf_account.as_ref(), now)
        .await
        .map_err(fan_missing)?;
    state.pushes.sessions(&appid, &change, now);
    Ok(Json(view_of(&state, &appid, openid.as_str()).await?))
}

/// Makes `account` serve `wanted` sessions: new simulated fans (each having sent a
/// message) are served by it, or its newest sessions end.
pub(super) async fn serve_cases(
    state: &AppState,
    appid: &str,
    account: &KfAccount,
    wanted: usize,
) -> Result<(), Failure> {
    let now = state.clock.now();
    let app = state
        .store
        .app(appid)
        .await?
        .ok_or_else(|| Failure::not_found("app"))?;
    let mut sessions = state
        .store
        .sessions_of(appid, account.as_str(), now)
        .await?;
    while sessions.len() > wanted {
        let Some((openid, _)) = sessions.pop() else {
            break;
        };
        let change = state
            .store
            .close_session(appid, &openid, account, now)
            .await?;
        state.pushes.sessions(appid, &change, now);
    }
    for n in sessions.len()..wanted {
        let fan = Fan::new(new_openid(), format!("simulated fan {}", n + 1), now);
        let fan = state.store.create_fan(appid, fan).await?;
        let hello = FanAction::Text {
            content: "hello".to_owned(),
        };
        state
            .store
            .fan_act(appid, &fan.openid, &hello, &app.settings.windows, now)
            .await?;
        let change = state
            .store
            .create_session(appid, &fan.openid, account, now)
            .await?;
        state.pushes.sessions(appid, &change, now);
    }
    Ok(())
}
