//! `GET /cgi-bin/token`: exchange an appid and AppSecret for an access_token.

use serde::{Deserialize, Serialize};

use crate::Secret;
use crate::endpoint::{Credential, Endpoint, Method};

/// The only accepted `grant_type`.
pub const GRANT_TYPE: &str = "client_credential";
/// Lifetime of a token, in seconds.
pub const EXPIRES_IN: u64 = 7200;
/// How long a superseded token keeps working, in seconds.
pub const GRACE_SECS: u64 = 300;

/// The endpoint.
#[derive(Debug, Clone, Copy)]
pub struct GetToken;

impl Endpoint for GetToken {
    const METHOD: Method = Method::Get;
    const PATH: &'static str = "/cgi-bin/token";
    /// The appid and secret travel in the query.
    const CREDENTIAL: Credential = Credential::None;
    type Request = Request;
    type Response = AccessToken;
}

/// The query string: `grant_type=client_credential&appid=…&secret=…`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Request {
    /// Must be `client_credential`.
    #[serde(default)]
    pub grant_type: Option<String>,
    /// The app's appid.
    #[serde(default)]
    pub appid: Option<String>,
    /// The app's AppSecret.
    #[serde(default)]
    pub secret: Option<Secret>,
}

/// `{"access_token":"…","expires_in":7200}` (no errcode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessToken {
    /// The token; clients should reserve 512 bytes for it.
    pub access_token: Secret,
    /// Seconds until it expires.
    pub expires_in: u64,
}
