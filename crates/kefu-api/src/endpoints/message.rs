//! Customer service messages (docs/behaviour.md, "Messages"):
//! `POST /cgi-bin/message/custom/send` and `POST /cgi-bin/message/custom/typing`.
//!
//! A message reaches a fan only inside a delivery window the fan opened by acting
//! (sending a message, clicking a menu, following, scanning, paying): see
//! [`WindowKind`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::check_json_body;
use crate::endpoint::{Endpoint, Group, Method, Sent};
use crate::{ErrCode, KfAccount, Openid, Refused, Status};

/// The permission sets a third-party platform needs to send messages and typing
/// (19, mini-program customer service, included).
pub const MESSAGE_FUNCSCOPES: &[u32] = &[1, 6, 19, 100, 101];
/// The most articles a `news` message carries.
pub const MAX_NEWS_ARTICLES: usize = 1;
/// How long a `Typing` shows, in seconds; another within it answers 45081.
pub const TYPING_SECS: i64 = 15;
/// Typing needs a message exchanged with the fan within this many seconds (45080).
pub const TYPING_NEEDS_EXCHANGE_SECS: i64 = 30;

/// `POST /cgi-bin/message/custom/send`.
#[derive(Debug, Clone, Copy)]
pub struct SendMessage;

impl Endpoint for SendMessage {
    const NAME: &'static str = "message_send";
    const SUMMARY: &'static str = "Send a customer service message to a fan";
    const GROUP: Group = Group::Messages;
    const EXAMPLE: &'static str =
        r#"{"touser":"oKefu0000000000000000000fan1","msgtype":"text","text":{"content":"Hello"}}"#;
    const METHOD: Method = Method::Post;
    const PATH: &'static str = "/cgi-bin/message/custom/send";
    type Request = Message;
    type Response = Status;

    fn check(sent: &Sent<'_>) -> Result<(), Refused> {
        Message::check(sent.body).map(drop)
    }
}

/// A customer service message, as it travels:
/// `{"touser":…,"msgtype":"text","text":{"content":…},"customservice":{"kf_account":…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Message {
    /// The fan.
    pub touser: Openid,
    /// What is sent.
    #[serde(flatten)]
    pub content: Content,
    /// Sent as this account (shown to the fan as its nickname and head image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customservice: Option<AsAccount>,
}

/// `{"kf_account":…}`: the account a message is sent as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AsAccount {
    /// The account.
    pub kf_account: KfAccount,
}

/// A message's type and its object: `"msgtype":"image","image":{"media_id":…}`. Media
/// ids name files in WeChat's media store, which kefu does not keep: any non-empty
/// string is taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "msgtype", rename_all = "lowercase")]
pub enum Content {
    /// Text.
    Text {
        /// `{"content":…}`.
        text: Text,
    },
    /// An image.
    Image {
        /// `{"media_id":…}`.
        image: Media,
    },
    /// A voice message.
    Voice {
        /// `{"media_id":…}`.
        voice: Media,
    },
    /// A video.
    Video {
        /// The video.
        video: Video,
    },
    /// Music.
    Music {
        /// The music.
        music: Music,
    },
    /// An article with a link (at most [`MAX_NEWS_ARTICLES`]).
    News {
        /// `{"articles":[…]}`.
        news: News,
    },
    /// A published article of the account, by media id.
    Mpnews {
        /// `{"media_id":…}`.
        mpnews: Media,
    },
    /// A published article of the account, by article id.
    Mpnewsarticle {
        /// `{"article_id":…}`.
        mpnewsarticle: ArticleRef,
    },
    /// A menu of answers the fan taps.
    Msgmenu {
        /// The menu.
        msgmenu: MsgMenu,
    },
    /// A card or coupon.
    Wxcard {
        /// `{"card_id":…}`.
        wxcard: Card,
    },
    /// A mini-program page.
    Miniprogrampage {
        /// The page.
        miniprogrampage: MiniProgramPage,
    },
    /// A link card (mini programs' customer service).
    Link {
        /// The link.
        link: Link,
    },
}

/// `{"content":…}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Text {
    /// The text (not empty: 44004).
    pub content: String,
}

/// `{"media_id":…}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Media {
    /// The media id.
    pub media_id: String,
}

/// A video.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Video {
    /// The video's media id.
    pub media_id: String,
    /// Its thumbnail's media id.
    pub thumb_media_id: String,
    /// A title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// A description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Music.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Music {
    /// A title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// A description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The music's URL.
    pub musicurl: String,
    /// Its high-quality URL (played on Wi-Fi).
    pub hqmusicurl: String,
    /// The thumbnail's media id.
    pub thumb_media_id: String,
}

