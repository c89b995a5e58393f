//! The decisions both backends make the same way, given the rows they read under
//! their own locks: each backend fetches, calls one of these, and writes the outcome.

use kefu_api::ErrCode;
use kefu_api::admin::{AppPatch, InvitationAction};
use kefu_api::endpoints::kf_add::MAX_ACCOUNTS;

use std::sync::atomic::{AtomicI64, Ordering};

use crate::model::{
    App, AppSnapshot, Authorization, Component, Digest, Invitation, InvitationAnswer, InviteState,
    IssuedTicket, Kf, LogLimits, NewInvitation, NewKf, Rotation, Snapshot, Window,
};
use crate::{StoreError, StoreResult};

/// How long a token is kept after it expired, so that it keeps answering 42001 (expired)
/// rather than 40001 (unknown), in seconds.
pub(crate) const TOKEN_RETENTION_SECS: i64 = 7 * 86_400;

/// How long a platform's verify ticket is kept after it expired, so that it answers
/// 61005 (expired) rather than 61006 (unknown), in seconds.
pub(crate) const TICKET_RETENTION_SECS: i64 = 7 * 86_400;

/// Every table of the state, children first: what [`crate::SnapshotStore::replace`]
/// empties on both backends (`log_usage`, the request log's one row of totals, is set
/// to nothing instead).
pub(crate) const STATE_TABLES: &[&str] = &[
    "messages",
    "fans",
    "authorizations",
    "component_tickets",
    "components",
    "tokens",
    "kf_headimgs",
    "kf_accounts",
    "apps",
    "counters",
    "request_log",
    "call_counts",
    "clock",
];

/// How long the chat history keeps a record, in seconds of the store's clock: 30 days.
pub(crate) const HISTORY_RETENTION_SECS: i64 = 30 * 86_400;

/// The most records the chat history keeps in all; past it, the oldest go first (a
/// flood of fan actions cannot grow the store without bound).
pub(crate) const MAX_HISTORY_RECORDS: i64 = 1_000_000;

/// How often housekeeping purges expired tokens and tickets, in seconds of the store's
/// clock: each purge is a scan of every token, so not at every round.
pub(crate) const PURGE_EVERY_SECS: i64 = 60;

/// Minute windows kept before the current one (the per-minute quotas read only it).
pub(crate) const MINUTE_WINDOWS_KEPT: i64 = 5;
/// Day windows kept before the current one (`GET /kefu/v1/apps/{appid}/quota` reads
/// today's; the rest is history).
pub(crate) const DAY_WINDOWS_KEPT: i64 = 40;
/// Month windows kept before the current one.
pub(crate) const MONTH_WINDOWS_KEPT: i64 = 13;

/// Whether a database at schema `version` can be served by a build whose migrations
/// end at `latest`: older means not migrated, newer means written by a newer kefu.
pub(crate) fn schema_verdict(version: i64, latest: usize) -> Result<(), String> {
    let latest = i64::try_from(latest).unwrap_or(i64::MAX);
    match version.cmp(&latest) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Less => Err(format!(
            "the store's schema is at version {version}, not migrated to {latest}"
        )),
        std::cmp::Ordering::Greater => Err(format!(
            "the store's schema is at version {version}, newer than this kefu's {latest}"
        )),
    }
}

/// The oldest counter windows kept at `now`, minute, day and month: a counter of an
/// older window is forgotten, in memory and in the store.
pub(crate) fn oldest_counter_windows(now: i64) -> [Window; 3] {
    let (minute, day, month) = (
        Window::minute_of(now).number(),
        Window::day_of(now).number(),
        Window::month_of(now).number(),
    );
    [
        Window::Minute(minute - MINUTE_WINDOWS_KEPT),
        Window::Day(day - DAY_WINDOWS_KEPT),
        Window::Month(month - MONTH_WINDOWS_KEPT),
    ]
}

