//! The records the store keeps.

use std::sync::Arc;

use kefu_api::admin::{AccountType, AppSettings, InvitationAction};
use kefu_api::endpoints::kf_list::InviteStatus;
use kefu_api::{KfAccount, WechatId};
use serde::{Deserialize, Serialize};

mod fans;

pub(crate) use fans::NewRecord;
pub use fans::{EndedSession, Fan, FanChange, FanSession, Grant, HistoryRecord, Windows};

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
    /// A token the web console mints for an app (no quota, its own family).
    Console,
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
            TokenChannel::Console => "console",
        }
    }

    pub(crate) fn parse(raw: &str) -> Option<TokenChannel> {
        match raw {
            "token" => Some(TokenChannel::Basic),
            "stable" => Some(TokenChannel::Stable),
            "component" => Some(TokenChannel::Component),
            "authorizer" => Some(TokenChannel::Authorizer),
            "console" => Some(TokenChannel::Console),
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

/// An invitation to make ([`KfStore::invite_kf`](crate::KfStore::invite_kf)).
#[derive(Debug, Clone)]
pub struct NewInvitation {
    /// The account to bind.
    pub kf_account: KfAccount,
    /// The WeChat user invited.
    pub invite_wx: WechatId,
    /// When it is made (the server clock).
    pub now: i64,
    /// When it lapses.
    pub expire_time: i64,
    /// How many accounts, across apps, one WeChat user may be bound to.
    pub max_bound: usize,
}

/// The invitee's answer ([`KfStore::answer_invitation`](crate::KfStore::answer_invitation)).
#[derive(Debug, Clone)]
pub struct InvitationAnswer {
    /// The account invited.
    pub kf_account: KfAccount,
    /// Accept, reject, or let it lapse.
    pub action: InvitationAction,
    /// When (the server clock).
    pub now: i64,
    /// How many accounts, across apps, one WeChat user may be bound to.
    pub max_bound: usize,
}

/// A token to record ([`TokenStore::issue_token`](crate::TokenStore::issue_token)): the
/// channel's previous current token keeps working until `now + grace_secs`, then is
/// superseded.
#[derive(Debug, Clone)]
pub struct Mint {
    /// The token's record.
    pub token: TokenRecord,
    /// Its hash (the token itself is never stored, but for stable tokens).
    pub hash: Digest,
    /// When it is minted (the server clock).
    pub now: i64,
    /// How long the token it replaces keeps working.
    pub grace_secs: i64,
}

/// A stable token to record ([`TokenStore::issue_stable_token`](crate::TokenStore::issue_stable_token)):
/// a [`Mint`], with the token's value (handed out again while it lasts) and the
/// family's current token it must replace (`None` for none).
#[derive(Clone)]
pub struct StableMint {
    /// The token, as any other.
    pub mint: Mint,
    /// The token itself.
    pub value: String,
    /// The current token the caller decided to replace.
    pub replaces: Option<Digest>,
}

impl std::fmt::Debug for StableMint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StableMint")
            .field("mint", &self.mint)
            .finish_non_exhaustive()
    }
}

/// A refresh token swapped for the next ([`PlatformStore::rotate_refresh_token`](crate::PlatformStore::rotate_refresh_token)).
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The platform.
    pub component_appid: String,
    /// The authorizing app.
    pub appid: String,
    /// The refresh token presented (its hash).
    pub presented: Digest,
    /// The next refresh token (its hash).
    pub next: Digest,
    /// When (the server clock).
    pub now: i64,
    /// How long the presented one keeps working.
    pub overlap_secs: i64,
}

/// A new account, as the server hands it to the store.
#[derive(Debug, Clone)]
pub struct NewKf {
    /// `prefix@suffix`, validated.
    pub kf_account: KfAccount,
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
    /// The invitation stored in an account's three invitation columns: `None` unless
    /// all three hold one (and the state is one kefu writes).
    pub(crate) fn from_columns(
        invite_wx: Option<String>,
        expire_time: Option<i64>,
        state: Option<&str>,
    ) -> Option<Invitation> {
        Some(Invitation {
            invite_wx: invite_wx?,
            expire_time: expire_time?,
            state: InviteState::parse(state?)?,
        })
    }

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
    /// The WeChat path it was made to.
    pub path: std::borrow::Cow<'static, str>,
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
    /// About how many bytes the record holds in memory.
    fn size(&self) -> usize;
}

