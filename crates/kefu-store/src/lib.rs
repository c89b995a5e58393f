//! Storage for the kefu server.
//!
//! [`Store`] is the one interface the server talks to; [`sqlite::SqliteStore`] is the
//! embedded default and [`postgres::PostgresStore`] serves several instances at once.
//! Every mutation is atomic and checks WeChat's invariants (a unique kf_account per
//! app, at most 100 accounts, the invitation rules) where it runs, so that concurrent
//! requests, from one instance or several, cannot break them; a rejected mutation
//! leaves nothing behind. Time is always passed in by the caller, so the server's test
//! clock governs every rule. `tests/it/conformance.rs` holds both backends to the same
//! behaviour.
//!
//! [`Store`] is the sum of one trait per role: [`AppStore`], [`KfStore`],
//! [`TokenStore`], [`CounterStore`], [`LogStore`], [`PlatformStore`], [`ClockStore`] and
//! [`SnapshotStore`], plus the housekeeping that spans them. Each backend implements
//! each role in a file of the same name (`sqlite/tokens.rs`, `postgres/tokens.rs` …),
//! says how a column of its rows is read in `rows.rs`, and keeps its housekeeping in
//! `housekeeping.rs`; the column lists and row readers are shared (`columns.rs`), and
//! every verdict and retention rule both backends apply is written once, in `rules.rs`.

mod columns;
mod logbuf;
mod model;
pub mod postgres;
mod rules;
pub mod sqlite;
#[cfg(feature = "test-support")]
pub mod test_support;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use kefu_api::ErrCode;
use kefu_api::admin::AppPatch;
use kefu_api::admin::{DeliveryWindows, FanAction};
use kefu_api::endpoints::kf_del::Target;
use kefu_api::endpoints::message::TypingCommand;
use kefu_api::endpoints::msgrecord::HistoryQuery;
use kefu_api::{KfAccount, Nickname, Refused};

/// The store's role traits, for a glob import: `use kefu_store::roles::*` makes every
/// method of a [`Store`] callable.
pub mod roles {
    pub use crate::{
        AppStore, ClockStore, CounterStore, FanStore, KfStore, LogStore, MessageStore,
        PlatformStore, SessionStore, SnapshotStore, Store, TokenStore,
    };
}

pub use model::{
    App, AppSnapshot, AppSummary, Authorization, CallCount, CallDetails, Component, CounterKey,
    CurrentToken, Digest, Invitation, InvitationAnswer, InviteState, IssuedTicket, Kf, KfSnapshot,
    LogFilter, LogLimits, LogUsage, LoggedRequest, Mint, NewInvitation, NewKf, RecordedCall,
    Rotation, Snapshot, StableMint, TokenChannel, TokenRecord, Window,
};
pub use model::{EndedSession, Fan, FanChange, FanSession, Grant, HistoryRecord, Windows};

/// Told of every batch of writes a store commits (the server's metrics).
///
/// On SQLite every write goes through one writer, which commits the writes waiting
/// together as one transaction; on PostgreSQL the writes every WeChat request may make
/// (quota counts, nickname changes, token mints) are sent in batches, one statement
/// each, and other writes are transactions of their own, not told here.
pub trait CommitObserver: std::fmt::Debug + Send + Sync + 'static {
    /// `writes` writes were committed together (or failed to be), which took `took`.
    fn committed(&self, writes: usize, took: std::time::Duration);
}

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A WeChat rule refused the change (e.g. 65406 for a duplicate account); nothing
    /// was written.
    #[error("rejected with errcode {0}")]
    Rejected(ErrCode),
    /// A WeChat rule refused the change, saying which and why (e.g. 45047, "the message
    /// window opened at … has sent 5 of 5"); nothing was written.
    #[error("refused: {0}")]
    Refused(Refused),
    /// The app (or other named thing) does not exist.
    #[error("not found")]
    NotFound,
    /// The change conflicts with existing data (admin surface).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The input breaks a rule (an import document with an illegal value): where, and
    /// why. Nothing was written.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The storage engine failed; the change was not applied.
    #[error("storage failure: {0}")]
    Internal(String),
}

/// A short alias for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// The apps (official accounts) kefu serves: their settings, secrets and deletion.
#[async_trait]
pub trait AppStore: Send + Sync + 'static {
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
}

