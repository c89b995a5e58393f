//! Fixtures (README, "Fixtures and reset"): the declared state, as the store document it
//! stands for ([`Prepared`]), brought about at start ([`apply`]) and on
//! `POST /kefu/v1/reset` (`reset`).

use std::sync::Arc;

use kefu_api::admin::NewFault;
use kefu_api::admin::fixtures::Fixtures;
use kefu_api::endpoints::component::TICKET_TTL_SECS;
use kefu_api::endpoints::kf_add::FIRST_KF_ID;
use kefu_api::endpoints::kf_invite::INVITE_TTL_SECS;
use kefu_store::{
    App, AppSnapshot, Authorization, Component, Digest, Invitation, InviteState, IssuedTicket, Kf,
    KfSnapshot, Snapshot,
};

use crate::admin::Failure;
use crate::secrets::{digest, new_openid};
use crate::state::AppState;

/// The fixtures as a store document, made once so that every reset gives the same
/// state (the same `kf_openid`s and times).
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    snapshot: Snapshot,
    /// Declared tickets: the platform and the ticket's digest.
    tickets: Vec<(String, Digest)>,
    faults: Vec<NewFault>,
    clock_offset: i64,
    /// Whether anything was declared.
    declared: bool,
}

/// How the store came to hold the fixtures at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing was declared.
    None,
    /// The store was empty and now holds them.
    Applied,
    /// The store already held every declared app and platform: it is left as it is.
    Kept,
    /// The store contradicted them and was replaced by them (`--reset-fixtures`).
    Replaced,
}

impl Prepared {
    /// The fixtures as a store document at `now`; avatars are read from their files.
    ///
    /// # Errors
    /// A value the store refuses, or an unreadable avatar, in a sentence naming where.
    pub fn new(fixtures: &Fixtures, now: i64) -> Result<Prepared, String> {
        let mut snapshot = Snapshot {
            version: Snapshot::VERSION,
            ..Snapshot::default()
        };
        for (a, fixture) in fixtures.apps.iter().enumerate() {
            let new = &fixture.app;
            let (Some(appid), Some(secret)) = (&new.appid, &new.secret) else {
                return Err(format!("apps[{a}]: appid and secret must be given"));
            };
            let app = App {
                appid: appid.as_str().to_owned(),
                wechat_id: new.wechat_id.as_str().to_owned(),
                original_id: new
                    .original_id
                    .as_ref()
                    .map_or_else(crate::secrets::new_original_id, |id| id.as_str().to_owned()),
                account_type: new.account_type.unwrap_or_default(),
                verified: new.verified.unwrap_or(true),
                new_kf_enabled: new.new_kf_enabled.unwrap_or(true),
                secret_hash: digest(secret.expose()),
                created_at: now,
                settings: new.settings.clone(),
            };
            let mut kf_accounts = Vec::new();
            for (k, kf) in fixture.kf_accounts.iter().enumerate() {
                let kf_id = FIRST_KF_ID + i64::try_from(k).unwrap_or(i64::MAX);
                let headimg = match &kf.avatar {
                    Some(path) => Some(bytes::Bytes::from(std::fs::read(path).map_err(|e| {
                        format!(
                            "apps[{a}].kf_accounts[{k}].avatar: cannot read {}: {e}",
                            path.display()
                        )
                    })?)),
                    None => None,
                };
                kf_accounts.push(KfSnapshot {
                    kf: Kf {
                        kf_id,
                        kf_account: kf.kf_account.clone(),
                        nickname: kf.nickname.clone(),
                        kf_openid: new_openid(),
                        headimg_version: headimg.as_ref().map(|_| 1),
                        kf_wx: kf.worker.clone(),
                        invitation: kf.invite.as_ref().map(|invite_wx| Invitation {
                            invite_wx: invite_wx.clone(),
                            expire_time: now + INVITE_TTL_SECS,
                            state: InviteState::Waiting,
                        }),
                        online_status: kf.online_status,
                        accepted_case: 0,
                        created_at: now,
                    },
                    headimg,
                });
            }
            snapshot.apps.push(AppSnapshot {
                app,
                next_kf_id: FIRST_KF_ID + i64::try_from(kf_accounts.len()).unwrap_or(0),
                kf_accounts,
                fans: Vec::new(),
                history: Vec::new(),
            });
        }
        let mut tickets = Vec::new();
        for (p, platform) in fixtures.platforms.iter().enumerate() {
            let component_appid = kefu_api::AppId::parse(&platform.component_appid)
                .map_err(|_| {
                    format!(
                        "platforms[{p}].component_appid: must be 'wx' and 16 lowercase hex \
                         digits"
                    )
                })?
                .as_str()
                .to_owned();
            let secret = kefu_api::AppSecret::parse(platform.secret.clone()).map_err(|_| {
                format!("platforms[{p}].secret: must be 16–64 ASCII letters and digits")
            })?;
            snapshot.components.push(Component {
                component_appid: component_appid.clone(),
                secret_hash: digest(secret.expose()),
                ip_whitelist: platform.ip_whitelist.clone(),
                created_at: now,
            });
            if let Some(ticket) = &platform.ticket {
                if ticket.expose().is_empty() {
                    return Err(format!("platforms[{p}].ticket: must not be empty"));
                }
                tickets.push((component_appid.clone(), digest(ticket.expose())));
            }
            for auth in &platform.authorizations {
                let refresh = auth
                    .refresh_token
                    .as_ref()
                    .map_or_else(crate::secrets::new_refresh_token, |t| t.expose().to_owned());
                snapshot.authorizations.push(Authorization {
                    component_appid: component_appid.clone(),
                    appid: auth.authorization.appid.as_str().to_owned(),
                    funcscopes: auth.authorization.funcscopes.clone(),
                    refresh_hash: digest(&refresh),
                    previous: Vec::new(),
                });
            }
        }
        Ok(Prepared {
            snapshot,
            tickets,
            faults: fixtures.faults.clone(),
            clock_offset: i64::try_from(fixtures.clock_offset_secs)
                .unwrap_or(i64::MAX)
                .min(crate::clock::MAX_OFFSET_SECS),
            declared: !fixtures.is_empty(),
        })
    }

