//! The rules of fans, delivery windows, sessions and typing (docs/behaviour.md, "Fans",
//! "Sessions", "Messages"), decided the same way by both backends: each reads the fan
//! (and the account) under its own lock, calls one of these, and writes the [`Outcome`].

use kefu_api::admin::{DeliveryWindows, FanAction};
use kefu_api::endpoints::kf_session::IDLE_SECS;
use kefu_api::endpoints::message::{
    TYPING_NEEDS_EXCHANGE_SECS, TYPING_SECS, TypingCommand, WindowKind,
};
use kefu_api::endpoints::msgrecord::opercode;
use kefu_api::{ErrCode, Refused};

use crate::model::{Fan, FanSession, Grant, Kf, NewRecord};
use crate::{StoreError, StoreResult};

/// What an operation on a fan decided: the fan afterwards, the records to append, how
/// each account's count of sessions changes, and what to tell the developer's server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// The fan afterwards.
    pub(crate) fan: Fan,
    /// Records to append, in order.
    pub(crate) records: Vec<(i64, NewRecord)>,
    /// `(account, change)` of `accepted_case`.
    pub(crate) cases: Vec<(String, i64)>,
    /// The fan joined the queue: the store gives it its place.
    pub(crate) enqueued: bool,
    /// A session began, with this account.
    pub(crate) began: Option<String>,
    /// A session ended, with this account.
    pub(crate) ended: Option<String>,
}

impl Outcome {
    fn of(fan: Fan) -> Outcome {
        Outcome {
            fan,
            records: Vec::new(),
            cases: Vec::new(),
            enqueued: false,
            began: None,
            ended: None,
        }
    }

    fn record(&mut self, time: i64, opercode: i64, text: impl Into<String>, worker: &str) {
        self.records.push((
            time,
            NewRecord {
                opercode,
                text: text.into(),
                worker: worker.to_owned(),
            },
        ));
    }

    /// Ends the fan's session with `kf_account` at `at`.
    fn end(&mut self, kf_account: String, at: i64) {
        self.record(at, opercode::CLOSED, "[session closed]", &kf_account);
        self.cases.push((kf_account.clone(), -1));
        self.fan.session = None;
        self.ended = Some(kf_account);
    }
}

/// The WeChat refusal of an openid no fan of the app has (40003).
pub(crate) fn no_fan() -> StoreError {
    StoreError::Refused(Refused::new(
        ErrCode::InvalidOpenid,
        "no fan of the app has this openid",
    ))
}

/// The WeChat refusal of an account the app does not have (65401).
pub(crate) fn no_kf(kf_account: &str) -> StoreError {
    StoreError::Refused(Refused::new(
        ErrCode::InvalidKfAccount,
        format!("the app has no account {kf_account}"),
    ))
}

/// When a served session ends unless a message is exchanged.
#[must_use]
pub(crate) const fn idle_until(active: i64) -> i64 {
    active.saturating_add(IDLE_SECS)
}

/// The fan as it stands at `now`: a session idle for [`IDLE_SECS`] has ended (at the
/// moment it went idle). Every operation starts here, so that an account's count of
/// sessions never includes one that ended while nobody looked.
pub(crate) fn settle(fan: Fan, now: i64) -> Outcome {
    let mut outcome = Outcome::of(fan);
    if let Some(FanSession::Served {
        kf_account, active, ..
    }) = outcome.fan.session.clone()
        && now >= idle_until(active)
    {
        outcome.end(kf_account, idle_until(active));
    }
    outcome
}

/// A new window of `kind` opened at `now`, under the app's rules.
fn grant(rules: &DeliveryWindows, kind: WindowKind, now: i64) -> Grant {
    let rule = rules.rule(kind);
    Grant {
        opened_at: now,
        expires_at: now.saturating_add(rule.secs),
        limit: rule.limit,
        used: 0,
    }
}

