//! `POST /customservice/kfaccount/update`: change an account's nickname.

use super::check_json_body;
use crate::Refused;
use crate::endpoint::{Endpoint, Group, Method, Sent};
use crate::{ErrCode, Status};

/// The code for any problem with the kf_account on this endpoint.
pub const BAD_ACCOUNT: ErrCode = ErrCode::InvalidKfAccount;

/// The endpoint.
#[derive(Debug, Clone, Copy)]
pub struct UpdateKfAccount;

impl Endpoint for UpdateKfAccount {
    const NAME: &'static str = "kf_update";
    const SUMMARY: &'static str = "Change an account's nickname";
    const GROUP: Group = Group::KfAccounts;
    const EXAMPLE: &'static str = r#"{"kf_account":"test1@test","nickname":"客服2"}"#;
    const METHOD: Method = Method::Post;
    const PATH: &'static str = "/customservice/kfaccount/update";
    /// Setting the same nickname twice leaves the same nickname.
    const IDEMPOTENT: bool = true;
    type Request = super::KfProfile;
    type Response = Status;

    fn check(sent: &Sent<'_>) -> Result<(), Refused> {
        check_json_body::<super::KfProfileBody>(sent.body)?
            .check(BAD_ACCOUNT, |_| true)
            .map(drop)
    }
}
