//! The server's own administration surface (not WeChat's): every path lives under
//! [`PREFIX`] and needs `Authorization: Bearer <admin token>`. Being kefu's own API,
//! it answers ordinary HTTP statuses with an [`AdminError`] body.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{AppAlias, AppId, AppSecret, OriginalId, Secret};

mod console;
mod docs;
mod fans;
pub mod fixtures;
mod ops;

pub use console::{
    APP_TOKENS, AppTokenAction, CATALOG, CATALOG_CHECK, CONSOLE, CONSOLE_TOKEN_SECS, CheckAnswer,
    CheckRequest, ConsoleToken, ERRCODES, ErrcodeView, MAX_TOKENS_SHOWN, REQUESTS_STREAM,
    RequestFilter, STREAM_QUEUE, StreamDropped, TokenView, rid_of,
};
pub use console::{Lapsed, LapsedInvitation, LapsedQuota, LapsedToken, MAX_LAPSED};
pub use docs::OPENAPI;
pub use fans::{
    FanActed, FanAction, FanActionBody, FanView, MAX_FAN_NICKNAME_CHARS, MAX_FAN_TEXT_CHARS,
    MAX_FANS_PER_APP, NewFan, NewFanBody, QueueRequest, SessionView, TIMELINE_LEN, TimelineEntry,
    WindowView,
};
pub use ops::{LIVEZ, METRICS, READYZ, RESET, Readiness};

/// The prefix of every path of the admin surface; no WeChat path starts with it.
pub const PREFIX: &str = "/kefu/v1";

// Every path of the admin surface, as the server registers it: `{name}` stands for a
// path parameter, filled in by [`path`].

/// `GET` lists apps, `POST` creates one ([`NewApp`] → 201 [`CreatedApp`]).
pub const APPS: &str = "/kefu/v1/apps";
/// `GET` shows an app, `PATCH` changes it ([`AppPatch`]), `DELETE` deletes it.
pub const APP: &str = "/kefu/v1/apps/{appid}";
/// `POST` replaces the AppSecret and shows the new one once ([`CreatedApp`]).
pub const APP_SECRET: &str = "/kefu/v1/apps/{appid}/secret";
/// `GET` lists the app's accounts with the fields WeChat does not show ([`KfView`]).
pub const APP_KFS: &str = "/kefu/v1/apps/{appid}/kf";
/// `POST` an [`InvitationRequest`]: the invitee's answer, which on WeChat happens on a
/// phone.
pub const KF_INVITATION: &str = "/kefu/v1/apps/{appid}/kf/{kf_account}/invitation";
/// `POST` a [`KfOnlineSet`]: the account shows in `getonlinekflist`.
pub const KF_ONLINE: &str = "/kefu/v1/apps/{appid}/kf/{kf_account}/online";
/// `GET` lists the app's fans ([`FanView`]), `POST` makes one ([`NewFan`] → 201).
pub const FANS: &str = "/kefu/v1/apps/{appid}/fans";
/// `GET` shows a fan with its timeline ([`FanView`]), `DELETE` forgets it.
pub const FAN: &str = "/kefu/v1/apps/{appid}/fans/{openid}";
/// `POST` a [`FanAction`]: the fan sends a message, clicks a menu, follows… ([`FanActed`]).
pub const FAN_ACTIONS: &str = "/kefu/v1/apps/{appid}/fans/{openid}/actions";
/// `POST` a [`QueueRequest`]: the fan waits in the queue (or is served by an account).
pub const FAN_QUEUE: &str = "/kefu/v1/apps/{appid}/fans/{openid}/queue";
/// `GET` lists third-party platforms, `POST` registers one ([`NewComponent`]).
pub const COMPONENTS: &str = "/kefu/v1/components";
/// `GET` shows a platform, `DELETE` deletes it.
pub const COMPONENT: &str = "/kefu/v1/components/{component_appid}";
/// `POST` issues a component_verify_ticket ([`Ticket`]).
pub const COMPONENT_TICKET: &str = "/kefu/v1/components/{component_appid}/ticket";
/// `POST` a [`NewAuthorization`]: an app authorizes the platform.
pub const COMPONENT_AUTHORIZATIONS: &str = "/kefu/v1/components/{component_appid}/authorizations";
/// `GET` lists fault rules, `POST` adds one ([`NewFault`]).
pub const FAULTS: &str = "/kefu/v1/faults";
/// `DELETE` removes a fault rule.
pub const FAULT: &str = "/kefu/v1/faults/{id}";
/// `POST` a [`TokenAction`]: invalidate or expire a token now.
pub const TOKENS: &str = "/kefu/v1/tokens";
/// `GET ?appid=…&limit=…`: the newest recorded WeChat calls ([`RequestLogEntry`]).
pub const REQUESTS: &str = "/kefu/v1/requests";
/// `GET ?appid=…&hours=24`: the calls counted, by app, path and errcode, and what the
/// request log holds ([`RequestSummary`]).
pub const REQUESTS_SUMMARY: &str = "/kefu/v1/requests/summary";
/// `GET` the server clock, `POST` a [`ClockAdvance`] moves it forward ([`ClockView`]).
pub const CLOCK: &str = "/kefu/v1/clock";
/// `GET` every app, account, head image, platform and authorization as one document.
pub const EXPORT: &str = "/kefu/v1/export";
/// `POST` an export document into an empty store.
pub const IMPORT: &str = "/kefu/v1/import";
/// `GET` answers `{"status":"ok"}`; needs no token.
pub const HEALTH: &str = "/kefu/v1/health";
/// Public head images, `{file}` being `{version}.jpg` (no token needed, so that
/// `kf_headimgurl` can be fetched by anyone, as WeChat's can).
pub const HEADIMG: &str = "/kefu/v1/headimg/{appid}/{kf_id}/{file}";

