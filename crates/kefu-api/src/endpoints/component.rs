//! Third-party platforms: `POST /cgi-bin/component/api_component_token` and
//! `POST /cgi-bin/component/api_authorizer_token`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{check_json_body, required};
use crate::endpoint::{Credential, Endpoint, Group, Method, Sent};
use crate::{ErrCode, Refused, Secret};

/// How long a component_verify_ticket lives (12 hours).
pub const TICKET_TTL_SECS: i64 = 12 * 3600;
/// How long a replaced authorizer_refresh_token keeps working (seconds).
pub const REFRESH_OVERLAP_SECS: i64 = 300;

/// The permission sets that open `add`, `del`, the lists and `inviteworker`.
pub const KF_FUNCSCOPES: &[u32] = &[1, 6, 19, 100, 101];
/// The permission sets that open `update` and `uploadheadimg` (not 19).
pub const KF_PROFILE_FUNCSCOPES: &[u32] = &[1, 6, 100, 101];

/// `POST /cgi-bin/component/api_component_token`.
#[derive(Debug, Clone, Copy)]
pub struct ComponentToken;

impl Endpoint for ComponentToken {
    const NAME: &'static str = "component_token";
    const SUMMARY: &'static str = "Get a third-party platform's component_access_token";
    const GROUP: Group = Group::ThirdPartyPlatforms;
    const EXAMPLE: &'static str = r#"{"component_appid":"wx00000000000000c3","component_appsecret":"0123456789abcdef0123456789abcdef","component_verify_ticket":"ticket@@@…"}"#;
    const METHOD: Method = Method::Post;
    const PATH: &'static str = "/cgi-bin/component/api_component_token";
    /// The platform's appid, secret and ticket travel in the body.
    const CREDENTIAL: Credential = Credential::None;
    type Request = ComponentTokenRequest;
    type Response = ComponentAccessToken;

    fn check(sent: &Sent<'_>) -> Result<(), Refused> {
        let body: ComponentTokenRequest = check_json_body(sent.body)?;
        required(
            body.component_appid.as_deref(),
            ErrCode::ComponentAppidMissing,
            "component_appid",
        )?;
        required(
            body.component_appsecret.as_ref().map(Secret::expose),
            ErrCode::AppsecretMissing,
            "component_appsecret",
        )?;
        required(
            body.component_verify_ticket.as_ref().map(Secret::expose),
            ErrCode::ComponentTicketInvalid,
            "component_verify_ticket",
        )
        .map(drop)
    }
}

/// `POST /cgi-bin/component/api_authorizer_token?component_access_token=…`.
#[derive(Debug, Clone, Copy)]
pub struct AuthorizerToken;

impl Endpoint for AuthorizerToken {
    const NAME: &'static str = "authorizer_token";
    const SUMMARY: &'static str =
        "Get an authorizer_access_token for an app that authorized the platform";
    const GROUP: Group = Group::ThirdPartyPlatforms;
    const EXAMPLE: &'static str = r#"{"component_appid":"wx00000000000000c3","authorizer_appid":"wx0123456789abcdef","authorizer_refresh_token":"refreshtoken@@@…"}"#;
    const METHOD: Method = Method::Post;
    const PATH: &'static str = "/cgi-bin/component/api_authorizer_token";
    const CREDENTIAL: Credential = Credential::ComponentAccessToken;
    type Request = AuthorizerTokenRequest;
    type Response = AuthorizerAccessToken;

    fn check(sent: &Sent<'_>) -> Result<(), Refused> {
        let body: AuthorizerTokenRequest = check_json_body(sent.body)?;
        required(
            body.component_appid.as_deref(),
            ErrCode::ComponentAppidMissing,
            "component_appid",
        )?;
        required(
            body.authorizer_refresh_token.as_ref().map(Secret::expose),
            ErrCode::RefreshTokenInvalid,
            "authorizer_refresh_token",
        )
        .map(drop)
    }
}

/// The body of `api_component_token`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct ComponentTokenRequest {
    /// The platform's appid.
    #[serde(default)]
    pub component_appid: Option<String>,
    /// The platform's secret.
    #[serde(default)]
    pub component_appsecret: Option<Secret>,
    /// The latest ticket pushed to the platform.
    #[serde(default)]
    pub component_verify_ticket: Option<Secret>,
}

/// `{"component_access_token":"…","expires_in":7200}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ComponentAccessToken {
    /// The token.
    pub component_access_token: Secret,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// The body of `api_authorizer_token`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct AuthorizerTokenRequest {
    /// The platform's appid.
    #[serde(default)]
    pub component_appid: Option<String>,
    /// The authorizing app.
    #[serde(default)]
    pub authorizer_appid: Option<String>,
    /// The refresh token from the authorization (or the previous call).
    #[serde(default)]
    pub authorizer_refresh_token: Option<Secret>,
}

/// `{"authorizer_access_token":"…","expires_in":7200,"authorizer_refresh_token":"…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuthorizerAccessToken {
    /// A token that works wherever an access_token does, for the authorizing app.
    pub authorizer_access_token: Secret,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// The refresh token to use next time (the one sent keeps working 5 minutes).
    pub authorizer_refresh_token: Secret,
}