impl std::fmt::Debug for RecordedCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordedCall")
            .field("rid", &self.rid)
            .field("appid", &self.appid)
            .field("path", &self.path)
            .field("errcode", &self.errcode)
            .field("invoke_time", &self.invoke_time)
            .finish_non_exhaustive()
    }
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

    fn size(&self) -> usize {
        self.row_bytes()
    }
}

impl From<LoggedRequest> for RecordedCall {
    fn from(logged: LoggedRequest) -> RecordedCall {
        RecordedCall {
            rid: logged.rid.clone(),
            appid: logged.appid.clone(),
            path: logged.path.clone().into(),
            errcode: logged.errcode,
            invoke_time: logged.invoke_time,
            details: Box::new(logged),
        }
    }
}

impl LoggedRequest {
    /// About how many bytes the record takes as a row (what the log's bound on disk
    /// counts): its text, and a little for the numbers and the row itself.
    #[must_use]
    pub fn row_bytes(&self) -> usize {
        const FIXED: usize = 64;
        FIXED
            + self.rid.len()
            + self.appid.as_ref().map_or(0, String::len)
            + self.method.len()
            + self.path.len()
            + self.request_url.len()
            + self.request_body.len()
            + self.response_body.len()
            + self.client_ip.len()
            + self.reason.len()
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
    /// Why the call was answered as it was, in words (which rule refused it, and how);
    /// empty for a success.
    pub reason: String,
}

/// Which recorded calls [`LogStore::logged_requests`](crate::LogStore::logged_requests)
/// answers: every filter given must match.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogFilter<'a> {
    /// The app the call was made for.
    pub appid: Option<&'a str>,
    /// The WeChat path, exactly.
    pub path: Option<&'a str>,
    /// The errcode answered.
    pub errcode: Option<i64>,
}

impl<'a> LogFilter<'a> {
    /// The calls of one app, or of all.
    #[must_use]
    pub const fn app(appid: Option<&'a str>) -> LogFilter<'a> {
        LogFilter {
            appid,
            path: None,
            errcode: None,
        }
    }

    /// Whether a call of `appid` to `path` that answered `errcode` matches.
    #[must_use]
    pub fn matches(&self, appid: Option<&str>, path: &str, errcode: i64) -> bool {
        self.appid.is_none_or(|id| appid == Some(id))
            && self.path.is_none_or(|p| p == path)
            && self.errcode.is_none_or(|c| c == errcode)
    }
}

/// How much the request log may hold (README, "Limits"). Failed calls are written to
/// the store each second, at most [`LogLimits::per_second`] of them, and the oldest
/// written ones go when the store holds more than [`LogLimits::disk_rows`] or
/// [`LogLimits::disk_bytes`]; in memory the newest calls are kept within
/// [`LogLimits::memory_bytes`]. Whatever is dropped is still counted (see
/// [`CallCount`]) and reported ([`LogUsage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// The most recorded calls kept in the store.
    pub disk_rows: u64,
    /// The most bytes of recorded calls kept in the store (as [`LoggedRequest::row_bytes`]
    /// counts them).
    pub disk_bytes: u64,
    /// The most bytes of calls kept in memory (the newest calls, and the failed ones
    /// waiting to be written).
    pub memory_bytes: usize,
    /// The most failed calls written in one second; more in a second are only counted.
    pub per_second: usize,
}

impl Default for LogLimits {
    fn default() -> LogLimits {
        LogLimits {
            disk_rows: 100_000,
            disk_bytes: 64 << 20,
            memory_bytes: 16 << 20,
            per_second: 5_000,
        }
    }
}

/// Calls of one app to one path with one errcode in one hour (of the server clock):
/// what the request log counts of every call, kept or not.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallCount {
    /// The app (or platform) called for; `None` when it could not be told.
    pub appid: Option<String>,
    /// The WeChat path.
    pub path: String,
    /// The errcode answered (0 for success).
    pub errcode: i64,
    /// Hours since the Unix epoch.
    pub hour: i64,
    /// How many.
    pub count: u64,
}