/// Fills the `{…}` parameters of a path template (one of this module's constants), in
/// order, with `values`: `path(APP, &["wx0123456789abcdef"])`. Parameters left without
/// a value stay as they are.
#[must_use]
pub fn path(template: &str, values: &[&str]) -> String {
    let mut filled = String::with_capacity(template.len() + 32);
    let mut values = values.iter();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|close| open + close) else {
            break;
        };
        filled.push_str(&rest[..open]);
        match values.next() {
            Some(value) => filled.push_str(value),
            None => filled.push_str(&rest[open..=close]),
        }
        rest = &rest[close + 1..];
    }
    filled.push_str(rest);
    filled
}

/// A value of an admin request that breaks a rule: the code (which gives the HTTP
/// status) and a sentence naming the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    /// The code.
    pub code: AdminErrorCode,
    /// The field and the rule, in words.
    pub message: String,
}

impl Invalid {
    /// `code`, because `message`.
    pub fn new(code: AdminErrorCode, message: impl Into<String>) -> Invalid {
        Invalid {
            code,
            message: message.into(),
        }
    }
}

/// An admin request body: read as the JSON of its [`Checked::Body`] (any malformed body
/// is `invalid_body`), then checked into the validated type, whose errors name the code
/// of the rule broken. The validated type also deserializes directly (through the same
/// check) for readers that need no code.
pub trait Checked: Sized + TryFrom<Self::Body, Error = Invalid> {
    /// The body as sent, before its values are checked.
    type Body: serde::de::DeserializeOwned;
}

fn appid_field(field: &str, raw: String) -> Result<AppId, Invalid> {
    AppId::parse(&raw).map_err(|_| {
        Invalid::new(
            AdminErrorCode::InvalidAppid,
            format!("{field} must be 'wx' and 16 lowercase hex digits"),
        )
    })
}

fn secret_field(raw: Secret) -> Result<AppSecret, Invalid> {
    AppSecret::parse(raw).map_err(|_| {
        Invalid::new(
            AdminErrorCode::InvalidSecret,
            "secret must be 16-64 letters and digits",
        )
    })
}

fn alias_field(raw: String) -> Result<AppAlias, Invalid> {
    AppAlias::parse(&raw).map_err(|_| {
        Invalid::new(
            AdminErrorCode::InvalidWechatId,
            "wechat_id must be 1-30 letters, digits, '_' or '-'",
        )
    })
}

fn original_id_field(raw: String) -> Result<OriginalId, Invalid> {
    OriginalId::parse(&raw).map_err(|_| {
        Invalid::new(
            AdminErrorCode::InvalidOriginalId,
            "original_id must be 'gh_' and 12 lowercase hex digits",
        )
    })
}

fn settings_invalid(error: SettingsError) -> Invalid {
    let code = match error {
        SettingsError::Ip { .. } => AdminErrorCode::InvalidIp,
        SettingsError::Path { .. } => AdminErrorCode::InvalidPath,
        SettingsError::Window { .. } => AdminErrorCode::InvalidWindow,
        SettingsError::Callback { .. } => AdminErrorCode::InvalidCallback,
    };
    Invalid::new(code, error.to_string())
}

/// The kind of official account, which decides what the kf API allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
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

/// One API's limits for an app (absent: WeChat's default for that API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct QuotaLimit {
    /// Calls per day (reset at 00:00 Asia/Shanghai).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily: Option<u64>,
    /// Calls per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_minute: Option<u64>,
}

/// The per-app platform rules.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct AppSettings {
    /// IPs allowed on the endpoints that take the AppSecret; empty allows all.
    #[serde(default)]
    pub ip_whitelist: Vec<String>,
    /// Limits by API path, overriding the defaults.
    #[serde(default)]
    pub quotas: BTreeMap<String, QuotaLimit>,
    /// API paths banned for the app (48004).
    #[serde(default)]
    pub banned_apis: Vec<String>,
    /// How long each kind of delivery window stays open, and how many messages it lets
    /// through.
    #[serde(default)]
    pub windows: DeliveryWindows,
    /// Where fans' messages and session events are pushed; none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<CallbackSettings>,
}

/// The delivery windows of an app (docs/behaviour.md, "Messages"): what each kind of
/// fan action opens. The defaults are WeChat's published figures, which WeChat has
/// changed over the years.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeliveryWindows {
    /// After a fan's message: 48 hours, 5 messages.
    #[serde(default = "DeliveryWindows::message")]
    pub message: WindowRule,
    /// After a menu click, a follow or a scan: 1 minute, 3 messages.
    #[serde(default = "DeliveryWindows::event")]
    pub event: WindowRule,
    /// After a payment: 48 hours, no limit.
    #[serde(default = "DeliveryWindows::payment")]
    pub payment: WindowRule,
}

/// How long one kind of window stays open and how many messages it lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WindowRule {
    /// Seconds from the fan's action (1 to 30 days).
    pub secs: i64,
    /// Messages allowed; no limit when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// The longest window taken, in seconds (30 days).
pub const MAX_WINDOW_SECS: i64 = 30 * 86_400;

impl DeliveryWindows {
    fn message() -> WindowRule {
        WindowRule {
            secs: 48 * 3600,
            limit: Some(5),
        }
    }

    fn event() -> WindowRule {
        WindowRule {
            secs: 60,
            limit: Some(3),
        }
    }

    fn payment() -> WindowRule {
        WindowRule {
            secs: 48 * 3600,
            limit: None,
        }
    }

    /// The rule of one kind of window.
    #[must_use]
    pub const fn rule(&self, kind: crate::endpoints::message::WindowKind) -> WindowRule {
        use crate::endpoints::message::WindowKind;
        match kind {
            WindowKind::Message => self.message,
            WindowKind::Event => self.event,
            WindowKind::Payment => self.payment,
        }
    }

    /// Checks each rule: 1 second to 30 days.
    pub fn check(&self) -> Result<(), SettingsError> {
        for (kind, rule) in [
            ("message", self.message),
            ("event", self.event),
            ("payment", self.payment),
        ] {
            if !(1..=MAX_WINDOW_SECS).contains(&rule.secs) {
                return Err(SettingsError::Window {
                    kind,
                    why: format!("secs is {}: it is 1 to {MAX_WINDOW_SECS}", rule.secs),
                });
            }
        }
        Ok(())
    }
}

