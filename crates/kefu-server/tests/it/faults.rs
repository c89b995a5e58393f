//! Fault injection and the other simulation controls (README, "Endpoints").

use std::time::Instant;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestServer;

async fn fault(server: &TestServer, rule: Value) -> u64 {
    let (status, created) = server
        .admin_json(Method::POST, "/kefu/v1/faults", Some(rule))
        .await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_u64().unwrap()
}

#[tokio::test]
async fn an_injected_40001_makes_a_retrying_client_recover() {
    let server = TestServer::spawn().await;
    let app = server.app("retrier").await;
    server
        .add(&app.token, &app.account("a"), "a")
        .await
        .assert_code(0);
    fault(&server, json!({"appid": app.appid, "path": "/customservice/kfaccount/update", "errcode": 40001, "times": 1})).await;
    // What wechatpy and WxJava do: on 40001, fetch a new token and retry once.
    let mut token = app.token.clone();
    let mut attempts = 0;
    let answer = loop {
        attempts += 1;
        let answer = server.update(&token, &app.account("a"), "recovered").await;
        if answer.errcode() == 40001 && attempts == 1 {
            token = server.token(&app.appid, &app.secret).await;
            continue;
        }
        break answer;
    };
    answer.assert_code(0);
    assert_eq!(attempts, 2);
    assert_eq!(server.list(&token).await[0]["kf_nick"], "recovered");
    let (_, rules) = server
        .admin_json(Method::GET, "/kefu/v1/faults", None)
        .await;
    assert_eq!(
        rules,
        json!([]),
        "a rule with times=1 goes away after firing"
    );
}

#[tokio::test]
async fn a_plain_fault_changes_nothing() {
    let server = TestServer::spawn().await;
    let app = server.app("plainfault").await;
    server
        .add(&app.token, &app.account("a"), "a")
        .await
        .assert_code(0);
    fault(
        &server,
        json!({"path": "/customservice/kfaccount/update", "errcode": -1, "times": 1}),
    )
    .await;
    server
        .update(&app.token, &app.account("a"), "changed")
        .await
        .assert_code(-1);
    assert_eq!(
        server.list(&app.token).await[0]["kf_nick"],
        "a",
        "not applied"
    );
}

#[tokio::test]
async fn minus_one_but_applied_leaves_the_change_in_place() {
    let server = TestServer::spawn().await;
    let app = server.app("applied").await;
    fault(
        &server,
        json!({"path": "/customservice/kfaccount/add", "errcode": -1, "applied": true, "times": 1}),
    )
    .await;
    server
        .add(&app.token, &app.account("a"), "a")
        .await
        .assert_code(-1);
    assert_eq!(server.list(&app.token).await.len(), 1, "the add happened");
    // A blind retry of the add now hits the duplicate.
    server
        .add(&app.token, &app.account("a"), "a")
        .await
        .assert_code(65406);
}

