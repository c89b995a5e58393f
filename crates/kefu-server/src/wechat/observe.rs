//! What happens around every WeChat call: the caller's IP, fault injection, and the
//! request log that `rid/get` reads (SPEC §6.3, §6.4, §8).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use kefu_api::{ErrCode, Rid};
use kefu_store::{CallDetails, LoggedRequest, RecordedCall};
use serde::Deserialize;

use super::Handler;
use super::auth::{look_up, with_token_memo};
use super::reply::{Answered, Reply, new_rid};
use super::request::{MAX_MULTIPART_BODY, Query, read_body};
use crate::state::AppState;

/// How much of a body the request log keeps.
const LOGGED_BODY_BYTES: usize = 2 * 1024;

/// The caller's IP as WeChat's rules see it.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The IP from an optional extension (unspecified when absent).
    #[must_use]
    pub fn of(extension: Option<axum::Extension<ClientIp>>) -> IpAddr {
        extension.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |e| e.0.0)
    }
}

/// The socket's peer, or — when the peer is a trusted proxy — the rightmost address
/// in `X-Forwarded-For` that is not a trusted proxy.
pub fn client_ip(trusted: &[IpAddr], peer: Option<IpAddr>, headers: &HeaderMap) -> IpAddr {
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

#[derive(Deserialize, Default)]
struct BodyIds {
    #[serde(default)]
    appid: Option<String>,
    #[serde(default)]
    component_appid: Option<String>,
}

/// The app (or platform) a call is made for, as far as it can be told: its token,
/// else an `appid` in the query or the JSON body.
async fn caller(state: &AppState, query: &Query<'_>, body: &[u8]) -> Option<String> {
    let token = query
        .non_empty("access_token")
        .or_else(|| query.non_empty("component_access_token"));
    if let Some(token) = token {
        // Whatever its verdict, a known token names its app (or platform).
        return look_up(state, &token)
            .await
            .ok()
            .flatten()
            .map(|(record, _)| record.appid.to_string());
    }
    if let Some(appid) = query.non_empty("appid") {
        return Some(appid.into_owned());
    }
    let ids: BodyIds = serde_json::from_slice(body).unwrap_or_default();
    ids.appid
        .or(ids.component_appid)
        .filter(|id| !id.is_empty())
}

fn truncated(text: &str) -> String {
    if text.len() <= LOGGED_BODY_BYTES {
        return text.to_owned();
    }
    let mut end = LOGGED_BODY_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…({} bytes)", &text[..end], text.len())
}

/// Tokens: shown by their first 6 characters, enough to tell them apart.
const TOKEN_KEYS: &[&str] = &[
    "access_token",
    "component_access_token",
    "authorizer_access_token",
];
/// Secrets: never shown at all.
const SECRET_KEYS: &[&str] = &[
    "authorizer_refresh_token",
    "component_verify_ticket",
    "secret",
    "appsecret",
    "component_appsecret",
];

/// The value of `key` as the log shows it.
fn mask<'a>(key: &str, value: &'a str) -> std::borrow::Cow<'a, str> {
    if SECRET_KEYS.contains(&key) {
        "***".into()
    } else if TOKEN_KEYS.contains(&key) {
        format!("{}***", value.chars().take(6).collect::<String>()).into()
    } else {
        value.into()
    }
}

/// The query with tokens and secrets masked.
fn masked_query(query: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form_urlencoded::parse(query.as_bytes()).map(|(k, v)| {
            let v = mask(&k, &v).into_owned();
            (k, v)
        }))
        .finish()
}

/// A body for the log: a JSON object with tokens and secrets masked, truncated.
/// Anything else (which could hold a secret the masking cannot find) is only
/// described.
fn masked_body(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return String::new();
    }
    // Most bodies name no token or secret in the part that is kept: keep that part as
    // it is, without parsing (a long list is only searched as far as it is logged).
    let kept = &bytes[..bytes.len().min(LOGGED_BODY_BYTES)];
    let sensitive = ["token", "secret", "ticket"]
        .iter()
        .any(|needle| memchr::memmem::find(kept, needle.as_bytes()).is_some());
    if !sensitive
        && bytes.first() == Some(&b'{')
        && let Some(text) = utf8_prefix(kept)
    {
        return if bytes.len() > kept.len() {
            format!("{text}…({} bytes)", bytes.len())
        } else {
            text.to_owned()
        };
    }
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(serde_json::Value::Object(mut object)) => {
            for (key, value) in &mut object {
                if let serde_json::Value::String(text) = value {
                    *text = mask(key, text).into_owned();
                }
            }
            truncated(&serde_json::Value::Object(object).to_string())
        }
        _ => format!("<{} bytes, not a JSON object>", bytes.len()),
    }
}

/// `bytes` as text, less a character cut at the end; `None` when they are not UTF-8.
fn utf8_prefix(bytes: &[u8]) -> Option<&str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Some(text),
        Err(error) if error.error_len().is_none() => {
            std::str::from_utf8(&bytes[..error.valid_up_to()]).ok()
        }
        Err(_) => None,
    }
}

