//! The conformance checks of fans, sessions, messages, typing and history: the same on
//! every backend, including under concurrency.

use kefu_api::admin::{DeliveryWindows, FanAction, InvitationAction};
use kefu_api::endpoints::kf_session::IDLE_SECS;
use kefu_api::endpoints::message::TypingCommand;
use kefu_api::endpoints::msgrecord::{HistoryQuery, opercode};
use kefu_store::{Fan, FanSession};

use super::*;

conformance!(
    fans_are_made_listed_and_forgotten,
    a_fans_message_lets_five_sends_through_for_48_hours,
    twenty_concurrent_sends_into_a_window_of_five_give_five,
    sessions_follow_the_state_machine_and_are_counted,
    an_idle_session_ends_after_thirty_minutes,
    typing_needs_a_recent_exchange,
    history_pages_by_msgid_within_a_time_range,
    fans_sessions_and_history_travel_in_a_snapshot,
    a_deleted_account_ends_its_sessions,
    history_older_than_thirty_days_is_purged,
);

const FAN: &str = "oKefu0000000000000000000fan1";
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

fn text(content: &str) -> FanAction {
    FanAction::Text {
        content: content.to_owned(),
    }
}

fn refused(result: Result<impl std::fmt::Debug, StoreError>) -> ErrCode {
    match result {
        Err(StoreError::Refused(refused)) => refused.code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// The app with a fan that messaged at `now`.
async fn with_fan(store: &Arc<dyn Store>, openid: &str, now: i64) {
    store
        .create_fan(APPID, Fan::new(openid.to_owned(), "fan".to_owned(), now))
        .await
        .unwrap();
    store
        .fan_act(APPID, openid, &text("hello"), &RULES, now)
        .await
        .unwrap();
}

/// An account bound to a worker and online.
async fn serving_account(store: &Arc<dyn Store>, prefix: &str) -> KfAccount {
    store.add_kf(APPID, new_kf(prefix)).await.unwrap();
    let kf = account(&format!("{prefix}@shop"));
    let worker = WechatId::parse(&format!("worker{prefix}")).unwrap();
    store
        .invite_kf(APPID, invitation(&kf, &worker, 100, 10_000, 5))
        .await
        .unwrap();
    store
        .answer_invitation(APPID, answer(&kf, InvitationAction::Accept, 100, 5))
        .await
        .unwrap();
    store.set_kf_online(APPID, &kf, 1).await.unwrap();
    kf
}

async fn accepted_case(store: &Arc<dyn Store>, kf: &KfAccount) -> i64 {
    store
        .kfs(APPID)
        .await
        .unwrap()
        .iter()
        .find(|k| k.kf_account == kf.as_str())
        .unwrap()
        .accepted_case
}

async fn fans_are_made_listed_and_forgotten(backend: Backend) {
    let store = backend.open().await;
    assert!(matches!(
        store
            .create_fan(APPID, Fan::new(FAN.to_owned(), String::new(), 1))
            .await,
        Err(StoreError::NotFound)
    ));
    with_app(&store).await;
    store
        .create_fan(APPID, Fan::new(FAN.to_owned(), "A".to_owned(), 1))
        .await
        .unwrap();
    store
        .create_fan(APPID, Fan::new("fan2".to_owned(), "B".to_owned(), 2))
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_fan(APPID, Fan::new(FAN.to_owned(), String::new(), 3))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let fans = store.fans(APPID).await.unwrap();
    assert_eq!(
        fans.iter().map(|f| f.openid.as_str()).collect::<Vec<_>>(),
        [FAN, "fan2"],
        "oldest first"
    );
    assert!(fans[0].following);
    store.delete_fan(APPID, "fan2", 10).await.unwrap();
    assert!(store.fan(APPID, "fan2").await.unwrap().is_none());
    assert!(matches!(
        store.delete_fan(APPID, "fan2", 10).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.fan_act(APPID, "nobody", &text("x"), &RULES, 10).await,
        Err(StoreError::NotFound)
    ));
    // A fan who left can only come back.
    store
        .fan_act(APPID, FAN, &FanAction::Unfollow, &RULES, 11)
        .await
        .unwrap();
    assert!(matches!(
        store.fan_act(APPID, FAN, &text("x"), &RULES, 12).await,
        Err(StoreError::Conflict(_))
    ));
    let back = store
        .fan_act(APPID, FAN, &FanAction::Follow, &RULES, 13)
        .await
        .unwrap();
    assert!(back.fan.following);
}

async fn a_fans_message_lets_five_sends_through_for_48_hours(backend: Backend) {
    let store = backend.open().await;
    with_app(&store).await;
    store.add_kf(APPID, new_kf("a")).await.unwrap();
    assert_eq!(
        refused(
            store
                .send_message(APPID, FAN, "hi".to_owned(), None, 100)
                .await
        ),
        ErrCode::InvalidOpenid
    );
    store
        .create_fan(APPID, Fan::new(FAN.to_owned(), String::new(), 100))
        .await
        .unwrap();
    assert_eq!(
        refused(
            store
                .send_message(APPID, FAN, "hi".to_owned(), None, 100)
                .await
        ),
        ErrCode::ResponseOutOfTimeLimit,
        "no window before the fan acts"
    );
    store
        .fan_act(APPID, FAN, &text("hello"), &RULES, 1000)
        .await
        .unwrap();
    assert_eq!(
        refused(
            store
                .send_message(APPID, FAN, "hi".to_owned(), Some(&account("zz@shop")), 1001)
                .await
        ),
        ErrCode::InvalidKfAccount
    );
    for n in 0..5 {
        store
            .send_message(
                APPID,
                FAN,
                format!("reply {n}"),
                Some(&account("a@shop")),
                1001,
            )
            .await
            .unwrap();
    }
    assert_eq!(
        refused(
            store
                .send_message(APPID, FAN, "sixth".to_owned(), None, 1002)
                .await
        ),
        ErrCode::ResponseCountLimit
    );
    drop(store);
    let store = backend.open().await;
    assert_eq!(
        refused(
            store
                .send_message(APPID, FAN, "sixth".to_owned(), None, 1003)
                .await
        ),
        ErrCode::ResponseCountLimit,
        "the count survives a reopen"
    );
    assert_eq!(
        refused(
            store
                .send_message(APPID, FAN, "late".to_owned(), None, 1000 + 48 * 3600)
                .await
        ),
        ErrCode::ResponseOutOfTimeLimit
    );
    let fan = store.fan(APPID, FAN).await.unwrap().unwrap();
    assert_eq!(fan.windows.message.unwrap().used, 5);
    let history = store.fan_history(APPID, FAN, 100).await.unwrap();
    assert_eq!(history.len(), 6, "one received, five sent");
    assert_eq!(history[0].text, "reply 4");
    assert_eq!(history[0].opercode, opercode::SENT);
    assert_eq!(history[0].worker, "a@shop");
    assert_eq!(history[5].opercode, opercode::RECEIVED);
    // Unfollowing closes the window at once.
    store
        .fan_act(APPID, FAN, &FanAction::Pay, &RULES, 5000)
        .await
        .unwrap();
    store
        .fan_act(APPID, FAN, &FanAction::Unfollow, &RULES, 5001)
        .await
        .unwrap();
    assert_eq!(
        refused(
            store
                .send_message(APPID, FAN, "gone".to_owned(), None, 5002)
                .await
        ),
        ErrCode::ResponseOutOfTimeLimit
    );
}

async fn twenty_concurrent_sends_into_a_window_of_five_give_five(backend: Backend) {
    let store = backend.open().await;
    with_app(&store).await;
    with_fan(&store, FAN, 1000).await;
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .send_message(APPID, FAN, format!("m{n}"), None, 1001)
                    .await
            })
        })
        .collect();
    let (mut sent, mut spent) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => sent += 1,
            Err(StoreError::Refused(r)) if r.code == ErrCode::ResponseCountLimit => spent += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((sent, spent), (5, 15));
    let sends = store
        .fan_history(APPID, FAN, 100)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.opercode == opercode::SENT)
        .count();
    assert_eq!(sends, 5, "only the sent ones are recorded");
}

