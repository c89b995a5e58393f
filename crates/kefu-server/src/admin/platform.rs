//! Platform and simulation controls: third-party platforms, fault rules, token
//! verdicts, online accounts and the request log.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, Uri};
use kefu_api::admin::rid_of;
use kefu_api::admin::{
    AdminErrorCode, AuthorizationView, CallCountView, ComponentView, CreatedAuthorization,
    CreatedComponent, FaultView, KfOnlineSet, KfView, LogUsageView, NewAuthorization, NewComponent,
    NewFault, RequestFilter, RequestLogEntry, RequestSummary, Ticket, TokenAction, TokenVerdict,
};
use kefu_api::endpoints::component::TICKET_TTL_SECS;
use kefu_api::endpoints::rid_get::RequestInfo;
use kefu_api::{KfAccount, Secret};
use kefu_store::{Authorization, Component, StoreError};
use serde::Deserialize;

use super::apps::kf_view;
use super::{Failure, checked_body, json_body};
use crate::secrets::{digest, new_app_secret, new_appid, new_refresh_token, new_ticket};
use crate::state::AppState;
use crate::wechat::kf::base_url;

fn component_view(component: &Component, authorizations: &[Authorization]) -> ComponentView {
    ComponentView {
        component_appid: component.component_appid.clone(),
        ip_whitelist: component.ip_whitelist.clone(),
        created_at: component.created_at,
        authorizations: authorizations
            .iter()
            .map(|a| AuthorizationView {
                appid: a.appid.clone(),
                funcscopes: a.funcscopes.clone(),
            })
            .collect(),
    }
}

pub(super) async fn component_create(
    State(state): State<AppState>,
    request: Request,
) -> Result<(StatusCode, Json<CreatedComponent>), Failure> {
    let new: NewComponent = checked_body(&state, request).await?;
    let secret: Secret = new
        .secret
        .map_or_else(|| new_app_secret().into(), Into::into);
    let component = Component {
        component_appid: new
            .component_appid
            .map_or_else(new_appid, |appid| appid.as_str().to_owned()),
        secret_hash: digest(secret.expose()),
        ip_whitelist: new.ip_whitelist,
        created_at: state.clock.now(),
    };
    state.store.create_component(component.clone()).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedComponent {
            component: component_view(&component, &[]),
            secret,
        }),
    ))
}

pub(super) async fn component_list(
    State(state): State<AppState>,
) -> Result<Json<Vec<ComponentView>>, Failure> {
    let list = state.store.components().await?;
    Ok(Json(
        list.iter()
            .map(|(c, auths)| component_view(c, auths))
            .collect(),
    ))
}

pub(super) async fn component_get(
    State(state): State<AppState>,
    Path(component_appid): Path<String>,
) -> Result<Json<ComponentView>, Failure> {
    let list = state.store.components().await?;
    list.iter()
        .find(|(c, _)| c.component_appid == component_appid)
        .map(|(c, auths)| Json(component_view(c, auths)))
        .ok_or_else(|| Failure::not_found("component"))
}

pub(super) async fn component_delete(
    State(state): State<AppState>,
    Path(component_appid): Path<String>,
) -> Result<StatusCode, Failure> {
    state
        .store
        .delete_component(&component_appid)
        .await
        .map_err(|e| not_found_as(e, "component"))?;
    Ok(StatusCode::NO_CONTENT)
}

fn not_found_as(error: StoreError, what: &str) -> Failure {
    match error {
        StoreError::NotFound => Failure::not_found(what),
        other => other.into(),
    }
}

/// Issues a component_verify_ticket, as WeChat pushes one every 10 minutes.
pub(super) async fn ticket_issue(
    State(state): State<AppState>,
    Path(component_appid): Path<String>,
) -> Result<Json<Ticket>, Failure> {
    let ticket = new_ticket();
    let expires_at = state.clock.now() + TICKET_TTL_SECS;
    state
        .store
        .add_ticket(&component_appid, digest(&ticket), expires_at)
        .await
        .map_err(|e| not_found_as(e, "component"))?;
    Ok(Json(Ticket {
        component_verify_ticket: ticket.into(),
        expires_at,
    }))
}

