//! The records the store keeps.

use std::sync::Arc;

use kefu_api::admin::AccountType;
use kefu_api::endpoints::kf_list::InviteStatus;

/// A SHA-256 digest: secrets and tokens are stored only as this.
pub type Digest = [u8; 32];

/// An official account.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    pub secret_hash: Digest,
    /// Unix seconds.
    pub created_at: i64,
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
}

impl TokenChannel {
    /// The stored spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenChannel::Basic => "token",
        }
    }

    pub(crate) fn parse(raw: &str) -> Option<TokenChannel> {
        match raw {
            "token" => Some(TokenChannel::Basic),
            _ => None,
        }
    }
}

/// What is known of an issued token (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The app it acts for.
    pub appid: Arc<str>,
    /// Its family.
    pub channel: TokenChannel,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