async fn sessions_follow_the_state_machine_and_are_counted(backend: Backend) {
    let store = backend.open().await;
    with_app(&store).await;
    with_fan(&store, FAN, 1000).await;
    with_fan(&store, "fan2", 1000).await;
    with_fan(&store, "fan3", 1000).await;
    // An account neither bound nor online cannot serve.
    store.add_kf(APPID, new_kf("x")).await.unwrap();
    assert_eq!(
        refused(
            store
                .create_session(APPID, FAN, &account("x@shop"), 1001)
                .await
        ),
        ErrCode::KfNotBound
    );
    let a = serving_account(&store, "a").await;
    let b = serving_account(&store, "b").await;
    store.set_kf_online(APPID, &b, 0).await.unwrap();
    assert_eq!(
        refused(store.create_session(APPID, FAN, &b, 1001).await),
        ErrCode::KfNotOnline
    );
    store.set_kf_online(APPID, &b, 1).await.unwrap();
    assert_eq!(
        refused(store.create_session(APPID, "nobody", &a, 1001).await),
        ErrCode::InvalidOpenid
    );
    assert_eq!(
        refused(
            store
                .create_session(APPID, FAN, &account("zz@shop"), 1001)
                .await
        ),
        ErrCode::InvalidKfAccount
    );
    let began = store.create_session(APPID, FAN, &a, 1002).await.unwrap();
    assert_eq!(began.began.as_deref(), Some("a@shop"));
    let again = store.create_session(APPID, FAN, &a, 1003).await.unwrap();
    assert_eq!(again.began, None, "a second create changes nothing");
    assert_eq!(
        refused(store.create_session(APPID, FAN, &b, 1003).await),
        ErrCode::ServedByOther
    );
    assert_eq!(
        refused(store.close_session(APPID, FAN, &b, 1003).await),
        ErrCode::ServedByOther
    );
    store.create_session(APPID, "fan2", &a, 1004).await.unwrap();
    assert_eq!(accepted_case(&store, &a).await, 2);
    assert_eq!(
        store.sessions_of(APPID, "a@shop", 1005).await.unwrap(),
        [(FAN.to_owned(), 1002), ("fan2".to_owned(), 1004)]
    );
    // The queue: fan3 then FAN's… no, FAN is served: only the others wait.
    store.enqueue(APPID, "fan3", None, 1006).await.unwrap();
    store.enqueue(APPID, FAN, None, 1007).await.unwrap();
    let (count, first) = store.wait_queue(APPID, 100).await.unwrap();
    assert_eq!((count, first), (1, vec![("fan3".to_owned(), 1000)]));
    let taken = store.create_session(APPID, "fan3", &b, 1008).await.unwrap();
    assert!(matches!(
        taken.fan.session,
        Some(FanSession::Served { ref kf_account, .. }) if kf_account == "b@shop"
    ));
    assert_eq!(store.wait_queue(APPID, 100).await.unwrap().0, 0);
    let closed = store.close_session(APPID, FAN, &a, 1009).await.unwrap();
    assert_eq!(closed.ended.as_deref(), Some("a@shop"));
    assert_eq!(
        refused(store.close_session(APPID, FAN, &a, 1010).await),
        ErrCode::NoSession
    );
    assert_eq!(accepted_case(&store, &a).await, 1);
    assert_eq!(accepted_case(&store, &b).await, 1);
    let records: Vec<i64> = store
        .fan_history(APPID, "fan3", 100)
        .await
        .unwrap()
        .iter()
        .map(|r| r.opercode)
        .collect();
    assert_eq!(
        records,
        [opercode::ACCEPTED, opercode::WAITING, opercode::RECEIVED],
        "newest first"
    );
    // A transfer to an online account serves the fan at once, in arrival order.
    with_fan(&store, "fan4", 1011).await;
    with_fan(&store, "fan5", 1011).await;
    store.enqueue(APPID, "fan5", None, 1012).await.unwrap();
    store.enqueue(APPID, "fan4", None, 1013).await.unwrap();
    let (count, first) = store.wait_queue(APPID, 1).await.unwrap();
    assert_eq!((count, first.len()), (2, 1));
    assert_eq!(first[0].0, "fan5", "first come, first listed");
    let to_b = store.enqueue(APPID, "fan4", Some(&b), 1014).await.unwrap();
    assert_eq!(to_b.began.as_deref(), Some("b@shop"));
    assert_eq!(accepted_case(&store, &b).await, 2);
}

