//! `GET /cgi-bin/customservice/getonlinekflist`: the accounts online now.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::endpoint::{Endpoint, Group, Method};

/// The endpoint.
#[derive(Debug, Clone, Copy)]
pub struct GetOnlineKfList;

impl Endpoint for GetOnlineKfList {
    const NAME: &'static str = "kf_online_list";
    const SUMMARY: &'static str = "List the accounts online";
    const GROUP: Group = Group::KfAccounts;
    const EXAMPLE: &'static str = r#"{}"#;
    const METHOD: Method = Method::Get;
    const PATH: &'static str = "/cgi-bin/customservice/getonlinekflist";
    const ALIASES: &'static [&'static str] = &["/customservice/getonlinekflist"];
    const IDEMPOTENT: bool = true;
    type Request = ();
    type Response = KfOnlineList;
}

/// `{"kf_online_list":[…]}` (no errcode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KfOnlineList {
    /// The accounts online.
    pub kf_online_list: Vec<KfOnline>,
}

/// One online account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KfOnline {
    /// `prefix@suffix`.
    pub kf_account: String,
    /// 1 = online on the web client.
    pub status: i64,
    /// The numeric id.
    pub kf_id: i64,
    /// Sessions being served.
    pub accepted_case: i64,
}
