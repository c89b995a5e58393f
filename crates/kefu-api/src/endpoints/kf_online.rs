//! `GET /cgi-bin/customservice/getonlinekflist`: the accounts online now.

use serde::{Deserialize, Serialize};

use crate::endpoint::{Endpoint, Method};

/// The endpoint.
#[derive(Debug, Clone, Copy)]
pub struct GetOnlineKfList;

impl Endpoint for GetOnlineKfList {
    const METHOD: Method = Method::Get;
    const PATH: &'static str = "/cgi-bin/customservice/getonlinekflist";
    const ALIASES: &'static [&'static str] = &["/customservice/getonlinekflist"];
    const IDEMPOTENT: bool = true;
    type Request = ();
    type Response = KfOnlineList;
}

/// `{"kf_online_list":[…]}` (no errcode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KfOnlineList {
    /// The accounts online.
    pub kf_online_list: Vec<KfOnline>,
}

/// One online account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