async fn an_idle_session_ends_after_thirty_minutes(backend: Backend) {
    let store = backend.open().await;
    with_app(&store).await;
    with_fan(&store, FAN, 1000).await;
    let a = serving_account(&store, "a").await;
    store.create_session(APPID, FAN, &a, 1000).await.unwrap();
    // A message refreshes the session.
    store
        .send_message(APPID, FAN, "hi".to_owned(), Some(&a), 1100)
        .await
        .unwrap();
    assert!(
        store
            .end_idle_sessions(1000 + IDLE_SECS)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .sessions_of(APPID, "a@shop", 1099 + IDLE_SECS)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .sessions_of(APPID, "a@shop", 1100 + IDLE_SECS)
            .await
            .unwrap()
            .is_empty(),
        "an idle session is over whether or not it was ended yet"
    );
    let ended = store.end_idle_sessions(1100 + IDLE_SECS).await.unwrap();
    assert_eq!(ended.len(), 1);
    assert_eq!(
        (ended[0].openid.as_str(), ended[0].kf_account.as_str()),
        (FAN, "a@shop")
    );
    assert_eq!(accepted_case(&store, &a).await, 0);
    assert!(
        store
            .end_idle_sessions(1200 + IDLE_SECS)
            .await
            .unwrap()
            .is_empty()
    );
    let fan = store.fan(APPID, FAN).await.unwrap().unwrap();
    assert_eq!(fan.session, None);
}