/// What the request log holds, and what it had to let go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogUsage {
    /// Recorded calls in the store.
    pub rows: u64,
    /// Their bytes (as [`LoggedRequest::row_bytes`] counts them).
    pub bytes: u64,
    /// Written calls deleted to stay within the store's bounds (all instances).
    pub dropped_from_store: u64,
    /// Failed calls never written: over [`LogLimits::per_second`] or the memory bound
    /// (this instance, since it started).
    pub dropped_in_memory: u64,
    /// Calls in memory now, and their bytes.
    pub memory_calls: u64,
    /// See `memory_calls`.
    pub memory_bytes: u64,
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

/// A family's current token, as [`crate::TokenStore::current_token`] answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentToken {
    /// SHA-256 of the token.
    pub hash: Digest,
    /// What is known of it.
    pub record: TokenRecord,
    /// The token itself, for families that keep it (stable tokens).
    pub value: Option<String>,
}

/// A component_verify_ticket [`crate::SnapshotStore::replace`] issues along with the
/// store document it loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedTicket {
    /// The platform the ticket is for; the document must hold it.
    pub component_appid: String,
    /// The ticket's digest.
    pub hash: Digest,
    /// When it expires (Unix seconds, on the test clock).
    pub expires_at: i64,
}

/// Everything a store can hand to another: see [`crate::SnapshotStore::snapshot`]. It is the
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

    /// Refuses, before anything is written, a document that is not one this kefu
    /// could have written: another format, or any value the API would refuse, checked
    /// with the API's own rules (appids, WeChat IDs, kf accounts of the app's own
    /// suffix, nicknames, workers, online states, JPEG head images, IP lists, API
    /// paths) and the store's (at most 100 accounts, a `next_kf_id` no account has,
    /// ids used once, a worker bound to at most 5 accounts, authorizations of apps and
    /// platforms the document holds). The error names the first bad value's place in
    /// the document (`apps[0].kf_accounts[2].nickname: …`).
    pub(crate) fn check(&self) -> crate::StoreResult<()> {
        snapshot_check::check(self).map_err(crate::StoreError::Invalid)
    }
}

/// The checks of [`Snapshot::check`].
mod snapshot_check {
    use std::collections::{HashMap, HashSet};

    use kefu_api::admin::check_ips;
    use kefu_api::endpoints::kf_add::{FIRST_KF_ID, MAX_ACCOUNTS};
    use kefu_api::endpoints::kf_invite::MAX_BOUND_PER_WORKER;
    use kefu_api::endpoints::kf_uploadheadimg::{MAX_IMAGE_BYTES, is_jpeg};
    use kefu_api::{AppAlias, AppId, KfAccount, Nickname, OriginalId, WechatId};

    use super::{AppSnapshot, FanSession, KfSnapshot, Snapshot};

    /// `Err("place: why")` when `ok` is false.
    fn ensure(ok: bool, place: impl FnOnce() -> String, why: &str) -> Result<(), String> {
        if ok {
            Ok(())
        } else {
            Err(format!("{}: {why}", place()))
        }
    }

