//! Every failed call's record says why: `GET /kefu/v1/requests` shows, next to the
//! errcode, which rule refused the call and how.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Answer, TestServer};

/// The request log's entry for the call that answered `answer`.
async fn entry(server: &TestServer, answer: &Answer) -> Value {
    let rid = kefu_api::Rid::from_errmsg(answer.errmsg())
        .unwrap_or_else(|| panic!("no rid in {}", answer.raw))
        .to_string();
    let (status, log) = server
        .admin_json(Method::GET, "/kefu/v1/requests?limit=1000", None)
        .await;
    assert_eq!(status, 200, "{log}");
    log.as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["rid"] == rid.as_str())
        .unwrap_or_else(|| panic!("{rid} is not in the request log"))
        .clone()
}

/// The reason recorded for `answer`, which must have answered `code`.
async fn reason(server: &TestServer, answer: &Answer, code: i64) -> String {
    answer.assert_code(code);
    let entry = entry(server, answer).await;
    assert_eq!(entry["errcode"], code, "{entry}");
    entry["reason"].as_str().unwrap_or_default().to_owned()
}

fn assert_says(reason: &str, words: &[&str]) {
    for word in words {
        assert!(reason.contains(word), "{reason:?} does not say {word:?}");
    }
}

#[tokio::test]
async fn a_refused_token_says_why() {
    let server = TestServer::spawn().await;
    let app = server.app("reasons").await;
    let account = app.account("a");
    server.add(&app.token, &account, "a").await.assert_code(0);

    let unknown = server.update("not-a-token", &account, "b").await;
    assert_says(&reason(&server, &unknown, 40001).await, &["no such token"]);

    // A newer token supersedes the first after its 5-minute grace.
    let newer = server.token(&app.appid, &app.secret).await;
    let grace_end = server.clock.now() + 300;
    server.advance(301);
    let superseded = server.update(&app.token, &account, "b").await;
    assert_says(
        &reason(&server, &superseded, 40001).await,
        &[
            "replaced by a newer one",
            &kefu_server::clock::utc(grace_end),
        ],
    );

    server.advance(7200);
    let expired = server.update(&newer, &account, "b").await;
    assert_says(&reason(&server, &expired, 42001).await, &["expired at"]);

    let missing = server
        .post_json(
            "/customservice/kfaccount/update",
            &json!({"kf_account": account, "nickname": "b"}),
        )
        .await;
    assert_says(
        &reason(&server, &missing, 41001).await,
        &["no access_token"],
    );
}

#[tokio::test]
async fn a_spent_quota_says_which_and_how_much() {
    let server = TestServer::spawn().await;
    let app = server
        .app_with(json!({"wechat_id": "quotareason", "quotas": {"/customservice/kfaccount/add": {"daily": 1}}}))
        .await;
    server
        .add(&app.token, &app.account("a"), "a")
        .await
        .assert_code(0);
    let spent = server.add(&app.token, &app.account("b"), "b").await;
    assert_says(
        &reason(&server, &spent, 45009).await,
        &[
            "quota of 1 calls a day",
            "/customservice/kfaccount/add",
            "next midnight",
        ],
    );
}

#[tokio::test]
async fn a_fault_says_which_rule() {
    let server = TestServer::spawn().await;
    let app = server.app("faultreason").await;
    let (status, created) = server
        .admin_json(
            Method::POST,
            "/kefu/v1/faults",
            Some(json!({"path": "/customservice/kfaccount/add", "errcode": 65400, "times": 1})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_u64().unwrap();
    let faulted = server.add(&app.token, &app.account("a"), "a").await;
    assert_says(
        &reason(&server, &faulted, 65400).await,
        &[&format!("fault rule #{id}"), "65400"],
    );
}

#[tokio::test]
async fn a_refused_field_says_which_rule_it_breaks() {
    let server = TestServer::spawn().await;
    let app = server.app("fieldreason").await;
    let long = server
        .add(&app.token, &app.account("a"), "seventeen_chars_x")
        .await;
    assert_says(
        &reason(&server, &long, 65403).await,
        &["17 characters", "at most 16"],
    );
    let foreign = server.add(&app.token, "a@someone_else", "a").await;
    assert_says(
        &reason(&server, &foreign, 65404).await,
        &[
            "someone_else",
            "neither this app's WeChat ID nor its original id",
        ],
    );
    let invite = server
        .call(
            "/customservice/kfaccount/inviteworker",
            &app.token,
            json!({"kf_account": app.account("a"), "invite_wx": "9lives_worker"}),
        )
        .await;
    assert_says(
        &reason(&server, &invite, 65409).await,
        &["starts with a letter"],
    );
    let broken = server
        .post(
            &format!("/customservice/kfaccount/add?access_token={}", app.token),
            "{\"kf_account\": 5}",
        )
        .await;
    assert_says(
        &reason(&server, &broken, 47001).await,
        &["wrong JSON type", "line 1 column"],
    );
}

#[tokio::test]
async fn an_app_outside_the_kf_scope_says_why() {
    let server = TestServer::spawn().await;
    let sandbox = server
        .app_with(json!({"wechat_id": "sandreason", "account_type": "sandbox"}))
        .await;
    let refused = server.add(&sandbox.token, &sandbox.account("a"), "a").await;
    assert_says(&reason(&server, &refused, 65400).await, &["sandbox"]);
    let unverified = server
        .app_with(json!({"wechat_id": "unverreason", "verified": false}))
        .await;
    let refused = server
        .add(&unverified.token, &unverified.account("a"), "a")
        .await;
    assert_says(&reason(&server, &refused, 48001).await, &["not verified"]);
}

#[tokio::test]
async fn every_failure_in_the_log_has_a_reason_and_no_success_has_one() {
    let server = TestServer::spawn().await;
    let app = server.app("allreasons").await;
    let account = app.account("a");
    server.add(&app.token, &account, "a").await.assert_code(0);
    server
        .add(&app.token, &account, "a")
        .await
        .assert_code(65406);
    server
        .get("/customservice/kfaccount/add")
        .await
        .assert_code(43002);
    server
        .update(&app.token, "b@nobody", "b")
        .await
        .assert_code(65401);
    let (_, log) = server
        .admin_json(Method::GET, "/kefu/v1/requests?limit=1000", None)
        .await;
    let entries = log.as_array().unwrap();
    // The token, both adds, the GET refused with 43002 and the update.
    assert_eq!(entries.len(), 5, "{log}");
    for entry in entries {
        let reason = entry["reason"].as_str().unwrap();
        if entry["errcode"] == 0 {
            assert_eq!(reason, "", "{entry}");
        } else {
            assert!(!reason.is_empty(), "{entry}");
        }
    }
}
