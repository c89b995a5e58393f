//! `GET /cgi-bin/customservice/getkflist`: list the app's customer service accounts.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::endpoint::{Endpoint, Group, Method};

/// The endpoint.
#[derive(Debug, Clone, Copy)]
pub struct GetKfList;

impl Endpoint for GetKfList {
    const NAME: &'static str = "kf_list";
    const SUMMARY: &'static str = "List the accounts";
    const GROUP: Group = Group::KfAccounts;
    const EXAMPLE: &'static str = r#"{}"#;
    const METHOD: Method = Method::Get;
    const PATH: &'static str = "/cgi-bin/customservice/getkflist";
    /// The newest wechatpy calls the path without `/cgi-bin`.
    const ALIASES: &'static [&'static str] = &["/customservice/getkflist"];
    const IDEMPOTENT: bool = true;
    type Request = ();
    type Response = KfList;
}

/// `{"kf_list":[…]}` (no errcode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KfList {
    /// The accounts, oldest first.
    pub kf_list: Vec<KfInfo>,
}

/// One account as the list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KfInfo {
    /// `prefix@suffix`.
    pub kf_account: String,
    /// The nickname.
    pub kf_nick: String,
    /// The numeric id (a JSON number).
    pub kf_id: i64,
    /// The head image URL, `""` when none.
    pub kf_headimgurl: String,
    /// The bound WeChat user, only when bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kf_wx: Option<String>,
    /// The invited WeChat user, only while an invitation is pending, rejected or expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_wx: Option<String>,
    /// When the invitation expires (Unix seconds), alongside `invite_wx`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_expire_time: Option<i64>,
    /// `waiting`, `rejected` or `expired`, alongside `invite_wx`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_status: Option<InviteStatus>,
}

/// The state of an invitation as the list shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InviteStatus {
    /// Sent, not yet answered.
    Waiting,
    /// The invitee declined.
    Rejected,
    /// Not answered in time.
    Expired,
}

impl InviteStatus {
    /// The wire spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            InviteStatus::Waiting => "waiting",
            InviteStatus::Rejected => "rejected",
            InviteStatus::Expired => "expired",
        }
    }
}