/// The fan does `action` at `now` (the simulation): it opens its window (a new one of
/// that kind, with a fresh count), is recorded (2003), and marks the exchange of a
/// message; unfollowing closes every window and ends a session or a place in the
/// queue. A fan that does not follow can only follow or scan (`Conflict` otherwise).
pub(crate) fn act(
    fan: Fan,
    action: &FanAction,
    rules: &DeliveryWindows,
    now: i64,
) -> StoreResult<Outcome> {
    let mut outcome = settle(fan, now);
    let following = outcome.fan.following;
    match action {
        FanAction::Follow | FanAction::Scan { .. } => outcome.fan.following = true,
        _ if !following => {
            return Err(StoreError::Conflict(
                "the fan does not follow the app: it has to follow (or scan) first".to_owned(),
            ));
        }
        _ => {}
    }
    let worker = match &outcome.fan.session {
        Some(FanSession::Served { kf_account, .. }) => kf_account.clone(),
        _ => String::new(),
    };
    outcome.record(now, opercode::RECEIVED, action.history_text(), &worker);
    match action.window() {
        Some(kind) => *outcome.fan.windows.slot(kind) = Some(grant(rules, kind, now)),
        None => {
            outcome.fan.following = false;
            outcome.fan.windows = crate::model::Windows::default();
            outcome.fan.typing_until = None;
            match outcome.fan.session.take() {
                Some(FanSession::Served { kf_account, .. }) => outcome.end(kf_account, now),
                Some(FanSession::Waiting { .. }) | None => {}
            }
        }
    }
    if action.is_message() {
        outcome.fan.last_exchange = Some(now);
        match &mut outcome.fan.session {
            Some(FanSession::Served { active, .. }) => *active = now,
            Some(FanSession::Waiting { latest, .. }) => *latest = now,
            None => {}
        }
    }
    Ok(outcome)
}

