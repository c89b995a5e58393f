//! What the request log keeps of a WeChat call, and how it shows it: tokens shortened,
//! secrets hidden, everything cut to a bounded size. A call is recorded as it came, as
//! cheap copies; masking and formatting wait until someone reads it or it is written,
//! except for what is long, which is cut (and so masked) at once, so that a call costs
//! the log at most a few KiB whatever its size.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use axum::http::Method;
use kefu_store::{CallDetails, LoggedRequest, RecordedCall};

/// How much of a body the request log keeps.
pub(crate) const LOGGED_BODY_BYTES: usize = 2 * 1024;
/// How much of a path and query the request log keeps.
pub(crate) const LOGGED_URL_BYTES: usize = 1024;

/// A text as the request log keeps it: cut to [`LOGGED_BODY_BYTES`].
pub(crate) fn truncated(text: &str) -> String {
    if text.len() <= LOGGED_BODY_BYTES {
        return text.to_owned();
    }
    let mut end = LOGGED_BODY_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…({} bytes)", &text[..end], text.len())
}

/// How the log shows the value of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shown {
    /// As it is.
    Plain,
    /// A token: its first 6 characters, enough to tell tokens apart.
    Token,
    /// A secret, ticket, refresh token or password: never shown at all.
    Hidden,
}

/// Words that make a key's value hidden, and the one that makes it a token. A key is
/// judged by what the parser understood (escapes and percent-encoding decoded), in any
/// case and with surrounding blanks, so that no spelling of `secret` slips through;
/// hiding a harmless value that happens to match costs nothing.
const HIDDEN_WORDS: &[&str] = &["secret", "ticket", "refresh", "password", "aeskey"];
const TOKEN_WORD: &str = "token";

/// How the value of `key` is shown.
fn shown(key: &str) -> Shown {
    let key = key.trim().to_ascii_lowercase();
    if HIDDEN_WORDS.iter().any(|word| key.contains(word)) {
        Shown::Hidden
    } else if key.contains(TOKEN_WORD) {
        Shown::Token
    } else {
        Shown::Plain
    }
}

/// The value of `key` as the log shows it.
fn mask<'a>(key: &str, value: &'a str) -> Cow<'a, str> {
    match shown(key) {
        Shown::Hidden => "***".into(),
        Shown::Token => format!("{}***", value.chars().take(6).collect::<String>()).into(),
        Shown::Plain => value.into(),
    }
}

/// The query with tokens and secrets masked.
fn masked_query(query: &str) -> String {
    masked_query_within(query, usize::MAX)
}

/// The query with tokens and secrets masked, cut once it is `cap` bytes long (the pairs
/// past the cut are not even decoded).
fn masked_query_within(query: &str, cap: usize) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    let mut len = 0_usize;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if len >= cap {
            let mut text = out.finish();
            cut_at(&mut text, cap);
            text.push_str(&format!("…({} bytes)", query.len()));
            return text;
        }
        let value = mask(&key, &value);
        len += key.len() + value.len() + 2;
        out.append_pair(&key, &value);
    }
    let mut text = out.finish();
    if text.len() > cap {
        cut_at(&mut text, cap);
        text.push_str(&format!("…({} bytes)", query.len()));
    }
    text
}

/// Cuts `text` to at most `cap` bytes, on a character boundary.
fn cut_at(text: &mut String, cap: usize) {
    if text.len() > cap {
        let mut end = cap;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// Masks every value under a sensitive key, at any depth; a value that is not a string
/// under a hidden or token key is hidden whole.
fn mask_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(object) => {
            for (key, value) in object.iter_mut() {
                match (shown(key), &*value) {
                    (Shown::Plain, _) => mask_json(value),
                    (Shown::Token, serde_json::Value::String(text)) => {
                        *value = serde_json::Value::String(mask(key, text).into_owned());
                    }
                    (Shown::Hidden | Shown::Token, _) => {
                        *value = serde_json::Value::String("***".to_owned());
                    }
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask_json),
        _ => {}
    }
}

/// Whether `bytes` may name a sensitive key: a sensitive word in any case, or an escape
/// (`\u0065` spells `e`), which only parsing can see through.
fn may_name_a_secret(bytes: &[u8]) -> bool {
    if memchr::memchr(b'\\', bytes).is_some() {
        return true;
    }
    let lower = bytes.to_ascii_lowercase();
    HIDDEN_WORDS
        .iter()
        .chain(std::iter::once(&TOKEN_WORD))
        .any(|word| memchr::memmem::find(&lower, word.as_bytes()).is_some())
}

/// A body for the log: a JSON object with tokens and secrets masked, truncated.
/// Anything else (which could hold a secret the masking cannot find) is only
/// described.
fn masked_body(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return String::new();
    }
    // Most bodies name no token or secret in the part that is kept: keep that part as
    // it is, without parsing (a long list is only searched as far as it is logged).
    let kept = &bytes[..bytes.len().min(LOGGED_BODY_BYTES)];
    if !may_name_a_secret(kept)
        && bytes.first() == Some(&b'{')
        && let Some(text) = utf8_prefix(kept)
    {
        return if bytes.len() > kept.len() {
            format!("{text}…({} bytes)", bytes.len())
        } else {
            text.to_owned()
        };
    }
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(mut value @ serde_json::Value::Object(_)) => {
            mask_json(&mut value);
            truncated(&value.to_string())
        }
        _ => format!("<{} bytes, not a JSON object>", bytes.len()),
    }
}