    /// Whether anything was declared.
    #[must_use]
    pub fn declared(&self) -> bool {
        self.declared
    }
}

/// Brings the store to the fixtures at start: an empty store gets them; a store holding
/// every declared app and platform with its declared secret keeps what it holds; any
/// other store contradicts them, and is replaced by them only when `replace` is set.
/// Fault rules are installed in every case; a replaced store gets the declared tickets
/// with its document, a kept one those of them it lacks.
///
/// # Errors
/// What contradicts the fixtures, or why the store refused them.
pub async fn apply(state: &AppState, replace: bool) -> Result<Outcome, String> {
    let prepared = Arc::clone(&state.fixtures);
    if !prepared.declared {
        return Ok(Outcome::None);
    }
    let store_error = |e: kefu_store::StoreError| e.to_string();
    let apps = state.store.apps().await.map_err(store_error)?;
    let components = state.store.components().await.map_err(store_error)?;
    let outcome = if apps.is_empty() && components.is_empty() {
        Outcome::Applied
    } else {
        let contradictions = contradictions(state, &prepared).await?;
        if contradictions.is_empty() {
            Outcome::Kept
        } else if replace {
            Outcome::Replaced
        } else {
            return Err(format!(
                "the store contradicts the fixtures: {}; start with --reset-fixtures to \
                 replace what it holds by them",
                contradictions.join("; ")
            ));
        }
    };
    if outcome == Outcome::Kept {
        install_faults(state, &prepared);
        // A store kept as it is keeps its tickets; those it lacks are issued again.
        let expires_at = state.clock.now() + TICKET_TTL_SECS;
        for (component_appid, hash) in &prepared.tickets {
            if state
                .store
                .ticket(hash)
                .await
                .map_err(store_error)?
                .is_none()
            {
                state
                    .store
                    .add_ticket(component_appid, *hash, expires_at)
                    .await
                    .map_err(store_error)?;
            }
        }
    } else {
        replace_store(state, &prepared).await.map_err(store_error)?;
    }
    Ok(outcome)
}

