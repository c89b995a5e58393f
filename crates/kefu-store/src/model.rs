//! The records the store keeps.

use std::sync::Arc;

use kefu_api::admin::{AccountType, AppSettings};
use kefu_api::endpoints::kf_list::InviteStatus;
use serde::{Deserialize, Serialize};

/// A SHA-256 digest: secrets and tokens are stored only as this.
pub type Digest = [u8; 32];

/// An official account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    /// `wx` + 16 hex.
    pub appid: String,
    /// The WeChat ID (alias).
    pub wechat_id: String,
    /// `gh_` + 12 hex.
    pub original_id: String,
    /// The kind of account.
    pub account_type: AccountType,
    /// Whether it is verified.
    pub verified: bool,
    /// Whether the new customer service feature is on.
    pub new_kf_enabled: bool,
    /// SHA-256 of the AppSecret.
    #[serde(with = "hex_digest")]
    pub secret_hash: Digest,
    /// Unix seconds.
    pub created_at: i64,
    /// Whitelist, quota overrides, bans.
    #[serde(default)]
    pub settings: AppSettings,
}

/// An app with its account count.
#[derive(Debug, Clone)]
pub struct AppSummary {
    /// The app.
    pub app: Arc<App>,
    /// How many kf accounts it has.
    pub kf_count: usize,
}

/// Which token family a token belongs to; minting in one never supersedes another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenChannel {
    /// `GET /cgi-bin/token`.
    Basic,
    /// `POST /cgi-bin/stable_token`.
    Stable,
    /// A platform's `component_access_token`.
    Component,
    /// An `authorizer_access_token`, acting for an app on a platform's behalf.
    Authorizer,
}

impl TokenChannel {
    /// The stored spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenChannel::Basic => "token",
            TokenChannel::Stable => "stable",
            TokenChannel::Component => "component",
            TokenChannel::Authorizer => "authorizer",
        }
    }

    pub(crate) fn parse(raw: &str) -> Option<TokenChannel> {
        match raw {
            "token" => Some(TokenChannel::Basic),
            "stable" => Some(TokenChannel::Stable),
            "component" => Some(TokenChannel::Component),
            "authorizer" => Some(TokenChannel::Authorizer),
            _ => None,
        }
    }
}

/// What is known of an issued token (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The app it acts for (the platform, for component tokens).
    pub appid: Arc<str>,
    /// Its family.
    pub channel: TokenChannel,
    /// The platform an authorizer token was issued to.
    pub component: Option<Arc<str>>,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds; from then on it answers 42001.
    pub expires_at: i64,
    /// Set once a newer token of the same channel was issued: from then on it answers 40001.
    pub superseded_at: Option<i64>,
}

/// A new account, as the server hands it to the store.
#[derive(Debug, Clone)]
pub struct NewKf {
    /// `prefix@suffix`, validated.
    pub kf_account: kefu_api::KfAccount,
    /// Validated.
    pub nickname: kefu_api::Nickname,
    /// A fresh random id for the mini-program form of `del`.
    pub kf_openid: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// The stored state of an invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InviteState {
    /// Sent, unanswered (it may still lapse by time).
    Waiting,
    /// Declined.
    Rejected,
    /// Explicitly lapsed.
    Expired,
}

impl InviteState {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            InviteState::Waiting => "waiting",
            InviteState::Rejected => "rejected",
            InviteState::Expired => "expired",
        }
    }

    pub(crate) fn parse(raw: &str) -> Option<InviteState> {
        match raw {
            "waiting" => Some(InviteState::Waiting),
            "rejected" => Some(InviteState::Rejected),
            "expired" => Some(InviteState::Expired),
            _ => None,
        }
    }
}

/// An invitation to bind an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    /// The invitee's WeChat ID.
    pub invite_wx: String,
    /// Unix seconds.
    pub expire_time: i64,
    /// As stored.
    pub state: InviteState,
}

impl Invitation {
    /// The status WeChat shows at `now`: a waiting invitation past its time is expired.
    #[must_use]
    pub fn status_at(&self, now: i64) -> InviteStatus {
        match self.state {
            InviteState::Waiting if now >= self.expire_time => InviteStatus::Expired,
            InviteState::Waiting => InviteStatus::Waiting,
            InviteState::Rejected => InviteStatus::Rejected,
            InviteState::Expired => InviteStatus::Expired,
        }
    }

    /// Whether it still blocks new invitations at `now`.
    #[must_use]
    pub fn is_effective(&self, now: i64) -> bool {
        self.status_at(now) == InviteStatus::Waiting
    }
}

/// A customer service account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kf {
    /// Numeric id, from 2001 up, never reused within an app.
    pub kf_id: i64,
    /// `prefix@suffix`.
    pub kf_account: String,
    /// The nickname.
    pub nickname: String,
    /// The id for the mini-program form of `del`.
    pub kf_openid: String,
    /// Version of the uploaded head image, if any.
    pub headimg_version: Option<i64>,
    /// The bound WeChat user.
    pub kf_wx: Option<String>,
    /// The latest invitation, while WeChat still shows it.
    pub invitation: Option<Invitation>,
    /// 0 offline, 1 online on the web client.
    pub online_status: i64,
    /// Sessions being served.
    pub accepted_case: i64,
    /// Unix seconds.
    pub created_at: i64,
}

