//! `POST /customservice/kfaccount/update`: change an account's nickname.

use crate::endpoint::{Endpoint, Method};
use crate::{ErrCode, Status};

/// The code for any problem with the kf_account on this endpoint.
pub const BAD_ACCOUNT: ErrCode = ErrCode::InvalidKfAccount;

/// The endpoint.
#[derive(Debug, Clone, Copy)]
pub struct UpdateKfAccount;

impl Endpoint for UpdateKfAccount {
    const METHOD: Method = Method::Post;
    const PATH: &'static str = "/customservice/kfaccount/update";
    /// Setting the same nickname twice leaves the same nickname.
    const IDEMPOTENT: bool = true;
    type Request = super::KfProfile;
    type Response = Status;
}