/// `{"articles":[…]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct News {
    /// The articles (one; more answers 45008).
    pub articles: Vec<Article>,
}

/// An article of a `news` message.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Article {
    /// The title.
    #[serde(default)]
    pub title: String,
    /// The description.
    #[serde(default)]
    pub description: String,
    /// Where a tap leads.
    #[serde(default)]
    pub url: String,
    /// The picture's URL.
    #[serde(default)]
    pub picurl: String,
}

/// `{"article_id":…}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ArticleRef {
    /// The published article's id.
    pub article_id: String,
}

/// A menu message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MsgMenu {
    /// The text above the choices.
    #[serde(default)]
    pub head_content: String,
    /// The choices.
    pub list: Vec<MenuItem>,
    /// The text below the choices.
    #[serde(default)]
    pub tail_content: String,
}

/// One choice of a menu message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MenuItem {
    /// What comes back when the fan taps it.
    pub id: String,
    /// Its text.
    pub content: String,
}

/// `{"card_id":…}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Card {
    /// The card's id.
    pub card_id: String,
}

/// A mini-program page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MiniProgramPage {
    /// The title.
    pub title: String,
    /// The mini program's appid.
    pub appid: String,
    /// The page's path.
    pub pagepath: String,
    /// The thumbnail's media id.
    pub thumb_media_id: String,
}

/// A link card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Link {
    /// The title.
    pub title: String,
    /// The description.
    #[serde(default)]
    pub description: String,
    /// Where a tap leads.
    pub url: String,
    /// The thumbnail's URL.
    #[serde(default)]
    pub thumb_url: String,
}

/// The message types kefu sends, as `msgtype` spells them.
pub const MSGTYPES: &[&str] = &[
    "text",
    "image",
    "voice",
    "video",
    "music",
    "news",
    "mpnews",
    "mpnewsarticle",
    "msgmenu",
    "wxcard",
    "miniprogrampage",
    "link",
];

impl Content {
    /// The `msgtype`.
    #[must_use]
    pub fn msgtype(&self) -> &'static str {
        match self {
            Content::Text { .. } => "text",
            Content::Image { .. } => "image",
            Content::Voice { .. } => "voice",
            Content::Video { .. } => "video",
            Content::Music { .. } => "music",
            Content::News { .. } => "news",
            Content::Mpnews { .. } => "mpnews",
            Content::Mpnewsarticle { .. } => "mpnewsarticle",
            Content::Msgmenu { .. } => "msgmenu",
            Content::Wxcard { .. } => "wxcard",
            Content::Miniprogrampage { .. } => "miniprogrampage",
            Content::Link { .. } => "link",
        }
    }

    /// How the chat history shows it: a text's own words, `[image]`, `[voice]`,
    /// `[video]` and so on for the rest.
    #[must_use]
    pub fn history_text(&self) -> String {
        match self {
            Content::Text { text } => text.content.clone(),
            other => format!("[{}]", other.msgtype()),
        }
    }
}

/// Reads a field of a message object that must be a non-empty string.
fn string_field(object: &Map<String, Value>, msgtype: &str, field: &str) -> Result<(), Refused> {
    match object.get(field) {
        Some(Value::String(value)) if !value.is_empty() => Ok(()),
        Some(Value::String(_) | Value::Null) | None => Err(Refused::new(
            ErrCode::DataFormatError,
            format!("{msgtype}.{field} is missing or empty"),
        )),
        Some(_) => Err(Refused::new(
            ErrCode::DataFormatError,
            format!("{msgtype}.{field} must be a string"),
        )),
    }
}

/// The fields each `msgtype`'s object must carry as non-empty strings.
fn required_fields(msgtype: &str) -> &'static [&'static str] {
    match msgtype {
        "image" | "voice" | "mpnews" => &["media_id"],
        "video" => &["media_id", "thumb_media_id"],
        "music" => &["musicurl", "hqmusicurl", "thumb_media_id"],
        "mpnewsarticle" => &["article_id"],
        "wxcard" => &["card_id"],
        "miniprogrampage" => &["title", "appid", "pagepath", "thumb_media_id"],
        "link" => &["title", "url"],
        _ => &[],
    }
}

