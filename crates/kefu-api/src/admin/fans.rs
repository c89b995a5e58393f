//! Simulated fans (docs/behaviour.md, "Fans"): the WeChat users who message an app, made
//! and moved through the admin surface, since on WeChat they are people on phones.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{AdminErrorCode, Checked, Invalid};
use crate::endpoints::message::WindowKind;
use crate::{KfAccount, Openid};

/// The longest fan nickname taken, in characters.
pub const MAX_FAN_NICKNAME_CHARS: usize = 64;
/// The longest text a fan sends, in characters.
pub const MAX_FAN_TEXT_CHARS: usize = 2048;
/// The most fans one app has.
pub const MAX_FANS_PER_APP: usize = 100_000;
/// How many of a fan's latest records its timeline shows.
pub const TIMELINE_LEN: usize = 100;

/// `POST /kefu/v1/apps/{appid}/fans`: a follower of the app. Everything has a default.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "NewFanBody")]
pub struct NewFan {
    /// The openid; made in WeChat's shape (28 characters) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openid: Option<Openid>,
    /// A name for people reading the console; `""` when absent.
    #[serde(default)]
    pub nickname: String,
}

/// [`NewFan`] as sent, before its values are checked.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct NewFanBody {
    /// See [`NewFan::openid`].
    #[serde(default)]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]{1,64}$"))]
    pub openid: Option<String>,
    /// See [`NewFan::nickname`].
    #[serde(default)]
    pub nickname: Option<String>,
}

impl TryFrom<NewFanBody> for NewFan {
    type Error = Invalid;

    fn try_from(body: NewFanBody) -> Result<NewFan, Invalid> {
        let openid = body
            .openid
            .map(|raw| {
                Openid::check(&raw)
                    .map_err(|refused| Invalid::new(AdminErrorCode::InvalidOpenid, refused.reason))
            })
            .transpose()?;
        let nickname = body.nickname.unwrap_or_default();
        if nickname.chars().count() > MAX_FAN_NICKNAME_CHARS
            || nickname.chars().any(char::is_control)
        {
            return Err(Invalid::new(
                AdminErrorCode::InvalidBody,
                format!(
                    "nickname is at most {MAX_FAN_NICKNAME_CHARS} characters, without control \
                     characters"
                ),
            ));
        }
        Ok(NewFan { openid, nickname })
    }
}

impl Checked for NewFan {
    type Body = NewFanBody;
}

/// What a fan does, as the simulation makes it happen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", try_from = "FanActionBody")]
pub enum FanAction {
    /// Sends a text message (opens the message window).
    Text {
        /// The text.
        content: String,
    },
    /// Sends an image (opens the message window).
    Image,
    /// Sends a voice message (opens the message window).
    Voice,
    /// Sends a video (opens the message window).
    Video,
    /// Clicks a menu item (opens the event window).
    Click {
        /// The menu item's key (`EventKey`).
        key: String,
    },
    /// Follows the app (opens the event window).
    Follow,
    /// Unfollows the app: every window closes, and a session or a place in the queue
    /// ends.
    Unfollow,
    /// Scans one of the app's QR codes (opens the event window; follows first when the
    /// fan did not).
    Scan {
        /// The code's scene (`EventKey`).
        key: String,
    },
    /// Pays (opens the payment window).
    Pay,
}

/// [`FanAction`] as sent: `{"type":"text","content":"…"}`, `{"type":"click","key":"…"}`…
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct FanActionBody {
    /// What the fan does: text, image, voice, video, click, follow, unfollow, scan, pay.
    #[serde(rename = "type")]
    pub kind: String,
    /// A text's content.
    #[serde(default)]
    pub content: Option<String>,
    /// A menu item's key or a QR code's scene.
    #[serde(default)]
    pub key: Option<String>,
}

impl TryFrom<FanActionBody> for FanAction {
    type Error = Invalid;

    fn try_from(body: FanActionBody) -> Result<FanAction, Invalid> {
        let invalid = |why: String| Invalid::new(AdminErrorCode::InvalidAction, why);
        let key = |what: &str| match body.key.clone().filter(|k| !k.is_empty()) {
            Some(key) if key.len() <= 128 && !key.chars().any(char::is_control) => Ok(key),
            _ => Err(invalid(format!("a {what} needs a key of 1-128 characters"))),
        };
        Ok(match body.kind.as_str() {
            "text" => {
                let content = body.content.clone().unwrap_or_default();
                let chars = content.chars().count();
                if chars == 0 || chars > MAX_FAN_TEXT_CHARS {
                    return Err(invalid(format!(
                        "a text needs content of 1-{MAX_FAN_TEXT_CHARS} characters"
                    )));
                }
                FanAction::Text { content }
            }
            "image" => FanAction::Image,
            "voice" => FanAction::Voice,
            "video" => FanAction::Video,
            "click" => FanAction::Click { key: key("click")? },
            "follow" => FanAction::Follow,
            "unfollow" => FanAction::Unfollow,
            "scan" => FanAction::Scan { key: key("scan")? },
            "pay" => FanAction::Pay,
            other => {
                return Err(invalid(format!(
                    "type {other:?} is none of text, image, voice, video, click, follow, \
                     unfollow, scan, pay"
                )));
            }
        })
    }
}

impl Checked for FanAction {
    type Body = FanActionBody;
}

impl FanAction {
    /// The window the action opens; `None` for unfollowing, which closes them all.
    #[must_use]
    pub const fn window(&self) -> Option<WindowKind> {
        match self {
            FanAction::Text { .. } | FanAction::Image | FanAction::Voice | FanAction::Video => {
                Some(WindowKind::Message)
            }
            FanAction::Click { .. } | FanAction::Follow | FanAction::Scan { .. } => {
                Some(WindowKind::Event)
            }
            FanAction::Pay => Some(WindowKind::Payment),
            FanAction::Unfollow => None,
        }
    }

