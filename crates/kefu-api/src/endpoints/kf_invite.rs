//! `POST /customservice/kfaccount/inviteworker`: invite a WeChat user to bind an account.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::RawField;
use super::check_json_body;
use crate::endpoint::{Endpoint, Group, Method, Sent};
use crate::{ErrCode, KfAccount, Refused, Status, WechatId};

/// How long an invitation waits for an answer, in seconds (7 days).
pub const INVITE_TTL_SECS: i64 = 7 * 24 * 3600;
/// How many kf accounts one WeChat user may be bound to.
pub const MAX_BOUND_PER_WORKER: usize = 5;

/// The endpoint.
#[derive(Debug, Clone, Copy)]
pub struct InviteWorker;

impl Endpoint for InviteWorker {
    const NAME: &'static str = "kf_invite";
    const SUMMARY: &'static str = "Invite a WeChat user to bind an account";
    const GROUP: Group = Group::KfAccounts;
    const EXAMPLE: &'static str = r#"{"kf_account":"test1@test","invite_wx":"worker_one"}"#;
    const METHOD: Method = Method::Post;
    const PATH: &'static str = "/customservice/kfaccount/inviteworker";
    type Request = Request;
    type Response = Status;

    fn check(sent: &Sent<'_>) -> Result<(), Refused> {
        check_json_body::<Body>(sent.body)?
            .check(|_| true)
            .map(drop)
    }
}

/// `{kf_account, invite_wx}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Request {
    /// The account to bind.
    pub kf_account: KfAccount,
    /// The WeChat ID of the person invited.
    pub invite_wx: WechatId,
}

/// The body as a client sent it.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct Body {
    /// The account, unvalidated.
    #[serde(default)]
    pub kf_account: RawField,
    /// The WeChat ID, unvalidated.
    #[serde(default)]
    pub invite_wx: RawField,
}

impl Body {
    /// Validates the account (65401, also when `belongs` says its suffix is not the
    /// app's), then the WeChat ID (65409).
    pub fn validate(&self, belongs: impl FnOnce(&KfAccount) -> bool) -> Result<Request, ErrCode> {
        self.check(belongs).map_err(ErrCode::from)
    }

    /// [`Body::validate`], saying which rule the body breaks.
    pub fn check(&self, belongs: impl FnOnce(&KfAccount) -> bool) -> Result<Request, Refused> {
        let kf_account = KfAccount::check_for(
            self.kf_account.as_deref(),
            ErrCode::InvalidKfAccount,
            belongs,
        )?;
        let invite_wx = WechatId::check(self.invite_wx.as_deref().unwrap_or(""))?;
        Ok(Request {
            kf_account,
            invite_wx,
        })
    }
}