/// The declared apps and platforms the store lacks or holds with another secret.
async fn contradictions(state: &AppState, prepared: &Prepared) -> Result<Vec<String>, String> {
    let mut found = Vec::new();
    for entry in &prepared.snapshot.apps {
        let appid = &entry.app.appid;
        match state.store.app(appid).await.map_err(|e| e.to_string())? {
            None => found.push(format!("app {appid} is missing")),
            Some(app) if app.secret_hash != entry.app.secret_hash => {
                found.push(format!("app {appid} has another secret"));
            }
            Some(app) if app.wechat_id != entry.app.wechat_id => {
                found.push(format!("app {appid} has the WeChat ID {}", app.wechat_id));
            }
            Some(_) => {}
        }
    }
    for component in &prepared.snapshot.components {
        let appid = &component.component_appid;
        match state
            .store
            .component(appid)
            .await
            .map_err(|e| e.to_string())?
        {
            None => found.push(format!("platform {appid} is missing")),
            Some(held) if held.secret_hash != component.secret_hash => {
                found.push(format!("platform {appid} has another secret"));
            }
            Some(_) => {}
        }
    }
    Ok(found)
}

/// Replaces the store with the fixtures' document and their tickets (valid 12 hours
/// from now on the fixtures' clock) in one transaction, then sets the clock and installs
/// the fault rules: nothing changes when the store refuses.
async fn replace_store(state: &AppState, prepared: &Prepared) -> kefu_store::StoreResult<()> {
    let now = state.clock.now() - state.clock.offset() + prepared.clock_offset;
    let tickets = prepared
        .tickets
        .iter()
        .map(|(component_appid, hash)| IssuedTicket {
            component_appid: component_appid.clone(),
            hash: *hash,
            expires_at: now + TICKET_TTL_SECS,
        })
        .collect();
    state
        .store
        .replace(prepared.snapshot.clone(), tickets, prepared.clock_offset)
        .await?;
    state.clock.set_offset(prepared.clock_offset);
    install_faults(state, prepared);
    Ok(())
}

/// Swaps this instance's fault rules for the declared ones (it cannot fail).
fn install_faults(state: &AppState, prepared: &Prepared) {
    for rule in state.faults.list() {
        state.faults.remove(rule.id);
    }
    for fault in &prepared.faults {
        state.faults.add(fault.clone());
    }
}

/// `POST /kefu/v1/reset`: waits for the requests in flight, then puts the store (with
/// the declared tickets), the clock and the fault rules back to the fixtures in one
/// transaction: all of it or, when the store refuses, none of it. No request runs
/// meanwhile (they wait). It runs to its end on a task of its own, even when the caller
/// stops waiting, so that what follows the store's replacement in memory (the request
/// log, the fault rules, the made answers) is never left out.
pub(crate) async fn reset(state: &AppState) -> Result<(), Failure> {
    let state = state.clone();
    tokio::spawn(async move { reset_alone(&state).await })
        .await
        .unwrap_or_else(|error| {
            tracing::error!(%error, "a reset failed");
            Err(Failure::new(
                kefu_api::admin::AdminErrorCode::Internal,
                "the reset failed; see the server log",
            ))
        })
}

async fn reset_alone(state: &AppState) -> Result<(), Failure> {
    let _alone = state.reset_lock.write().await;
    let _no_housekeeping = state.housekeeping.lock().await;
    let prepared = Arc::clone(&state.fixtures);
    replace_store(state, &prepared).await?;
    state.lists.clear();
    tracing::info!("reset to the fixtures");
    Ok(())
}
