//! `POST /cgi-bin/openapi/rid/get`: what the server recorded of a request.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::check_json_body;
use crate::endpoint::{Endpoint, Group, Method, Sent};
use crate::{ErrCode, Refused, Rid};

/// How long a request stays on record (seconds): 7 days.
pub const RETENTION_SECS: i64 = 7 * 24 * 3600;

/// The endpoint.
#[derive(Debug, Clone, Copy)]
pub struct GetRid;

impl Endpoint for GetRid {
    const NAME: &'static str = "rid_get";
    const SUMMARY: &'static str = "Look up a request by its rid";
    const GROUP: Group = Group::QuotasAndDiagnostics;
    const EXAMPLE: &'static str = r#"{"rid":"6926f1a2-3e1b9c0d-8a7f6e5d"}"#;
    const METHOD: Method = Method::Post;
    const PATH: &'static str = "/cgi-bin/openapi/rid/get";
    const IDEMPOTENT: bool = true;
    type Request = Request;
    type Response = RidAnswer;

    fn check(sent: &Sent<'_>) -> Result<(), Refused> {
        let body: Request = check_json_body(sent.body)?;
        body.rid
            .as_deref()
            .unwrap_or("")
            .parse::<Rid>()
            .map(drop)
            .map_err(|_| {
                Refused::new(
                    ErrCode::RidError,
                    "a rid is three groups of 8 lowercase hex digits joined by '-'",
                )
            })
    }
}

/// `{"rid":"…"}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Request {
    /// The rid from an errmsg.
    #[serde(default)]
    pub rid: Option<String>,
}

/// `{"errcode":0,"errmsg":"ok","request":{…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RidAnswer {
    /// 0.
    pub errcode: ErrCode,
    /// `ok`.
    pub errmsg: String,
    /// The record.
    pub request: RequestInfo,
}

/// One recorded request. Tokens and secrets are masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RequestInfo {
    /// Unix seconds.
    pub invoke_time: i64,
    /// How long it took.
    pub cost_in_ms: i64,
    /// Path and query string, the token masked.
    pub request_url: String,
    /// The body (masked, truncated).
    pub request_body: String,
    /// The answer (masked, truncated).
    pub response_body: String,
    /// The caller's IP.
    pub client_ip: String,
}
