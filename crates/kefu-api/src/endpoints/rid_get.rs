//! `POST /cgi-bin/openapi/rid/get`: what the server recorded of a request.

use serde::{Deserialize, Serialize};

use crate::endpoint::{Endpoint, Method};

/// How long a request stays on record (seconds): 7 days.
pub const RETENTION_SECS: i64 = 7 * 24 * 3600;

/// The endpoint.
#[derive(Debug, Clone, Copy)]
pub struct GetRid;

impl Endpoint for GetRid {
    const METHOD: Method = Method::Post;
    const PATH: &'static str = "/cgi-bin/openapi/rid/get";
    const IDEMPOTENT: bool = true;
    type Request = Request;
    type Response = RidAnswer;
}

/// `{"rid":"…"}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Request {
    /// The rid from an errmsg.
    #[serde(default)]
    pub rid: Option<String>,
}

/// `{"errcode":0,"errmsg":"ok","request":{…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RidAnswer {
    /// 0.
    pub errcode: crate::ErrCode,
    /// `ok`.
    pub errmsg: String,
    /// The record.
    pub request: RequestInfo,
}

/// One recorded request. Tokens and secrets are masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
