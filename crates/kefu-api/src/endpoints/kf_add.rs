//! `POST /customservice/kfaccount/add`: create a customer service account.

use super::check_json_body;
use crate::Refused;
use crate::endpoint::{Endpoint, Group, Method, Sent};
use crate::{ErrCode, Status};

/// The most kf accounts one official account may have.
pub const MAX_ACCOUNTS: usize = 100;
/// The `kf_id` of an app's first account; later ones count up and are never reused.
pub const FIRST_KF_ID: i64 = 2001;
/// The code for a missing, malformed or foreign kf_account on this endpoint.
pub const BAD_ACCOUNT: ErrCode = ErrCode::IllegalKfAccount;

/// The endpoint.
#[derive(Debug, Clone, Copy)]
pub struct AddKfAccount;

impl Endpoint for AddKfAccount {
    const NAME: &'static str = "kf_add";
    const SUMMARY: &'static str = "Add a customer service account";
    const GROUP: Group = Group::KfAccounts;
    const EXAMPLE: &'static str = r#"{"kf_account":"test1@test","nickname":"客服1"}"#;
    const METHOD: Method = Method::Post;
    const PATH: &'static str = "/customservice/kfaccount/add";
    type Request = super::KfProfile;
    type Response = Status;

    fn check(sent: &Sent<'_>) -> Result<(), Refused> {
        check_json_body::<super::KfProfileBody>(sent.body)?
            .check(BAD_ACCOUNT, |_| true)
            .map(drop)
    }
}