/// An app's kf accounts: adds, changes and deletes under WeChat's rules, head images,
/// invitations of workers and online state.
#[async_trait]
pub trait KfStore: Send + Sync + 'static {
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

    /// [`KfStore::kfs`] with a version when the store can vouch for one: the same version
    /// means the same list, so what was made of it can be reused. `None` (the default)
    /// when other processes may change the list unseen.
    async fn kfs_versioned(&self, appid: &str) -> StoreResult<(Arc<Vec<Kf>>, Option<u64>)> {
        Ok((self.kfs(appid).await?, None))
    }

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
    async fn invite_kf(&self, appid: &str, invitation: NewInvitation) -> StoreResult<()>;

    /// Answers a pending invitation on the invitee's behalf. `Conflict` when there is
    /// no pending invitation; accepting fails with 65410 when the invitee is bound to
    /// `max_bound` accounts already.
    async fn answer_invitation(&self, appid: &str, answer: InvitationAnswer) -> StoreResult<Kf>;

    /// Sets an account's online state (simulation); its `accepted_case` counts its
    /// sessions ([`SessionStore`]).
    async fn set_kf_online(&self, appid: &str, account: &KfAccount, status: i64)
    -> StoreResult<Kf>;
}

/// Access tokens of every channel: minting (the family's current token superseded
/// after a grace), lookups and the simulation's changes.
#[async_trait]
pub trait TokenStore: AppStore {
    /// Records a new token for `(appid, channel)`; the channel's previous current
    /// token keeps working until `now + grace_secs`, then is superseded.
    async fn issue_token(&self, mint: Mint) -> StoreResult<()>;

    /// Looks a token up by its hash.
    async fn token(&self, hash: &Digest) -> StoreResult<Option<TokenRecord>>;

    /// Looks a token up with the app it acts for (`None` for a platform's token or a
    /// vanished app): what every business call needs first, in one step.
    async fn token_and_app(
        &self,
        hash: &Digest,
    ) -> StoreResult<Option<(TokenRecord, Option<Arc<App>>)>> {
        let Some(record) = self.token(hash).await? else {
            return Ok(None);
        };
        let app = match record.channel {
            TokenChannel::Component => None,
            _ => self.app(&record.appid).await?,
        };
        Ok(Some((record, app)))
    }

    /// The current (never superseded) token of `(owner, channel)`, with its value for
    /// channels that keep it (stable tokens).
    async fn current_token(
        &self,
        owner: &str,
        channel: TokenChannel,
    ) -> StoreResult<Option<CurrentToken>>;

    /// Records a new stable token with its value (see [`TokenStore::issue_token`]), provided
    /// the family's current token is still `replaces` (the one the caller decided on;
    /// `None` for none): otherwise `Conflict` and nothing is written, so concurrent
    /// callers, in this process or another, never mint two.
    async fn issue_stable_token(&self, mint: StableMint) -> StoreResult<()>;

    /// Makes a token answer 40001 (`superseded_at`) or 42001 (`expires_at`) from the
    /// given time on; `NotFound` for an unknown token.
    async fn set_token_times(
        &self,
        hash: &Digest,
        superseded_at: Option<i64>,
        expires_at: Option<i64>,
    ) -> StoreResult<()>;

    /// The newest `limit` tokens an app (or platform) owns, of every family, with their
    /// hashes: newest issued first (by hash among tokens issued in the same second).
    async fn owner_tokens(
        &self,
        owner: &str,
        limit: usize,
    ) -> StoreResult<Vec<(Digest, TokenRecord)>>;
}

/// Call counters, exact under concurrency: what the quotas are checked against.
#[async_trait]
pub trait CounterStore: Send + Sync + 'static {
    /// Adds one to each counter unless one of them reached its limit; all or nothing.
    /// Answers `Err(index)` of the first counter at its limit.
    async fn consume(&self, counters: &[(CounterKey, u64)]) -> StoreResult<Result<(), usize>>;

    /// A counter's value.
    async fn counter(&self, key: &CounterKey) -> StoreResult<u64>;

    /// Resets every window of the named counters of an owner.
    async fn reset_counters(&self, owner: &str, names: &[String]) -> StoreResult<()>;
}

/// The request log: every WeChat call recorded, failed ones kept within bounds, and counts of all.
#[async_trait]
pub trait LogStore: Send + Sync + 'static {
    /// Records a WeChat call. It is findable at once, and a failed one is written by
    /// the next [`Store::maintain`] (the log is a diagnostic, not an acknowledged
    /// change: a crash may lose the last second of it).
    fn log_request(&self, call: Arc<RecordedCall>);

    /// A recorded call by rid.
    async fn logged_request(&self, rid: &str) -> StoreResult<Option<LoggedRequest>>;

    /// The newest recorded calls that match `filter`, newest first.
    async fn logged_requests(
        &self,
        filter: LogFilter<'_>,
        limit: usize,
    ) -> StoreResult<Vec<LoggedRequest>>;

    /// Every call counted since `since` (Unix seconds; counted by the hour, so from the
    /// start of its hour), of one app or all, written or not yet.
    async fn call_counts(&self, appid: Option<&str>, since: i64) -> StoreResult<Vec<CallCount>>;

    /// What the request log holds, and what it had to drop.
    async fn log_usage(&self) -> StoreResult<LogUsage>;
}