/// The time window a counter counts in. Days and months are those of Asia/Shanghai
/// (UTC+8, no daylight saving), where WeChat resets its quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Window {
    /// Minutes since the epoch.
    Minute(i64),
    /// Shanghai days since the epoch.
    Day(i64),
    /// Shanghai months (`year * 12 + month - 1`).
    Month(i64),
}

const SHANGHAI_OFFSET_SECS: i64 = 8 * 3600;

impl Window {
    /// The minute of `now` (Unix seconds).
    #[must_use]
    pub const fn minute_of(now: i64) -> Window {
        Window::Minute(now.div_euclid(60))
    }

    /// The Shanghai day of `now`.
    #[must_use]
    pub const fn day_of(now: i64) -> Window {
        Window::Day((now + SHANGHAI_OFFSET_SECS).div_euclid(86_400))
    }

    /// The Shanghai month of `now`.
    #[must_use]
    pub fn month_of(now: i64) -> Window {
        // Civil-from-days (Howard Hinnant's algorithm), on the Shanghai day.
        let days = (now + SHANGHAI_OFFSET_SECS).div_euclid(86_400) + 719_468;
        let era = days.div_euclid(146_097);
        let doe = days - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Window::Month(year * 12 + month - 1)
    }

    pub(crate) const fn kind(self) -> &'static str {
        match self {
            Window::Minute(_) => "minute",
            Window::Day(_) => "day",
            Window::Month(_) => "month",
        }
    }

    pub(crate) const fn number(self) -> i64 {
        match self {
            Window::Minute(n) | Window::Day(n) | Window::Month(n) => n,
        }
    }

    pub(crate) fn from_parts(kind: &str, number: i64) -> Option<Window> {
        match kind {
            "minute" => Some(Window::Minute(number)),
            "day" => Some(Window::Day(number)),
            "month" => Some(Window::Month(number)),
            _ => None,
        }
    }

    /// Whether the window ended well before `now` and its count can be forgotten.
    pub(crate) fn is_stale(self, now: i64) -> bool {
        match (
            self,
            Window::minute_of(now),
            Window::day_of(now),
            Window::month_of(now),
        ) {
            (Window::Minute(n), Window::Minute(current), _, _) => n < current - 5,
            (Window::Day(n), _, Window::Day(current), _) => n < current - 40,
            (Window::Month(n), _, _, Window::Month(current)) => n < current - 13,
            _ => false,
        }
    }
}

/// A counter: calls of one kind by one owner in one time window.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CounterKey {
    /// The app (or platform).
    pub owner: String,
    /// What is counted: an API path, or a name such as `clear_quota`.
    pub name: String,
    /// The window.
    pub window: Window,
}

/// A WeChat call as the request path records it: what the log is searched and kept
/// by, with the rest of its text made only when it is read or written, so that masking
/// and formatting cost nothing for the calls nobody looks at.
pub struct RecordedCall {
    /// Its rid.
    pub rid: String,
    /// The app it was made for, when known.
    pub appid: Option<String>,
    /// The errcode answered (0 for payloads).
    pub errcode: i64,
    /// Unix seconds.
    pub invoke_time: i64,
    /// The rest of the record.
    pub details: Box<dyn CallDetails>,
}

/// The part of a [`RecordedCall`] made when it is read or written.
pub trait CallDetails: Send + Sync + 'static {
    /// The whole record of `call`, secrets masked.
    fn render(&self, call: &RecordedCall) -> LoggedRequest;
}

impl RecordedCall {
    /// The whole record, secrets masked.
    #[must_use]
    pub fn render(&self) -> LoggedRequest {
        self.details.render(self)
    }
}

/// A record already made: its details are itself.
impl CallDetails for LoggedRequest {
    fn render(&self, _: &RecordedCall) -> LoggedRequest {
        self.clone()
    }
}

impl From<LoggedRequest> for RecordedCall {
    fn from(logged: LoggedRequest) -> RecordedCall {
        RecordedCall {
            rid: logged.rid.clone(),
            appid: logged.appid.clone(),
            errcode: logged.errcode,
            invoke_time: logged.invoke_time,
            details: Box::new(logged),
        }
    }
}

/// One recorded WeChat call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    /// Its rid.
    pub rid: String,
    /// The app it was made for, when known.
    pub appid: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Path.
    pub path: String,
    /// The errcode answered (0 for payloads).
    pub errcode: i64,
    /// Unix seconds.
    pub invoke_time: i64,
    /// Milliseconds.
    pub cost_ms: i64,
    /// Path and query, secrets masked.
    pub request_url: String,
    /// Body, secrets masked, truncated.
    pub request_body: String,
    /// Answer, tokens masked, truncated.
    pub response_body: String,
    /// The caller.
    pub client_ip: String,
}