/// The errcode and rid of an answer.
fn outcome(body: &[u8]) -> (i64, Option<Rid>) {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        errcode: i64,
        #[serde(default)]
        errmsg: String,
    }
    // Only envelopes carry an errcode; payloads (lists, tokens) are 0.
    if !body.starts_with(br#"{"errcode":"#) {
        return (0, None);
    }
    serde_json::from_slice::<Probe>(body)
        .map_or((0, None), |p| (p.errcode, Rid::from_errmsg(&p.errmsg)))
}

/// What a call's record is made of, beside its rid, app, errcode and time: cheap copies
/// of what came and went. Masking and formatting wait until someone reads it.
struct Details {
    cost_ms: i64,
    method: Method,
    /// A copy of the path and query: the request's own `Uri` is a view into the
    /// connection's read buffer, which keeping it would keep from being reused.
    path_and_query: Box<str>,
    request_body: KeptBody,
    response_body: KeptBody,
    client_ip: IpAddr,
}

impl CallDetails for Details {
    fn render(&self, call: &RecordedCall) -> LoggedRequest {
        let (path, query) = self
            .path_and_query
            .split_once('?')
            .unwrap_or((&self.path_and_query, ""));
        let request_url = if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", masked_query(query))
        };
        LoggedRequest {
            rid: call.rid.clone(),
            appid: call.appid.clone(),
            method: self.method.to_string(),
            path: path.to_owned(),
            errcode: call.errcode,
            invoke_time: call.invoke_time,
            cost_ms: self.cost_ms,
            request_url,
            request_body: self.request_body.shown(),
            response_body: self.response_body.shown(),
            client_ip: self.client_ip.to_string(),
        }
    }
}

/// A body as a recorded call keeps it.
enum KeptBody {
    /// A short body, copied whole and masked when read: never a view into the
    /// connection's read buffer, which it would keep from being reused.
    Whole(Box<[u8]>),
    /// A long body (an upload, a long list) as the log shows it, made at once: the log
    /// shows only its start.
    Shown(Arc<str>),
}

impl KeptBody {
    fn of(bytes: &[u8]) -> KeptBody {
        if bytes.len() <= LOGGED_BODY_BYTES {
            KeptBody::Whole(bytes.into())
        } else {
            KeptBody::Shown(masked_body(bytes).into())
        }
    }

    /// An answer's body: a long one that is the very answer last shown (a cached list
    /// answered again and again) shares the text made for it.
    fn of_answer(body: &Bytes) -> KeptBody {
        if body.len() <= LOGGED_BODY_BYTES {
            return KeptBody::of(body);
        }
        static LAST: std::sync::Mutex<Option<(Bytes, Arc<str>)>> = std::sync::Mutex::new(None);
        let mut last = LAST
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The same allocation (kept alive here, so never reused for another body).
        if let Some((seen, text)) = last.as_ref()
            && seen.as_ptr() == body.as_ptr()
            && seen.len() == body.len()
        {
            return KeptBody::Shown(Arc::clone(text));
        }
        let text: Arc<str> = masked_body(body).into();
        *last = Some((body.clone(), Arc::clone(&text)));
        KeptBody::Shown(text)
    }

    fn shown(&self) -> String {
        match self {
            KeptBody::Whole(bytes) => masked_body(bytes),
            KeptBody::Shown(text) => text.to_string(),
        }
    }
}

/// Answers a request for one of WeChat's paths with `handler`, around it the caller's
/// IP (from the socket's `peer`), fault injection and the request log. The request's
/// token is read from the store once, here and in the handler alike.
pub async fn observe(
    state: AppState,
    request: Request,
    peer: Option<IpAddr>,
    handler: Handler,
) -> Response {
    with_token_memo(observed(state, request, peer, handler)).await
}