async fn typing_needs_a_recent_exchange(backend: Backend) {
    let store = backend.open().await;
    with_app(&store).await;
    with_fan(&store, FAN, 1000).await;
    store
        .typing(APPID, FAN, TypingCommand::Typing, 1010)
        .await
        .unwrap();
    assert_eq!(
        refused(store.typing(APPID, FAN, TypingCommand::Typing, 1020).await),
        ErrCode::AlreadyTyping
    );
    store
        .typing(APPID, FAN, TypingCommand::CancelTyping, 1021)
        .await
        .unwrap();
    store
        .typing(APPID, FAN, TypingCommand::Typing, 1022)
        .await
        .unwrap();
    assert_eq!(
        refused(store.typing(APPID, FAN, TypingCommand::Typing, 1031).await),
        ErrCode::TypingNeedsInteraction
    );
    assert_eq!(
        refused(
            store
                .typing(APPID, "nobody", TypingCommand::Typing, 1031)
                .await
        ),
        ErrCode::InvalidOpenid
    );
}

async fn history_pages_by_msgid_within_a_time_range(backend: Backend) {
    let store = backend.open().await;
    with_app(&store).await;
    with_fan(&store, FAN, 1000).await;
    for n in 0..4 {
        store
            .send_message(APPID, FAN, format!("m{n}"), None, 1001 + n)
            .await
            .unwrap();
    }
    let query = |from_msgid, limit, offset| HistoryQuery {
        start: 1000,
        end: 1003,
        from_msgid,
        limit,
        offset,
        openid: None,
    };
    let first = store.history(APPID, &query(1, 2, 0)).await.unwrap();
    assert_eq!(
        first.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(),
        ["hello", "m0"]
    );
    let next = first.last().unwrap().msgid + 1;
    let second = store.history(APPID, &query(next, 10, 0)).await.unwrap();
    assert_eq!(
        second.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(),
        ["m1", "m2"],
        "m3 at 1004 is past the range"
    );
    let page = store.history(APPID, &query(1, 2, 2)).await.unwrap();
    assert_eq!(page[0].text, "m1", "an offset skips the first records");
    assert!(
        store
            .history("wx00000000000000ff", &query(1, 10, 0))
            .await
            .unwrap()
            .is_empty()
    );
    with_fan(&store, "fan2", 1002).await;
    let of_fan2 = HistoryQuery {
        openid: Some("fan2".to_owned()),
        ..query(1, 10, 0)
    };
    let records = store.history(APPID, &of_fan2).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].openid, "fan2");
}