impl Default for DeliveryWindows {
    fn default() -> DeliveryWindows {
        DeliveryWindows {
            message: DeliveryWindows::message(),
            event: DeliveryWindows::event(),
            payment: DeliveryWindows::payment(),
        }
    }
}

/// How pushes to the developer's server are encoded, as WeChat's admin page offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageMode {
    /// Plain XML, signed.
    #[default]
    Plain,
    /// Plain XML with the encrypted copy beside it.
    Compatible,
    /// Only the encrypted XML (`<Encrypt>`), signed with `msg_signature`.
    Safe,
}

/// An app's callback: where WeChat (here, kefu) pushes fans' messages and session
/// events, with the Token and EncodingAESKey the developer chose on WeChat's admin
/// page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CallbackSettings {
    /// The developer's server (`http://` or `https://`).
    pub url: String,
    /// The Token that signs every push (3-32 letters and digits).
    pub token: Secret,
    /// The EncodingAESKey (43 letters and digits), needed in compatible and safe mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_aes_key: Option<Secret>,
    /// Plain, compatible or safe.
    #[serde(default)]
    pub mode: MessageMode,
}

/// The length of an EncodingAESKey.
pub const ENCODING_AES_KEY_LEN: usize = 43;

impl CallbackSettings {
    /// Checks the URL, the Token, the key, and that an encrypting mode has a key.
    pub fn check(&self) -> Result<(), SettingsError> {
        let bad = |why: String| Err(SettingsError::Callback { why });
        let rest = self
            .url
            .strip_prefix("http://")
            .or_else(|| self.url.strip_prefix("https://"));
        match rest {
            Some(rest)
                if !rest.is_empty()
                    && !rest.starts_with('/')
                    && !rest
                        .split(['/', '?', '#'])
                        .next()
                        .is_some_and(|authority| authority.contains('@'))
                    && self.url.len() <= 2048
                    && !self
                        .url
                        .chars()
                        .any(|c| c.is_whitespace() || c.is_control()) => {}
            _ => {
                return bad(
                    "url must be an http:// or https:// URL without a user name or password"
                        .to_owned(),
                );
            }
        }
        let token = self.token.expose();
        if !(3..=32).contains(&token.len()) || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return bad("token must be 3-32 letters and digits".to_owned());
        }
        match &self.encoding_aes_key {
            Some(key)
                if key.expose().len() != ENCODING_AES_KEY_LEN
                    || !key.expose().bytes().all(|b| b.is_ascii_alphanumeric()) =>
            {
                bad(format!(
                    "encoding_aes_key must be {ENCODING_AES_KEY_LEN} letters and digits"
                ))
            }
            None if self.mode != MessageMode::Plain => {
                bad("compatible and safe mode need an encoding_aes_key".to_owned())
            }
            _ => Ok(()),
        }
    }
}

/// A platform rule that cannot be kept: which value, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// An IP list holds something that is not an IP address.
    #[error("ip_whitelist[{index}]: {value:?} is not an IP address")]
    Ip {
        /// Its place in the list.
        index: usize,
        /// What was given.
        value: String,
    },
    /// A quota or a ban names something that is not an API path.
    #[error("{field}: {value:?} is not an API path (it starts with '/')")]
    Path {
        /// `quotas` or `banned_apis`.
        field: &'static str,
        /// What was given.
        value: String,
    },
    /// A delivery window's rule cannot be kept.
    #[error("windows.{kind}: {why}")]
    Window {
        /// `message`, `event` or `payment`.
        kind: &'static str,
        /// Why.
        why: String,
    },
    /// The callback's settings cannot be used.
    #[error("callback: {why}")]
    Callback {
        /// Why.
        why: String,
    },
}

/// Checks a list of IP addresses (an app's whitelist, a platform's IP list).
pub fn check_ips(ips: &[String]) -> Result<(), SettingsError> {
    match ips
        .iter()
        .position(|ip| ip.trim().parse::<std::net::IpAddr>().is_err())
    {
        Some(index) => Err(SettingsError::Ip {
            index,
            value: ips[index].clone(),
        }),
        None => Ok(()),
    }
}

/// Checks the paths that quotas and bans name.
pub fn check_api_paths<'a>(
    field: &'static str,
    mut paths: impl Iterator<Item = &'a String>,
) -> Result<(), SettingsError> {
    match paths.find(|path| !path.starts_with('/')) {
        Some(bad) => Err(SettingsError::Path {
            field,
            value: bad.clone(),
        }),
        None => Ok(()),
    }
}

impl AppSettings {
    /// Checks every rule: IPs that are IP addresses, quotas and bans of API paths.
    pub fn check(&self) -> Result<(), SettingsError> {
        check_ips(&self.ip_whitelist)?;
        check_api_paths("quotas", self.quotas.keys())?;
        check_api_paths("banned_apis", self.banned_apis.iter())?;
        self.windows.check()?;
        self.callback
            .as_ref()
            .map_or(Ok(()), CallbackSettings::check)
    }
}

/// `POST /kefu/v1/apps`: everything but `wechat_id` has a default.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "NewAppBody")]
pub struct NewApp {
    /// The app's WeChat ID (alias): the suffix of its kf accounts.
    pub wechat_id: AppAlias,
    /// The original id (`gh_` + 12 hex); generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_id: Option<OriginalId>,
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
    pub appid: Option<AppId>,
    /// A chosen AppSecret (16–64 letters and digits); generated (32 hex) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<AppSecret>,
    /// Platform rules (whitelist, quotas, bans); none by default.
    #[serde(flatten)]
    pub settings: AppSettings,
}

impl NewApp {
    /// A new app with this WeChat ID and every default.
    #[must_use]
    pub fn new(wechat_id: AppAlias) -> NewApp {
        NewApp {
            wechat_id,
            original_id: None,
            account_type: None,
            verified: None,
            new_kf_enabled: None,
            appid: None,
            secret: None,
            settings: AppSettings::default(),
        }
    }
}