/// Whether a counter of `window` is forgotten at `now` (see [`oldest_counter_windows`]).
pub(crate) fn counter_is_stale(window: Window, now: i64) -> bool {
    oldest_counter_windows(now)
        .iter()
        .any(|oldest| oldest.kind() == window.kind() && window.number() < oldest.number())
}

/// What a purge at `now` deletes: tokens that expired before `tokens`, tickets that
/// expired before `tickets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Purge {
    pub(crate) tokens: i64,
    pub(crate) tickets: i64,
    /// History records older than this go.
    pub(crate) history: i64,
}

/// When a store last purged: one cadence, [`PURGE_EVERY_SECS`], for every backend.
#[derive(Debug)]
pub(crate) struct PurgeClock(AtomicI64);

impl Default for PurgeClock {
    fn default() -> PurgeClock {
        PurgeClock(AtomicI64::new(i64::MIN))
    }
}

impl PurgeClock {
    /// The purge due at `now`, if one is (the first round always purges); taking it
    /// marks it done, so concurrent rounds purge once.
    pub(crate) fn due(&self, now: i64) -> Option<Purge> {
        let last = self.0.load(Ordering::Relaxed);
        let due = now.saturating_sub(last) >= PURGE_EVERY_SECS
            && self
                .0
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        due.then_some(Purge {
            tokens: now - TOKEN_RETENTION_SECS,
            tickets: now - TICKET_RETENTION_SECS,
            history: now - HISTORY_RETENTION_SECS,
        })
    }

    /// A purge taken by [`PurgeClock::due`] did not happen (its round failed): the
    /// next round tries again.
    pub(crate) fn missed(&self) {
        self.0.store(i64::MIN, Ordering::Relaxed);
    }
}

/// The app after `patch`, and whether its WeChat ID or original id changed.
pub(crate) fn patched(current: &App, patch: AppPatch) -> (App, bool) {
    let mut next = current.clone();
    if let Some(wechat_id) = patch.wechat_id {
        next.wechat_id = wechat_id.as_str().to_owned();
    }
    if let Some(original_id) = patch.original_id {
        next.original_id = original_id.as_str().to_owned();
    }
    next.account_type = patch.account_type.unwrap_or(next.account_type);
    next.verified = patch.verified.unwrap_or(next.verified);
    next.new_kf_enabled = patch.new_kf_enabled.unwrap_or(next.new_kf_enabled);
    if let Some(ip_whitelist) = patch.ip_whitelist {
        next.settings.ip_whitelist = ip_whitelist;
    }
    if let Some(quotas) = patch.quotas {
        next.settings.quotas = quotas;
    }
    if let Some(banned_apis) = patch.banned_apis {
        next.settings.banned_apis = banned_apis;
    }
    if let Some(windows) = patch.windows {
        next.settings.windows = windows;
    }
    if let Some(callback) = patch.callback {
        next.settings.callback = callback;
    }
    let renamed = next.wechat_id != current.wechat_id || next.original_id != current.original_id;
    (next, renamed)
}

/// The refusal when an app with accounts would change its WeChat ID or original id.
pub(crate) fn rename_refused() -> StoreError {
    StoreError::Conflict(
        "the WeChat ID and original id cannot change while the app has kf accounts".to_owned(),
    )
}