/// A third-party platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// Its appid.
    pub component_appid: String,
    /// SHA-256 of its secret.
    #[serde(with = "hex_digest")]
    pub secret_hash: Digest,
    /// IPs allowed to fetch its token; empty allows all.
    pub ip_whitelist: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// An app's authorization of a platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authorization {
    /// The platform.
    pub component_appid: String,
    /// The app.
    pub appid: String,
    /// Permission sets.
    pub funcscopes: Vec<u32>,
    /// SHA-256 of the current refresh token.
    #[serde(with = "hex_digest")]
    pub refresh_hash: Digest,
    /// Replaced refresh tokens still accepted, with the time (Unix seconds) until which
    /// each is. Not exported: a snapshot carries only the current refresh token.
    #[serde(skip)]
    pub previous: Vec<(Digest, i64)>,
}

/// A family's current token, as [`crate::Store::current_token`] answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentToken {
    /// SHA-256 of the token.
    pub hash: Digest,
    /// What is known of it.
    pub record: TokenRecord,
    /// The token itself, for families that keep it (stable tokens).
    pub value: Option<String>,
}

/// Everything a store can hand to another: see [`crate::Store::snapshot`]. It is the
/// document `kefu export` writes and `kefu import` reads.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// The document format, [`Snapshot::VERSION`] when written by this kefu.
    pub version: u32,
    /// Official accounts with their kf accounts.
    pub apps: Vec<AppSnapshot>,
    /// Third-party platforms.
    pub components: Vec<Component>,
    /// Apps' authorizations of platforms.
    pub authorizations: Vec<Authorization>,
}

impl Snapshot {
    /// The format this kefu writes and reads.
    pub const VERSION: u32 = 1;

    /// Refuses, before anything is written, a document of another format or one that
    /// breaks a rule the store keeps: more than 100 accounts in an app, a `next_kf_id`
    /// that an account already has, an id that is both an app and a platform.
    pub(crate) fn check(&self) -> crate::StoreResult<()> {
        use kefu_api::endpoints::kf_add::{FIRST_KF_ID, MAX_ACCOUNTS};
        let refuse = |why: String| Err(crate::StoreError::Conflict(why));
        if self.version != Snapshot::VERSION {
            return refuse(format!(
                "export format version {} is not {} (the one this kefu reads)",
                self.version,
                Snapshot::VERSION
            ));
        }
        for entry in &self.apps {
            let appid = &entry.app.appid;
            if entry.kf_accounts.len() > MAX_ACCOUNTS {
                return refuse(format!("{appid}: more than {MAX_ACCOUNTS} kf accounts"));
            }
            let highest = entry.kf_accounts.iter().map(|a| a.kf.kf_id).max();
            if entry.next_kf_id < FIRST_KF_ID || highest.is_some_and(|id| id >= entry.next_kf_id) {
                return refuse(format!("{appid}: next_kf_id {} is taken", entry.next_kf_id));
            }
            if self.components.iter().any(|c| c.component_appid == *appid) {
                return refuse(format!("{appid} is both an app and a platform"));
            }
        }
        Ok(())
    }
}

/// An app in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSnapshot {
    /// The app, its settings and secret hash.
    #[serde(flatten)]
    pub app: App,
    /// The `kf_id` the next account gets (ids are never reused).
    pub next_kf_id: i64,
    /// Its accounts, oldest first.
    pub kf_accounts: Vec<KfSnapshot>,
}

/// A kf account in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KfSnapshot {
    /// The account.
    #[serde(flatten)]
    pub kf: Kf,
    /// Its head image (JPEG), base64 in the document.
    #[serde(
        default,
        with = "base64_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub headimg: Option<bytes::Bytes>,
}

/// Digests as lowercase hex in documents.
mod hex_digest {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Digest;

    pub(super) fn serialize<S: Serializer>(digest: &Digest, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(digest))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let text = String::deserialize(d)?;
        let mut digest = [0_u8; 32];
        hex::decode_to_slice(&text, &mut digest).map_err(serde::de::Error::custom)?;
        Ok(digest)
    }
}

/// Images as standard base64 in documents.
mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::ref_option)] // serde's `with` hands the field by reference.
    pub(super) fn serialize<S: Serializer>(
        bytes: &Option<bytes::Bytes>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => s.serialize_str(&STANDARD.encode(bytes)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<bytes::Bytes>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| {
                STANDARD
                    .decode(text)
                    .map(bytes::Bytes::from)
                    .map_err(serde::de::Error::custom)
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shanghai_windows() {
        // 2026-11-25T16:00:00Z is 2026-11-26 00:00 in Shanghai.
        let midnight = 1_795_622_400;
        assert_eq!(
            Window::day_of(midnight - 1).number() + 1,
            Window::day_of(midnight).number()
        );
        assert_eq!(Window::month_of(midnight), Window::Month(2026 * 12 + 10));
        // 2026-11-30T16:00:00Z is December 1st in Shanghai.
        assert_eq!(
            Window::month_of(1_796_054_400),
            Window::Month(2026 * 12 + 11)
        );
        assert_eq!(
            Window::month_of(1_796_054_399),
            Window::Month(2026 * 12 + 10)
        );
        assert_eq!(Window::minute_of(120), Window::Minute(2));
    }
}
