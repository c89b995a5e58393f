//! The edge of WeChat's surface. Every call to one of WeChat's paths is read here once
//! into its [`Call`] (the body under the endpoint's limit), answered by its handler — or
//! by a fault rule (README, "Endpoints") — and recorded in the request log that
//! `rid/get` reads (docs/behaviour.md, "Platform rules").

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Version, header};
use axum::response::Response;
use kefu_api::ErrCode;
use kefu_store::RecordedCall;
use serde::Deserialize;

use super::Route;
use super::call::Call;
use super::log::{Details, KeptBody, KeptQuery};
use super::reply::{Answered, Reply, WxError, new_rid};
use super::request::read_body;
use crate::state::AppState;

/// The socket's peer, or — when the peer is a trusted proxy — the rightmost address
/// in `X-Forwarded-For` that is not a trusted proxy.
pub(crate) fn client_ip(trusted: &[IpAddr], peer: Option<IpAddr>, headers: &HeaderMap) -> IpAddr {
    let peer = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ip| ip.to_canonical());
    if !trusted.iter().any(|proxy| proxy.to_canonical() == peer) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|v| v.trim().parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
        .collect::<Vec<_>>();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !trusted.iter().any(|proxy| proxy.to_canonical() == *ip))
        .unwrap_or(peer)
}

/// Answers a request for one of WeChat's paths (`route`), from the socket's `peer`.
pub(crate) async fn serve(
    state: &AppState,
    request: Request,
    peer: IpAddr,
    route: &Route<'_>,
) -> Response {
    let started = Instant::now();
    let now = state.clock.now();
    let rid = new_rid(now);
    let (head, body) = request.into_parts();
    let ip = client_ip(&state.trusted_proxies, Some(peer), &head.headers);
    let http1 = head.version <= Version::HTTP_11;
    let read = read_body(
        &head.headers,
        body,
        route.max_body,
        state.limits.body_timeout,
    )
    .await;
    let call = Call::new(rid, now, ip, head, read.body);
    let answered = Answered::of(answer(state, &call, route).await, rid);
    if let Some(cause) = &answered.cause {
        // The one place an internal cause is told: with the rid the client was given.
        tracing::error!(
            rid = %rid,
            path = call.path(),
            appid = call.caller().unwrap_or("-"),
            cause = %cause,
            "answered -1 system error"
        );
    }
    let took = started.elapsed();
    if let Some(metrics) = route.metrics {
        metrics.answered(answered.errcode, took);
    }
    if state.request_log {
        record(state, &call, route, &answered, took);
    }
    let mut response = answered.response();
    if !read.reusable && http1 {
        // The rest of the body is still on the connection: say so, rather than drop it
        // under a client that would send its next request there.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The handler's answer, or a fault rule's.
async fn answer(state: &AppState, call: &Call, route: &Route<'_>) -> Result<Reply, WxError> {
    if !state.faults.active() {
        return (route.handler)(state, call).await;
    }
    let target = fault_target(state, call).await;
    let Some((rule, fault)) = state.faults.fire(target.as_deref(), call.path()) else {
        return (route.handler)(state, call).await;
    };
    if let Some(metrics) = &state.metrics {
        metrics.fault_fired(route.path, fault.errcode);
    }
    if let (Some(appid), Some(_)) = (&target, &fault.appid) {
        // The rule named this app: the faulted call is its own.
        call.found_caller(appid);
    }
    if fault.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(fault.latency_ms)).await;
    }
    let code = ErrCode::from_code(fault.errcode);
    if code.is_ok() {
        return (route.handler)(state, call).await;
    }
    if fault.applied {
        // Do the work, then answer the failure anyway; a store failure in that work
        // is still told, with the rid.
        if let Err(WxError {
            cause: Some(cause), ..
        }) = (route.handler)(state, call).await
        {
            tracing::error!(
                rid = %call.rid,
                path = call.path(),
                cause = %cause,
                "the work of a faulted call failed"
            );
        }
    }
    tracing::info!(
        path = call.path(),
        rid = %call.rid,
        rule,
        errcode = fault.errcode,
        applied = fault.applied,
        "fault injected"
    );
    let applied = if fault.applied {
        ", after doing the work"
    } else {
        ""
    };
    Err(WxError::because(
        code,
        format!("fault rule #{rule} answered {}{applied}", fault.errcode),
    ))
}

#[derive(Deserialize, Default)]
struct BodyIds {
    #[serde(default)]
    appid: Option<String>,
    #[serde(default)]
    component_appid: Option<String>,
}

/// The app (or platform) a fault rule is matched against, as far as it can be told
/// before the handler runs: its token's owner, else an `appid` in the query or the JSON
/// body.
async fn fault_target(state: &AppState, call: &Call) -> Option<String> {
    let query = call.query();
    let token = query
        .non_empty("access_token")
        .or_else(|| query.non_empty("component_access_token"));
    if let Some(token) = token {
        // Whatever its verdict, a known token names its app (or platform).
        return call
            .look_up(state, &token)
            .await
            .ok()
            .flatten()
            .map(|(record, _)| record.appid.to_string());
    }
    if let Some(appid) = query.non_empty("appid") {
        return Some(appid.into_owned());
    }
    let ids: BodyIds = serde_json::from_slice(call.body_or_empty()).unwrap_or_default();
    ids.appid
        .or(ids.component_appid)
        .filter(|id| !id.is_empty())
}

/// Records the call in the request log.
fn record(state: &AppState, call: &Call, route: &Route<'_>, answered: &Answered, took: Duration) {
    let request_body = match call.body() {
        Ok(bytes) => KeptBody::of(bytes),
        Err(ErrCode::ContentSizeOutOfLimit) => {
            KeptBody::Shown(Arc::from("<over the size limit: not kept>"))
        }
        Err(_) => KeptBody::Shown(Arc::from("<broken off: not kept>")),
    };
    let recorded = Arc::new(RecordedCall {
        rid: call.rid.to_string(),
        appid: call.caller().map(str::to_owned),
        path: route.path.into(),
        errcode: answered.errcode,
        invoke_time: call.now,
        details: Box::new(Details {
            cost_ms: i64::try_from(took.as_millis()).unwrap_or(i64::MAX),
            method: call.method().clone(),
            path: route.path,
            query: KeptQuery::of(call.head().uri.query().unwrap_or("")),
            request_body,
            response_body: KeptBody::of_answer(&answered.body, answered.logged.as_ref()),
            client_ip: call.ip,
            reason: answered.reason.clone(),
        }),
    });
    state.live.publish(&recorded);
    state.store.log_request(recorded);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9, 10.0.0.2".parse().unwrap());
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let peer = Some("10.0.0.2".parse().unwrap());
        assert_eq!(
            client_ip(&[], peer, &headers),
            proxy,
            "no trusted proxy: the peer"
        );
        assert_eq!(
            client_ip(&[proxy], peer, &headers),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        let stranger = Some("198.51.100.1".parse().unwrap());
        assert_eq!(
            client_ip(&[proxy], stranger, &headers),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
    }
}