/// Third-party platforms: their verify tickets, and apps' authorizations with refresh tokens.
#[async_trait]
pub trait PlatformStore: Send + Sync + 'static {
    /// Registers a platform; `Conflict` if its appid is taken (by a platform or an app).
    async fn create_component(&self, component: Component) -> StoreResult<()>;

    /// All platforms with their authorizations.
    async fn components(&self) -> StoreResult<Vec<(Component, Vec<Authorization>)>>;

    /// One platform.
    async fn component(&self, component_appid: &str) -> StoreResult<Option<Component>>;

    /// Deletes a platform, its tickets, authorizations and tokens.
    async fn delete_component(&self, component_appid: &str) -> StoreResult<()>;

    /// Records a component_verify_ticket.
    async fn add_ticket(
        &self,
        component_appid: &str,
        hash: Digest,
        expires_at: i64,
    ) -> StoreResult<()>;

    /// A ticket's platform and expiry.
    async fn ticket(&self, hash: &Digest) -> StoreResult<Option<(String, i64)>>;

    /// Records (or replaces) an app's authorization of a platform.
    async fn authorize(&self, authorization: Authorization) -> StoreResult<()>;

    /// An app's authorization of a platform.
    async fn authorization(
        &self,
        component_appid: &str,
        appid: &str,
    ) -> StoreResult<Option<Authorization>>;

    /// Swaps the refresh token: `presented` must be the current one, or the previous
    /// one within its overlap (else 61023); the current one stays valid until
    /// `now + overlap_secs`.
    async fn rotate_refresh_token(&self, rotation: Rotation) -> StoreResult<()>;
}

/// The shared test clock's offset from real time.
#[async_trait]
pub trait ClockStore: Send + Sync + 'static {
    /// How far the shared test clock has been moved ahead of real time (seconds; 0 when
    /// never moved).
    async fn clock_offset(&self) -> StoreResult<i64>;

    /// Moves the shared test clock's offset forward by `by` seconds, and to at least
    /// `at_least`, but past neither `at_most` nor back; in one step, so that moves made
    /// through different instances add up. Answers the offset now stored.
    async fn advance_clock_offset(&self, by: i64, at_least: i64, at_most: i64) -> StoreResult<i64>;
}

/// Export and import of everything portable.
#[async_trait]
pub trait SnapshotStore: Send + Sync + 'static {
    /// Everything portable: apps with their accounts and head images, platforms with
    /// their authorizations. Tokens, tickets, counters and the request log stay behind.
    async fn snapshot(&self) -> StoreResult<Snapshot>;

    /// Loads a snapshot into an empty store, all or nothing: `Conflict` when the store
    /// holds any app or platform.
    async fn restore(&self, snapshot: Snapshot) -> StoreResult<()>;

    /// Replaces everything the store holds with `snapshot`, the tickets with `tickets`
    /// and the clock offset with `clock_offset`, in one transaction: apps, accounts,
    /// fans, platforms, tickets, tokens, counters and the request log all go first. All
    /// or nothing; the snapshot is checked as [`SnapshotStore::restore`] checks it, and a
    /// ticket for a platform the snapshot lacks, or given twice, is `Invalid`. The caller
    /// keeps requests off this store (of this instance) while it runs.
    async fn replace(
        &self,
        snapshot: Snapshot,
        tickets: Vec<IssuedTicket>,
        clock_offset: i64,
    ) -> StoreResult<()>;
}

/// An app's fans, simulated: made, moved through their actions, and read with their
/// windows and sessions (docs/behaviour.md, "Fans").
#[async_trait]
pub trait FanStore: Send + Sync + 'static {
    /// Makes a fan of the app: `NotFound` without the app; `Conflict` when the openid is
    /// taken in the app, or the app has `kefu_api::admin::MAX_FANS_PER_APP` fans.
    async fn create_fan(&self, appid: &str, fan: Fan) -> StoreResult<Fan>;

    /// The app's fans, oldest first (`NotFound` without the app).
    async fn fans(&self, appid: &str) -> StoreResult<Vec<Fan>>;

    /// One fan, as stored (see [`Fan::session_at`] for its session at a time).
    async fn fan(&self, appid: &str, openid: &str) -> StoreResult<Option<Fan>>;

    /// Forgets a fan with its records; a session it had ends. `NotFound` when none.
    async fn delete_fan(&self, appid: &str, openid: &str, now: i64) -> StoreResult<()>;

    /// The fan does `action` at `now`, under the app's window rules: its window opens,
    /// the action is recorded (2003). `NotFound` without the fan; `Conflict` when it does
    /// not follow and the action is not a follow or a scan.
    async fn fan_act(
        &self,
        appid: &str,
        openid: &str,
        action: &FanAction,
        rules: &DeliveryWindows,
        now: i64,
    ) -> StoreResult<FanChange>;
}