/// `bytes` as text, less a character cut at the end; `None` when they are not UTF-8.
fn utf8_prefix(bytes: &[u8]) -> Option<&str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Some(text),
        Err(error) if error.error_len().is_none() => {
            std::str::from_utf8(&bytes[..error.valid_up_to()]).ok()
        }
        Err(_) => None,
    }
}

/// What a call's record is made of, beside its rid, app, errcode and time: cheap copies
/// of what came and went, made into text when someone reads it.
pub(crate) struct Details {
    pub(crate) cost_ms: i64,
    pub(crate) method: Method,
    pub(crate) path: &'static str,
    pub(crate) query: KeptQuery,
    pub(crate) request_body: KeptBody,
    pub(crate) response_body: KeptBody,
    pub(crate) client_ip: IpAddr,
    /// Why a failure was answered (`None` for a success).
    pub(crate) reason: Option<Cow<'static, str>>,
}

impl Details {
    /// About how many bytes the record holds (what the log's memory bound counts).
    pub(crate) fn size(&self) -> usize {
        const FIXED: usize = 256;
        FIXED
            + self.query.size()
            + self.request_body.size()
            + self.response_body.size()
            + self.reason.as_ref().map_or(0, |r| r.len())
    }
}

impl CallDetails for Details {
    fn render(&self, call: &RecordedCall) -> LoggedRequest {
        let query = self.query.shown();
        let request_url = if query.is_empty() {
            self.path.to_owned()
        } else {
            format!("{}?{query}", self.path)
        };
        LoggedRequest {
            rid: call.rid.clone(),
            appid: call.appid.clone(),
            method: self.method.to_string(),
            path: self.path.to_owned(),
            errcode: call.errcode,
            invoke_time: call.invoke_time,
            cost_ms: self.cost_ms,
            request_url,
            request_body: self.request_body.shown(),
            response_body: self.response_body.shown(),
            client_ip: self.client_ip.to_string(),
            reason: self.reason.as_deref().unwrap_or("").to_owned(),
        }
    }

    fn size(&self) -> usize {
        Details::size(self)
    }
}

/// A query string as a recorded call keeps it.
pub(crate) enum KeptQuery {
    /// A short one, copied and masked when read: the request's own `Uri` is a view into
    /// the connection's read buffer, which keeping it would keep from being reused.
    Whole(Box<str>),
    /// A long one, masked and cut at once.
    Shown(Box<str>),
}

impl KeptQuery {
    pub(crate) fn of(query: &str) -> KeptQuery {
        if query.len() <= LOGGED_URL_BYTES {
            KeptQuery::Whole(query.into())
        } else {
            KeptQuery::Shown(masked_query_within(query, LOGGED_URL_BYTES).into())
        }
    }

    fn shown(&self) -> String {
        match self {
            KeptQuery::Whole(query) => masked_query(query),
            KeptQuery::Shown(text) => text.to_string(),
        }
    }

    fn size(&self) -> usize {
        match self {
            KeptQuery::Whole(text) | KeptQuery::Shown(text) => text.len(),
        }
    }
}

/// A body as a recorded call keeps it.
pub(crate) enum KeptBody {
    /// A short body, copied whole and masked when read.
    Whole(Box<[u8]>),
    /// A long body (an upload, a long list) as the log shows it, made at once: the log
    /// shows only its start. Shared by the calls that answered the same text.
    Shown(Arc<str>),
}

impl KeptBody {
    pub(crate) fn of(bytes: &[u8]) -> KeptBody {
        if bytes.len() <= LOGGED_BODY_BYTES {
            KeptBody::Whole(bytes.into())
        } else {
            KeptBody::Shown(masked_body(bytes).into())
        }
    }

    /// An answer's body: the text made for it already, when the answer carries one.
    pub(crate) fn of_answer(bytes: &[u8], logged: Option<&Arc<str>>) -> KeptBody {
        match logged {
            Some(text) => KeptBody::Shown(Arc::clone(text)),
            None => KeptBody::of(bytes),
        }
    }

    fn shown(&self) -> String {
        match self {
            KeptBody::Whole(bytes) => masked_body(bytes),
            KeptBody::Shown(text) => text.to_string(),
        }
    }

    fn size(&self) -> usize {
        match self {
            KeptBody::Whole(bytes) => bytes.len(),
            // Shared text counts once per call: a bound that errs high.
            KeptBody::Shown(text) => text.len(),
        }
    }
}

