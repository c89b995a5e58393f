//! Who is calling: the access_token verdict (SPEC §2.3) and the app's right to the
//! kf API (SPEC §6.1).

use std::sync::Arc;

use kefu_api::ErrCode;
use kefu_api::admin::AccountType;
use kefu_store::App;

use super::request::Query;
use crate::secrets::digest;
use crate::state::AppState;
use crate::wechat::internal;

/// Resolves the query's `access_token` to its app.
///
/// The verdict for a token depends only on the token and the time: unknown → 40001;
/// superseded while still valid and past its grace → 40001; past its expiry → 42001
/// (also when a newer token came after it expired, so an expired token never turns
/// into 40001 later).
pub async fn authorize(state: &AppState, query: &Query<'_>, now: i64) -> Result<Arc<App>, ErrCode> {
    let token = query
        .non_empty("access_token")
        .ok_or(ErrCode::AccessTokenMissing)?;
    let record = state
        .store
        .token(&digest(&token))
        .await
        .map_err(internal)?
        .ok_or(ErrCode::InvalidCredential)?;
    if record
        .superseded_at
        .is_some_and(|at| now >= at && record.expires_at > at)
    {
        return Err(ErrCode::InvalidCredential);
    }
    if now >= record.expires_at {
        return Err(ErrCode::AccessTokenExpired);
    }
    state
        .store
        .app(&record.appid)
        .await
        .map_err(internal)?
        .ok_or(ErrCode::InvalidCredential)
}

/// Which kf API is being called, for the account-type rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KfApi {
    /// Any kf endpoint but the head image upload.
    General,
    /// `uploadheadimg`, which mini programs do not have.
    UploadHeadImg,
}

/// Whether the app may call the kf API: sandbox apps and apps without the new kf
/// feature get 65400; unverified official accounts, and mini programs on
/// `uploadheadimg`, get 48001.
pub fn kf_scope(app: &App, api: KfApi) -> Result<(), ErrCode> {
    match app.account_type {
        AccountType::Sandbox => return Err(ErrCode::NewKfNotEnabled),
        AccountType::Miniprogram if api == KfApi::UploadHeadImg => {
            return Err(ErrCode::ApiUnauthorized);
        }
        AccountType::Service | AccountType::Subscription if !app.verified => {
            return Err(ErrCode::ApiUnauthorized);
        }
        _ => {}
    }
    if app.new_kf_enabled {
        Ok(())
    } else {
        Err(ErrCode::NewKfNotEnabled)
    }
}
