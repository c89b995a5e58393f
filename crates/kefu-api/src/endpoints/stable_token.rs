//! `POST /cgi-bin/stable_token`: the token that stays the same while it has 5
//! minutes or more left, independent of `/cgi-bin/token`'s.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::check_json_body;
use super::token::AccessToken;
use crate::endpoint::{Credential, Endpoint, Group, Method, Sent};
use crate::{Refused, Secret};

/// The endpoint.
#[derive(Debug, Clone, Copy)]
pub struct GetStableToken;

impl Endpoint for GetStableToken {
    const NAME: &'static str = "stable_token";
    const SUMMARY: &'static str = "Get the stable access_token";
    const GROUP: Group = Group::AccessTokens;
    const EXAMPLE: &'static str = r#"{"grant_type":"client_credential","appid":"wx0123456789abcdef","secret":"0123456789abcdef0123456789abcdef","force_refresh":false}"#;
    const METHOD: Method = Method::Post;
    const PATH: &'static str = "/cgi-bin/stable_token";
    /// The appid and secret travel in the body.
    const CREDENTIAL: Credential = Credential::None;
    type Request = Request;
    type Response = AccessToken;

    fn check(sent: &Sent<'_>) -> Result<(), Refused> {
        let body: Request = check_json_body(sent.body)?;
        super::token::credentials(
            body.grant_type.as_deref(),
            body.appid.as_deref(),
            body.secret.as_ref().map(Secret::expose),
        )
    }
}

/// A stable token is handed out again while it has at least this long left (seconds);
/// after that a new one is minted and the old one lives out its time.
pub const REUSE_MARGIN_SECS: i64 = 300;
/// Forced refreshes allowed per app and day.
pub const MAX_FORCE_REFRESH_PER_DAY: u64 = 20;
/// A forced refresh within this many seconds of the current token's birth answers the
/// current token unchanged.
pub const FORCE_REFRESH_SPACING_SECS: i64 = 30;

/// The JSON body. The credentials must be in the body: in the query they do not count.
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
    /// Invalidate the current stable token and mint a new one.
    #[serde(default)]
    pub force_refresh: Option<bool>,
}