#[tokio::test]
async fn rules_by_app_probability_latency_and_removal() {
    let server = TestServer::spawn().await;
    let target = server.app("target").await;
    let bystander = server.app("bystander").await;
    let never = fault(
        &server,
        json!({"path": "/cgi-bin/customservice/getkflist", "errcode": 45009, "probability": 0.0}),
    )
    .await;
    let always = fault(&server, json!({"appid": target.appid, "path": "/cgi-bin/customservice/getkflist", "errcode": 48004})).await;
    let list = |token: String| {
        let server = &server;
        async move {
            server
                .get(&format!(
                    "/cgi-bin/customservice/getkflist?access_token={token}"
                ))
                .await
        }
    };
    list(target.token.clone()).await.assert_code(48004);
    list(target.token.clone()).await.assert_code(48004);
    assert!(
        list(bystander.token.clone()).await.json["kf_list"].is_array(),
        "another app is untouched"
    );
    let (_, rules) = server
        .admin_json(Method::GET, "/kefu/v1/faults", None)
        .await;
    assert_eq!(rules.as_array().unwrap().len(), 2);
    let (status, _) = server
        .admin_json(Method::DELETE, &format!("/kefu/v1/faults/{always}"), None)
        .await;
    assert_eq!(status, 204);
    assert!(list(target.token.clone()).await.json["kf_list"].is_array());
    let (status, _) = server
        .admin_json(Method::DELETE, &format!("/kefu/v1/faults/{never}"), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = server
        .admin_json(Method::DELETE, &format!("/kefu/v1/faults/{never}"), None)
        .await;
    assert_eq!(status, 404);

    fault(&server, json!({"path": "/cgi-bin/customservice/getkflist", "errcode": 0, "latency_ms": 300, "times": 1})).await;
    let started = Instant::now();
    assert!(
        list(target.token.clone()).await.json["kf_list"].is_array(),
        "latency only delays"
    );
    assert!(started.elapsed().as_millis() >= 300);

    for (bad, error) in [
        (json!({"path": "no-slash"}), "invalid_path"),
        (
            json!({"path": "/x", "probability": 2.0}),
            "invalid_probability",
        ),
        (json!({"path": "/x", "times": 0}), "invalid_times"),
        (
            json!({"path": "/x", "latency_ms": 60_001}),
            "invalid_latency",
        ),
    ] {
        let (status, answer) = server
            .admin_json(Method::POST, "/kefu/v1/faults", Some(bad.clone()))
            .await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(answer["error"], error, "{bad}: {answer}");
    }
}

#[tokio::test]
async fn tokens_can_be_invalidated_or_expired() {
    let server = TestServer::spawn().await;
    let app = server.app("tokensim").await;
    let other = server.token(&app.appid, &app.secret).await;
    let act = |token: String, action: &'static str| {
        let server = &server;
        async move {
            server
                .admin_json(
                    Method::POST,
                    "/kefu/v1/tokens",
                    Some(json!({"access_token": token, "action": action})),
                )
                .await
                .0
        }
    };
    assert_eq!(act(other.clone(), "expire").await, 204);
    server
        .get(&format!(
            "/cgi-bin/customservice/getkflist?access_token={other}"
        ))
        .await
        .assert_code(42001);
    let fresh = server.token(&app.appid, &app.secret).await;
    assert_eq!(act(fresh.clone(), "invalidate").await, 204);
    server
        .get(&format!(
            "/cgi-bin/customservice/getkflist?access_token={fresh}"
        ))
        .await
        .assert_code(40001);
    assert_eq!(act("unknown".to_owned(), "expire").await, 404);
}

#[tokio::test]
async fn accounts_can_be_set_online() {
    let server = TestServer::spawn().await;
    let app = server.app("onliner").await;
    server
        .add(&app.token, &app.account("a"), "a")
        .await
        .assert_code(0);
    server
        .add(&app.token, &app.account("b"), "b")
        .await
        .assert_code(0);
    // accepted_case counts sessions, which only a bound account serves.
    server.bind(&app, "b@onliner", "worker_b").await;
    let (status, view) = server
        .admin_json(
            Method::POST,
            &format!("/kefu/v1/apps/{}/kf/b@onliner/online", app.appid),
            Some(json!({"status": 1, "accepted_case": 3})),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    let online = server
        .get(&format!(
            "/cgi-bin/customservice/getonlinekflist?access_token={}",
            app.token
        ))
        .await;
    assert_eq!(
        online.json,
        json!({"kf_online_list": [{"kf_account": "b@onliner", "status": 1, "kf_id": 2002, "accepted_case": 3}]})
    );
    let (status, _) = server
        .admin_json(
            Method::POST,
            &format!("/kefu/v1/apps/{}/kf/b@onliner/online", app.appid),
            Some(json!({"status": 0})),
        )
        .await;
    assert_eq!(status, 200);
    let online = server
        .get(&format!(
            "/cgi-bin/customservice/getonlinekflist?access_token={}",
            app.token
        ))
        .await;
    assert_eq!(online.raw, r#"{"kf_online_list":[]}"#);
    let (status, _) = server
        .admin_json(
            Method::POST,
            &format!("/kefu/v1/apps/{}/kf/zz@onliner/online", app.appid),
            Some(json!({"status": 1})),
        )
        .await;
    assert_eq!(status, 404);
}
