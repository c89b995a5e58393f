//! What the web console adds to the admin surface (README, "Console"): the catalog and
//! the errcode table as JSON, the contract's check of a request before it is sent, a
//! console token for an app, the request log's filters and its live stream.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{ErrCode, Rid};

/// `GET` every WeChat endpoint of the catalog ([`crate::catalog::EntryView`]).
pub const CATALOG: &str = "/kefu/v1/catalog";
/// `POST` a [`CheckRequest`]: the contract's own check of a request to the endpoint
/// `{name}`, made before it is sent ([`CheckAnswer`]).
pub const CATALOG_CHECK: &str = "/kefu/v1/catalog/{name}/check";
/// `GET` the errcode table: every errcode kefu answers, with its meaning ([`ErrcodeView`]).
pub const ERRCODES: &str = "/kefu/v1/errcodes";
/// `GET` the app's tokens ([`TokenView`]); `POST` mints a console token ([`ConsoleToken`]),
/// or with an [`AppTokenAction`] invalidates or expires one.
pub const APP_TOKENS: &str = "/kefu/v1/apps/{appid}/tokens";
/// `GET` the request log as it is written: server-sent events, `event: call` with a
/// [`crate::admin::RequestLogEntry`] as data, `event: dropped` when a slow reader missed
/// calls ([`StreamDropped`]).
pub const REQUESTS_STREAM: &str = "/kefu/v1/requests/stream";

/// The page the web console is served under (not part of `/kefu/v1`).
pub const CONSOLE: &str = "/kefu/console/";

/// The seconds a console token lasts, as an access_token does.
pub const CONSOLE_TOKEN_SECS: u64 = 7200;

/// How many calls wait for a slow reader of the stream before the next ones are dropped.
pub const STREAM_QUEUE: usize = 256;

/// One row of the errcode table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrcodeView {
    /// The errcode.
    pub errcode: i64,
    /// The errmsg WeChat answers with it.
    pub errmsg: String,
    /// What it means, in words.
    pub meaning: String,
}

impl ErrcodeView {
    /// The whole table, in the contract's order.
    #[must_use]
    pub fn table() -> Vec<ErrcodeView> {
        ErrCode::ALL
            .iter()
            .map(|code| ErrcodeView {
                errcode: code.code(),
                errmsg: code.errmsg().to_owned(),
                meaning: code.meaning().to_owned(),
            })
            .collect()
    }
}

/// `POST /kefu/v1/catalog/{name}/check`: a request as it would be sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CheckRequest {
    /// The query parameters, in order (without `access_token`, which the check ignores).
    #[serde(default)]
    pub query: Vec<(String, String)>,
    /// The body as it would be sent, byte for byte (JSON, or empty).
    #[serde(default)]
    pub body: String,
}

/// What the contract's check says of a [`CheckRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CheckAnswer {
    /// `true` when the contract finds nothing wrong.
    pub ok: bool,
    /// The errcode kefu would answer (0 when `ok`).
    pub errcode: i64,
    /// What is wrong, in words (empty when `ok`).
    pub reason: String,
}

/// `POST /kefu/v1/apps/{appid}/tokens`: a token of the console's own family. It works
/// wherever an access_token does, for [`CONSOLE_TOKEN_SECS`], costs no quota and
/// supersedes only the previous console token (docs/behaviour.md, "Console tokens").
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ConsoleToken {
    /// The token.
    pub access_token: crate::Secret,
    /// Seconds it lasts.
    pub expires_in: u64,
}

/// `POST /kefu/v1/apps/{appid}/tokens` with a body: invalidate or expire one of the
/// app's tokens, named by its value or by the hash [`TokenView`] shows. An empty body
/// (or `{}`) mints a console token instead.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct AppTokenAction {
    /// What to do; minting a console token when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<super::TokenVerdict>,
    /// The token's hash (64 hex digits), as [`TokenView::hash`] shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// Or the token itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<crate::Secret>,
}

/// One token of an app (`GET /kefu/v1/apps/{appid}/tokens`, newest first): never the
/// token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TokenView {
    /// SHA-256 of the token, in hex: how an action names it.
    pub hash: String,
    /// Its family: `token` (`/cgi-bin/token`), `stable`, `authorizer` or `console`.
    pub kind: String,
    /// The platform an authorizer token was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_appid: Option<String>,
    /// When it was issued (Unix seconds, server clock).
    pub issued_at: i64,
    /// From when it answers 40001 (a newer one came: the end of its grace), if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_at: Option<i64>,
    /// From when it answers 42001.
    pub expires_at: i64,
    /// At the server clock's now: `live`, `in_grace` (superseded, still working),
    /// `superseded` or `expired`.
    pub state: String,
}