/// Decides an invitation of `wx` to `kf` at `now`, in WeChat's order: 65412; a pending
/// invitation on the account (65408 for the same user, else 65411); 65407 when `wx` is
/// bound to another account of the app; 65408 when `wx` is invited to one; 65410 when
/// `wx` is bound to `max_bound` accounts in all. `others` are the app's accounts bound
/// or inviting `wx`; `bound` counts `wx`'s bindings across apps. Answers the
/// invitation to store.
pub(crate) fn invite(
    kf: &Kf,
    others: &[Kf],
    bound: usize,
    invitation: &NewInvitation,
) -> Result<Invitation, ErrCode> {
    let (wx, now) = (invitation.invite_wx.as_str(), invitation.now);
    if kf.kf_wx.is_some() {
        return Err(ErrCode::AccountAlreadyBound);
    }
    if let Some(invitation) = kf.invitation.as_ref().filter(|i| i.is_effective(now)) {
        return Err(if invitation.invite_wx == wx {
            ErrCode::AlreadyInvited
        } else {
            ErrCode::InvitationExists
        });
    }
    if others
        .iter()
        .any(|other| other.kf_wx.as_deref() == Some(wx))
    {
        return Err(ErrCode::AlreadyWorker);
    }
    if others.iter().any(|other| {
        other
            .invitation
            .as_ref()
            .is_some_and(|i| i.invite_wx == wx && i.is_effective(now))
    }) {
        return Err(ErrCode::AlreadyInvited);
    }
    if bound >= invitation.max_bound {
        return Err(ErrCode::TooManyBoundAccounts);
    }
    Ok(Invitation {
        invite_wx: wx.to_owned(),
        expire_time: invitation.expire_time,
        state: InviteState::Waiting,
    })
}

/// The invitee's WeChat ID of `kf`'s pending invitation at `now`; `Conflict` when there
/// is none.
pub(crate) fn pending_invitee(kf: &Kf, now: i64) -> StoreResult<&str> {
    kf.invitation
        .as_ref()
        .filter(|i| i.is_effective(now))
        .map(|i| i.invite_wx.as_str())
        .ok_or_else(no_pending)
}

fn no_pending() -> StoreError {
    StoreError::Conflict("the account has no pending invitation".to_owned())
}

/// `kf` after answering its pending invitation (see [`pending_invitee`]) with `action`;
/// `bound` counts the invitee's bindings across apps.
pub(crate) fn answered(mut kf: Kf, answer: &InvitationAnswer, bound: usize) -> StoreResult<Kf> {
    let Some(mut invitation) = kf.invitation.take().filter(|i| i.is_effective(answer.now)) else {
        return Err(no_pending());
    };
    match answer.action {
        InvitationAction::Accept => {
            if bound >= answer.max_bound {
                return Err(StoreError::Rejected(ErrCode::TooManyBoundAccounts));
            }
            kf.kf_wx = Some(invitation.invite_wx);
        }
        InvitationAction::Reject => {
            invitation.state = InviteState::Rejected;
            kf.invitation = Some(invitation);
        }
        InvitationAction::Expire => {
            invitation.state = InviteState::Expired;
            invitation.expire_time = invitation.expire_time.min(answer.now);
            kf.invitation = Some(invitation);
        }
    }
    Ok(kf)
}

/// Swaps `auth`'s refresh token for `next` when `presented` is the current one or a
/// replaced one still within its overlap (else 61023). The replaced token keeps
/// working until `now + overlap_secs`; older ones keep their own deadlines, so a
/// second worker holding one is not cut off.
pub(crate) fn rotate(auth: &mut Authorization, rotation: &Rotation) -> StoreResult<()> {
    let presented = rotation.presented;
    auth.previous.retain(|(_, until)| rotation.now < *until);
    let known =
        auth.refresh_hash == presented || auth.previous.iter().any(|(hash, _)| *hash == presented);
    if !known {
        return Err(StoreError::Rejected(ErrCode::RefreshTokenInvalid));
    }
    auth.previous
        .push((auth.refresh_hash, rotation.now + rotation.overlap_secs));
    auth.refresh_hash = rotation.next;
    Ok(())
}

/// When a family's current token, replaced by a new one at `now`, stops being valid:
/// WeChat keeps the old token working for a grace period (`grace_secs`, 300 for
/// `/cgi-bin/token`, 0 for a forced stable token refresh).
pub(crate) const fn superseded_at(now: i64, grace_secs: i64) -> i64 {
    now.saturating_add(grace_secs)
}