pub(super) async fn authorization_create(
    State(state): State<AppState>,
    Path(component_appid): Path<String>,
    request: Request,
) -> Result<(StatusCode, Json<CreatedAuthorization>), Failure> {
    let new: NewAuthorization = checked_body(&state, request).await?;
    let refresh = new_refresh_token();
    let authorization = Authorization {
        component_appid,
        appid: new.appid.as_str().to_owned(),
        funcscopes: new.funcscopes.clone(),
        refresh_hash: digest(&refresh),
        previous: Vec::new(),
    };
    state
        .store
        .authorize(authorization)
        .await
        .map_err(|e| not_found_as(e, "component or app"))?;
    let created = CreatedAuthorization {
        authorizer_appid: new.appid.as_str().to_owned(),
        funcscopes: new.funcscopes,
        authorizer_refresh_token: refresh.into(),
    };
    Ok((StatusCode::CREATED, Json(created)))
}

pub(super) async fn fault_list(State(state): State<AppState>) -> Json<Vec<FaultView>> {
    Json(state.faults.list())
}

pub(super) async fn fault_add(
    State(state): State<AppState>,
    request: Request,
) -> Result<(StatusCode, Json<FaultView>), Failure> {
    let rule: NewFault = checked_body(&state, request).await?;
    Ok((StatusCode::CREATED, Json(state.faults.add(rule))))
}

pub(super) async fn fault_delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, Failure> {
    let id: u64 = id.parse().map_err(|_| Failure::not_found("fault rule"))?;
    if state.faults.remove(id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Failure::not_found("fault rule"))
    }
}