/// [`NewApp`] as sent, before its values are checked.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct NewAppBody {
    /// See [`NewApp::wechat_id`].
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]{1,30}$"))]
    pub wechat_id: String,
    /// See [`NewApp::original_id`].
    #[serde(default)]
    #[schemars(regex(pattern = r"^gh_[0-9a-f]{12}$"))]
    pub original_id: Option<String>,
    /// See [`NewApp::account_type`].
    #[serde(default)]
    pub account_type: Option<AccountType>,
    /// See [`NewApp::verified`].
    #[serde(default)]
    pub verified: Option<bool>,
    /// See [`NewApp::new_kf_enabled`].
    #[serde(default)]
    pub new_kf_enabled: Option<bool>,
    /// See [`NewApp::appid`].
    #[serde(default)]
    #[schemars(regex(pattern = r"^wx[0-9a-f]{16}$"))]
    pub appid: Option<String>,
    /// See [`NewApp::secret`].
    #[serde(default)]
    #[schemars(regex(pattern = r"^[A-Za-z0-9]{16,64}$"))]
    pub secret: Option<Secret>,
    /// See [`NewApp::settings`].
    #[serde(default, flatten)]
    pub settings: AppSettings,
}

impl TryFrom<NewAppBody> for NewApp {
    type Error = Invalid;

    fn try_from(body: NewAppBody) -> Result<NewApp, Invalid> {
        let wechat_id = alias_field(body.wechat_id)?;
        let original_id = body.original_id.map(original_id_field).transpose()?;
        let appid = body
            .appid
            .map(|raw| appid_field("appid", raw))
            .transpose()?;
        let secret = body.secret.map(secret_field).transpose()?;
        body.settings.check().map_err(settings_invalid)?;
        Ok(NewApp {
            wechat_id,
            original_id,
            account_type: body.account_type,
            verified: body.verified,
            new_kf_enabled: body.new_kf_enabled,
            appid,
            secret,
            settings: body.settings,
        })
    }
}

impl Checked for NewApp {
    type Body = NewAppBody;
}

/// `PATCH /kefu/v1/apps/{appid}`: the fields to change.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "AppPatchBody")]
pub struct AppPatch {
    /// New WeChat ID (refused while the app has kf accounts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wechat_id: Option<AppAlias>,
    /// New original id (refused while the app has kf accounts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_id: Option<OriginalId>,
    /// New account type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_type: Option<AccountType>,
    /// New verification state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    /// New state of the new-kf switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_kf_enabled: Option<bool>,
    /// New IP whitelist (replaces the old one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_whitelist: Option<Vec<String>>,
    /// New quota overrides (replace the old ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<BTreeMap<String, QuotaLimit>>,
    /// New list of banned API paths (replaces the old one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub banned_apis: Option<Vec<String>>,
    /// New delivery windows (replace the old ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows: Option<DeliveryWindows>,
    /// A new callback (`null` removes it).
    #[allow(clippy::option_option, reason = "absent, null (remove) or a value")]
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub callback: Option<Option<CallbackSettings>>,
}

/// A field that may be absent (`None`), `null` (`Some(None)`) or a value.
#[allow(clippy::option_option, reason = "absent, null (remove) or a value")]
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// [`AppPatch`] as sent, before its values are checked.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct AppPatchBody {
    /// See [`AppPatch::wechat_id`].
    #[serde(default)]
    pub wechat_id: Option<String>,
    /// See [`AppPatch::original_id`].
    #[serde(default)]
    pub original_id: Option<String>,
    /// See [`AppPatch::account_type`].
    #[serde(default)]
    pub account_type: Option<AccountType>,
    /// See [`AppPatch::verified`].
    #[serde(default)]
    pub verified: Option<bool>,
    /// See [`AppPatch::new_kf_enabled`].
    #[serde(default)]
    pub new_kf_enabled: Option<bool>,
    /// See [`AppPatch::ip_whitelist`].
    #[serde(default)]
    pub ip_whitelist: Option<Vec<String>>,
    /// See [`AppPatch::quotas`].
    #[serde(default)]
    pub quotas: Option<BTreeMap<String, QuotaLimit>>,
    /// See [`AppPatch::banned_apis`].
    #[serde(default)]
    pub banned_apis: Option<Vec<String>>,
    /// See [`AppPatch::windows`].
    #[serde(default)]
    pub windows: Option<DeliveryWindows>,
    /// See [`AppPatch::callback`].
    #[allow(clippy::option_option, reason = "absent, null (remove) or a value")]
    #[serde(default, deserialize_with = "present")]
    pub callback: Option<Option<CallbackSettings>>,
}

impl TryFrom<AppPatchBody> for AppPatch {
    type Error = Invalid;

    fn try_from(body: AppPatchBody) -> Result<AppPatch, Invalid> {
        let wechat_id = body.wechat_id.map(alias_field).transpose()?;
        let original_id = body.original_id.map(original_id_field).transpose()?;
        check_ips(body.ip_whitelist.as_deref().unwrap_or_default())
            .and_then(|()| check_api_paths("quotas", body.quotas.iter().flat_map(|q| q.keys())))
            .and_then(|()| check_api_paths("banned_apis", body.banned_apis.iter().flatten()))
            .and_then(|()| body.windows.map_or(Ok(()), |w| w.check()))
            .and_then(|()| match &body.callback {
                Some(Some(callback)) => callback.check(),
                _ => Ok(()),
            })
            .map_err(settings_invalid)?;
        Ok(AppPatch {
            wechat_id,
            original_id,
            account_type: body.account_type,
            verified: body.verified,
            new_kf_enabled: body.new_kf_enabled,
            ip_whitelist: body.ip_whitelist,
            quotas: body.quotas,
            banned_apis: body.banned_apis,
            windows: body.windows,
            callback: body.callback,
        })
    }
}