/// How a long body shows in the log: what a cached answer keeps beside its bytes.
pub(crate) fn shown_body(bytes: &[u8]) -> Option<Arc<str>> {
    (bytes.len() > LOGGED_BODY_BYTES).then(|| masked_body(bytes).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked() {
        let query = masked_query("access_token=76_abcdefghijkl&kf_account=a%40b");
        assert_eq!(query, "access_token=76_abc***&kf_account=a%40b");
        let body = masked_body(br#"{"appid":"wx1","secret":"0123456789abcdef"}"#);
        assert!(body.contains(r#""secret":"***""#), "{body}");
        assert!(!body.contains("012345"), "{body}");
        assert_eq!(
            masked_body(&[0xFF, 0xD8, 0xFF, 0]),
            "<4 bytes, not a JSON object>"
        );
        assert_eq!(
            masked_body(br#"{"secret":"0123456789abc"#),
            "<24 bytes, not a JSON object>"
        );
        let secret_query = masked_query("appid=wx1&secret=0123456789abcdef");
        assert_eq!(secret_query, "appid=wx1&secret=***");
    }

    #[test]
    fn a_secret_is_masked_however_its_key_is_spelled() {
        const S: &str = "0123456789abcdef";
        for body in [
            format!(r#"{{"appid":"wx1","secr\u0065t":"{S}"}}"#),
            format!(r#"{{"appid":"wx1","\u0073\u0065\u0063\u0072\u0065\u0074":"{S}"}}"#),
            format!(r#"{{"appid":"wx1","SECRET":"{S}"}}"#),
            format!(r#"{{"appid":"wx1","Component_AppSecret":"{S}"}}"#),
            format!(r#"{{"appid":"wx1"," secret ":"{S}"}}"#),
            format!(r#"{{"nested":{{"list":[{{"secret":"{S}"}}]}}}}"#),
            format!(r#"{{"secret":["{S}"]}}"#),
            format!(r#"{{"authorizer_refresh_token":"{S}"}}"#),
            format!(r#"{{"component_verify_ticket":"{S}"}}"#),
        ] {
            let logged = masked_body(body.as_bytes());
            assert!(!logged.contains(S), "{body} logged as {logged}");
            assert!(logged.contains("***"), "{logged}");
        }
        for query in [
            format!("appid=wx1&secr%65t={S}"),
            format!("appid=wx1&SECRET={S}"),
            format!("appid=wx1&%73ecret={S}"),
            format!("appid=wx1&secret+={S}"),
            format!("component_verify_ticket={S}"),
        ] {
            let logged = masked_query(&query);
            assert!(!logged.contains(S), "{query} logged as {logged}");
        }
        // A token keeps its first 6 characters, however its key is spelled.
        assert_eq!(
            masked_body(br#"{"access_tok\u0065n":"76_abcdefghijkl"}"#),
            r#"{"access_token":"76_abc***"}"#
        );
        assert_eq!(
            masked_query("Access_Token=76_abcdefghijkl"),
            "Access_Token=76_abc***"
        );
        // Harmless bodies are kept as they came.
        let plain = r#"{"kf_account":"test1@test","nickname":"客服1"}"#;
        assert_eq!(masked_body(plain.as_bytes()), plain);
    }

    #[test]
    fn a_long_query_is_cut_and_still_masked() {
        let pad = "x".repeat(60 * 1024);
        let query = format!("grant_type=client_credential&secret=0123456789abcdef&pad={pad}");
        let kept = KeptQuery::of(&query);
        assert!(kept.size() < LOGGED_URL_BYTES + 32, "{}", kept.size());
        let shown = kept.shown();
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(shown.starts_with("grant_type=client_credential&secret=***&pad=xxx"));
        assert!(
            shown.ends_with(&format!("…({} bytes)", query.len())),
            "{shown}"
        );
        // A secret past the cut is never decoded, let alone shown.
        let late = format!("pad={pad}&secret=0123456789abcdef");
        assert!(!KeptQuery::of(&late).shown().contains("0123456789abcdef"));
    }

    #[test]
    fn long_bodies_are_cut_and_still_masked() {
        let filler = "x".repeat(3 * LOGGED_BODY_BYTES);
        // A secret early in a long body is masked (or cut); the cut keeps the start.
        let early = format!(r#"{{"secret":"0123456789abcdef","pad":"{filler}"}}"#);
        let logged = masked_body(early.as_bytes());
        assert!(!logged.contains("0123456789abcdef"));
        assert!(logged.len() < LOGGED_BODY_BYTES + 32 && logged.ends_with(" bytes)"));
        // A secret past the cut never reaches the log.
        let late = format!(r#"{{"pad":"{filler}","secret":"0123456789abcdef"}}"#);
        let logged = masked_body(late.as_bytes());
        assert!(!logged.contains("0123456789abcdef"));
        assert!(logged.starts_with(r#"{"pad":"xxx"#));
        assert!(
            logged.ends_with(&format!("…({} bytes)", late.len())),
            "{}",
            &logged[logged.len() - 30..]
        );
    }
}