/// Messages to fans, typing, and the chat history.
#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    /// Sends a customer service message at `now`, as `worker` when given, recording
    /// `text` (2002): `Refused` with 40003 (no such fan), 65401 (no such account),
    /// 45015 (no window open) or 45047 (the windows are used up), one message taken
    /// otherwise. Exact under concurrency, across instances.
    async fn send_message(
        &self,
        appid: &str,
        openid: &str,
        text: String,
        worker: Option<&KfAccount>,
        now: i64,
    ) -> StoreResult<FanChange>;

    /// Records the developer's passive reply to a push (2002), outside the windows.
    async fn record_reply(
        &self,
        appid: &str,
        openid: &str,
        text: String,
        now: i64,
    ) -> StoreResult<FanChange>;

    /// Typing at `now`: `Refused` with 40003, 45015, 45080 or 45081.
    async fn typing(
        &self,
        appid: &str,
        openid: &str,
        command: TypingCommand,
        now: i64,
    ) -> StoreResult<FanChange>;

    /// The app's records of a time range from a msgid on, oldest first (`query`'s offset
    /// skipped first).
    async fn history(&self, appid: &str, query: &HistoryQuery) -> StoreResult<Vec<HistoryRecord>>;

    /// A fan's latest records, newest first.
    async fn fan_history(
        &self,
        appid: &str,
        openid: &str,
        limit: usize,
    ) -> StoreResult<Vec<HistoryRecord>>;
}

/// Sessions: which account serves which fan, and the waiting queue. Each account's
/// `accepted_case` always counts its sessions: they change together.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Serves the fan with the account at `now`: `Refused` with 40003, 65401, 65402,
    /// 65415 or 65414; nothing changes when the account serves it already.
    async fn create_session(
        &self,
        appid: &str,
        openid: &str,
        kf_account: &KfAccount,
        now: i64,
    ) -> StoreResult<FanChange>;

    /// Ends the fan's session with the account: `Refused` with 40003, 65401, 65413 or
    /// 65414.
    async fn close_session(
        &self,
        appid: &str,
        openid: &str,
        kf_account: &KfAccount,
        now: i64,
    ) -> StoreResult<FanChange>;

    /// Puts the fan in the queue, or with `to` when it is bound and online (the
    /// developer's `transfer_customer_service`). `NotFound` without the fan.
    async fn enqueue(
        &self,
        appid: &str,
        openid: &str,
        to: Option<&KfAccount>,
        now: i64,
    ) -> StoreResult<FanChange>;

    /// The fans an account serves at `now` with their sessions' start, oldest first.
    async fn sessions_of(
        &self,
        appid: &str,
        kf_account: &str,
        now: i64,
    ) -> StoreResult<Vec<(String, i64)>>;

    /// How many fans wait, and the first `limit` of them in the order they came, with
    /// their latest message's time.
    async fn wait_queue(&self, appid: &str, limit: usize)
    -> StoreResult<(u64, Vec<(String, i64)>)>;

    /// Ends every session idle for 30 minutes at `now`, and answers them.
    async fn end_idle_sessions(&self, now: i64) -> StoreResult<Vec<EndedSession>>;
}

/// Everything the server keeps: the sum of the roles, and the housekeeping that spans
/// them. Implementations must make each method atomic and durable before it returns
/// `Ok`. Callers bring the roles' methods into scope with `use kefu_store::roles::*`.
#[async_trait]
pub trait Store:
    AppStore
    + KfStore
    + TokenStore
    + CounterStore
    + LogStore
    + PlatformStore
    + ClockStore
    + SnapshotStore
    + FanStore
    + MessageStore
    + SessionStore
{
    /// Housekeeping at `now`: persists counters and forgets those of windows past their
    /// retention, writes the request log's waiting calls and counts (then deletes the
    /// oldest calls past its bounds, and on PostgreSQL vacuums the table once enough
    /// went), forgets calls recorded before `log_before`, and once a minute purges
    /// tokens and tickets past their retention (`rules.rs`).
    async fn maintain(&self, now: i64, log_before: i64) -> StoreResult<()>;

    /// Whether the store can serve: it answers a query, and its schema is the version
    /// this build writes. `Err` says why not, in a sentence (for `/kefu/v1/readyz`).
    async fn ready(&self) -> Result<(), String>;
}