impl Checked for AppPatch {
    type Body = AppPatchBody;
}

/// An app as the admin surface shows it (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
    /// The callback, without its Token and EncodingAESKey (secrets, never shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<CallbackView>,
    /// Platform rules (their `callback` is the field above).
    #[serde(flatten)]
    pub settings: AppSettings,
}

/// An app's callback as answers show it: its secrets stay hidden.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CallbackView {
    /// The developer's server.
    pub url: String,
    /// Plain, compatible or safe.
    pub mode: MessageMode,
    /// Whether an EncodingAESKey is set.
    pub has_encoding_aes_key: bool,
}

impl From<&CallbackSettings> for CallbackView {
    fn from(callback: &CallbackSettings) -> CallbackView {
        CallbackView {
            url: callback.url.clone(),
            mode: callback.mode,
            has_encoding_aes_key: callback.encoding_aes_key.is_some(),
        }
    }
}

/// The answer to creating an app, or to replacing its secret: the only time the
/// secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CreatedApp {
    /// The app.
    #[serde(flatten)]
    pub app: AppView,
    /// The AppSecret, in clear, this once.
    pub secret: Secret,
}

/// One kf account with everything the server knows of it: what `getkflist` shows,
/// and what WeChat does not show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InvitationRequest {
    /// What to do.
    pub action: InvitationAction,
}

/// `GET /kefu/v1/clock` / answer to `POST /kefu/v1/clock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ClockView {
    /// The server's notion of now, Unix seconds.
    pub now: i64,
    /// How far it is ahead of the real clock, in seconds.
    pub offset_secs: i64,
    /// What lapsed while the clock moved (only in the answer to a move).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lapsed: Option<Lapsed>,
}

/// `POST /kefu/v1/clock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ClockAdvance {
    /// Seconds to move the server clock forward (never backward).
    pub advance_secs: u64,
}

macro_rules! admin_errors {
    ($( $(#[doc = $doc:literal])* $variant:ident = $code:literal, $status:literal; )*) => {
        /// The admin surface's error codes, each with the HTTP status it comes with:
        /// one table, as WeChat's errcodes are ([`crate::ErrCode`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum AdminErrorCode {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl AdminErrorCode {
            /// Every code, in table order.
            pub const ALL: &'static [AdminErrorCode] = &[$(AdminErrorCode::$variant,)*];

            /// The code as [`AdminError::error`] spells it.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( AdminErrorCode::$variant => $code, )*
                }
            }

            /// The HTTP status answered with it.
            #[must_use]
            pub const fn status(self) -> u16 {
                match self {
                    $( AdminErrorCode::$variant => $status, )*
                }
            }

            /// The code a spelling names, if any.
            #[must_use]
            pub fn from_name(name: &str) -> Option<AdminErrorCode> {
                match name {
                    $( $code => Some(AdminErrorCode::$variant), )*
                    _ => None,
                }
            }
        }
    };
}

admin_errors! {
    /// No admin token, or a wrong one.
    Unauthorized = "unauthorized", 401;
    /// The app, platform, account, rule or record named does not exist.
    NotFound = "not_found", 404;
    /// The change clashes with what exists (a taken appid or WeChat ID, a rename of an
    /// app with accounts, an import into a non-empty store).
    Conflict = "conflict", 409;
    /// A WeChat rule refused the change (the message names the errcode).
    Rejected = "rejected", 409;
    /// An imported document breaks a rule; the message names the place.
    Invalid = "invalid", 400;
    /// The body is not the JSON this call takes, or was broken off.
    InvalidBody = "invalid_body", 400;
    /// The body is over the limit.
    TooLarge = "too_large", 413;
    /// An appid (or component_appid) that is not `wx` and 16 lowercase hex digits.
    InvalidAppid = "invalid_appid", 400;
    /// A WeChat ID that is not 1-30 letters, digits, `_` or `-`.
    InvalidWechatId = "invalid_wechat_id", 400;
    /// An original id that is not `gh_` and 12 lowercase hex digits.
    InvalidOriginalId = "invalid_original_id", 400;
    /// A secret that is not 16-64 letters and digits.
    InvalidSecret = "invalid_secret", 400;
    /// An IP whitelist entry that is not an IP address.
    InvalidIp = "invalid_ip", 400;
    /// A path that is not a WeChat path starting with `/`.
    InvalidPath = "invalid_path", 400;
    /// A fault rule's probability outside 0-1.
    InvalidProbability = "invalid_probability", 400;
    /// A fault rule's `times` of 0.
    InvalidTimes = "invalid_times", 400;
    /// A fault rule's `latency_ms` above [`MAX_LATENCY_MS`].
    InvalidLatency = "invalid_latency", 400;
    /// An online state other than 0 or 1, or a negative accepted_case.
    InvalidStatus = "invalid_status", 400;
    /// A delivery window's rule out of bounds.
    InvalidWindow = "invalid_window", 400;
    /// A callback URL, Token or EncodingAESKey that cannot be used.
    InvalidCallback = "invalid_callback", 400;
    /// An openid that is not 1-64 letters, digits, `_` or `-`.
    InvalidOpenid = "invalid_openid", 400;
    /// A fan action that is not one kefu simulates, or lacks what it needs.
    InvalidAction = "invalid_action", 400;
    /// A state-changing request from another site, or from the console without its
    /// CSRF token.
    Forbidden = "forbidden", 403;
    /// A query parameter that is not what the call takes (`limit=-1`).
    InvalidQuery = "invalid_query", 400;
    /// The store failed; nothing was changed.
    Internal = "internal", 500;
}

/// The body of every admin failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AdminError {
    /// A stable machine-readable code from [`AdminErrorCode`], e.g. `unauthorized`,
    /// `not_found`, `invalid_wechat_id`.
    pub error: String,
    /// A sentence for people.
    pub message: String,
}

