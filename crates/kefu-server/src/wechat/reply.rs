//! Answers in WeChat's envelope: always HTTP 200, `application/json; encoding=utf-8`.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use bytes::Bytes;
use kefu_api::{CONTENT_TYPE, ErrCode, OK_BODY, Refused, Rid};
use kefu_store::StoreError;

use crate::secrets::rid_groups;

/// What a handler answers when the call succeeds.
#[derive(Debug)]
pub(crate) enum Reply {
    /// `{"errcode":0,"errmsg":"ok"}`.
    Ok,
    /// A payload (token, list) with no errcode.
    Json {
        /// The body.
        body: Bytes,
        /// The body as the request log shows it, when it was made already (a cached
        /// list, answered again and again, shares one text).
        logged: Option<Arc<str>>,
    },
}

impl Reply {
    /// Serialises a payload.
    pub(crate) fn json<T: serde::Serialize>(value: &T) -> Result<Reply, WxError> {
        match serde_json::to_vec(value) {
            Ok(body) => Ok(Reply::Json {
                body: body.into(),
                logged: None,
            }),
            Err(error) => Err(WxError {
                cause: Some(format!("cannot serialise a payload: {error}")),
                ..WxError::because(ErrCode::SystemError, "the answer could not be written")
            }),
        }
    }
}

/// A failed call: its code, WeChat's text where it has details, the reason a person
/// reads in the request log, and the internal cause of a `-1`, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WxError {
    /// The code.
    pub(crate) code: ErrCode,
    /// WeChat's text with details filled in, where it has any.
    pub(crate) message: Option<String>,
    /// Which rule fired, and why, in words; the code's meaning when not given.
    pub(crate) reason: Option<Cow<'static, str>>,
    /// What failed inside (a store failure): logged once by the edge, with the rid,
    /// and never shown to the client.
    pub(crate) cause: Option<String>,
}

impl From<ErrCode> for WxError {
    fn from(code: ErrCode) -> WxError {
        WxError {
            code,
            message: None,
            reason: None,
            cause: None,
        }
    }
}

impl From<Refused> for WxError {
    fn from(refused: Refused) -> WxError {
        WxError::because(refused.code, refused.reason)
    }
}

impl From<StoreError> for WxError {
    fn from(error: StoreError) -> WxError {
        match error {
            StoreError::Rejected(code) => code.into(),
            StoreError::Refused(refused) => refused.into(),
            // The app vanished while the request was in flight: its tokens died with it.
            StoreError::NotFound => WxError::because(
                ErrCode::InvalidCredential,
                "the token's app was deleted while the call was in flight",
            ),
            StoreError::Conflict(cause)
            | StoreError::Internal(cause)
            | StoreError::Invalid(cause) => WxError {
                cause: Some(cause),
                ..WxError::because(
                    ErrCode::SystemError,
                    "the store failed; the server's log has the cause under this rid",
                )
            },
        }
    }
}

impl WxError {
    /// `code`, because `reason`.
    pub(crate) fn because(code: ErrCode, reason: impl Into<Cow<'static, str>>) -> WxError {
        WxError {
            reason: Some(reason.into()),
            ..code.into()
        }
    }

    /// The reason recorded with the call: the one given, else what the code means.
    pub(crate) fn reason(&self) -> Cow<'static, str> {
        self.reason
            .clone()
            .unwrap_or(Cow::Borrowed(self.code.meaning()))
    }

    /// `40164 invalid ip A ipv6 ::ffff:A, not in whitelist`.
    #[must_use]
    pub(crate) fn ip_not_in_whitelist(ip: std::net::IpAddr) -> WxError {
        let (v4, v6) = match ip {
            std::net::IpAddr::V4(v4) => (v4.to_string(), format!("::ffff:{v4}")),
            std::net::IpAddr::V6(v6) => (v6.to_string(), v6.to_string()),
        };
        WxError {
            message: Some(format!("invalid ip {v4} ipv6 {v6}, not in whitelist")),
            ..WxError::because(
                ErrCode::IpNotInWhitelist,
                format!("{v4} is not in the IP whitelist"),
            )
        }
    }
}

/// A rid for a request made at `now`.
#[must_use]
pub(crate) fn new_rid(now: i64) -> Rid {
    let (a, b) = rid_groups();
    Rid::new(u32::try_from(now.max(0)).unwrap_or(u32::MAX), a, b)
}

/// What a WeChat call answered, as its response carries it and its record keeps it.
#[derive(Debug, Clone)]
pub(crate) struct Answered {
    /// The errcode (0 for payloads).
    pub(crate) errcode: i64,
    /// The body.
    pub(crate) body: Bytes,
    /// The body as the log shows it, when made already.
    pub(crate) logged: Option<Arc<str>>,
    /// Why a failure was answered (`None` for a success).
    pub(crate) reason: Option<Cow<'static, str>>,
    /// The internal cause of a failure, to be logged with the rid.
    pub(crate) cause: Option<String>,
}

impl Answered {
    /// The answer of a handler's outcome; a failure carries `rid`.
    pub(crate) fn of(outcome: Result<Reply, WxError>, rid: Rid) -> Answered {
        match outcome {
            Ok(Reply::Ok) => Answered {
                errcode: 0,
                body: Bytes::from_static(OK_BODY.as_bytes()),
                logged: None,
                reason: None,
                cause: None,
            },
            Ok(Reply::Json { body, logged }) => Answered {
                errcode: 0,
                body,
                logged,
                reason: None,
                cause: None,
            },
            Err(error) if error.code.is_ok() => Answered::of(Ok(Reply::Ok), rid),
            Err(error) => {
                let code = error.code;
                let body = kefu_api::envelope::error_body(
                    code,
                    error.message.as_deref().unwrap_or(code.errmsg()),
                    rid,
                );
                Answered {
                    errcode: code.code(),
                    body: body.into(),
                    logged: None,
                    reason: Some(error.reason()),
                    cause: error.cause,
                }
            }
        }
    }

    /// The failure `code` with `rid`.
    pub(crate) fn error(code: ErrCode, rid: Rid) -> Answered {
        Answered::of(Err(code.into()), rid)
    }

    /// The HTTP response: status 200, WeChat's content type.
    pub(crate) fn response(&self) -> Response<Body> {
        envelope_response(StatusCode::OK, self.body.clone())
    }
}

/// A response carrying a WeChat body, with WeChat's content type.
pub(crate) fn envelope_response(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}
