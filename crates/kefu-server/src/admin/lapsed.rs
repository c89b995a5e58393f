//! What lapsed while the test clock moved (README, "Console"): told in the answer to
//! `POST /kefu/v1/clock`, so that a person who moves the clock sees what it did.

use kefu_api::admin::{Lapsed, LapsedInvitation, LapsedQuota, LapsedToken, MAX_LAPSED};
use kefu_store::{InviteState, StoreError, Window};

use crate::state::AppState;

/// The most apps examined (their tokens and invitations).
const MAX_APPS: usize = 1000;
/// The most apps whose daily counters are read (each is a read per counted API).
const MAX_QUOTA_APPS: usize = 100;
/// The most tokens of one owner examined.
const TOKENS_PER_OWNER: usize = 200;

fn push<T>(list: &mut Vec<T>, truncated: &mut bool, item: T) {
    if list.len() < MAX_LAPSED {
        list.push(item);
    } else {
        *truncated = true;
    }
}

/// What lapsed in `(from, to]` of the server clock.
pub(super) async fn between(state: &AppState, from: i64, to: i64) -> Result<Lapsed, StoreError> {
    let mut lapsed = Lapsed {
        from,
        to,
        ..Lapsed::default()
    };
    if to <= from {
        return Ok(lapsed);
    }
    let within = |at: i64| from < at && at <= to;
    let apps = state.store.apps().await?;
    if apps.len() > MAX_APPS {
        lapsed.truncated = true;
    }
    let mut owners: Vec<String> = apps
        .iter()
        .take(MAX_APPS)
        .map(|app| app.app.appid.to_string())
        .collect();
    owners.extend(
        state
            .store
            .components()
            .await?
            .into_iter()
            .take(MAX_APPS)
            .map(|(component, _)| component.component_appid),
    );
    for owner in &owners {
        for (hash, record) in state.store.owner_tokens(owner, TOKENS_PER_OWNER).await? {
            let ended = match record.superseded_at {
                Some(at) if at < record.expires_at && within(at) => Some(("superseded", at)),
                _ if within(record.expires_at)
                    && record
                        .superseded_at
                        .is_none_or(|at| at >= record.expires_at) =>
                {
                    Some(("expired", record.expires_at))
                }
                _ => None,
            };
            if let Some((what, at)) = ended {
                push(
                    &mut lapsed.tokens,
                    &mut lapsed.truncated,
                    LapsedToken {
                        appid: owner.to_string(),
                        kind: record.channel.as_str().to_owned(),
                        hash: hash.iter().map(|b| format!("{b:02x}")).collect(),
                        what: what.to_owned(),
                        at,
                    },
                );
            }
        }
    }
    for app in apps.iter().take(MAX_APPS) {
        for kf in state.store.kfs(&app.app.appid).await?.iter() {
            if let Some(invitation) = &kf.invitation
                && invitation.state == InviteState::Waiting
                && within(invitation.expire_time)
            {
                push(
                    &mut lapsed.invitations,
                    &mut lapsed.truncated,
                    LapsedInvitation {
                        appid: app.app.appid.to_string(),
                        kf_account: kf.kf_account.clone(),
                        invite_wx: invitation.invite_wx.clone(),
                        at: invitation.expire_time,
                    },
                );
            }
        }
    }
    // A new Shanghai day: the daily counters of the day the clock left start afresh.
    if Window::day_of(from) != Window::day_of(to) {
        if apps.len() > MAX_QUOTA_APPS {
            lapsed.truncated = true;
        }
        for app in apps.iter().take(MAX_QUOTA_APPS) {
            for path in crate::wechat::platform::counted_paths(&app.app) {
                let key = crate::wechat::platform::daily_key(&app.app.appid, &path, from);
                let used = state.store.counter(&key).await?;
                if used > 0 {
                    push(
                        &mut lapsed.quotas,
                        &mut lapsed.truncated,
                        LapsedQuota {
                            appid: app.app.appid.to_string(),
                            path,
                            used,
                        },
                    );
                }
            }
        }
    }
    lapsed.tokens.sort_by_key(|t| t.at);
    lapsed.invitations.sort_by_key(|i| i.at);
    Ok(lapsed)
}