/// `POST /kefu/v1/apps/{appid}/kf/{kf_account}/online`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "KfOnlineBody")]
pub struct KfOnlineSet {
    /// 0 offline, 1 online on the web client.
    pub status: i64,
    /// Make the account serve this many sessions: sessions with new simulated fans are
    /// begun, or the newest ended, until it does (`accepted_case` always counts the
    /// account's sessions); its sessions stay as they are when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_case: Option<i64>,
}

/// The most sessions the online simulation makes one account serve at once.
pub const MAX_SIMULATED_CASES: i64 = 100;

/// [`KfOnlineSet`] as sent, before its values are checked.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
pub struct KfOnlineBody {
    /// See [`KfOnlineSet::status`].
    #[schemars(range(min = 0, max = 1))]
    pub status: i64,
    /// See [`KfOnlineSet::accepted_case`].
    #[serde(default)]
    #[schemars(range(min = 0, max = MAX_SIMULATED_CASES))]
    pub accepted_case: Option<i64>,
}

impl TryFrom<KfOnlineBody> for KfOnlineSet {
    type Error = Invalid;

    fn try_from(body: KfOnlineBody) -> Result<KfOnlineSet, Invalid> {
        if !(0..=1).contains(&body.status)
            || body
                .accepted_case
                .is_some_and(|n| !(0..=MAX_SIMULATED_CASES).contains(&n))
        {
            return Err(Invalid::new(
                AdminErrorCode::InvalidStatus,
                format!("status is 0 or 1; accepted_case is 0 to {MAX_SIMULATED_CASES}"),
            ));
        }
        if body.status == 0 && body.accepted_case.is_some_and(|n| n > 0) {
            return Err(Invalid::new(
                AdminErrorCode::InvalidStatus,
                "an offline account serves no sessions: accepted_case above 0 needs status 1",
            ));
        }
        Ok(KfOnlineSet {
            status: body.status,
            accepted_case: body.accepted_case,
        })
    }
}

impl Checked for KfOnlineSet {
    type Body = KfOnlineBody;
}

/// What to do to a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenVerdict {
    /// It answers 40001 from now on.
    Invalidate,
    /// It answers 42001 from now on.
    Expire,
}

/// `POST /kefu/v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TokenAction {
    /// The token (any kind: access, stable, component, authorizer).
    pub access_token: Secret,
    /// What to do.
    pub action: TokenVerdict,
}

/// `POST /kefu/v1/components`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "NewComponentBody")]
pub struct NewComponent {
    /// A chosen component_appid (`wx` + 16 hex); generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_appid: Option<AppId>,
    /// A chosen secret (16–64 letters and digits); generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<AppSecret>,
    /// IPs allowed to fetch component tokens (61004 otherwise); empty allows all.
    #[serde(default)]
    pub ip_whitelist: Vec<String>,
}

/// [`NewComponent`] as sent, before its values are checked.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct NewComponentBody {
    /// See [`NewComponent::component_appid`].
    #[serde(default)]
    pub component_appid: Option<String>,
    /// See [`NewComponent::secret`].
    #[serde(default)]
    pub secret: Option<Secret>,
    /// See [`NewComponent::ip_whitelist`].
    #[serde(default)]
    pub ip_whitelist: Vec<String>,
}

impl TryFrom<NewComponentBody> for NewComponent {
    type Error = Invalid;

    fn try_from(body: NewComponentBody) -> Result<NewComponent, Invalid> {
        let component_appid = body
            .component_appid
            .map(|raw| appid_field("component_appid", raw))
            .transpose()?;
        let secret = body.secret.map(secret_field).transpose()?;
        check_ips(&body.ip_whitelist).map_err(settings_invalid)?;
        Ok(NewComponent {
            component_appid,
            secret,
            ip_whitelist: body.ip_whitelist,
        })
    }
}

impl Checked for NewComponent {
    type Body = NewComponentBody;
}

/// A third-party platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ComponentView {
    /// Its appid.
    pub component_appid: String,
    /// IPs allowed to fetch component tokens.
    pub ip_whitelist: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// The apps that authorized it.
    pub authorizations: Vec<AuthorizationView>,
}

/// The answer to registering a platform: the only time its secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CreatedComponent {
    /// The platform.
    #[serde(flatten)]
    pub component: ComponentView,
    /// Its secret, in clear, this once.
    pub secret: Secret,
}

/// `POST /kefu/v1/components/{component_appid}/authorizations`: an app authorizes the
/// platform with these permission sets (replacing any earlier authorization).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "NewAuthorizationBody")]
pub struct NewAuthorization {
    /// The authorizing app.
    pub appid: AppId,
    /// Permission set ids (1 message management, 6 multi-customer-service, 19
    /// mini-program customer service, …).
    pub funcscopes: Vec<u32>,
}

/// [`NewAuthorization`] as sent, before its values are checked.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct NewAuthorizationBody {
    /// See [`NewAuthorization::appid`].
    #[schemars(regex(pattern = r"^wx[0-9a-f]{16}$"))]
    pub appid: String,
    /// See [`NewAuthorization::funcscopes`].
    pub funcscopes: Vec<u32>,
}

impl TryFrom<NewAuthorizationBody> for NewAuthorization {
    type Error = Invalid;

    fn try_from(body: NewAuthorizationBody) -> Result<NewAuthorization, Invalid> {
        Ok(NewAuthorization {
            appid: appid_field("appid", body.appid)?,
            funcscopes: body.funcscopes,
        })
    }
}

impl Checked for NewAuthorization {
    type Body = NewAuthorizationBody;
}

/// An authorization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AuthorizationView {
    /// The authorizing app.
    pub appid: String,
    /// Its permission sets.
    pub funcscopes: Vec<u32>,
}

/// The answer to an authorization: its first refresh token, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CreatedAuthorization {
    /// The authorizing app.
    pub authorizer_appid: String,
    /// Its permission sets.
    pub funcscopes: Vec<u32>,
    /// For `api_authorizer_token`.
    pub authorizer_refresh_token: Secret,
}