async fn observed(
    state: AppState,
    mut request: Request,
    peer: Option<IpAddr>,
    handler: Handler,
) -> Response {
    let started = Instant::now();
    let now = state.clock.now();
    let ip = client_ip(&state.trusted_proxies, peer, request.headers());
    request.extensions_mut().insert(ClientIp(ip));
    let run = |request| handler(state.clone(), request);
    let faults = state.faults.active();
    if !faults && !state.request_log {
        return run(request).await.into_response();
    }

    // A body declared too large is left to the handler, so that its token is still
    // judged before its size (SPEC §5); such a call is neither faulted nor logged.
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_MULTIPART_BODY) {
        return run(request).await.into_response();
    }
    let (parts, body) = request.into_parts();
    let bytes: Bytes = match read_body(&parts.headers, body, MAX_MULTIPART_BODY).await {
        Ok(bytes) => bytes,
        Err(code) => return Reply::error(code, now).into_response(),
    };
    let appid = caller(&state, &Query::new(parts.uri.query()), &bytes).await;
    let fault = if faults {
        state.faults.fire(appid.as_deref(), parts.uri.path())
    } else {
        None
    };
    let method = parts.method.clone();
    let path_and_query: Box<str> = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path(), |pq| pq.as_str())
        .into();
    let request = Request::from_parts(parts, Body::from(bytes.clone()));

    let response = match fault {
        Some(fault) => {
            if fault.latency_ms > 0 {
                tokio::time::sleep(Duration::from_millis(fault.latency_ms)).await;
            }
            let code = ErrCode::from_code(fault.errcode);
            if code.is_ok() {
                run(request).await.into_response()
            } else {
                if fault.applied {
                    // Do the work, then answer the failure anyway.
                    drop(run(request).await);
                }
                tracing::info!(path = %path_and_query.split('?').next().unwrap_or_default(), errcode = fault.errcode, applied = fault.applied, "fault injected");
                Reply::error(code, now).into_response()
            }
        }
        None => run(request).await.into_response(),
    };
    if !state.request_log {
        return response;
    }

    // Every WeChat answer says what it was; anything else is read back.
    let (response, answered) = match response.extensions().get::<Answered>().cloned() {
        Some(answered) => (response, answered),
        None => {
            let (parts, body) = response.into_parts();
            let body = axum::body::to_bytes(body, MAX_MULTIPART_BODY)
                .await
                .unwrap_or_default();
            let (errcode, rid) = outcome(&body);
            let answered = Answered { errcode, rid, body };
            (
                Response::from_parts(parts, Body::from(answered.body.clone())),
                answered,
            )
        }
    };
    state.store.log_request(Arc::new(RecordedCall {
        rid: answered.rid.unwrap_or_else(|| new_rid(now)).to_string(),
        appid,
        errcode: answered.errcode,
        invoke_time: now,
        details: Box::new(Details {
            cost_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
            method,
            path_and_query,
            request_body: KeptBody::of(&bytes),
            response_body: KeptBody::of_answer(&answered.body),
            client_ip: ip,
        }),
    }));
    response
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

    #[test]
    fn secrets_are_masked() {
        let query = masked_query("access_token=76_abcdefghijkl&kf_account=a%40b");
        assert_eq!(query, "access_token=76_abc***&kf_account=a%40b");
        let body = masked_body(br#"{"appid":"wx1","secret":"0123456789abcdef"}"#);
        assert!(body.contains(r#""secret":"***""#), "{body}");
        assert!(!body.contains("012345"), "{body}");
        assert_eq!(
            masked_body(&[0xFF, 0xD8, 0xFF, 0]),
            "<4 bytes, not a JSON object>"
        );
        assert_eq!(
            masked_body(br#"{"secret":"0123456789abc"#),
            "<24 bytes, not a JSON object>"
        );
        let secret_query = masked_query("appid=wx1&secret=0123456789abcdef");
        assert_eq!(secret_query, "appid=wx1&secret=***");
    }

    #[test]
    fn a_long_answer_shares_its_text_only_with_itself() {
        let list = Bytes::from(format!(
            r#"{{"kf_list":"{}"}}"#,
            "a".repeat(3 * LOGGED_BODY_BYTES)
        ));
        let (KeptBody::Shown(first), KeptBody::Shown(again)) = (
            KeptBody::of_answer(&list),
            KeptBody::of_answer(&list.clone()),
        ) else {
            panic!("a long body is shown at once");
        };
        assert!(
            Arc::ptr_eq(&first, &again),
            "the same answer shares its text"
        );
        // Another body of the same length is masked on its own.
        let other = Bytes::from(format!(
            r#"{{"kf_list":"{}"}}"#,
            "b".repeat(3 * LOGGED_BODY_BYTES)
        ));
        let KeptBody::Shown(text) = KeptBody::of_answer(&other) else {
            panic!("a long body is shown at once");
        };
        assert!(text.starts_with(r#"{"kf_list":"bbb"#), "{}", &text[..20]);
        assert_eq!(text.as_ref(), masked_body(&other));
    }

    #[test]
    fn long_bodies_are_cut_and_still_masked() {
        let filler = "x".repeat(3 * LOGGED_BODY_BYTES);
        // A secret early in a long body is masked (or cut); the cut keeps the start.
        let early = format!(r#"{{"secret":"0123456789abcdef","pad":"{filler}"}}"#);
        let logged = masked_body(early.as_bytes());
        assert!(!logged.contains("0123456789abcdef"));
        assert!(logged.len() < LOGGED_BODY_BYTES + 32 && logged.ends_with(" bytes)"));
        // A secret past the cut never reaches the log.
        let late = format!(r#"{{"pad":"{filler}","secret":"0123456789abcdef"}}"#);
        let logged = masked_body(late.as_bytes());
        assert!(!logged.contains("0123456789abcdef"));
        assert!(logged.starts_with(r#"{"pad":"xxx"#));
        assert!(
            logged.ends_with(&format!("…({} bytes)", late.len())),
            "{}",
            &logged[logged.len() - 30..]
        );
    }
}
