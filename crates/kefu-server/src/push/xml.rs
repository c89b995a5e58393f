//! The XML of WeChat's pushes and of the developer's replies (docs/behaviour.md,
//! "Pushes"): written by hand (every value in CDATA), read with quick-xml.

use std::collections::HashMap;

use quick_xml::events::Event;
use quick_xml::reader::Reader;

/// Appends `<name><![CDATA[value]]></name>`; a `]]>` in the value is split across two
/// sections, as XML requires.
fn cdata(out: &mut String, name: &str, value: &str) {
    out.push('<');
    out.push_str(name);
    out.push_str("><![CDATA[");
    out.push_str(&value.replace("]]>", "]]]]><![CDATA[>"));
    out.push_str("]]></");
    out.push_str(name);
    out.push('>');
}

/// Appends `<name>number</name>`.
fn number(out: &mut String, name: &str, value: i64) {
    out.push_str(&format!("<{name}>{value}</{name}>"));
}

/// What a push tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Body {
    /// A text message.
    Text {
        /// The text.
        content: String,
        /// Its id.
        msg_id: u64,
    },
    /// A media message: `image`, `voice` or `video`.
    Media {
        /// `image`, `voice` or `video`.
        kind: &'static str,
        /// The media id made for it.
        media_id: String,
        /// Its id.
        msg_id: u64,
    },
    /// An event: `subscribe`, `unsubscribe`, `SCAN`, `CLICK`.
    Event {
        /// The event.
        event: &'static str,
        /// Its `EventKey`, if any.
        key: Option<String>,
        /// A QR code's ticket, for scans.
        ticket: Option<String>,
    },
    /// A session began (`kf_create_session`) or ended (`kf_close_session`).
    Session {
        /// `kf_create_session` or `kf_close_session`.
        event: &'static str,
        /// The account.
        kf_account: String,
    },
}

/// The plain XML of a push from the fan `from` to the official account `to` (its
/// original id), at `at`.
#[must_use]
pub(crate) fn push(to: &str, from: &str, at: i64, body: &Body) -> String {
    let mut out = String::with_capacity(320);
    out.push_str("<xml>");
    cdata(&mut out, "ToUserName", to);
    cdata(&mut out, "FromUserName", from);
    number(&mut out, "CreateTime", at);
    match body {
        Body::Text { content, msg_id } => {
            cdata(&mut out, "MsgType", "text");
            cdata(&mut out, "Content", content);
            out.push_str(&format!("<MsgId>{msg_id}</MsgId>"));
        }
        Body::Media {
            kind,
            media_id,
            msg_id,
        } => {
            cdata(&mut out, "MsgType", kind);
            match *kind {
                "image" => {
                    cdata(
                        &mut out,
                        "PicUrl",
                        &format!("http://mmbiz.qpic.cn/kefu/{media_id}"),
                    );
                    cdata(&mut out, "MediaId", media_id);
                }
                "voice" => {
                    cdata(&mut out, "MediaId", media_id);
                    cdata(&mut out, "Format", "amr");
                }
                _ => {
                    cdata(&mut out, "MediaId", media_id);
                    cdata(&mut out, "ThumbMediaId", &format!("{media_id}_thumb"));
                }
            }
            out.push_str(&format!("<MsgId>{msg_id}</MsgId>"));
        }
        Body::Event { event, key, ticket } => {
            cdata(&mut out, "MsgType", "event");
            cdata(&mut out, "Event", event);
            if let Some(key) = key {
                cdata(&mut out, "EventKey", key);
            }
            if let Some(ticket) = ticket {
                cdata(&mut out, "Ticket", ticket);
            }
        }
        Body::Session { event, kf_account } => {
            cdata(&mut out, "MsgType", "event");
            cdata(&mut out, "Event", event);
            cdata(&mut out, "KfAccount", kf_account);
        }
    }
    out.push_str("</xml>");
    out
}

/// The body of a safe-mode push: the official account and the encrypted XML.
#[must_use]
pub(crate) fn encrypted(to: &str, encrypt: &str) -> String {
    let mut out = String::with_capacity(encrypt.len() + 96);
    out.push_str("<xml>");
    cdata(&mut out, "ToUserName", to);
    cdata(&mut out, "Encrypt", encrypt);
    out.push_str("</xml>");
    out
}

/// The body of a compatible-mode push: the plain XML with the encrypted copy inside.
#[must_use]
pub(crate) fn compatible(plain: &str, encrypt: &str) -> String {
    let mut encrypted = String::with_capacity(encrypt.len() + 32);
    cdata(&mut encrypted, "Encrypt", encrypt);
    match plain.strip_suffix("</xml>") {
        Some(head) => format!("{head}{encrypted}</xml>"),
        None => plain.to_owned(),
    }
}