impl Message {
    /// Reads a send body with WeChat's rules, in order: the body's shape (44002/47001);
    /// `msgtype` one of [`MSGTYPES`] with its object present and well typed (47001); a
    /// text not empty (44004); a `news` of one article (45008); `touser` an openid
    /// (40003); `customservice.kf_account` an account (65401). Whether the fan follows
    /// the app, the account exists and a window is open is the server's to say.
    pub fn check(body: &[u8]) -> Result<Message, Refused> {
        let value: Map<String, Value> = check_json_body(body)?;
        let format = |why: String| Refused::new(ErrCode::DataFormatError, why);
        let msgtype = match value.get("msgtype") {
            Some(Value::String(msgtype)) if MSGTYPES.contains(&msgtype.as_str()) => {
                msgtype.as_str()
            }
            Some(Value::String(other)) => {
                return Err(format(format!("msgtype {other:?} is not one kefu sends")));
            }
            _ => return Err(format("msgtype is missing or not a string".to_owned())),
        };
        let Some(Value::Object(object)) = value.get(msgtype) else {
            return Err(format(format!(
                "the message has no {msgtype:?} object for its msgtype"
            )));
        };
        for field in required_fields(msgtype) {
            string_field(object, msgtype, field)?;
        }
        match msgtype {
            "text" => match object.get("content") {
                Some(Value::String(content)) if !content.is_empty() => {}
                Some(Value::String(_) | Value::Null) | None => {
                    return Err(Refused::new(
                        ErrCode::EmptyContent,
                        "text.content is missing or empty",
                    ));
                }
                Some(_) => return Err(format("text.content must be a string".to_owned())),
            },
            "news" => match object.get("articles") {
                Some(Value::Array(articles)) if articles.len() > MAX_NEWS_ARTICLES => {
                    return Err(Refused::new(
                        ErrCode::ArticleSizeOutOfLimit,
                        format!(
                            "news carries {} articles, at most {MAX_NEWS_ARTICLES} is allowed",
                            articles.len()
                        ),
                    ));
                }
                Some(Value::Array(articles)) if !articles.is_empty() => {}
                _ => {
                    return Err(format(
                        "news.articles must be a list of one article".to_owned(),
                    ));
                }
            },
            "msgmenu" => match object.get("list") {
                Some(Value::Array(list)) if !list.is_empty() => {}
                _ => return Err(format("msgmenu.list must be a list of choices".to_owned())),
            },
            _ => {}
        }
        let content: Content = serde_json::from_value(Value::Object(
            [
                ("msgtype".to_owned(), Value::String(msgtype.to_owned())),
                (msgtype.to_owned(), Value::Object(object.clone())),
            ]
            .into_iter()
            .collect(),
        ))
        .map_err(|error| format(format!("the {msgtype} object: {error}")))?;
        let touser = match value.get("touser") {
            Some(Value::String(touser)) => Openid::check(touser)?,
            None | Some(Value::Null) => {
                return Err(Refused::new(ErrCode::InvalidOpenid, "touser is missing"));
            }
            Some(_) => return Err(format("touser must be a string".to_owned())),
        };
        let customservice = match value.get("customservice") {
            None | Some(Value::Null) => None,
            Some(Value::Object(service)) => match service.get("kf_account") {
                None | Some(Value::Null) => None,
                Some(Value::String(account)) => Some(AsAccount {
                    kf_account: KfAccount::check(account)?,
                }),
                Some(_) => {
                    return Err(format(
                        "customservice.kf_account must be a string".to_owned(),
                    ));
                }
            },
            Some(_) => return Err(format("customservice must be an object".to_owned())),
        };
        Ok(Message {
            touser,
            content,
            customservice,
        })
    }
}

/// `POST /cgi-bin/message/custom/typing`.
#[derive(Debug, Clone, Copy)]
pub struct SendTyping;

impl Endpoint for SendTyping {
    const NAME: &'static str = "message_typing";
    const SUMMARY: &'static str = "Show the fan that an answer is being typed";
    const GROUP: Group = Group::Messages;
    const EXAMPLE: &'static str = r#"{"touser":"oKefu0000000000000000000fan1","command":"Typing"}"#;
    const METHOD: Method = Method::Post;
    const PATH: &'static str = "/cgi-bin/message/custom/typing";
    type Request = TypingRequest;
    type Response = Status;

    fn check(sent: &Sent<'_>) -> Result<(), Refused> {
        check_json_body::<TypingBody>(sent.body)?.check().map(drop)
    }
}

/// `Typing` or `CancelTyping`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TypingCommand {
    /// Show "typing…" for [`TYPING_SECS`].
    Typing,
    /// Stop showing it.
    CancelTyping,
}

/// `{"touser":…,"command":"Typing"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct TypingRequest {
    /// The fan.
    pub touser: Openid,
    /// What to show.
    pub command: TypingCommand,
}

/// The typing body as a client sent it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TypingBody {
    /// The fan, unvalidated.
    #[serde(default)]
    pub touser: Option<String>,
    /// The command, unvalidated.
    #[serde(default)]
    pub command: Option<String>,
}