    /// Whether `raw` can be a `kf_openid`: 1–64 of `[A-Za-z0-9_-]` (kefu makes them
    /// 28 long, the shape of WeChat's openids).
    fn is_openid(raw: &str) -> bool {
        (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }

    pub(super) fn check(snapshot: &Snapshot) -> Result<(), String> {
        ensure(
            snapshot.version == Snapshot::VERSION,
            || "version".to_owned(),
            &format!(
                "export format {} is not {} (the one this kefu reads)",
                snapshot.version,
                Snapshot::VERSION
            ),
        )?;
        let mut ids = HashSet::new();
        let mut aliases = HashSet::new();
        let mut openids = HashSet::new();
        let mut bound: HashMap<&str, usize> = HashMap::new();
        for (i, entry) in snapshot.apps.iter().enumerate() {
            check_app(i, entry, &mut ids, &mut aliases)?;
            for (j, account) in entry.kf_accounts.iter().enumerate() {
                let place = |field: &str| format!("apps[{i}].kf_accounts[{j}].{field}");
                check_account(entry, account, &place)?;
                ensure(
                    openids.insert(account.kf.kf_openid.as_str()),
                    || place("kf_openid"),
                    "used twice",
                )?;
                if let Some(wx) = &account.kf.kf_wx {
                    let count = bound.entry(wx.as_str()).or_default();
                    *count += 1;
                    ensure(
                        *count <= MAX_BOUND_PER_WORKER,
                        || place("kf_wx"),
                        &format!("{wx} is bound to more than {MAX_BOUND_PER_WORKER} accounts"),
                    )?;
                }
            }
        }
        let mut msgids = HashSet::new();
        for (i, entry) in snapshot.apps.iter().enumerate() {
            check_fans(i, entry, &mut msgids)?;
        }
        let apps: HashSet<&str> = snapshot.apps.iter().map(|a| a.app.appid.as_str()).collect();
        let mut platforms = HashSet::new();
        for (k, component) in snapshot.components.iter().enumerate() {
            let place = |field: &str| format!("components[{k}].{field}");
            let id = component.component_appid.as_str();
            ensure(
                AppId::parse(id).is_ok(),
                || place("component_appid"),
                "not 'wx' and 16 lowercase hex digits",
            )?;
            ensure(
                !apps.contains(id),
                || place("component_appid"),
                "is also an app's appid",
            )?;
            ensure(
                platforms.insert(id),
                || place("component_appid"),
                "used twice",
            )?;
            check_ips(&component.ip_whitelist).map_err(|e| place(&e.to_string()))?;
        }
        let mut pairs = HashSet::new();
        for (m, auth) in snapshot.authorizations.iter().enumerate() {
            let place = |field: &str| format!("authorizations[{m}].{field}");
            ensure(
                platforms.contains(auth.component_appid.as_str()),
                || place("component_appid"),
                "no such platform in the document",
            )?;
            ensure(
                apps.contains(auth.appid.as_str()),
                || place("appid"),
                "no such app in the document",
            )?;
            ensure(
                pairs.insert((&auth.component_appid, &auth.appid)),
                || place("appid"),
                "authorized twice",
            )?;
        }
        Ok(())
    }

    /// An app's fans (openids, used once; a session's account one of the app's) and its
    /// records (msgids positive, used once in the document).
    fn check_fans(i: usize, entry: &AppSnapshot, msgids: &mut HashSet<i64>) -> Result<(), String> {
        let accounts: HashSet<&str> = entry
            .kf_accounts
            .iter()
            .map(|account| account.kf.kf_account.as_str())
            .collect();
        let mut openids = HashSet::new();
        for (j, fan) in entry.fans.iter().enumerate() {
            let place = |field: &str| format!("apps[{i}].fans[{j}].{field}");
            ensure(
                kefu_api::Openid::parse(&fan.openid).is_ok(),
                || place("openid"),
                "not 1-64 letters, digits, '_' or '-'",
            )?;
            ensure(
                openids.insert(&fan.openid),
                || place("openid"),
                "used twice",
            )?;
            if let Some(FanSession::Served { kf_account, .. }) = &fan.session {
                ensure(
                    accounts.contains(kf_account.as_str()),
                    || place("session.kf_account"),
                    "no such account of the app",
                )?;
            }
        }
        for (j, record) in entry.history.iter().enumerate() {
            ensure(
                record.msgid > 0 && msgids.insert(record.msgid),
                || format!("apps[{i}].history[{j}].msgid"),
                "not positive, or used twice",
            )?;
        }
        Ok(())
    }

    fn check_app<'a>(
        i: usize,
        entry: &'a AppSnapshot,
        ids: &mut HashSet<&'a str>,
        aliases: &mut HashSet<&'a str>,
    ) -> Result<(), String> {
        let app = &entry.app;
        let place = |field: &str| format!("apps[{i}].{field}");
        ensure(
            AppId::parse(&app.appid).is_ok(),
            || place("appid"),
            "not 'wx' and 16 lowercase hex digits",
        )?;
        ensure(ids.insert(&app.appid), || place("appid"), "used twice")?;
        ensure(
            AppAlias::parse(&app.wechat_id).is_ok(),
            || place("wechat_id"),
            "not 1-30 letters, digits, '_' or '-'",
        )?;
        ensure(
            OriginalId::parse(&app.original_id).is_ok(),
            || place("original_id"),
            "not 'gh_' and 12 lowercase hex digits",
        )?;
        // Both name the app in its accounts' suffixes: no two apps may share one.
        ensure(
            aliases.insert(&app.wechat_id),
            || place("wechat_id"),
            "another app's WeChat ID or original id",
        )?;
        ensure(
            aliases.insert(&app.original_id),
            || place("original_id"),
            "another app's WeChat ID or original id",
        )?;
        app.settings
            .check()
            .map_err(|e| place(&format!("settings.{e}")))?;
        ensure(
            entry.kf_accounts.len() <= MAX_ACCOUNTS,
            || place("kf_accounts"),
            &format!("more than {MAX_ACCOUNTS} accounts"),
        )?;
        let highest = entry.kf_accounts.iter().map(|a| a.kf.kf_id).max();
        ensure(
            entry.next_kf_id >= FIRST_KF_ID && highest.is_none_or(|id| id < entry.next_kf_id),
            || place("next_kf_id"),
            &format!(
                "{} is below {FIRST_KF_ID} or an account's id",
                entry.next_kf_id
            ),
        )?;
        let mut names = HashSet::new();
        let mut numbers = HashSet::new();
        for (j, account) in entry.kf_accounts.iter().enumerate() {
            let place = |field: &str| format!("apps[{i}].kf_accounts[{j}].{field}");
            ensure(
                names.insert(&account.kf.kf_account),
                || place("kf_account"),
                "used twice",
            )?;
            ensure(
                numbers.insert(account.kf.kf_id),
                || place("kf_id"),
                "used twice",
            )?;
        }
        Ok(())
    }