/// Whether a stable token may be minted over the family's `current` token, given the
/// one the caller read (`expected`): only over that one, so that two instances
/// minting at once do not each hand out a different current token.
pub(crate) fn may_replace(current: Option<Digest>, expected: Option<Digest>) -> StoreResult<()> {
    if current == expected {
        Ok(())
    } else {
        Err(StoreError::Conflict("the current token changed".to_owned()))
    }
}

/// Whether an account may be added to an app that has `accounts` of them, one of them
/// under the same name if `taken`: the name first (65406 takes precedence over the
/// limit), then the limit of 100 (65405).
pub(crate) fn may_add_kf(taken: bool, accounts: usize) -> StoreResult<()> {
    if taken {
        return Err(StoreError::Rejected(ErrCode::KfAccountExists));
    }
    if accounts >= MAX_ACCOUNTS {
        return Err(StoreError::Rejected(ErrCode::KfAccountLimit));
    }
    Ok(())
}

/// The account `kf` becomes once added as `kf_id`: no avatar, no worker, no
/// invitation, offline.
pub(crate) fn new_kf_record(kf_id: i64, kf: NewKf) -> Kf {
    Kf {
        kf_id,
        kf_account: kf.kf_account.as_str().to_owned(),
        nickname: kf.nickname.as_str().to_owned(),
        kf_openid: kf.kf_openid,
        headimg_version: None,
        kf_wx: None,
        invitation: None,
        online_status: 0,
        accepted_case: 0,
        created_at: kf.created_at,
    }
}

/// A snapshot of these apps, platforms and authorizations, in its one order, whichever
/// backend read them: apps and platforms by creation time then id, each app's accounts
/// by kf_id, authorizations by platform then app. An export of the same state is the
/// same document on every backend.
pub(crate) fn snapshot(
    mut apps: Vec<AppSnapshot>,
    mut components: Vec<Component>,
    mut authorizations: Vec<Authorization>,
) -> Snapshot {
    apps.sort_by(|a, b| (a.app.created_at, &a.app.appid).cmp(&(b.app.created_at, &b.app.appid)));
    for app in &mut apps {
        app.kf_accounts.sort_by_key(|account| account.kf.kf_id);
    }
    components.sort_by(|a, b| {
        (a.created_at, &a.component_appid).cmp(&(b.created_at, &b.component_appid))
    });
    authorizations
        .sort_by(|a, b| (&a.component_appid, &a.appid).cmp(&(&b.component_appid, &b.appid)));
    Snapshot {
        version: Snapshot::VERSION,
        apps,
        components,
        authorizations,
    }
}

/// Whether the request log's table should be vacuumed, now that `rows` calls of
/// `bytes` bytes were deleted from it since it last was: once a quarter of either
/// bound has been deleted, so that the space deleted calls held on disk (which
/// PostgreSQL frees only by a vacuum) stays a fraction of the log's bound.
pub(crate) fn log_needs_vacuum(rows: u64, bytes: u64, limits: &LogLimits) -> bool {
    rows > 0 && (rows >= limits.disk_rows / 4 || bytes >= limits.disk_bytes / 4)
}

