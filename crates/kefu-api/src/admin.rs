//! The server's own administration surface (not WeChat's): every path lives under
//! [`PREFIX`] and needs `Authorization: Bearer <admin token>`. Being kefu's own API,
//! it answers ordinary HTTP statuses with an [`AdminError`] body.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The prefix of every path of the admin surface; no WeChat path starts with it.
pub const PREFIX: &str = "/kefu/v1";
/// `GET` lists apps, `POST` creates one ([`NewApp`] → 201 [`CreatedApp`]).
pub const APPS: &str = "/kefu/v1/apps";
/// Public head images: `/kefu/v1/headimg/{appid}/{kf_id}/{version}.jpg` (no token needed,
/// so that `kf_headimgurl` can be fetched by anyone, as WeChat's can).
pub const HEADIMG: &str = "/kefu/v1/headimg";
/// `GET` answers `{"status":"ok"}`; needs no token.
pub const HEALTH: &str = "/kefu/v1/health";
/// `GET` the server clock, `POST {"advance_secs":N}` moves it forward.
pub const CLOCK: &str = "/kefu/v1/clock";

/// `/kefu/v1/apps/{appid}`: `GET`, `PATCH` ([`AppPatch`]), `DELETE`.
#[must_use]
pub fn app_path(appid: &str) -> String {
    format!("{APPS}/{appid}")
}

/// `/kefu/v1/apps/{appid}/secret`: `POST` replaces the AppSecret and shows the new one once.
#[must_use]
pub fn secret_path(appid: &str) -> String {
    format!("{APPS}/{appid}/secret")
}

/// `/kefu/v1/apps/{appid}/kf`: `GET` lists the accounts with the fields WeChat does not show.
#[must_use]
pub fn kf_path(appid: &str) -> String {
    format!("{APPS}/{appid}/kf")
}

/// `/kefu/v1/apps/{appid}/kf/{kf_account}/invitation`: `POST` an [`InvitationAction`]
/// (the invitee's answer, which on WeChat happens on a phone).
#[must_use]
pub fn invitation_path(appid: &str, kf_account: &str) -> String {
    format!("{APPS}/{appid}/kf/{kf_account}/invitation")
}

/// The kind of official account, which decides what the kf API allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountType {
    /// A service account (the default).
    #[default]
    Service,
    /// A subscription account.
    Subscription,
    /// A mini program (no `uploadheadimg`).
    Miniprogram,
    /// A sandbox test account: 65400 on every kf endpoint.
    Sandbox,
}

impl AccountType {
    /// The wire spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            AccountType::Service => "service",
            AccountType::Subscription => "subscription",
            AccountType::Miniprogram => "miniprogram",
            AccountType::Sandbox => "sandbox",
        }
    }

    /// Parses the wire spelling.
    #[must_use]
    pub fn parse(raw: &str) -> Option<AccountType> {
        match raw {
            "service" => Some(AccountType::Service),
            "subscription" => Some(AccountType::Subscription),
            "miniprogram" => Some(AccountType::Miniprogram),
            "sandbox" => Some(AccountType::Sandbox),
            _ => None,
        }
    }
}

impl fmt::Display for AccountType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `POST /kefu/v1/apps`: everything but `wechat_id` has a default.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct NewApp {
    /// The app's WeChat ID (alias): the suffix of its kf accounts.
    pub wechat_id: String,
    /// The original id (`gh_` + 12 hex); generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_id: Option<String>,
    /// Defaults to `service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_type: Option<AccountType>,
    /// Defaults to `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    /// Defaults to `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_kf_enabled: Option<bool>,
    /// A chosen appid (`wx` + 16 hex), so code with a hard-coded appid can run
    /// unchanged; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    /// A chosen AppSecret (16–64 letters and digits); generated (32 hex) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl fmt::Debug for NewApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewApp")
            .field("wechat_id", &self.wechat_id)
            .field("original_id", &self.original_id)
            .field("account_type", &self.account_type)
            .field("verified", &self.verified)
            .field("new_kf_enabled", &self.new_kf_enabled)
            .field("appid", &self.appid)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// `PATCH /kefu/v1/apps/{appid}`: the fields to change.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppPatch {
    /// New WeChat ID (refused while the app has kf accounts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wechat_id: Option<String>,
    /// New original id (refused while the app has kf accounts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_id: Option<String>,
    /// New account type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_type: Option<AccountType>,
    /// New verification state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    /// New state of the new-kf switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_kf_enabled: Option<bool>,
}

/// An app as the admin surface shows it (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppView {
    /// `wx` + 16 hex.
    pub appid: String,
    /// The WeChat ID (alias).
    pub wechat_id: String,
    /// `gh_` + 12 hex.
    pub original_id: String,
    /// The kind of account.
    pub account_type: AccountType,
    /// Whether the account is verified.
    pub verified: bool,
    /// Whether the new customer service feature is on.
    pub new_kf_enabled: bool,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// How many kf accounts it has.
    pub kf_count: usize,
}

/// The answer to creating an app, or to replacing its secret: the only time the
/// secret is shown.
#[derive(Clone, Serialize, Deserialize)]
pub struct CreatedApp {
    /// The app.
    #[serde(flatten)]
    pub app: AppView,
    /// The AppSecret, in clear, this once.
    pub secret: String,
}

impl fmt::Debug for CreatedApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedApp")
            .field("app", &self.app)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// One kf account with everything the server knows of it: what `getkflist` shows,
/// and what WeChat does not show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KfView {
    /// The account as `getkflist` shows it.
    #[serde(flatten)]
    pub kf: crate::endpoints::kf_list::KfInfo,
    /// The id used by the mini-program form of `del` (`?kf_openid=`).
    pub kf_openid: String,
    /// 0 offline, 1 online on the web client.
    pub online_status: i64,
    /// Sessions being served.
    pub accepted_case: i64,
}

/// What the invitee does with a pending invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvitationAction {
    /// Accept: the account becomes bound (`kf_wx`), the invitation disappears.
    Accept,
    /// Decline: `invite_status` becomes `rejected`.
    Reject,
    /// Let it lapse now: `invite_status` becomes `expired`.
    Expire,
}

/// `POST /kefu/v1/apps/{appid}/kf/{kf_account}/invitation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationRequest {
    /// What to do.
    pub action: InvitationAction,
}

/// `GET /kefu/v1/clock` / answer to `POST /kefu/v1/clock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockView {
    /// The server's notion of now, Unix seconds.
    pub now: i64,
    /// How far it is ahead of the real clock, in seconds.
    pub offset_secs: i64,
}

/// `POST /kefu/v1/clock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockAdvance {
    /// Seconds to move the server clock forward (never backward).
    pub advance_secs: u64,
}

/// The body of every admin failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminError {
    /// A stable machine-readable code, e.g. `unauthorized`, `not_found`, `invalid_wechat_id`.
    pub error: String,
    /// A sentence for people.
    pub message: String,
}
