//! API quotas: `POST /cgi-bin/openapi/quota/get`, `POST /cgi-bin/clear_quota`,
//! `POST /cgi-bin/clear_quota/v2` and `POST /cgi-bin/openapi/quota/clear`.

use serde::{Deserialize, Serialize};

use crate::endpoint::{Credential, Endpoint, Method};
use crate::{Secret, Status};

/// Quota clears (of every kind) allowed per app and month.
pub const MAX_CLEARS_PER_MONTH: u64 = 10;

/// `POST /cgi-bin/openapi/quota/get`: one API's daily quota.
#[derive(Debug, Clone, Copy)]
pub struct GetQuota;

impl Endpoint for GetQuota {
    const METHOD: Method = Method::Post;
    const PATH: &'static str = "/cgi-bin/openapi/quota/get";
    const IDEMPOTENT: bool = true;
    type Request = CgiPath;
    type Response = QuotaAnswer;
}

/// `POST /cgi-bin/openapi/quota/clear`: reset one API's daily count.
#[derive(Debug, Clone, Copy)]
pub struct ClearApiQuota;

impl Endpoint for ClearApiQuota {
    const METHOD: Method = Method::Post;
    const PATH: &'static str = "/cgi-bin/openapi/quota/clear";
    type Request = CgiPath;
    type Response = Status;
}

/// `POST /cgi-bin/clear_quota`: reset every daily count of the token's app.
#[derive(Debug, Clone, Copy)]
pub struct ClearQuota;

impl Endpoint for ClearQuota {
    const METHOD: Method = Method::Post;
    const PATH: &'static str = "/cgi-bin/clear_quota";
    type Request = ClearQuotaRequest;
    type Response = Status;
}

/// `POST /cgi-bin/clear_quota/v2`: the same with the AppSecret instead of a token.
#[derive(Debug, Clone, Copy)]
pub struct ClearQuotaV2;

impl Endpoint for ClearQuotaV2 {
    const METHOD: Method = Method::Post;
    const PATH: &'static str = "/cgi-bin/clear_quota/v2";
    /// The appid and secret travel in the body.
    const CREDENTIAL: Credential = Credential::None;
    type Request = ClearQuotaV2Request;
    type Response = Status;
}

/// `{"cgi_path":"/cgi-bin/token"}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CgiPath {
    /// The API's path, starting with `/`.
    #[serde(default)]
    pub cgi_path: Option<String>,
}

/// `{"appid":"…"}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClearQuotaRequest {
    /// Must be the token's app.
    #[serde(default)]
    pub appid: Option<String>,
}

/// `{"appid":"…","appsecret":"…"}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClearQuotaV2Request {
    /// The app.
    #[serde(default)]
    pub appid: Option<String>,
    /// Its AppSecret.
    #[serde(default)]
    pub appsecret: Option<Secret>,
}

/// `{"errcode":0,"errmsg":"ok","quota":{…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaAnswer {
    /// 0.
    pub errcode: crate::ErrCode,
    /// `ok`.
    pub errmsg: String,
    /// The figures.
    pub quota: Quota,
}

/// One API's daily figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    /// Calls allowed per day.
    pub daily_limit: u64,
    /// Calls made today.
    pub used: u64,
    /// Calls left today.
    pub remain: u64,
}
