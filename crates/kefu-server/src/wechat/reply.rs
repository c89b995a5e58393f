//! Answers in WeChat's envelope: always HTTP 200, `application/json; encoding=utf-8`.

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use axum::response::IntoResponse;
use bytes::Bytes;
use kefu_api::{CONTENT_TYPE, ErrCode, OK_BODY, Rid};

use crate::secrets::rid_groups;

/// A WeChat answer.
#[derive(Debug)]
pub enum Reply {
    /// `{"errcode":0,"errmsg":"ok"}`.
    Ok,
    /// A payload (token, list) with no errcode.
    Json(bytes::Bytes),
    /// A failure; `errmsg` gets WeChat's text (or `message`) and a rid made at `now`.
    Error {
        /// The code.
        code: ErrCode,
        /// WeChat's text with details filled in, where it has any (40164).
        message: Option<String>,
        /// The request's Unix time (the rid's first group).
        now: i64,
    },
}

/// A failed call, before it becomes a [`Reply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WxError {
    /// The code.
    pub code: ErrCode,
    /// WeChat's text with details filled in, where it has any.
    pub message: Option<String>,
}

impl From<ErrCode> for WxError {
    fn from(code: ErrCode) -> WxError {
        WxError {
            code,
            message: None,
        }
    }
}

impl WxError {
    /// `40164 invalid ip A ipv6 ::ffff:A, not in whitelist`.
    #[must_use]
    pub fn ip_not_in_whitelist(ip: std::net::IpAddr) -> WxError {
        let (v4, v6) = match ip {
            std::net::IpAddr::V4(v4) => (v4.to_string(), format!("::ffff:{v4}")),
            std::net::IpAddr::V6(v6) => (v6.to_string(), v6.to_string()),
        };
        WxError {
            code: ErrCode::IpNotInWhitelist,
            message: Some(format!("invalid ip {v4} ipv6 {v6}, not in whitelist")),
        }
    }

    /// The reply for this failure at `now`.
    #[must_use]
    pub fn reply(self, now: i64) -> Reply {
        if self.code.is_ok() {
            Reply::Ok
        } else {
            Reply::Error {
                code: self.code,
                message: self.message,
                now,
            }
        }
    }
}

/// Runs a handler body and turns its failure into WeChat's envelope.
pub async fn answer<F>(state: &crate::state::AppState, f: impl FnOnce(i64) -> F) -> Reply
where
    F: Future<Output = Result<Reply, WxError>>,
{
    let now = state.clock.now();
    f(now).await.unwrap_or_else(|error| error.reply(now))
}

impl Reply {
    /// A failure at `now`.
    #[must_use]
    pub fn error(code: ErrCode, now: i64) -> Reply {
        WxError::from(code).reply(now)
    }

    /// Serialises a payload.
    pub fn json<T: serde::Serialize>(value: &T, now: i64) -> Reply {
        match serde_json::to_vec(value) {
            Ok(body) => Reply::Json(body.into()),
            Err(error) => {
                tracing::error!(%error, "cannot serialise a payload");
                Reply::error(ErrCode::SystemError, now)
            }
        }
    }
}

/// A rid for a request made at `now`.
#[must_use]
pub fn new_rid(now: i64) -> Rid {
    let (a, b) = rid_groups();
    Rid::new(u32::try_from(now.max(0)).unwrap_or(u32::MAX), a, b)
}

/// What a WeChat answer said, kept on the response for the request log, so that it
/// never has to read the body back.
#[derive(Debug, Clone)]
pub struct Answered {
    /// The errcode (0 for payloads).
    pub errcode: i64,
    /// The rid of a failure.
    pub rid: Option<Rid>,
    /// The body.
    pub body: Bytes,
}

impl IntoResponse for Reply {
    fn into_response(self) -> axum::response::Response {
        let answered = match self {
            Reply::Ok => Answered {
                errcode: 0,
                rid: None,
                body: Bytes::from_static(OK_BODY.as_bytes()),
            },
            Reply::Json(body) => Answered {
                errcode: 0,
                rid: None,
                body,
            },
            Reply::Error { code, message, now } => {
                let rid = new_rid(now);
                let body = kefu_api::envelope::error_body(
                    code,
                    message.as_deref().unwrap_or(code.errmsg()),
                    rid,
                );
                Answered {
                    errcode: code.code(),
                    rid: Some(rid),
                    body: body.into(),
                }
            }
        };
        let mut response = Response::new(Body::from(answered.body.clone()));
        *response.status_mut() = StatusCode::OK;
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        response.extensions_mut().insert(answered);
        response
    }
}