async fn fans_sessions_and_history_travel_in_a_snapshot(backend: Backend) {
    let store = backend.open().await;
    with_app(&store).await;
    with_fan(&store, FAN, 1000).await;
    with_fan(&store, "fan2", 1000).await;
    let a = serving_account(&store, "a").await;
    store.create_session(APPID, FAN, &a, 1001).await.unwrap();
    store.enqueue(APPID, "fan2", None, 1002).await.unwrap();
    let snapshot = store.snapshot().await.unwrap();
    assert_eq!(snapshot.apps[0].fans.len(), 2);
    assert_eq!(snapshot.apps[0].history.len(), 4);
    let document = serde_json::to_string(&snapshot).unwrap();
    let read: Snapshot = serde_json::from_str(&document).unwrap();
    let mut targets = vec![Backend::sqlite(Durability::Full)];
    if let Some(pg) = Backend::postgres().await {
        targets.push(pg);
    }
    for target in targets {
        let fresh = target.open().await;
        fresh.restore(read.clone()).await.unwrap();
        assert_eq!(fresh.snapshot().await.unwrap(), snapshot);
        assert_eq!(accepted_case(&fresh, &a).await, 1, "counted from the fans");
        assert_eq!(fresh.wait_queue(APPID, 10).await.unwrap().0, 1);
        // New records come after the loaded ones.
        fresh
            .send_message(APPID, FAN, "after".to_owned(), None, 1003)
            .await
            .unwrap();
        let last = fresh.fan_history(APPID, FAN, 1).await.unwrap();
        let loaded_max = snapshot.apps[0]
            .history
            .iter()
            .map(|r| r.msgid)
            .max()
            .unwrap();
        assert!(last[0].msgid > loaded_max);
    }
}

async fn a_deleted_account_ends_its_sessions(backend: Backend) {
    let store = backend.open().await;
    with_app(&store).await;
    with_fan(&store, FAN, 1000).await;
    let a = serving_account(&store, "a").await;
    store.create_session(APPID, FAN, &a, 1001).await.unwrap();
    store
        .delete_kf(APPID, &Target::Account(a.clone()))
        .await
        .unwrap();
    let fan = store.fan(APPID, FAN).await.unwrap().unwrap();
    assert_eq!(fan.session, None);
    let b = serving_account(&store, "b").await;
    store.create_session(APPID, FAN, &b, 1002).await.unwrap();
    assert_eq!(accepted_case(&store, &b).await, 1);
}

async fn history_older_than_thirty_days_is_purged(backend: Backend) {
    let store = backend.open().await;
    with_app(&store).await;
    let day = 86_400;
    with_fan(&store, FAN, 10 * day).await;
    store
        .fan_act(APPID, FAN, &text("later"), &RULES, 20 * day)
        .await
        .unwrap();
    store.maintain(40 * day + 1, 0).await.unwrap();
    let left = store.fan_history(APPID, FAN, 10).await.unwrap();
    assert_eq!(
        left.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(),
        ["later"]
    );
}