    fn check_account(
        entry: &AppSnapshot,
        account: &KfSnapshot,
        place: &dyn Fn(&str) -> String,
    ) -> Result<(), String> {
        let app = &entry.app;
        let kf = &account.kf;
        let owned = KfAccount::parse(&kf.kf_account)
            .is_ok_and(|a| a.belongs_to(&app.wechat_id, &app.original_id));
        ensure(
            owned,
            || place("kf_account"),
            "not prefix@suffix with the app's WeChat ID or original id",
        )?;
        ensure(
            Nickname::parse(&kf.nickname).is_ok(),
            || place("nickname"),
            "not 1-16 characters without control characters",
        )?;
        ensure(
            kf.kf_id >= FIRST_KF_ID,
            || place("kf_id"),
            &format!("below {FIRST_KF_ID}"),
        )?;
        ensure(
            is_openid(&kf.kf_openid),
            || place("kf_openid"),
            "not 1-64 of [A-Za-z0-9_-]",
        )?;
        if let Some(wx) = &kf.kf_wx {
            ensure(
                WechatId::parse(wx).is_ok(),
                || place("kf_wx"),
                "not a WeChat ID",
            )?;
        }
        if let Some(invitation) = &kf.invitation {
            ensure(
                WechatId::parse(&invitation.invite_wx).is_ok(),
                || place("invitation.invite_wx"),
                "not a WeChat ID",
            )?;
        }
        ensure(
            (0..=1).contains(&kf.online_status),
            || place("online_status"),
            "not 0 or 1",
        )?;
        ensure(kf.accepted_case >= 0, || place("accepted_case"), "negative")?;
        match (&account.headimg, kf.headimg_version) {
            (None, None) => {}
            (Some(jpeg), Some(version)) => {
                ensure(is_jpeg(jpeg), || place("headimg"), "not a JPEG")?;
                ensure(
                    jpeg.len() <= MAX_IMAGE_BYTES,
                    || place("headimg"),
                    "over 5 MiB",
                )?;
                ensure(version >= 1, || place("headimg_version"), "below 1")?;
            }
            (None, Some(_)) => {
                return Err(format!(
                    "{}: a version without an image",
                    place("headimg_version")
                ));
            }
            (Some(_), None) => {
                return Err(format!("{}: an image without a version", place("headimg")));
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
    /// Its fans with their windows and sessions, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fans: Vec<Fan>,
    /// Its chat history, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryRecord>,
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