/// A component_verify_ticket, as WeChat would push it to the platform.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Ticket {
    /// The ticket.
    pub component_verify_ticket: Secret,
    /// Unix seconds (12 hours after issue).
    pub expires_at: i64,
}

/// The longest a fault rule may hold a call (`latency_ms`): a minute.
pub const MAX_LATENCY_MS: u64 = 60_000;

/// `POST /kefu/v1/faults`: make a WeChat path misbehave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "NewFaultBody")]
pub struct NewFault {
    /// Only for this app (by appid, resolved from the call's token or credentials);
    /// every app when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    /// The WeChat path, e.g. `/customservice/kfaccount/update`.
    pub path: String,
    /// The errcode to answer (default -1); 0 with `latency_ms` only delays.
    #[serde(default = "system_error")]
    pub errcode: i64,
    /// Answer it the next N times (at least 1), then the rule goes away; always when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    /// Answer it with this probability (0–1); always when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// Wait this long before answering (at most [`MAX_LATENCY_MS`]).
    #[serde(default)]
    pub latency_ms: u64,
    /// Perform the call, then answer the errcode anyway ("-1 but applied").
    #[serde(default)]
    pub applied: bool,
}

/// [`NewFault`] as sent, before its values are checked.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
pub struct NewFaultBody {
    /// See [`NewFault::appid`].
    #[serde(default)]
    pub appid: Option<String>,
    /// See [`NewFault::path`].
    #[schemars(regex(pattern = r"^/"))]
    pub path: String,
    /// See [`NewFault::errcode`].
    #[serde(default = "system_error")]
    pub errcode: i64,
    /// See [`NewFault::times`].
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub times: Option<u64>,
    /// See [`NewFault::probability`].
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub probability: Option<f64>,
    /// See [`NewFault::latency_ms`].
    #[serde(default)]
    #[schemars(range(max = 60_000))]
    pub latency_ms: u64,
    /// See [`NewFault::applied`].
    #[serde(default)]
    pub applied: bool,
}

impl TryFrom<NewFaultBody> for NewFault {
    type Error = Invalid;

    fn try_from(body: NewFaultBody) -> Result<NewFault, Invalid> {
        if !body.path.starts_with('/') {
            return Err(Invalid::new(
                AdminErrorCode::InvalidPath,
                "path must be a WeChat path starting with '/'",
            ));
        }
        if body.probability.is_some_and(|p| !(0.0..=1.0).contains(&p)) {
            return Err(Invalid::new(
                AdminErrorCode::InvalidProbability,
                "probability must be between 0 and 1",
            ));
        }
        if body.times == Some(0) {
            return Err(Invalid::new(
                AdminErrorCode::InvalidTimes,
                "times must be at least 1",
            ));
        }
        if body.latency_ms > MAX_LATENCY_MS {
            return Err(Invalid::new(
                AdminErrorCode::InvalidLatency,
                format!("latency_ms must be at most {MAX_LATENCY_MS}"),
            ));
        }
        Ok(NewFault {
            appid: body.appid,
            path: body.path,
            errcode: body.errcode,
            times: body.times,
            probability: body.probability,
            latency_ms: body.latency_ms,
            applied: body.applied,
        })
    }
}

impl Checked for NewFault {
    type Body = NewFaultBody;
}

fn system_error() -> i64 {
    -1
}

/// A fault rule in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FaultView {
    /// Its id, for `DELETE /kefu/v1/faults/{id}`.
    pub id: u64,
    /// The rule.
    #[serde(flatten)]
    pub rule: NewFault,
    /// How many times it will still fire, when limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u64>,
}

/// One recorded WeChat call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RequestLogEntry {
    /// Its rid.
    pub rid: String,
    /// The app it was made for, when known.
    pub appid: Option<String>,
    /// The HTTP method.
    pub method: String,
    /// The errcode answered (0 for payloads).
    pub errcode: i64,
    /// Why it was answered so, in words: which rule refused the call and how (a
    /// token's grace ended at a given time, a quota spent, a fault rule, a field's
    /// rule); empty for a success.
    #[serde(default)]
    pub reason: String,
    /// The details `rid/get` shows.
    #[serde(flatten)]
    pub request: crate::endpoints::rid_get::RequestInfo,
}

/// Calls of one app to one path that answered one errcode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CallCountView {
    /// The app (or platform); absent when the call could not be told to be any's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    /// The WeChat path.
    pub path: String,
    /// The errcode (0 for success).
    pub errcode: i64,
    /// How many calls.
    pub count: u64,
}

/// What the request log holds and had to drop (README, "Limits").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct LogUsageView {
    /// Failed calls kept in the store.
    pub stored_calls: u64,
    /// Their size in bytes.
    pub stored_bytes: u64,
    /// The most calls the store keeps.
    pub max_stored_calls: u64,
    /// The most bytes the store keeps.
    pub max_stored_bytes: u64,
    /// Calls in this instance's memory.
    pub memory_calls: u64,
    /// Their size in bytes.
    pub memory_bytes: u64,
    /// The most bytes kept in memory.
    pub max_memory_bytes: u64,
    /// Written calls deleted, oldest first, to stay within the store's bounds.
    pub dropped_from_store: u64,
    /// Failed calls never written (over the per-second or memory bound; this instance).
    pub dropped_in_memory: u64,
}

/// The answer of [`REQUESTS_SUMMARY`] (`?appid=…&hours=24`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RequestSummary {
    /// The start of the first hour counted (Unix seconds, server clock).
    pub since: i64,
    /// Every call in the window, kept in the log or not.
    pub total: u64,
    /// Those that answered a non-zero errcode.
    pub failed: u64,
    /// The counts, by app, path and errcode (most first).
    pub counts: Vec<CallCountView>,
    /// What the log holds.
    pub log: LogUsageView,
}