/// The most tokens `GET /kefu/v1/apps/{appid}/tokens` shows.
pub const MAX_TOKENS_SHOWN: usize = 200;

/// `GET /kefu/v1/requests` query: which of the newest calls to show. Every filter
/// given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RequestFilter {
    /// The app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    /// The WeChat path, exactly (`/cgi-bin/customservice/kfaccount/add`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The errcode answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errcode: Option<i64>,
    /// A rid, or a whole errmsg ending in `rid: …` ([`rid_of`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rid: Option<String>,
    /// The most calls answered (100 when absent, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// The rid a person pasted: a rid alone, or a whole errmsg (`… rid: 6b0f…`), or a
/// whole answer body holding such an errmsg. `None` when it holds none.
#[must_use]
pub fn rid_of(pasted: &str) -> Option<Rid> {
    let pasted = pasted.trim();
    if let Ok(rid) = pasted.parse() {
        return Some(rid);
    }
    let (_, tail) = pasted.rsplit_once("rid: ")?;
    let end = tail
        .find(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
        .unwrap_or(tail.len());
    tail[..end].parse().ok()
}

/// The most entries of each kind [`Lapsed`] lists.
pub const MAX_LAPSED: usize = 200;

/// What lapsed while the test clock moved from one time to another (the answer to
/// `POST /kefu/v1/clock`): tokens that expired or whose grace ended, invitations that
/// ran out, and the daily quota counters that started afresh.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Lapsed {
    /// The clock before the move (Unix seconds).
    pub from: i64,
    /// The clock after it.
    pub to: i64,
    /// Tokens that stopped working, by the time they did.
    pub tokens: Vec<LapsedToken>,
    /// Invitations that ran out unanswered.
    pub invitations: Vec<LapsedInvitation>,
    /// Daily quota counters of a day that ended, with what had been used.
    pub quotas: Vec<LapsedQuota>,
    /// Whether a list was cut at [`MAX_LAPSED`] entries, or apps were left unexamined.
    pub truncated: bool,
}

/// A token that stopped working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LapsedToken {
    /// Its app (or platform).
    pub appid: String,
    /// Its family, as [`TokenView::kind`].
    pub kind: String,
    /// Its hash in hex, as [`TokenView::hash`].
    pub hash: String,
    /// `expired` (42001 from then) or `superseded` (its grace ended: 40001).
    pub what: String,
    /// When.
    pub at: i64,
}

/// An invitation that ran out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LapsedInvitation {
    /// The app.
    pub appid: String,
    /// The account.
    pub kf_account: String,
    /// The invited WeChat ID.
    pub invite_wx: String,
    /// When it ran out.
    pub at: i64,
}

/// A daily quota counter whose day ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LapsedQuota {
    /// The app.
    pub appid: String,
    /// The counted API.
    pub path: String,
    /// The calls it had counted that day.
    pub used: u64,
}

/// The data of an `event: dropped` of the stream: how many calls this reader missed
/// because it read too slowly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StreamDropped {
    /// Calls missed since the last event.
    pub dropped: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rid_is_found_alone_in_an_errmsg_or_in_a_body() {
        let rid = "5f0b1b2c-1a2b3c4d-5e6f7a8b";
        assert_eq!(rid_of(rid).map(|r| r.to_string()).as_deref(), Some(rid));
        let errmsg =
            format!("invalid credential, access_token is invalid or not latest rid: {rid}");
        assert_eq!(rid_of(&errmsg).map(|r| r.to_string()).as_deref(), Some(rid));
        let body = format!(r#"{{"errcode":40001,"errmsg":"invalid credential rid: {rid}"}}"#);
        assert_eq!(rid_of(&body).map(|r| r.to_string()).as_deref(), Some(rid));
        assert_eq!(rid_of("no rid here"), None);
        assert_eq!(rid_of("rid: zz"), None);
    }

    #[test]
    fn the_table_has_every_errcode_with_a_meaning() {
        let table = ErrcodeView::table();
        assert_eq!(table.len(), ErrCode::ALL.len());
        let invalid_json = table
            .iter()
            .find(|row| row.errcode == 47001)
            .expect("47001");
        assert!(!invalid_json.meaning.is_empty());
    }
}
