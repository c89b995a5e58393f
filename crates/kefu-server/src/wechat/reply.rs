//! Answers in WeChat's envelope: always HTTP 200, `application/json; encoding=utf-8`.

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use axum::response::IntoResponse;
use kefu_api::{CONTENT_TYPE, ErrCode, OK_BODY, Rid};

use crate::secrets::rid_groups;

/// A WeChat answer.
#[derive(Debug)]
pub enum Reply {
    /// `{"errcode":0,"errmsg":"ok"}`.
    Ok,
    /// A payload (token, list) with no errcode.
    Json(Vec<u8>),
    /// A failure; `errmsg` gets WeChat's text and a rid made at `now`.
    Error {
        /// The code.
        code: ErrCode,
        /// The request's Unix time (the rid's first group).
        now: i64,
    },
}

impl Reply {
    /// A failure at `now`.
    #[must_use]
    pub fn error(code: ErrCode, now: i64) -> Reply {
        if code.is_ok() {
            Reply::Ok
        } else {
            Reply::Error { code, now }
        }
    }

    /// Serialises a payload.
    pub fn json<T: serde::Serialize>(value: &T, now: i64) -> Reply {
        match serde_json::to_vec(value) {
            Ok(body) => Reply::Json(body),
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

impl IntoResponse for Reply {
    fn into_response(self) -> axum::response::Response {
        let body = match self {
            Reply::Ok => Body::from(OK_BODY),
            Reply::Json(bytes) => Body::from(bytes),
            Reply::Error { code, now } => Body::from(kefu_api::envelope::error_body(
                code,
                code.errmsg(),
                new_rid(now),
            )),
        };
        let mut response = Response::new(body);
        *response.status_mut() = StatusCode::OK;
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        response
    }
}
