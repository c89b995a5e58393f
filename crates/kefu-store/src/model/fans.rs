//! Fans, their delivery windows and sessions, and the chat history: the other side of
//! customer service, as the store keeps it.

use kefu_api::endpoints::message::WindowKind;
use serde::{Deserialize, Serialize};

/// One fan of an app: a WeChat user (simulated) who follows it, or did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fan {
    /// The openid.
    pub openid: String,
    /// A name for people.
    #[serde(default)]
    pub nickname: String,
    /// Whether the fan follows the app.
    pub following: bool,
    /// When the fan was made (Unix seconds).
    pub created_at: i64,
    /// The windows the fan's actions opened.
    #[serde(default)]
    pub windows: Windows,
    /// The latest message either way (Unix seconds): typing needs one within 30 s.
    #[serde(default)]
    pub last_exchange: Option<i64>,
    /// Until when "typing…" shows (Unix seconds).
    #[serde(default)]
    pub typing_until: Option<i64>,
    /// Who serves the fan, if anyone, or its place in the queue.
    #[serde(default)]
    pub session: Option<FanSession>,
}

impl Fan {
    /// Who serves the fan at `now`: a served session idle for 30 minutes has ended,
    /// whether or not the store has written so yet.
    #[must_use]
    pub fn session_at(&self, now: i64) -> Option<&FanSession> {
        match &self.session {
            Some(FanSession::Served { active, .. })
                if now >= crate::rules::conversation::idle_until(*active) =>
            {
                None
            }
            other => other.as_ref(),
        }
    }

    /// A new follower with no window, no session.
    #[must_use]
    pub fn new(openid: String, nickname: String, now: i64) -> Fan {
        Fan {
            openid,
            nickname,
            following: true,
            created_at: now,
            windows: Windows::default(),
            last_exchange: None,
            typing_until: None,
            session: None,
        }
    }
}

/// The latest window of each kind a fan opened (a new action of a kind replaces that
/// kind's window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Windows {
    /// Opened by a message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Grant>,
    /// Opened by a menu click, a follow or a scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Grant>,
    /// Opened by a payment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<Grant>,
}

impl Windows {
    /// The window of one kind.
    #[must_use]
    pub const fn get(&self, kind: WindowKind) -> Option<Grant> {
        match kind {
            WindowKind::Message => self.message,
            WindowKind::Event => self.event,
            WindowKind::Payment => self.payment,
        }
    }

    /// The window of one kind, to change.
    pub fn slot(&mut self, kind: WindowKind) -> &mut Option<Grant> {
        match kind {
            WindowKind::Message => &mut self.message,
            WindowKind::Event => &mut self.event,
            WindowKind::Payment => &mut self.payment,
        }
    }
}

/// One delivery window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// When the fan's action opened it (Unix seconds).
    pub opened_at: i64,
    /// When it closes (Unix seconds).
    pub expires_at: i64,
    /// The messages it lets through; no limit when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The messages sent through it.
    #[serde(default)]
    pub used: u32,
}

impl Grant {
    /// Whether it is open at `now`.
    #[must_use]
    pub const fn is_open(&self, now: i64) -> bool {
        now < self.expires_at
    }

    /// Whether it lets another message through at `now`.
    #[must_use]
    pub fn has_room(&self, now: i64) -> bool {
        self.is_open(now) && self.limit.is_none_or(|limit| self.used < limit)
    }
}

/// Who serves a fan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum FanSession {
    /// The fan waits in the app's queue.
    Waiting {
        /// Since when (Unix seconds).
        since: i64,
        /// Its place: smaller came first.
        seq: i64,
        /// The time of the fan's latest message.
        latest: i64,
    },
    /// An account serves the fan.
    Served {
        /// The account.
        kf_account: String,
        /// When the session began (Unix seconds).
        since: i64,
        /// The latest message either way, or the session's start (Unix seconds): it ends
        /// when idle for 30 minutes.
        active: i64,
    },
}

/// One record of the chat history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRecord {
    /// Its id: increasing, never reused.
    pub msgid: i64,
    /// The fan.
    pub openid: String,
    /// What happened (`kefu_api::endpoints::msgrecord::opercode`).
    pub opercode: i64,
    /// The message's text, `[image]`…, or the event.
    pub text: String,
    /// When (Unix seconds).
    pub time: i64,
    /// The account involved, `""` when none.
    pub worker: String,
}

/// A record to append (its msgid is the store's to give).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewRecord {
    /// What happened.
    pub(crate) opercode: i64,
    /// The text.
    pub(crate) text: String,
    /// The account involved, `""` when none.
    pub(crate) worker: String,
}

/// A session that ended by itself (idle), or because the fan left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedSession {
    /// The app.
    pub appid: String,
    /// The fan.
    pub openid: String,
    /// The account that served it.
    pub kf_account: String,
}

/// What an operation did to a fan, for the pushes it causes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanChange {
    /// The fan afterwards.
    pub fan: Fan,
    /// A session began, with this account.
    pub began: Option<String>,
    /// A session ended, with this account.
    pub ended: Option<String>,
}