/// How many of the oldest recorded calls to delete so that the store holds at most
/// `limits.disk_rows` calls and `limits.disk_bytes` bytes, given that it holds `rows`
/// calls of `bytes` bytes in all (the bytes are reached by assuming the oldest calls
/// are of the average size; the caller asks again until both bounds hold).
pub(crate) fn calls_to_trim(rows: u64, bytes: u64, limits: &LogLimits) -> u64 {
    let over_rows = rows.saturating_sub(limits.disk_rows);
    let over_bytes = bytes.saturating_sub(limits.disk_bytes);
    if over_rows == 0 && over_bytes == 0 {
        return 0;
    }
    let average = (bytes / rows.max(1)).max(1);
    over_rows
        .max(over_bytes.div_ceil(average))
        .clamp(1, rows.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: LogLimits = LogLimits {
        disk_rows: 1_000,
        disk_bytes: 1_000_000,
        memory_bytes: 1 << 20,
        per_second: 100,
    };

    #[test]
    fn the_first_round_purges_and_the_next_one_a_minute_later() {
        let clock = PurgeClock::default();
        let now = 1_000_000_000;
        assert_eq!(
            clock.due(now),
            Some(Purge {
                tokens: now - TOKEN_RETENTION_SECS,
                tickets: now - TICKET_RETENTION_SECS,
                history: now - HISTORY_RETENTION_SECS,
            })
        );
        assert_eq!(clock.due(now + 1), None);
        assert_eq!(clock.due(now + PURGE_EVERY_SECS - 1), None);
        assert!(clock.due(now + PURGE_EVERY_SECS).is_some());
    }

    #[test]
    fn a_missed_purge_is_due_again_at_once() {
        let clock = PurgeClock::default();
        assert!(clock.due(5_000).is_some());
        clock.missed();
        assert!(clock.due(5_001).is_some());
    }

    #[test]
    fn counters_are_kept_five_minutes_forty_days_and_thirteen_months() {
        let now = 1_800_000_000;
        let [minute, day, month] = oldest_counter_windows(now);
        assert!(!counter_is_stale(minute, now));
        assert!(counter_is_stale(Window::Minute(minute.number() - 1), now));
        assert!(!counter_is_stale(day, now));
        assert!(counter_is_stale(Window::Day(day.number() - 1), now));
        assert!(!counter_is_stale(month, now));
        assert!(counter_is_stale(Window::Month(month.number() - 1), now));
        assert_eq!(
            Window::minute_of(now).number() - minute.number(),
            MINUTE_WINDOWS_KEPT
        );
        assert_eq!(
            Window::day_of(now).number() - day.number(),
            DAY_WINDOWS_KEPT
        );
        assert_eq!(
            Window::month_of(now).number() - month.number(),
            MONTH_WINDOWS_KEPT
        );
    }

    #[test]
    fn a_log_within_both_bounds_loses_nothing() {
        assert_eq!(calls_to_trim(1_000, 1_000_000, &LIMITS), 0);
    }

    #[test]
    fn a_log_over_its_row_bound_loses_the_excess() {
        assert_eq!(calls_to_trim(1_010, 10_100, &LIMITS), 10);
    }

    #[test]
    fn a_log_over_its_byte_bound_loses_enough_calls_of_average_size() {
        // 100 calls of 20,000 bytes: 1,000,000 bytes over is 50 calls.
        assert_eq!(calls_to_trim(100, 2_000_000, &LIMITS), 50);
    }

    #[test]
    fn the_log_is_vacuumed_once_a_quarter_of_a_bound_was_deleted() {
        assert!(!log_needs_vacuum(0, 0, &LIMITS));
        assert!(!log_needs_vacuum(249, 249_999, &LIMITS));
        assert!(log_needs_vacuum(250, 0, &LIMITS));
        assert!(log_needs_vacuum(1, 250_000, &LIMITS));
    }
}

pub(crate) mod conversation;

/// Refuses tickets a replace cannot issue with `snapshot`: one for a platform the
/// snapshot lacks, or one given twice.
pub(crate) fn check_tickets(snapshot: &Snapshot, tickets: &[IssuedTicket]) -> StoreResult<()> {
    let mut seen = std::collections::HashSet::new();
    for (i, ticket) in tickets.iter().enumerate() {
        if !snapshot
            .components
            .iter()
            .any(|c| c.component_appid == ticket.component_appid)
        {
            return Err(StoreError::Invalid(format!(
                "tickets[{i}]: platform {} is not in the document",
                ticket.component_appid
            )));
        }
        if !seen.insert(ticket.hash) {
            return Err(StoreError::Invalid(format!(
                "tickets[{i}]: the ticket is given twice"
            )));
        }
    }
    Ok(())
}