impl AdminError {
    /// The code, when it is one of the table's.
    #[must_use]
    pub fn code(&self) -> Option<AdminErrorCode> {
        AdminErrorCode::from_name(&self.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_template_is_filled_in_order_and_keeps_what_has_no_value() {
        assert_eq!(
            path(APP, &["wx0123456789abcdef"]),
            "/kefu/v1/apps/wx0123456789abcdef"
        );
        assert_eq!(
            path(KF_ONLINE, &["wx0123456789abcdef", "a@test"]),
            "/kefu/v1/apps/wx0123456789abcdef/kf/a@test/online"
        );
        assert_eq!(path(FAULT, &[]), FAULT);
        assert_eq!(path(APPS, &["ignored"]), APPS);
    }

    #[test]
    fn a_callback_needs_a_plain_url_a_token_and_a_key_where_it_encrypts() {
        let callback = |url: &str, key: Option<&str>, mode| CallbackSettings {
            url: url.to_owned(),
            token: Secret::new("token123"),
            encoding_aes_key: key.map(Secret::new),
            mode,
        };
        let key = "a".repeat(ENCODING_AES_KEY_LEN);
        assert_eq!(
            callback("https://dev.example/wx?x=1", None, MessageMode::Plain).check(),
            Ok(())
        );
        assert_eq!(
            callback("http://dev.example/@here", Some(&key), MessageMode::Safe).check(),
            Ok(())
        );
        for refused in [
            callback("https://user:pass@dev.example/wx", None, MessageMode::Plain),
            callback("ftp://dev.example", None, MessageMode::Plain),
            callback("https:///wx", None, MessageMode::Plain),
            callback("https://dev.example", None, MessageMode::Safe),
            callback(
                "https://dev.example",
                Some("short"),
                MessageMode::Compatible,
            ),
        ] {
            assert!(
                matches!(refused.check(), Err(SettingsError::Callback { .. })),
                "{refused:?}"
            );
        }
        let shown = CallbackView::from(&callback(
            "https://d.example",
            Some(&key),
            MessageMode::Safe,
        ));
        let text = serde_json::to_string(&shown).unwrap();
        assert!(!text.contains("token123") && !text.contains(&key), "{text}");
    }

    #[test]
    fn every_admin_path_is_under_the_prefix() {
        for template in [
            APPS,
            APP,
            APP_SECRET,
            APP_KFS,
            KF_INVITATION,
            KF_ONLINE,
            FANS,
            FAN,
            FAN_ACTIONS,
            FAN_QUEUE,
            COMPONENTS,
            COMPONENT,
            COMPONENT_TICKET,
            COMPONENT_AUTHORIZATIONS,
            FAULTS,
            FAULT,
            TOKENS,
            REQUESTS,
            REQUESTS_SUMMARY,
            CLOCK,
            EXPORT,
            IMPORT,
            HEALTH,
            HEADIMG,
        ] {
            assert!(template.starts_with(PREFIX), "{template}");
        }
    }

    fn checked<T: Checked>(json: &str) -> Result<T, Invalid> {
        T::try_from(serde_json::from_str::<T::Body>(json).unwrap())
    }

    #[test]
    fn a_checked_body_names_the_code_of_the_rule_it_breaks() {
        let code = |result: Result<NewApp, Invalid>| result.unwrap_err().code;
        assert_eq!(
            code(checked(r#"{"wechat_id":"has space"}"#)),
            AdminErrorCode::InvalidWechatId
        );
        assert_eq!(
            code(checked(r#"{"wechat_id":"ok","appid":"app1"}"#)),
            AdminErrorCode::InvalidAppid
        );
        assert_eq!(
            code(checked(r#"{"wechat_id":"ok","secret":"short"}"#)),
            AdminErrorCode::InvalidSecret
        );
        assert_eq!(
            code(checked(r#"{"wechat_id":"ok","ip_whitelist":["nope"]}"#)),
            AdminErrorCode::InvalidIp
        );
        let new: NewApp =
            checked(r#"{"wechat_id":"ok","appid":"wx0123456789abcdef","banned_apis":["/x"]}"#)
                .unwrap();
        assert_eq!(new.appid.unwrap().as_str(), "wx0123456789abcdef");
        assert_eq!(new.settings.banned_apis, ["/x"]);
        assert_eq!(
            checked::<NewFault>(r#"{"path":"/x","times":0}"#)
                .unwrap_err()
                .code,
            AdminErrorCode::InvalidTimes
        );
        assert_eq!(
            checked::<NewFault>(r#"{"path":"/x","latency_ms":60001}"#)
                .unwrap_err()
                .code,
            AdminErrorCode::InvalidLatency
        );
        assert_eq!(
            checked::<NewFault>(r#"{"path":"/x","latency_ms":60000}"#)
                .unwrap()
                .latency_ms,
            MAX_LATENCY_MS
        );
        assert_eq!(
            checked::<NewFault>(r#"{"path":"x"}"#).unwrap_err().code,
            AdminErrorCode::InvalidPath
        );
        assert_eq!(
            checked::<KfOnlineSet>(r#"{"status":2}"#).unwrap_err().code,
            AdminErrorCode::InvalidStatus
        );
        // The validated types read through the same check.
        assert!(serde_json::from_str::<NewApp>(r#"{"wechat_id":"has space"}"#).is_err());
        let round: NewApp =
            serde_json::from_str(&serde_json::to_string(&NewApp::new(new.wechat_id)).unwrap())
                .unwrap();
        assert_eq!(round.wechat_id.as_str(), "ok");
    }

    #[test]
    fn every_admin_error_code_round_trips_and_comes_with_an_error_status() {
        let mut seen = std::collections::HashSet::new();
        for code in AdminErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{code:?} spelled twice");
            assert_eq!(AdminErrorCode::from_name(code.as_str()), Some(*code));
            assert!((400..600).contains(&code.status()), "{code:?}");
        }
        assert_eq!(AdminErrorCode::from_name("nope"), None);
        let body = AdminError {
            error: "not_found".to_owned(),
            message: "no such app".to_owned(),
        };
        assert_eq!(body.code(), Some(AdminErrorCode::NotFound));
        assert_eq!(AdminErrorCode::NotFound.status(), 404);
    }
}