    /// How the chat history shows it: a text's own words, `[image]`, `[voice]`,
    /// `[video]`, and the events as `[click] KEY`, `[subscribe]`, `[unsubscribe]`,
    /// `[scan] KEY`, `[pay]`.
    #[must_use]
    pub fn history_text(&self) -> String {
        match self {
            FanAction::Text { content } => content.clone(),
            FanAction::Image => "[image]".to_owned(),
            FanAction::Voice => "[voice]".to_owned(),
            FanAction::Video => "[video]".to_owned(),
            FanAction::Click { key } => format!("[click] {key}"),
            FanAction::Follow => "[subscribe]".to_owned(),
            FanAction::Unfollow => "[unsubscribe]".to_owned(),
            FanAction::Scan { key } => format!("[scan] {key}"),
            FanAction::Pay => "[pay]".to_owned(),
        }
    }

    /// Whether it is a message (rather than an event).
    #[must_use]
    pub const fn is_message(&self) -> bool {
        matches!(
            self,
            FanAction::Text { .. } | FanAction::Image | FanAction::Voice | FanAction::Video
        )
    }
}

/// `POST /kefu/v1/apps/{appid}/fans/{openid}/queue`: puts the fan in the waiting queue,
/// or with an account, as the developer's `transfer_customer_service` reply does.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct QueueRequest {
    /// The account to serve the fan at once (when it is online); the queue when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kf_account: Option<KfAccount>,
}

/// A fan as the admin surface shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FanView {
    /// The openid.
    pub openid: String,
    /// A name for people.
    pub nickname: String,
    /// Whether the fan follows the app (an unfollowed fan gets nothing: 45015).
    pub following: bool,
    /// When the fan was made (Unix seconds, server clock).
    pub created_at: i64,
    /// Who serves the fan.
    pub session: SessionView,
    /// The windows the fan opened that are still open, in the order a send uses them.
    pub windows: Vec<WindowView>,
    /// Whether a message can be sent now (an open window with messages left).
    pub can_send: bool,
    /// Until when "typing…" shows, if it does (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing_until: Option<i64>,
    /// The latest message either way (Unix seconds), which typing needs within 30 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exchange: Option<i64>,
    /// The fan's latest records, newest first (at most [`TIMELINE_LEN`]); only in the
    /// view of one fan.
    #[serde(default)]
    pub timeline: Vec<TimelineEntry>,
}

/// Who serves a fan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SessionView {
    /// Nobody: the fan's messages go to the developer's server.
    None,
    /// The fan waits in the queue.
    Waiting {
        /// Since when (Unix seconds).
        since: i64,
    },
    /// An account serves the fan: its messages go to the account only.
    Served {
        /// The account.
        kf_account: String,
        /// When the session began (Unix seconds).
        since: i64,
        /// When it ends unless a message is exchanged (Unix seconds).
        idle_until: i64,
    },
}

/// An open delivery window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WindowView {
    /// What opened it.
    pub kind: WindowKind,
    /// When it opened (Unix seconds).
    pub opened_at: i64,
    /// When it closes (Unix seconds).
    pub expires_at: i64,
    /// The messages it lets through; unlimited when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The messages sent through it.
    pub used: u32,
    /// The messages left; unlimited when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left: Option<u32>,
}

/// One record of a fan's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TimelineEntry {
    /// The record's msgid.
    pub msgid: i64,
    /// When (Unix seconds).
    pub time: i64,
    /// What happened ([`crate::endpoints::msgrecord::opercode`]).
    pub opercode: i64,
    /// The message's text, `[image]`…, or the event.
    pub text: String,
    /// The account involved, `""` when none.
    pub worker: String,
}

/// The answer to a fan's action: the fan afterwards, and whether the action was
/// queued for the developer's server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FanActed {
    /// The fan.
    pub fan: FanView,
    /// Whether a push to the app's callback was queued (never while an account serves
    /// the fan, nor without a callback).
    pub pushed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(json: &str) -> Result<FanAction, AdminErrorCode> {
        let body: FanActionBody = serde_json::from_str(json).unwrap();
        FanAction::try_from(body).map_err(|invalid| invalid.code)
    }

    #[test]
    fn a_fan_action_names_what_it_needs() {
        assert_eq!(
            action(r#"{"type":"text","content":"hi"}"#),
            Ok(FanAction::Text {
                content: "hi".to_owned()
            })
        );
        assert_eq!(
            action(r#"{"type":"text"}"#),
            Err(AdminErrorCode::InvalidAction)
        );
        assert_eq!(
            action(r#"{"type":"click"}"#),
            Err(AdminErrorCode::InvalidAction)
        );
        assert_eq!(
            action(r#"{"type":"dance"}"#),
            Err(AdminErrorCode::InvalidAction)
        );
        assert_eq!(action(r#"{"type":"pay"}"#), Ok(FanAction::Pay));
        assert_eq!(
            FanAction::Click {
                key: "K".to_owned()
            }
            .window(),
            Some(WindowKind::Event)
        );
        assert_eq!(FanAction::Unfollow.window(), None);
        let round = serde_json::to_string(&FanAction::Scan {
            key: "s".to_owned(),
        })
        .unwrap();
        assert_eq!(round, r#"{"type":"scan","key":"s"}"#);
        assert_eq!(
            serde_json::from_str::<FanAction>(&round).unwrap(),
            FanAction::Scan {
                key: "s".to_owned()
            }
        );
    }
}
