//! The decisions both backends make the same way, given the rows they read under
//! their own locks: each backend fetches, calls one of these, and writes the outcome.

use kefu_api::ErrCode;
use kefu_api::admin::{AppPatch, InvitationAction};

use crate::model::{App, Authorization, Digest, Invitation, InviteState, Kf, LogLimits};
use crate::{StoreError, StoreResult};

/// The app after `patch`, and whether its WeChat ID or original id changed.
pub(crate) fn patched(current: &App, patch: AppPatch) -> (App, bool) {
    let mut next = current.clone();
    if let Some(wechat_id) = patch.wechat_id {
        next.wechat_id = wechat_id;
    }
    if let Some(original_id) = patch.original_id {
        next.original_id = original_id;
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
    wx: &str,
    now: i64,
    expire_time: i64,
    max_bound: usize,
) -> Result<Invitation, ErrCode> {
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
    if bound >= max_bound {
        return Err(ErrCode::TooManyBoundAccounts);
    }
    Ok(Invitation {
        invite_wx: wx.to_owned(),
        expire_time,
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
pub(crate) fn answered(
    mut kf: Kf,
    action: InvitationAction,
    now: i64,
    bound: usize,
    max_bound: usize,
) -> StoreResult<Kf> {
    let Some(mut invitation) = kf.invitation.take().filter(|i| i.is_effective(now)) else {
        return Err(no_pending());
    };
    match action {
        InvitationAction::Accept => {
            if bound >= max_bound {
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
            invitation.expire_time = invitation.expire_time.min(now);
            kf.invitation = Some(invitation);
        }
    }
    Ok(kf)
}

/// Swaps `auth`'s refresh token for `next` when `presented` is the current one or a
/// replaced one still within its overlap (else 61023). The replaced token keeps
/// working until `now + overlap_secs`; older ones keep their own deadlines, so a
/// second worker holding one is not cut off.
pub(crate) fn rotate(
    auth: &mut Authorization,
    presented: Digest,
    next: Digest,
    now: i64,
    overlap_secs: i64,
) -> StoreResult<()> {
    auth.previous.retain(|(_, until)| now < *until);
    let known =
        auth.refresh_hash == presented || auth.previous.iter().any(|(hash, _)| *hash == presented);
    if !known {
        return Err(StoreError::Rejected(ErrCode::RefreshTokenInvalid));
    }
    auth.previous.push((auth.refresh_hash, now + overlap_secs));
    auth.refresh_hash = next;
    Ok(())
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
