//! Storage for the kefu server.
//!
//! [`Store`] is the one interface the server talks to; [`sqlite::SqliteStore`] is the
//! embedded default. Every mutation is atomic and checks WeChat's invariants (a
//! unique kf_account per app, at most 100 accounts, the invitation rules) where it
//! runs, so that concurrent requests cannot break them; a rejected mutation leaves
//! nothing behind. Time is always passed in by the caller, so the server's test
//! clock governs every rule.

mod model;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use kefu_api::ErrCode;
use kefu_api::admin::{AppPatch, InvitationAction};
use kefu_api::endpoints::kf_del::Target;
use kefu_api::{KfAccount, Nickname, WechatId};

pub use model::{
    App, AppSummary, Digest, Invitation, InviteState, Kf, NewKf, TokenChannel, TokenRecord,
};

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A WeChat rule refused the change (e.g. 65406 for a duplicate account); nothing
    /// was written.
    #[error("rejected with errcode {0}")]
    Rejected(ErrCode),
    /// The app (or other named thing) does not exist.
    #[error("not found")]
    NotFound,
    /// The change conflicts with existing data (admin surface).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The storage engine failed; the change was not applied.
    #[error("storage failure: {0}")]
    Internal(String),
}

/// A short alias for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// Everything the server keeps. Implementations must make each method atomic and
/// durable before it returns `Ok`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Adds an app. `Conflict` when its appid, WeChat ID or original id is taken.
    async fn create_app(&self, app: App) -> StoreResult<Arc<App>>;
    /// All apps with their account counts, oldest first.
    async fn apps(&self) -> StoreResult<Vec<AppSummary>>;
    /// One app.
    async fn app(&self, appid: &str) -> StoreResult<Option<Arc<App>>>;
    /// Changes an app's settings. `Conflict` when the WeChat ID or original id would
    /// change while the app has accounts, or is taken.
    async fn update_app(&self, appid: &str, patch: AppPatch) -> StoreResult<Arc<App>>;
    /// Replaces the app's secret hash.
    async fn set_app_secret(&self, appid: &str, secret_hash: Digest) -> StoreResult<()>;
    /// Deletes an app with its accounts and tokens.
    async fn delete_app(&self, appid: &str) -> StoreResult<()>;

    /// Records a new token for `(appid, channel)`; the channel's previous current
    /// token keeps working until `now + grace_secs`, then is superseded.
    async fn issue_token(
        &self,
        token: TokenRecord,
        hash: Digest,
        now: i64,
        grace_secs: i64,
    ) -> StoreResult<()>;
    /// Looks a token up by its hash.
    async fn token(&self, hash: &Digest) -> StoreResult<Option<TokenRecord>>;

    /// Adds an account: 65406 if it exists, 65405 if the app has 100.
    async fn add_kf(&self, appid: &str, kf: NewKf) -> StoreResult<Kf>;
    /// Changes a nickname: 65401 if the account does not exist.
    async fn update_kf(
        &self,
        appid: &str,
        account: &KfAccount,
        nickname: &Nickname,
    ) -> StoreResult<()>;
    /// Deletes an account: 65401 if it does not exist.
    async fn delete_kf(&self, appid: &str, target: &Target) -> StoreResult<()>;
    /// The app's accounts, oldest first (`NotFound` if the app does not exist).
    async fn kfs(&self, appid: &str) -> StoreResult<Arc<Vec<Kf>>>;
    /// Stores a head image for an account (65401 if it does not exist); answers the
    /// image's new version number.
    async fn set_kf_headimg(
        &self,
        appid: &str,
        account: &KfAccount,
        jpeg: Bytes,
    ) -> StoreResult<i64>;
    /// A head image by account id and version.
    async fn kf_headimg(&self, appid: &str, kf_id: i64, version: i64)
    -> StoreResult<Option<Bytes>>;
    /// Invites a WeChat user to bind an account, applying WeChat's rules
    /// in order: 65401; 65412; a pending invitation on the account (65408 for the same
    /// user, else 65411); 65407; the user pending on another account (65408); 65410.
    async fn invite_kf(
        &self,
        appid: &str,
        account: &KfAccount,
        invite_wx: &WechatId,
        now: i64,
        expire_time: i64,
        max_bound: usize,
    ) -> StoreResult<()>;
    /// Answers a pending invitation on the invitee's behalf. `Conflict` when there is
    /// no pending invitation; accepting fails with 65410 when the invitee is bound to
    /// `max_bound` accounts already.
    async fn answer_invitation(
        &self,
        appid: &str,
        account: &KfAccount,
        action: InvitationAction,
        now: i64,
        max_bound: usize,
    ) -> StoreResult<Kf>;
}