/// The text of an XML document's elements by their path below the root
/// (`MsgType`, `TransInfo/KfAccount`); `Err` when it is not well-formed XML.
pub(crate) fn fields(xml: &str) -> Result<HashMap<String, String>, String> {
    let mut reader = Reader::from_str(xml);
    let mut path: Vec<String> = Vec::new();
    let mut fields = HashMap::new();
    let key = |path: &[String]| path.iter().skip(1).cloned().collect::<Vec<_>>().join("/");
    let mut depth_seen = false;
    loop {
        match reader.read_event() {
            Ok(Event::Start(start)) => {
                depth_seen = true;
                path.push(start.name().as_ref().to_owned());
            }
            Ok(Event::Empty(_)) => depth_seen = true,
            Ok(Event::End(_)) => {
                path.pop();
            }
            Ok(Event::Text(text)) => {
                if path.len() > 1 {
                    fields
                        .entry(key(&path))
                        .or_insert_with(String::new)
                        .push_str(&text.xml10_content());
                }
            }
            Ok(Event::CData(data)) => {
                if path.len() > 1 {
                    fields
                        .entry(key(&path))
                        .or_insert_with(String::new)
                        .push_str(&data.xml10_content());
                }
            }
            Ok(Event::GeneralRef(reference)) => {
                if path.len() > 1 {
                    let name = reference.xml10_content();
                    let resolved =
                        entity(&name).ok_or_else(|| format!("unknown entity &{name};"))?;
                    fields
                        .entry(key(&path))
                        .or_insert_with(String::new)
                        .push(resolved);
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(error) => return Err(format!("not XML: {error}")),
        }
    }
    if !depth_seen || !path.is_empty() {
        return Err("not an XML document".to_owned());
    }
    Ok(fields)
}

/// The character an entity reference names.
fn entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let code = match name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => name.strip_prefix('#')?.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

/// What the developer's server answered a push with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `transfer_customer_service`: to the queue, or to the account named.
    Transfer {
        /// `TransInfo/KfAccount`, if given.
        kf_account: Option<String>,
    },
    /// A passive reply to the fan, as the history shows it.
    Message {
        /// Its `MsgType`.
        msgtype: String,
        /// The history's text: a text's content, `[image]`… for the rest.
        text: String,
    },
}

/// Reads a plain reply.
pub(crate) fn reply(fields: &HashMap<String, String>) -> Result<Reply, String> {
    let msgtype = fields
        .get("MsgType")
        .map(|t| t.trim().to_owned())
        .ok_or("the reply has no MsgType")?;
    match msgtype.as_str() {
        "transfer_customer_service" => Ok(Reply::Transfer {
            kf_account: fields
                .get("TransInfo/KfAccount")
                .map(|k| k.trim().to_owned())
                .filter(|k| !k.is_empty()),
        }),
        "text" => Ok(Reply::Message {
            text: fields.get("Content").cloned().unwrap_or_default(),
            msgtype,
        }),
        "image" | "voice" | "video" | "music" | "news" => Ok(Reply::Message {
            text: format!("[{msgtype}]"),
            msgtype,
        }),
        other => Err(format!("MsgType {other:?} is not a reply WeChat delivers")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_push_reads_back_field_by_field() {
        let xml = push(
            "gh_0123456789ab",
            "fan1",
            1700000000,
            &Body::Text {
                content: "a ]]> b & <c>".to_owned(),
                msg_id: 42,
            },
        );
        let read = fields(&xml).unwrap();
        assert_eq!(read["ToUserName"], "gh_0123456789ab");
        assert_eq!(read["FromUserName"], "fan1");
        assert_eq!(read["CreateTime"], "1700000000");
        assert_eq!(read["MsgType"], "text");
        assert_eq!(read["Content"], "a ]]> b & <c>");
        assert_eq!(read["MsgId"], "42");
        let session = push(
            "gh_0123456789ab",
            "fan1",
            1,
            &Body::Session {
                event: "kf_create_session",
                kf_account: "a@test".to_owned(),
            },
        );
        assert_eq!(fields(&session).unwrap()["KfAccount"], "a@test");
        let both = compatible(&session, "SEALED");
        assert_eq!(fields(&both).unwrap()["Encrypt"], "SEALED");
        assert_eq!(fields(&both).unwrap()["Event"], "kf_create_session");
    }

    #[test]
    fn wechatpys_transfer_with_an_account_is_read() {
        let answer = "<xml>\n<MsgType><![CDATA[transfer_customer_service]]></MsgType>\n\
            <FromUserName><![CDATA[gh_1]]></FromUserName>\n<ToUserName><![CDATA[f]]></ToUserName>\n\
            <CreateTime>1796536541</CreateTime>\n<TransInfo><KfAccount><![CDATA[a@shop]]>\
            </KfAccount></TransInfo></xml>";
        assert_eq!(
            reply(&fields(answer).unwrap()),
            Ok(Reply::Transfer {
                kf_account: Some("a@shop".to_owned())
            })
        );
    }

    #[test]
    fn replies_are_told_apart() {
        let transfer = "<xml><ToUserName><![CDATA[fan]]></ToUserName><MsgType>\
            <![CDATA[transfer_customer_service]]></MsgType><TransInfo><KfAccount>\
            <![CDATA[a@test]]></KfAccount></TransInfo></xml>";
        assert_eq!(
            reply(&fields(transfer).unwrap()),
            Ok(Reply::Transfer {
                kf_account: Some("a@test".to_owned())
            })
        );
        let text = "<xml><MsgType>text</MsgType><Content>1 &lt; 2 &#x4e2d;</Content></xml>";
        assert_eq!(
            reply(&fields(text).unwrap()),
            Ok(Reply::Message {
                msgtype: "text".to_owned(),
                text: "1 < 2 中".to_owned()
            })
        );
        assert!(fields("not xml <").is_err());
        assert!(fields("success").is_err());
        assert!(reply(&fields("<xml><MsgType>dance</MsgType></xml>").unwrap()).is_err());
    }
}