impl TypingBody {
    /// Checks `touser` (40003), then the command (45072).
    pub fn check(&self) -> Result<TypingRequest, Refused> {
        let touser = Openid::check(self.touser.as_deref().unwrap_or(""))?;
        let command = match self.command.as_deref() {
            Some("Typing") => TypingCommand::Typing,
            Some("CancelTyping") => TypingCommand::CancelTyping,
            other => {
                return Err(Refused::new(
                    ErrCode::InvalidCommand,
                    format!("command is {other:?}: it is Typing or CancelTyping"),
                ));
            }
        };
        Ok(TypingRequest { touser, command })
    }
}

/// What opened a delivery window, which decides how long it stays open and how many
/// messages it lets through (each a per-app setting; the defaults are WeChat's
/// published figures).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// The fan sent a message: 48 hours, 5 messages.
    Message,
    /// The fan clicked a menu, followed or scanned a code: 1 minute, 3 messages.
    Event,
    /// The fan paid: 48 hours, no limit.
    Payment,
}

impl WindowKind {
    /// Every kind, in the order a send uses their windows: payment (unlimited) first,
    /// then the event window (the shortest), then the message window.
    pub const ALL: [WindowKind; 3] = [WindowKind::Payment, WindowKind::Event, WindowKind::Message];

    /// The kind's name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            WindowKind::Message => "message",
            WindowKind::Event => "event",
            WindowKind::Payment => "payment",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(body: &str) -> ErrCode {
        Message::check(body.as_bytes()).unwrap_err().code
    }

    const FAN: &str = "oKefu0000000000000000000fan1";

    #[test]
    fn a_send_body_is_checked_in_wechats_order() {
        assert_eq!(code(""), ErrCode::EmptyPostData);
        assert_eq!(code("[]"), ErrCode::DataFormatError);
        assert_eq!(
            code(&format!(r#"{{"touser":"{FAN}","msgtype":"sticker"}}"#)),
            ErrCode::DataFormatError
        );
        assert_eq!(
            code(&format!(
                r#"{{"touser":"{FAN}","msgtype":"image","image":{{}}}}"#
            )),
            ErrCode::DataFormatError
        );
        assert_eq!(
            code(&format!(
                r#"{{"touser":"{FAN}","msgtype":"text","text":{{"content":""}}}}"#
            )),
            ErrCode::EmptyContent
        );
        let two = r#"{"title":"a","url":"u"},{"title":"b","url":"u"}"#;
        assert_eq!(
            code(&format!(
                r#"{{"touser":"{FAN}","msgtype":"news","news":{{"articles":[{two}]}}}}"#
            )),
            ErrCode::ArticleSizeOutOfLimit
        );
        assert_eq!(
            code(r#"{"touser":"a b","msgtype":"text","text":{"content":"hi"}}"#),
            ErrCode::InvalidOpenid
        );
        assert_eq!(
            code(&format!(
                r#"{{"touser":"{FAN}","msgtype":"text","text":{{"content":"hi"}},"customservice":{{"kf_account":"nope"}}}}"#
            )),
            ErrCode::InvalidKfAccount
        );
        let sent = Message::check(
            format!(
                r#"{{"touser":"{FAN}","msgtype":"video","video":{{"media_id":"m","thumb_media_id":"t"}},"customservice":{{"kf_account":"a@test"}}}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(sent.content.msgtype(), "video");
        assert_eq!(sent.content.history_text(), "[video]");
        assert_eq!(sent.customservice.unwrap().kf_account.as_str(), "a@test");
    }

    #[test]
    fn a_message_travels_as_wechat_writes_it() {
        let message = Message {
            touser: Openid::parse(FAN).unwrap(),
            content: Content::Text {
                text: Text {
                    content: "hi".to_owned(),
                },
            },
            customservice: None,
        };
        let json = serde_json::to_string(&message).unwrap();
        assert_eq!(
            json,
            format!(r#"{{"touser":"{FAN}","msgtype":"text","text":{{"content":"hi"}}}}"#)
        );
        let back = Message::check(json.as_bytes()).unwrap();
        assert_eq!(back, message);
    }

    #[test]
    fn typing_takes_two_commands() {
        let body = |command: &str| TypingBody {
            touser: Some(FAN.to_owned()),
            command: Some(command.to_owned()),
        };
        assert_eq!(
            body("Typing").check().unwrap().command,
            TypingCommand::Typing
        );
        assert_eq!(
            body("typing").check().unwrap_err().code,
            ErrCode::InvalidCommand
        );
        let none = TypingBody::default().check().unwrap_err();
        assert_eq!(none.code, ErrCode::InvalidOpenid);
    }
}