/// Invalidates (40001 from now on) or expires (42001 from now on) any token.
pub(super) async fn token_act(
    State(state): State<AppState>,
    request: Request,
) -> Result<StatusCode, Failure> {
    let action: TokenAction = json_body(&state, request).await?;
    let now = state.clock.now();
    let (superseded_at, expires_at) = match action.action {
        TokenVerdict::Invalidate => (Some(now), None),
        TokenVerdict::Expire => (None, Some(now)),
    };
    state
        .store
        .set_token_times(
            &digest(action.access_token.expose()),
            superseded_at,
            expires_at,
        )
        .await
        .map_err(|e| not_found_as(e, "token"))?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn kf_online(
    State(state): State<AppState>,
    Path((appid, kf_account)): Path<(String, String)>,
    request: Request,
) -> Result<Json<KfView>, Failure> {
    let (parts, body) = request.into_parts();
    let base = base_url(&state, &parts);
    let online: KfOnlineSet = checked_body(&state, Request::from_parts(parts, body)).await?;
    let account = KfAccount::parse(&kf_account).map_err(|_| Failure::not_found("kf account"))?;
    if online.accepted_case.is_some_and(|n| n > 0) {
        // Checked before anything is written, so that a refusal leaves nothing behind.
        let kfs = state.store.kfs(&appid).await?;
        let kf = kfs
            .iter()
            .find(|kf| kf.kf_account == account.as_str())
            .ok_or_else(|| Failure::not_found("kf account"))?;
        if kf.kf_wx.is_none() {
            return Err(Failure::new(
                AdminErrorCode::Rejected,
                format!(
                    "{account} is not bound to a WeChat user, so it serves no sessions: invite \
                     one and accept the invitation first"
                ),
            ));
        }
    }
    let mut kf = state
        .store
        .set_kf_online(&appid, &account, online.status)
        .await
        .map_err(|e| not_found_as(e, "kf account"))?;
    if let Some(wanted) = online.accepted_case {
        let wanted = usize::try_from(wanted).unwrap_or(0);
        super::fans::serve_cases(&state, &appid, &account, wanted).await?;
        let kfs = state.store.kfs(&appid).await?;
        if let Some(now) = kfs.iter().find(|k| k.kf_account == kf.kf_account) {
            kf = now.clone();
        }
    }
    Ok(Json(kf_view(&appid, &kf, &base, state.clock.now())))
}

/// `GET /kefu/v1/requests`: the newest recorded calls that match every filter given. A
/// rid (or a pasted errmsg holding one) finds that call alone.
pub(super) async fn request_log(
    State(state): State<AppState>,
    uri: Uri,
) -> Result<Json<Vec<RequestLogEntry>>, Failure> {
    let filter: RequestFilter = super::query_of(&uri)?;
    let limit = filter.limit.unwrap_or(100).min(1000);
    let path = filter.path.as_deref().filter(|p| !p.is_empty());
    let appid = filter.appid.as_deref().filter(|a| !a.is_empty());
    let matches = |e: &kefu_store::LoggedRequest| {
        appid.is_none_or(|a| e.appid.as_deref() == Some(a))
            && path.is_none_or(|p| e.path == p)
            && filter.errcode.is_none_or(|c| e.errcode == c)
    };
    if let Some(pasted) = filter.rid.as_deref().filter(|r| !r.trim().is_empty()) {
        let found = match rid_of(pasted) {
            Some(rid) => state.store.logged_request(&rid.to_string()).await?,
            None => None,
        };
        return Ok(Json(
            found.filter(matches).map(log_entry).into_iter().collect(),
        ));
    }
    let entries = state
        .store
        .logged_requests(
            kefu_store::LogFilter {
                appid,
                path,
                errcode: filter.errcode,
            },
            limit,
        )
        .await?;
    Ok(Json(entries.into_iter().map(log_entry).collect()))
}

/// A recorded call as the admin surface shows it.
pub(crate) fn log_entry(entry: kefu_store::LoggedRequest) -> RequestLogEntry {
    RequestLogEntry {
        rid: entry.rid,
        appid: entry.appid,
        method: entry.method,
        errcode: entry.errcode,
        reason: entry.reason,
        request: RequestInfo {
            invoke_time: entry.invoke_time,
            cost_in_ms: entry.cost_ms,
            request_url: entry.request_url,
            request_body: entry.request_body,
            response_body: entry.response_body,
            client_ip: entry.client_ip,
        },
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct SummaryQuery {
    appid: Option<String>,
    hours: Option<u32>,
}

/// The most hours a summary covers: the request log's retention.
const MAX_SUMMARY_HOURS: u32 = (kefu_api::endpoints::rid_get::RETENTION_SECS / 3600) as u32;

/// `GET /kefu/v1/requests/summary?appid=…&hours=24`: every call of the last hours of
/// the server clock, counted by app, path and errcode, and what the log holds.
pub(super) async fn request_summary(
    State(state): State<AppState>,
    uri: Uri,
) -> Result<Json<RequestSummary>, Failure> {
    let query: SummaryQuery = super::query_of(&uri)?;
    let hours = query.hours.unwrap_or(24).clamp(1, MAX_SUMMARY_HOURS);
    let now = state.clock.now();
    // From the start of the hour `hours - 1` before this one.
    let since = (now.div_euclid(3600) - i64::from(hours) + 1) * 3600;
    let counted = state.call_counts(query.appid.as_deref(), since).await?;
    let mut by_call: std::collections::BTreeMap<(Option<String>, String, i64), u64> =
        std::collections::BTreeMap::new();
    for count in counted {
        *by_call
            .entry((count.appid, count.path, count.errcode))
            .or_default() += count.count;
    }
    let mut counts: Vec<CallCountView> = by_call
        .into_iter()
        .map(|((appid, path, errcode), count)| CallCountView {
            appid,
            path,
            errcode,
            count,
        })
        .collect();
    counts.sort_by_key(|c| std::cmp::Reverse(c.count));
    let usage = state.store.log_usage().await?;
    let limits = state.log_limits;
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    Ok(Json(RequestSummary {
        since,
        total: counts.iter().map(|c| c.count).sum(),
        failed: counts
            .iter()
            .filter(|c| c.errcode != 0)
            .map(|c| c.count)
            .sum(),
        counts,
        log: LogUsageView {
            stored_calls: usage.rows,
            stored_bytes: usage.bytes,
            max_stored_calls: limits.disk_rows,
            max_stored_bytes: limits.disk_bytes,
            memory_calls: usage.memory_calls,
            memory_bytes: usage.memory_bytes,
            max_memory_bytes: count(limits.memory_bytes),
            dropped_from_store: usage.dropped_from_store,
            dropped_in_memory: usage.dropped_in_memory,
        },
    }))
}
