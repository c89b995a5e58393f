//! Customer service sessions (docs/behaviour.md, "Sessions"):
//! `POST /customservice/kfsession/create` and `close`, and
//! `GET /customservice/kfsession/getsession`, `getsessionlist` and `getwaitcase`.
//!
//! A fan is served by no account, waits in the app's queue (after the developer's
//! server answered one of its messages with `transfer_customer_service`), or is
//! served by one account; `create` and `close` move it, and a session with no message
//! either way for [`IDLE_SECS`] ends by itself.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{RawField, check_json_body};
use crate::endpoint::{Endpoint, Group, Method, Sent};
use crate::{ErrCode, KfAccount, Openid, Refused, Status};

/// The permission sets a third-party platform needs for the session endpoints (not 19,
/// mini-program customer service).
pub const SESSION_FUNCSCOPES: &[u32] = &[1, 6, 100, 101];
/// A session with no message either way for this long ends by itself (seconds).
pub const IDLE_SECS: i64 = 30 * 60;
/// The most waiting fans `getwaitcase` lists (its `count` is the whole queue).
pub const MAX_WAIT_LISTED: usize = 100;

/// `POST /customservice/kfsession/create`.
#[derive(Debug, Clone, Copy)]
pub struct CreateSession;

impl Endpoint for CreateSession {
    const NAME: &'static str = "kf_session_create";
    const SUMMARY: &'static str = "Start serving a fan with an account";
    const GROUP: Group = Group::Sessions;
    const EXAMPLE: &'static str =
        r#"{"kf_account":"test1@test","openid":"oKefu0000000000000000000fan1"}"#;
    const METHOD: Method = Method::Post;
    const PATH: &'static str = "/customservice/kfsession/create";
    /// A second create by the same account answers 0 and changes nothing.
    const IDEMPOTENT: bool = true;
    type Request = SessionRequest;
    type Response = Status;

    fn check(sent: &Sent<'_>) -> Result<(), Refused> {
        check_json_body::<SessionBody>(sent.body)?
            .check(|_| true)
            .map(drop)
    }
}

/// `POST /customservice/kfsession/close`.
#[derive(Debug, Clone, Copy)]
pub struct CloseSession;

impl Endpoint for CloseSession {
    const NAME: &'static str = "kf_session_close";
    const SUMMARY: &'static str = "End a fan's session";
    const GROUP: Group = Group::Sessions;
    const EXAMPLE: &'static str =
        r#"{"kf_account":"test1@test","openid":"oKefu0000000000000000000fan1"}"#;
    const METHOD: Method = Method::Post;
    const PATH: &'static str = "/customservice/kfsession/close";
    type Request = SessionRequest;
    type Response = Status;

    fn check(sent: &Sent<'_>) -> Result<(), Refused> {
        check_json_body::<SessionBody>(sent.body)?
            .check(|_| true)
            .map(drop)
    }
}

/// `{"kf_account","openid"}`: the request of `create` and `close`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct SessionRequest {
    /// The account that serves.
    pub kf_account: KfAccount,
    /// The fan served.
    pub openid: Openid,
}

/// The body of `create` and `close` as a client sent it. The legacy `text` field (a
/// note shown to the account) is accepted and ignored.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SessionBody {
    /// The account, unvalidated.
    #[serde(default)]
    pub kf_account: RawField,
    /// The fan, unvalidated.
    #[serde(default)]
    pub openid: RawField,
}

impl SessionBody {
    /// Checks the openid (40003), then the account (65401, also when `belongs` says its
    /// suffix is not the app's).
    pub fn check(
        &self,
        belongs: impl FnOnce(&KfAccount) -> bool,
    ) -> Result<SessionRequest, Refused> {
        let openid = Openid::check(self.openid.as_deref().unwrap_or(""))?;
        let kf_account = KfAccount::check_for(
            self.kf_account.as_deref(),
            ErrCode::InvalidKfAccount,
            belongs,
        )?;
        Ok(SessionRequest { kf_account, openid })
    }
}

/// `GET /customservice/kfsession/getsession?openid=…`.
#[derive(Debug, Clone, Copy)]
pub struct GetSession;

impl Endpoint for GetSession {
    const NAME: &'static str = "kf_session_get";
    const SUMMARY: &'static str = "Which account serves a fan";
    const GROUP: Group = Group::Sessions;
    const EXAMPLE: &'static str = r#"{"openid":"oKefu0000000000000000000fan1"}"#;
    const METHOD: Method = Method::Get;
    const PATH: &'static str = "/customservice/kfsession/getsession";
    const IDEMPOTENT: bool = true;
    type Request = OpenidQuery;
    type Response = Session;

    fn check(sent: &Sent<'_>) -> Result<(), Refused> {
        Openid::check(sent.query("openid").unwrap_or("")).map(drop)
    }
}

/// `?openid=…`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct OpenidQuery {
    /// The fan.
    pub openid: Openid,
}

/// `{"createtime":N,"kf_account":"…"}` (no errcode): `""` and 0 when no account serves
/// the fan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Session {
    /// When the session began (Unix seconds), 0 when there is none.
    pub createtime: i64,
    /// The account serving the fan, `""` when none does.
    pub kf_account: String,
}

/// `GET /customservice/kfsession/getsessionlist?kf_account=…`.
#[derive(Debug, Clone, Copy)]
pub struct GetSessionList;

impl Endpoint for GetSessionList {
    const NAME: &'static str = "kf_session_list";
    const SUMMARY: &'static str = "The fans an account serves";
    const GROUP: Group = Group::Sessions;
    const EXAMPLE: &'static str = r#"{"kf_account":"test1@test"}"#;
    const METHOD: Method = Method::Get;
    const PATH: &'static str = "/customservice/kfsession/getsessionlist";
    const IDEMPOTENT: bool = true;
    type Request = KfAccountQuery;
    type Response = SessionList;

    fn check(sent: &Sent<'_>) -> Result<(), Refused> {
        KfAccount::check_for(sent.query("kf_account"), ErrCode::InvalidKfAccount, |_| {
            true
        })
        .map(drop)
    }
}

/// `?kf_account=…`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct KfAccountQuery {
    /// The account.
    pub kf_account: KfAccount,
}

/// `{"sessionlist":[…]}` (no errcode), oldest session first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SessionList {
    /// The sessions.
    pub sessionlist: Vec<SessionItem>,
}

/// One fan an account serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SessionItem {
    /// When the session began (Unix seconds).
    pub createtime: i64,
    /// The fan.
    pub openid: String,
}

/// `GET /customservice/kfsession/getwaitcase`.
#[derive(Debug, Clone, Copy)]
pub struct GetWaitCase;

impl Endpoint for GetWaitCase {
    const NAME: &'static str = "kf_wait_case";
    const SUMMARY: &'static str = "The fans waiting for an account";
    const GROUP: Group = Group::Sessions;
    const EXAMPLE: &'static str = r#"{}"#;
    const METHOD: Method = Method::Get;
    const PATH: &'static str = "/customservice/kfsession/getwaitcase";
    const IDEMPOTENT: bool = true;
    type Request = ();
    type Response = WaitCase;
}

/// `{"count":N,"waitcaselist":[…]}` (no errcode): the first [`MAX_WAIT_LISTED`] waiting
/// fans in the order they arrived, and how many wait in all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WaitCase {
    /// How many fans wait.
    pub count: u64,
    /// The first of them.
    pub waitcaselist: Vec<Waiting>,
}

/// One waiting fan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Waiting {
    /// The time of the fan's latest message (Unix seconds).
    pub latest_time: i64,
    /// The fan.
    pub openid: String,
}
