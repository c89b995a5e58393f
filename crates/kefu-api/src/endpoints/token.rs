//! `GET /cgi-bin/token`: exchange an appid and AppSecret for an access_token.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::endpoint::{Endpoint, Method};

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
    type Request = Request;
    type Response = AccessToken;
}

/// The query string: `grant_type=client_credential&appid=…&secret=…`.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Request {
    /// Must be `client_credential`.
    #[serde(default)]
    pub grant_type: Option<String>,
    /// The app's appid.
    #[serde(default)]
    pub appid: Option<String>,
    /// The app's AppSecret.
    #[serde(default)]
    pub secret: Option<String>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("grant_type", &self.grant_type)
            .field("appid", &self.appid)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// `{"access_token":"…","expires_in":7200}` (no errcode).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessToken {
    /// The token; clients should reserve 512 bytes for it.
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("access_token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}