/// Why no window takes a message at `now`: 45015 when none is open (or the fan does
/// not follow), 45047 when the open ones are used up.
fn no_room(fan: &Fan, now: i64) -> Refused {
    if !fan.following {
        return Refused::new(
            ErrCode::ResponseOutOfTimeLimit,
            "the fan does not follow the app (it unfollowed)",
        );
    }
    let open: Vec<(WindowKind, Grant)> = WindowKind::ALL
        .iter()
        .filter_map(|kind| fan.windows.get(*kind).map(|grant| (*kind, grant)))
        .filter(|(_, grant)| grant.is_open(now))
        .collect();
    if open.is_empty() {
        let last = WindowKind::ALL
            .iter()
            .filter_map(|kind| fan.windows.get(*kind).map(|grant| (*kind, grant)))
            .max_by_key(|(_, grant)| grant.expires_at);
        let reason = match last {
            Some((kind, grant)) => format!(
                "no delivery window is open: the last, opened by the fan's {} at {}, closed \
                 at {}",
                kind.as_str(),
                grant.opened_at,
                grant.expires_at
            ),
            None => "no delivery window is open: the fan has not messaged, clicked, followed, \
                     scanned or paid"
                .to_owned(),
        };
        return Refused::new(ErrCode::ResponseOutOfTimeLimit, reason);
    }
    let spent = open
        .iter()
        .map(|(kind, grant)| {
            format!(
                "the {} window opened at {} has sent {} of {}, until {}",
                kind.as_str(),
                grant.opened_at,
                grant.used,
                grant.limit.unwrap_or(0),
                grant.expires_at
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    Refused::new(ErrCode::ResponseCountLimit, spent)
}

/// A customer service message to the fan at `now`, sent as `worker` (`""` for none):
/// it takes one message of the first open window with room, in [`WindowKind::ALL`]'s
/// order (payment, event, message), is recorded (2002), marks an exchange and cancels
/// typing. 45015 / 45047 otherwise.
pub(crate) fn send(fan: Fan, text: String, worker: &str, now: i64) -> Result<Outcome, Refused> {
    let mut outcome = settle(fan, now);
    if !outcome.fan.following {
        return Err(no_room(&outcome.fan, now));
    }
    let Some(kind) = WindowKind::ALL.into_iter().find(|kind| {
        outcome
            .fan
            .windows
            .get(*kind)
            .is_some_and(|grant| grant.has_room(now))
    }) else {
        return Err(no_room(&outcome.fan, now));
    };
    if let Some(grant) = outcome.fan.windows.slot(kind) {
        grant.used = grant.used.saturating_add(1);
    }
    outcome.record(now, opercode::SENT, text, worker);
    touch(&mut outcome.fan, now);
    outcome.fan.typing_until = None;
    Ok(outcome)
}

/// A passive reply the developer's server answered a push with: recorded (2002) as
/// the official account's, outside the windows (WeChat counts it as the answer to the
/// fan's message, not a customer service message).
pub(crate) fn passive_reply(fan: Fan, text: String, now: i64) -> Outcome {
    let mut outcome = settle(fan, now);
    outcome.record(now, opercode::SENT, text, "");
    touch(&mut outcome.fan, now);
    outcome
}

/// Marks a message exchanged at `now`: typing's 30 seconds, a session's idle time.
fn touch(fan: &mut Fan, now: i64) {
    fan.last_exchange = Some(now);
    if let Some(FanSession::Served { active, .. }) = &mut fan.session {
        *active = now;
    }
}

/// Typing at `now`: the fan must follow with a window open (45015) and a message
/// exchanged in the last 30 seconds (45080); `Typing` shows for 15 seconds and another
/// within them is 45081; `CancelTyping` stops it.
pub(crate) fn typing(fan: Fan, command: TypingCommand, now: i64) -> Result<Outcome, Refused> {
    let mut outcome = settle(fan, now);
    let open = outcome.fan.following
        && WindowKind::ALL.iter().any(|kind| {
            outcome
                .fan
                .windows
                .get(*kind)
                .is_some_and(|grant| grant.is_open(now))
        });
    if !open {
        return Err(no_room(&outcome.fan, now));
    }
    let recent = outcome
        .fan
        .last_exchange
        .is_some_and(|at| now.saturating_sub(at) <= TYPING_NEEDS_EXCHANGE_SECS);
    if !recent {
        return Err(Refused::new(
            ErrCode::TypingNeedsInteraction,
            match outcome.fan.last_exchange {
                Some(at) => format!(
                    "the last message either way was at {at}, more than \
                     {TYPING_NEEDS_EXCHANGE_SECS} seconds ago"
                ),
                None => "no message has been exchanged with the fan".to_owned(),
            },
        ));
    }
    match command {
        TypingCommand::Typing => {
            if let Some(until) = outcome.fan.typing_until.filter(|until| now < *until) {
                return Err(Refused::new(
                    ErrCode::AlreadyTyping,
                    format!("the last Typing shows until {until} ({TYPING_SECS} seconds)"),
                ));
            }
            outcome.fan.typing_until = Some(now + TYPING_SECS);
        }
        TypingCommand::CancelTyping => outcome.fan.typing_until = None,
    }
    Ok(outcome)
}

/// Serves the fan with `kf` at `now`: the fan must follow (40003), the account be bound
/// to a WeChat user (65402) and online (65415); served by it already is 0, by another
/// 65414. A waiting fan is taken (1001), another is begun with (1002).
pub(crate) fn create_session(fan: Fan, kf: &Kf, now: i64) -> Result<Outcome, Refused> {
    let mut outcome = settle(fan, now);
    if !outcome.fan.following {
        return Err(Refused::new(
            ErrCode::InvalidOpenid,
            "the fan does not follow the app",
        ));
    }
    if kf.kf_wx.is_none() {
        return Err(Refused::new(
            ErrCode::KfNotBound,
            format!(
                "{} is not bound to a WeChat user (invite one and let the invitation be \
                 accepted)",
                kf.kf_account
            ),
        ));
    }
    if kf.online_status == 0 {
        return Err(Refused::new(
            ErrCode::KfNotOnline,
            format!("{} is not online", kf.kf_account),
        ));
    }
    let opercode = match &outcome.fan.session {
        Some(FanSession::Served { kf_account, .. }) if *kf_account == kf.kf_account => {
            return Ok(outcome);
        }
        Some(FanSession::Served { kf_account, .. }) => {
            return Err(Refused::new(
                ErrCode::ServedByOther,
                format!("{kf_account} serves the fan"),
            ));
        }
        Some(FanSession::Waiting { .. }) => opercode::ACCEPTED,
        None => opercode::INITIATED,
    };
    begin(&mut outcome, &kf.kf_account, opercode, now);
    Ok(outcome)
}

fn begin(outcome: &mut Outcome, kf_account: &str, opercode: i64, now: i64) {
    outcome.fan.session = Some(FanSession::Served {
        kf_account: kf_account.to_owned(),
        since: now,
        active: now,
    });
    outcome.cases.push((kf_account.to_owned(), 1));
    outcome.record(now, opercode, "[session started]", kf_account);
    outcome.began = Some(kf_account.to_owned());
}

/// Ends the fan's session with `kf_account` at `now`: none (or only a place in the
/// queue) is 65413, another account's 65414.
pub(crate) fn close_session(fan: Fan, kf_account: &str, now: i64) -> Result<Outcome, Refused> {
    let mut outcome = settle(fan, now);
    match outcome.fan.session.clone() {
        Some(FanSession::Served {
            kf_account: serving,
            ..
        }) if serving == kf_account => {
            outcome.end(serving, now);
            Ok(outcome)
        }
        Some(FanSession::Served {
            kf_account: serving,
            ..
        }) => Err(Refused::new(
            ErrCode::ServedByOther,
            format!("{serving} serves the fan, not {kf_account}"),
        )),
        _ => Err(Refused::new(
            ErrCode::NoSession,
            "no account serves the fan",
        )),
    }
}

/// Puts the fan in the queue at `now` (1000), or with `to` when that account can take
/// it (bound and online), as the developer's `transfer_customer_service` reply does.
/// A fan already served stays with its account; one already waiting keeps its place.
pub(crate) fn enqueue(fan: Fan, to: Option<&Kf>, now: i64) -> Outcome {
    let mut outcome = settle(fan, now);
    if !outcome.fan.following {
        return outcome;
    }
    match &outcome.fan.session {
        Some(FanSession::Served { .. }) => return outcome,
        Some(FanSession::Waiting { .. }) if to.is_none() => return outcome,
        _ => {}
    }
    if let Some(kf) = to.filter(|kf| kf.kf_wx.is_some() && kf.online_status != 0) {
        let opercode = if matches!(outcome.fan.session, Some(FanSession::Waiting { .. })) {
            opercode::ACCEPTED
        } else {
            opercode::INITIATED
        };
        begin(&mut outcome, &kf.kf_account, opercode, now);
        return outcome;
    }
    if outcome.fan.session.is_none() {
        let latest = outcome.fan.last_exchange.unwrap_or(now);
        outcome.fan.session = Some(FanSession::Waiting {
            since: now,
            seq: 0,
            latest,
        });
        outcome.enqueued = true;
        outcome.record(now, opercode::WAITING, "[waiting]", "");
    }
    outcome
}

/// The operations on a fan as a backend runs them: on the fan (and the account the
/// call names, when it names one) as the store found them under its lock. A fan that is
/// not there is `40003` to WeChat's calls and not found to the admin surface's; an
/// account that is not there is `65401`.
pub(crate) mod found {
    use super::*;

    /// [`super::create_session`].
    pub(crate) fn create_session(
        fan: Option<Fan>,
        kf: Option<Kf>,
        account: &str,
        now: i64,
    ) -> StoreResult<Outcome> {
        let fan = fan.ok_or_else(no_fan)?;
        let kf = kf.ok_or_else(|| no_kf(account))?;
        super::create_session(fan, &kf, now).map_err(StoreError::Refused)
    }

    /// [`super::close_session`].
    pub(crate) fn close_session(
        fan: Option<Fan>,
        kf: Option<Kf>,
        account: &str,
        now: i64,
    ) -> StoreResult<Outcome> {
        let fan = fan.ok_or_else(no_fan)?;
        kf.ok_or_else(|| no_kf(account))?;
        super::close_session(fan, account, now).map_err(StoreError::Refused)
    }

    /// [`super::enqueue`], to the account found when one was named.
    pub(crate) fn enqueue(fan: Option<Fan>, kf: Option<Kf>, now: i64) -> StoreResult<Outcome> {
        Ok(super::enqueue(
            fan.ok_or(StoreError::NotFound)?,
            kf.as_ref(),
            now,
        ))
    }

    /// [`super::send`], as `worker` when one is named.
    pub(crate) fn send(
        fan: Option<Fan>,
        kf: Option<Kf>,
        worker: Option<&str>,
        text: String,
        now: i64,
    ) -> StoreResult<Outcome> {
        let fan = fan.ok_or_else(no_fan)?;
        let worker = match (worker, kf) {
            (Some(name), None) => return Err(no_kf(name)),
            (Some(name), Some(_)) => name,
            (None, _) => "",
        };
        super::send(fan, text, worker, now).map_err(StoreError::Refused)
    }

    /// [`super::passive_reply`].
    pub(crate) fn passive_reply(fan: Option<Fan>, text: String, now: i64) -> StoreResult<Outcome> {
        Ok(super::passive_reply(
            fan.ok_or(StoreError::NotFound)?,
            text,
            now,
        ))
    }

    /// [`super::typing`].
    pub(crate) fn typing(
        fan: Option<Fan>,
        command: TypingCommand,
        now: i64,
    ) -> StoreResult<Outcome> {
        super::typing(fan.ok_or_else(no_fan)?, command, now).map_err(StoreError::Refused)
    }

    /// [`super::act`].
    pub(crate) fn act(
        fan: Option<Fan>,
        action: &FanAction,
        rules: &DeliveryWindows,
        now: i64,
    ) -> StoreResult<Outcome> {
        super::act(fan.ok_or(StoreError::NotFound)?, action, rules, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kefu_api::admin::FanAction;

    fn fan() -> Fan {
        Fan::new("fan1".to_owned(), String::new(), 0)
    }

    fn kf(online: i64, bound: bool) -> Kf {
        Kf {
            kf_id: 2001,
            kf_account: "a@test".to_owned(),
            nickname: "A".to_owned(),
            kf_openid: "o".to_owned(),
            headimg_version: None,
            kf_wx: bound.then(|| "worker1".to_owned()),
            invitation: None,
            online_status: online,
            accepted_case: 0,
            created_at: 0,
        }
    }

    fn text(content: &str) -> FanAction {
        FanAction::Text {
            content: content.to_owned(),
        }
    }

    fn code(result: Result<Outcome, Refused>) -> ErrCode {
        result.unwrap_err().code
    }

    const RULES: DeliveryWindows = DeliveryWindows {
        message: kefu_api::admin::WindowRule {
            secs: 48 * 3600,
            limit: Some(5),
        },
        event: kefu_api::admin::WindowRule {
            secs: 60,
            limit: Some(3),
        },
        payment: kefu_api::admin::WindowRule {
            secs: 48 * 3600,
            limit: None,
        },
    };

    #[test]
    fn a_fans_message_lets_five_replies_through_for_48_hours() {
        let mut fan = act(fan(), &text("hi"), &RULES, 100).unwrap().fan;
        for _ in 0..5 {
            fan = send(fan, "r".to_owned(), "", 200).unwrap().fan;
        }
        assert_eq!(
            code(send(fan.clone(), "r".to_owned(), "", 200)),
            ErrCode::ResponseCountLimit
        );
        let later = 100 + 48 * 3600;
        assert_eq!(
            code(send(fan.clone(), "r".to_owned(), "", later)),
            ErrCode::ResponseOutOfTimeLimit
        );
        let again = act(fan, &text("again"), &RULES, later).unwrap().fan;
        assert!(send(again, "r".to_owned(), "", later).is_ok());
    }

    #[test]
    fn a_click_lets_three_through_for_a_minute_and_a_payment_any_number() {
        let click = FanAction::Click {
            key: "K".to_owned(),
        };
        let mut fan = act(fan(), &click, &RULES, 0).unwrap().fan;
        for _ in 0..3 {
            fan = send(fan, "r".to_owned(), "", 10).unwrap().fan;
        }
        assert_eq!(
            code(send(fan.clone(), "r".to_owned(), "", 10)),
            ErrCode::ResponseCountLimit
        );
        assert_eq!(
            code(send(fan.clone(), "r".to_owned(), "", 60)),
            ErrCode::ResponseOutOfTimeLimit
        );
        let mut paid = act(fan, &FanAction::Pay, &RULES, 100).unwrap().fan;
        for _ in 0..50 {
            paid = send(paid, "r".to_owned(), "", 200).unwrap().fan;
        }
    }

    #[test]
    fn unfollowing_closes_every_window_and_ends_the_session() {
        let fan = act(fan(), &text("hi"), &RULES, 0).unwrap().fan;
        let served = create_session(fan, &kf(1, true), 1).unwrap();
        assert_eq!(served.cases, [("a@test".to_owned(), 1)]);
        let gone = act(served.fan, &FanAction::Unfollow, &RULES, 2).unwrap();
        assert_eq!(gone.cases, [("a@test".to_owned(), -1)]);
        assert_eq!(gone.ended.as_deref(), Some("a@test"));
        assert_eq!(
            code(send(gone.fan.clone(), "r".to_owned(), "", 3)),
            ErrCode::ResponseOutOfTimeLimit
        );
        assert!(act(gone.fan, &text("hi"), &RULES, 4).is_err());
    }

    #[test]
    fn a_session_needs_a_bound_online_account_and_ends_after_30_idle_minutes() {
        let fan = act(fan(), &text("hi"), &RULES, 0).unwrap().fan;
        assert_eq!(
            code(create_session(fan.clone(), &kf(1, false), 0)),
            ErrCode::KfNotBound
        );
        assert_eq!(
            code(create_session(fan.clone(), &kf(0, true), 0)),
            ErrCode::KfNotOnline
        );
        let served = create_session(fan, &kf(1, true), 10).unwrap().fan;
        let again = create_session(served.clone(), &kf(1, true), 11).unwrap();
        assert!(again.cases.is_empty(), "a second create changes nothing");
        let mut other = kf(1, true);
        other.kf_account = "b@test".to_owned();
        assert_eq!(
            code(create_session(served.clone(), &other, 12)),
            ErrCode::ServedByOther
        );
        assert_eq!(
            code(close_session(served.clone(), "b@test", 12)),
            ErrCode::ServedByOther
        );
        let idle = settle(served.clone(), 10 + IDLE_SECS);
        assert_eq!(idle.fan.session, None);
        assert_eq!(idle.cases, [("a@test".to_owned(), -1)]);
        assert_eq!(idle.records[0].0, 10 + IDLE_SECS, "ended when it went idle");
        let closed = close_session(served, "a@test", 20).unwrap();
        assert_eq!(
            code(close_session(closed.fan, "a@test", 21)),
            ErrCode::NoSession
        );
    }

    #[test]
    fn typing_needs_a_recent_exchange_and_lasts_fifteen_seconds() {
        let fan = act(fan(), &text("hi"), &RULES, 0).unwrap().fan;
        let typing = typing(fan.clone(), TypingCommand::Typing, 5).unwrap().fan;
        assert_eq!(
            code(super::typing(typing.clone(), TypingCommand::Typing, 10)),
            ErrCode::AlreadyTyping
        );
        assert!(super::typing(typing.clone(), TypingCommand::Typing, 20).is_ok());
        let sent = send(typing, "r".to_owned(), "", 6).unwrap().fan;
        assert_eq!(sent.typing_until, None, "a message cancels typing");
        assert_eq!(
            code(super::typing(fan, TypingCommand::Typing, 31)),
            ErrCode::TypingNeedsInteraction
        );
    }

    #[test]
    fn a_transfer_queues_the_fan_or_hands_it_to_an_online_account() {
        let fan = act(fan(), &text("hi"), &RULES, 0).unwrap().fan;
        let queued = enqueue(fan.clone(), None, 1);
        assert!(queued.enqueued);
        assert!(matches!(
            queued.fan.session,
            Some(FanSession::Waiting { latest: 0, .. })
        ));
        let offline = enqueue(fan.clone(), Some(&kf(0, true)), 1);
        assert!(
            offline.enqueued,
            "an offline account leaves the fan waiting"
        );
        let taken = enqueue(queued.fan, Some(&kf(1, true)), 2);
        assert_eq!(taken.began.as_deref(), Some("a@test"));
        assert_eq!(taken.records[0].1.opercode, opercode::ACCEPTED);
    }

    #[test]
    fn every_limit_holds_to_the_second() {
        // A window is open until the second it closes, not at it.
        let opened = act(fan(), &text("hi"), &RULES, 100).unwrap().fan;
        let closes = 100 + 48 * 3600;
        assert!(send(opened.clone(), "r".to_owned(), "", closes - 1).is_ok());
        assert_eq!(
            code(send(opened.clone(), "r".to_owned(), "", closes)),
            ErrCode::ResponseOutOfTimeLimit
        );
        // Typing: a message exactly 30 seconds ago is recent enough; 31 is not.
        assert!(typing(opened.clone(), TypingCommand::Typing, 130).is_ok());
        assert_eq!(
            code(typing(opened.clone(), TypingCommand::Typing, 131)),
            ErrCode::TypingNeedsInteraction
        );
        // Typing shows for 15 seconds: again at 14 is refused, at 15 it is not.
        let shown = typing(opened, TypingCommand::Typing, 110).unwrap().fan;
        assert_eq!(
            code(typing(shown.clone(), TypingCommand::Typing, 124)),
            ErrCode::AlreadyTyping
        );
        assert!(typing(shown, TypingCommand::Typing, 125).is_ok());
        // A session 1 second short of 30 idle minutes goes on; at 30 minutes it ends.
        let wrote = act(fan(), &text("hi"), &RULES, 0).unwrap().fan;
        let served = create_session(wrote, &kf(1, true), 0).unwrap().fan;
        assert!(settle(served.clone(), IDLE_SECS - 1).ended.is_none());
        assert_eq!(settle(served, IDLE_SECS).ended.as_deref(), Some("a@test"));
    }
}
