//! `GET /cgi-bin/token`: exchange an appid and AppSecret for an access_token.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::required;
use crate::endpoint::{Credential, Endpoint, Group, Method, Sent};
use crate::{AppId, ErrCode, Refused, Secret};

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
    const NAME: &'static str = "token";
    const SUMMARY: &'static str = "Get an access_token with the appid and AppSecret";
    const GROUP: Group = Group::AccessTokens;
    const EXAMPLE: &'static str = r#"{"grant_type":"client_credential","appid":"wx0123456789abcdef","secret":"0123456789abcdef0123456789abcdef"}"#;
    const METHOD: Method = Method::Get;
    const PATH: &'static str = "/cgi-bin/token";
    /// The appid and secret travel in the query.
    const CREDENTIAL: Credential = Credential::None;
    type Request = Request;
    type Response = AccessToken;

    fn check(sent: &Sent<'_>) -> Result<(), Refused> {
        credentials(
            sent.query("grant_type"),
            sent.query("appid"),
            sent.query("secret"),
        )
    }
}

/// The checks of an app's credentials the contract can make: `grant_type` (40002), the
/// appid given (41002) and well formed (40013), the secret given (41004).
pub(crate) fn credentials(
    grant_type: Option<&str>,
    appid: Option<&str>,
    secret: Option<&str>,
) -> Result<(), Refused> {
    if grant_type != Some(GRANT_TYPE) {
        return Err(Refused::new(
            ErrCode::InvalidGrantType,
            format!("grant_type must be {GRANT_TYPE}"),
        ));
    }
    let appid = required(appid, ErrCode::AppidMissing, "appid")?;
    AppId::parse(appid)
        .map_err(|code| Refused::new(code, "an appid is 'wx' and 16 lowercase hex digits"))?;
    required(secret, ErrCode::AppsecretMissing, "secret").map(drop)
}

/// The query string: `grant_type=client_credential&appid=…&secret=…`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AccessToken {
    /// The token; clients should reserve 512 bytes for it.
    pub access_token: Secret,
    /// Seconds until it expires.
    pub expires_in: u64,
}
