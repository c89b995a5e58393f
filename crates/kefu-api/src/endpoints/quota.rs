//! API quotas: `POST /cgi-bin/openapi/quota/get`, `POST /cgi-bin/clear_quota`,
//! `POST /cgi-bin/clear_quota/v2` and `POST /cgi-bin/openapi/quota/clear`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{check_json_body, required};
use crate::endpoint::{Credential, Endpoint, Group, Method, Sent};
use crate::{ErrCode, Refused, Secret, Status};

/// Quota clears (of every kind) allowed per app and month.
pub const MAX_CLEARS_PER_MONTH: u64 = 10;

/// `POST /cgi-bin/openapi/quota/get`: one API's daily quota.
#[derive(Debug, Clone, Copy)]
pub struct GetQuota;

impl Endpoint for GetQuota {
    const NAME: &'static str = "quota_get";
    const SUMMARY: &'static str = "Read one API's daily quota";
    const GROUP: Group = Group::QuotasAndDiagnostics;
    const EXAMPLE: &'static str = r#"{"cgi_path":"/cgi-bin/token"}"#;
    const METHOD: Method = Method::Post;
    const PATH: &'static str = "/cgi-bin/openapi/quota/get";
    const IDEMPOTENT: bool = true;
    type Request = CgiPath;
    type Response = QuotaAnswer;

    fn check(sent: &Sent<'_>) -> Result<(), Refused> {
        cgi_path(sent.body)
    }
}

/// `POST /cgi-bin/openapi/quota/clear`: reset one API's daily count.
#[derive(Debug, Clone, Copy)]
pub struct ClearApiQuota;

impl Endpoint for ClearApiQuota {
    const NAME: &'static str = "quota_clear";
    const SUMMARY: &'static str = "Reset one API's daily count";
    const GROUP: Group = Group::QuotasAndDiagnostics;
    const EXAMPLE: &'static str = r#"{"cgi_path":"/cgi-bin/token"}"#;
    const METHOD: Method = Method::Post;
    const PATH: &'static str = "/cgi-bin/openapi/quota/clear";
    type Request = CgiPath;
    type Response = Status;

    fn check(sent: &Sent<'_>) -> Result<(), Refused> {
        cgi_path(sent.body)
    }
}

/// `POST /cgi-bin/clear_quota`: reset every daily count of the token's app.
#[derive(Debug, Clone, Copy)]
pub struct ClearQuota;

impl Endpoint for ClearQuota {
    const NAME: &'static str = "clear_quota";
    const SUMMARY: &'static str = "Reset every daily count of the app";
    const GROUP: Group = Group::QuotasAndDiagnostics;
    const EXAMPLE: &'static str = r#"{"appid":"wx0123456789abcdef"}"#;
    const METHOD: Method = Method::Post;
    const PATH: &'static str = "/cgi-bin/clear_quota";
    type Request = ClearQuotaRequest;
    type Response = Status;

    fn check(sent: &Sent<'_>) -> Result<(), Refused> {
        check_json_body::<ClearQuotaRequest>(sent.body).map(drop)
    }
}

/// `POST /cgi-bin/clear_quota/v2`: the same with the AppSecret instead of a token.
#[derive(Debug, Clone, Copy)]
pub struct ClearQuotaV2;

impl Endpoint for ClearQuotaV2 {
    const NAME: &'static str = "clear_quota_v2";
    const SUMMARY: &'static str = "Reset every daily count, with the AppSecret";
    const GROUP: Group = Group::QuotasAndDiagnostics;
    const EXAMPLE: &'static str =
        r#"{"appid":"wx0123456789abcdef","appsecret":"0123456789abcdef0123456789abcdef"}"#;
    const METHOD: Method = Method::Post;
    const PATH: &'static str = "/cgi-bin/clear_quota/v2";
    /// The appid and secret travel in the body.
    const CREDENTIAL: Credential = Credential::None;
    type Request = ClearQuotaV2Request;
    type Response = Status;

    fn check(sent: &Sent<'_>) -> Result<(), Refused> {
        let body: ClearQuotaV2Request = check_json_body(sent.body)?;
        required(body.appid.as_deref(), ErrCode::AppidMissing, "appid")?;
        required(
            body.appsecret.as_ref().map(Secret::expose),
            ErrCode::AppsecretMissing,
            "appsecret",
        )
        .map(drop)
    }
}

/// A `cgi_path` body: the path given and starting with `/` (76021).
fn cgi_path(body: &[u8]) -> Result<(), Refused> {
    let body: CgiPath = check_json_body(body)?;
    match body.cgi_path.as_deref() {
        Some(path) if path.starts_with('/') => Ok(()),
        _ => Err(Refused::new(
            ErrCode::CgiPathNotFound,
            "cgi_path must be an API's path, starting with '/'",
        )),
    }
}

/// `{"cgi_path":"/cgi-bin/token"}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct CgiPath {
    /// The API's path, starting with `/`.
    #[serde(default)]
    pub cgi_path: Option<String>,
}

/// `{"appid":"…"}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct ClearQuotaRequest {
    /// Must be the token's app.
    #[serde(default)]
    pub appid: Option<String>,
}

/// `{"appid":"…","appsecret":"…"}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct ClearQuotaV2Request {
    /// The app.
    #[serde(default)]
    pub appid: Option<String>,
    /// Its AppSecret.
    #[serde(default)]
    pub appsecret: Option<Secret>,
}

/// `{"errcode":0,"errmsg":"ok","quota":{…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct QuotaAnswer {
    /// 0.
    pub errcode: ErrCode,
    /// `ok`.
    pub errmsg: String,
    /// The figures.
    pub quota: Quota,
}

/// One API's daily figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Quota {
    /// Calls allowed per day.
    pub daily_limit: u64,
    /// Calls made today.
    pub used: u64,
    /// Calls left today.
    pub remain: u64,
}
