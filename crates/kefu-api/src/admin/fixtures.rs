//! Fixtures (README, "Fixtures and reset"): the state a server starts in and goes back
//! to on `POST /kefu/v1/reset` — apps with the appids and secrets CI code already has,
//! their kf accounts, third-party platforms, fault rules and a clock offset. Read from
//! the configuration file (every top-level key but `[server]`) or `--fixtures DIR`.
//!
//! The values are checked here by the admin API's own rules where they have one
//! ([`NewApp`], [`NewFault`], [`NewAuthorization`]); the accounts and platforms by the
//! rules of an import document, when the server turns the fixtures into one.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{
    AccountType, AppSettings, NewApp, NewAppBody, NewAuthorization, NewAuthorizationBody, NewFault,
    QuotaLimit,
};
use crate::Secret;

/// The declared state.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixtures {
    /// Official accounts, each with its appid and secret.
    #[serde(default)]
    pub apps: Vec<AppFixture>,
    /// Third-party platforms.
    #[serde(default)]
    pub platforms: Vec<PlatformFixture>,
    /// Fault rules, installed on every start and reset.
    #[serde(default)]
    pub faults: Vec<NewFault>,
    /// How far ahead of real time the server clock is, in seconds.
    #[serde(default)]
    pub clock_offset_secs: u64,
}

impl Fixtures {
    /// Whether nothing is declared.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
            && self.platforms.is_empty()
            && self.faults.is_empty()
            && self.clock_offset_secs == 0
    }

    /// Adds another document's declarations to these (the larger clock offset wins).
    pub fn merge(&mut self, other: Fixtures) {
        self.apps.extend(other.apps);
        self.platforms.extend(other.platforms);
        self.faults.extend(other.faults);
        self.clock_offset_secs = self.clock_offset_secs.max(other.clock_offset_secs);
    }

    /// Every avatar path, to be made absolute by the reader of the file.
    pub fn avatars_mut(&mut self) -> impl Iterator<Item = &mut PathBuf> {
        self.apps
            .iter_mut()
            .flat_map(|app| app.kf_accounts.iter_mut())
            .filter_map(|kf| kf.avatar.as_mut())
    }
}

/// An app: what `POST /kefu/v1/apps` takes, with `appid` and `secret` required, and
/// its kf accounts.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "AppFixtureBody")]
pub struct AppFixture {
    /// The app, checked as the admin API checks it; `appid` and `secret` are set.
    pub app: NewApp,
    /// Its kf accounts, in `kf_id` order.
    pub kf_accounts: Vec<KfFixture>,
}

/// [`AppFixture`] as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppFixtureBody {
    /// `wx` + 16 lowercase hex digits.
    pub appid: String,
    /// 16–64 letters and digits.
    pub secret: Secret,
    /// The WeChat ID (the kf accounts' suffix).
    pub wechat_id: String,
    /// `gh_` + 12 hex; default: `gh_` and the appid's last 12 digits.
    #[serde(default)]
    pub original_id: Option<String>,
    /// `service` (default), `subscription`, `miniprogram` or `sandbox`.
    #[serde(default)]
    pub account_type: Option<AccountType>,
    /// Default true.
    #[serde(default)]
    pub verified: Option<bool>,
    /// Default true.
    #[serde(default)]
    pub new_kf_enabled: Option<bool>,
    /// Addresses allowed to call the endpoints that take the AppSecret.
    #[serde(default)]
    pub ip_whitelist: Vec<String>,
    /// Quotas by WeChat path.
    #[serde(default)]
    pub quotas: BTreeMap<String, QuotaLimit>,
    /// Banned WeChat paths (48004).
    #[serde(default)]
    pub banned_apis: Vec<String>,
    /// The kf accounts.
    #[serde(default)]
    pub kf_accounts: Vec<KfFixture>,
}

impl TryFrom<AppFixtureBody> for AppFixture {
    type Error = String;

    fn try_from(body: AppFixtureBody) -> Result<AppFixture, String> {
        let original_id = body.original_id.or_else(|| {
            body.appid
                .get(body.appid.len().saturating_sub(12)..)
                .map(|tail| format!("gh_{tail}"))
        });
        let app = NewApp::try_from(NewAppBody {
            wechat_id: body.wechat_id,
            original_id,
            account_type: body.account_type,
            verified: body.verified,
            new_kf_enabled: body.new_kf_enabled,
            appid: Some(body.appid),
            secret: Some(body.secret),
            settings: AppSettings {
                ip_whitelist: body.ip_whitelist,
                quotas: body.quotas,
                banned_apis: body.banned_apis,
                ..AppSettings::default()
            },
        })
        .map_err(|invalid| invalid.message)?;
        Ok(AppFixture {
            app,
            kf_accounts: body.kf_accounts,
        })
    }
}

/// A kf account of an [`AppFixture`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KfFixture {
    /// `name@wechat_id`.
    pub kf_account: String,
    /// 1–16 characters.
    pub nickname: String,
    /// A JPEG file: the head image (relative to the file that declares it).
    #[serde(default)]
    pub avatar: Option<PathBuf>,
    /// The WeChat ID of the worker bound to the account.
    #[serde(default)]
    pub worker: Option<String>,
    /// The WeChat ID of a worker invited and not yet answering (7 days from the start).
    #[serde(default)]
    pub invite: Option<String>,
    /// 1: shows in `getonlinekflist` (serving no session).
    #[serde(default)]
    pub online_status: i64,
}

/// A third-party platform.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformFixture {
    /// `wx` + 16 lowercase hex digits.
    pub component_appid: String,
    /// 16–64 letters and digits.
    pub secret: Secret,
    /// Addresses allowed to call `api_component_token`.
    #[serde(default)]
    pub ip_whitelist: Vec<String>,
    /// A component_verify_ticket, valid 12 hours from each start and reset.
    #[serde(default)]
    pub ticket: Option<Secret>,
    /// Apps that authorized it.
    #[serde(default)]
    pub authorizations: Vec<AuthorizationFixture>,
}

/// An app's authorization of a [`PlatformFixture`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "AuthorizationFixtureBody")]
pub struct AuthorizationFixture {
    /// The app and its permission sets, checked as the admin API checks them.
    pub authorization: NewAuthorization,
    /// The `authorizer_refresh_token` that works for it (default: none known, so
    /// only a new authorization through the admin API gives one).
    pub refresh_token: Option<Secret>,
}

/// [`AuthorizationFixture`] as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationFixtureBody {
    /// The app.
    pub appid: String,
    /// Its permission sets (1 and 6 cover the kf endpoints).
    pub funcscopes: Vec<u32>,
    /// See [`AuthorizationFixture::refresh_token`].
    #[serde(default)]
    pub refresh_token: Option<Secret>,
}

impl TryFrom<AuthorizationFixtureBody> for AuthorizationFixture {
    type Error = String;

    fn try_from(body: AuthorizationFixtureBody) -> Result<AuthorizationFixture, String> {
        let authorization = NewAuthorization::try_from(NewAuthorizationBody {
            appid: body.appid,
            funcscopes: body.funcscopes,
        })
        .map_err(|invalid| invalid.message)?;
        Ok(AuthorizationFixture {
            authorization,
            refresh_token: body.refresh_token,
        })
    }
}
