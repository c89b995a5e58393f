//! Quotas (docs/behaviour.md, "Platform rules"): daily and per-minute limits, reset at
//! 00:00 Asia/Shanghai, `quota/get`, `clear_quota`, `clear_quota/v2` and `quota/clear`.

use std::collections::HashMap;

use serde_json::json;

use crate::helpers::{TestApp, TestServer};

/// Seconds until the next 00:00 in Shanghai (UTC+8).
fn until_shanghai_midnight(now: i64) -> u64 {
    let local = now + 8 * 3600;
    u64::try_from(86_400 - local.rem_euclid(86_400)).unwrap()
}

async fn token_call(server: &TestServer, app: &TestApp) -> crate::helpers::Answer {
    server
        .get(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
            app.appid, app.secret
        ))
        .await
}

async fn quota(server: &TestServer, app: &TestApp, path: &str) -> serde_json::Value {
    let answer = server
        .call(
            "/cgi-bin/openapi/quota/get",
            &app.token,
            json!({ "cgi_path": path }),
        )
        .await;
    assert_eq!(answer.json["errcode"], 0, "{}", answer.raw);
    answer.json["quota"].clone()
}

#[tokio::test]
async fn the_2001st_token_call_of_the_day_is_refused_until_midnight_in_shanghai() {
    let server = TestServer::spawn().await;
    let app = server.app("daily").await; // one token call spent
    // Start the day at a known place: just after Shanghai midnight.
    server.advance(until_shanghai_midnight(server.clock.now()) + 10);
    let token = server.token(&app.appid, &app.secret).await;
    let app = TestApp { token, ..app };
    for _ in 1..2000 {
        assert!(token_call(&server, &app).await.json["access_token"].is_string());
    }
    token_call(&server, &app).await.assert_code(45009);
    let figures = quota(&server, &app, "/cgi-bin/token").await;
    assert_eq!(
        figures,
        json!({"daily_limit": 2000, "used": 2000, "remain": 0})
    );
    // The refused call did not count, and the tokens already issued still work.
    assert!(
        server
            .get(&format!(
                "/cgi-bin/customservice/getkflist?access_token={}",
                app.token
            ))
            .await
            .json["kf_list"]
            .is_array()
    );
    server.advance(until_shanghai_midnight(server.clock.now()));
    assert!(
        token_call(&server, &app).await.json["access_token"].is_string(),
        "a new day"
    );
}

#[tokio::test]
async fn sandbox_apps_get_200_token_calls() {
    let server = TestServer::spawn().await;
    let app = server
        .app_with(json!({"wechat_id": "sandq", "account_type": "sandbox"}))
        .await;
    server.advance(until_shanghai_midnight(server.clock.now()) + 10);
    for _ in 0..200 {
        assert!(token_call(&server, &app).await.json["access_token"].is_string());
    }
    token_call(&server, &app).await.assert_code(45009);
}

#[tokio::test]
async fn per_app_limits_and_the_minute_quota() {
    let server = TestServer::spawn().await;
    let app = server
        .app_with(json!({"wechat_id": "limited", "quotas": {"/customservice/kfaccount/update": {"daily": 100, "per_minute": 3}}}))
        .await;
    server
        .add(&app.token, &app.account("a"), "a")
        .await
        .assert_code(0);
    // Start at a fresh minute.
    server.advance(60 - u64::try_from(server.clock.now().rem_euclid(60)).unwrap());
    for i in 0..3 {
        server
            .update(&app.token, &app.account("a"), &format!("n{i}"))
            .await
            .assert_code(0);
    }
    let refused = server.update(&app.token, &app.account("a"), "n3").await;
    refused.assert_code(45011);
    assert!(
        refused
            .errmsg()
            .starts_with("api minute-quota reach limit  mustslower  retry next minute rid: ")
    );
    assert_eq!(server.list(&app.token).await[0]["kf_nick"], "n2");
    server.advance(60);
    server
        .update(&app.token, &app.account("a"), "n4")
        .await
        .assert_code(0);
    let figures = quota(&server, &app, "/customservice/kfaccount/update").await;
    assert_eq!(
        figures,
        json!({"daily_limit": 100, "used": 4, "remain": 96})
    );
    // Other APIs keep their defaults.
    assert_eq!(
        quota(&server, &app, "/customservice/kfaccount/add").await["daily_limit"],
        100_000
    );
    for bad in ["cgi-bin/token", "/cgi-bin/nope", ""] {
        server
            .call(
                "/cgi-bin/openapi/quota/get",
                &app.token,
                json!({ "cgi_path": bad }),
            )
            .await
            .assert_code(76021);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_are_counted_exactly() {
    let server = TestServer::spawn().await;
    let app = server.app_with(json!({"wechat_id": "exact", "quotas": {"/cgi-bin/customservice/getkflist": {"daily": 50}}})).await;
    let url = server.url(&format!(
        "/cgi-bin/customservice/getkflist?access_token={}",
        app.token
    ));
    let handles: Vec<_> = (0..80)
        .map(|_| {
            let request = server.http.get(&url);
            tokio::spawn(async move {
                let answer: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
                answer["errcode"].as_i64().unwrap_or(0)
            })
        })
        .collect();
    let mut tally: HashMap<i64, usize> = HashMap::new();
    for handle in handles {
        *tally.entry(handle.await.unwrap()).or_default() += 1;
    }
    assert_eq!(tally, HashMap::from([(0, 50), (45009, 30)]));
    assert_eq!(
        quota(&server, &app, "/cgi-bin/customservice/getkflist").await["used"],
        50
    );
}

#[tokio::test]
async fn clearing_quotas() {
    let server = TestServer::spawn().await;
    let app = server.app_with(json!({"wechat_id": "clearer", "quotas": {"/cgi-bin/customservice/getkflist": {"daily": 1}}})).await;
    let other = server.app("otherapp").await;
    // Start the month at a known place (the 11-per-month rule).
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
    assert!(list(app.token.clone()).await.json["kf_list"].is_array());
    list(app.token.clone()).await.assert_code(45009);

    server
        .call(
            "/cgi-bin/clear_quota",
            &app.token,
            json!({"appid": other.appid}),
        )
        .await
        .assert_code(40013);
    server
        .call("/cgi-bin/clear_quota", &app.token, json!({}))
        .await
        .assert_code(41002);
    server
        .call(
            "/cgi-bin/clear_quota",
            &app.token,
            json!({"appid": app.appid}),
        )
        .await
        .assert_code(0);
    assert!(
        list(app.token.clone()).await.json["kf_list"].is_array(),
        "cleared"
    );

    // clear_quota/v2 needs no token, only the secret.
    list(app.token.clone()).await.assert_code(45009);
    let v2 = |body: serde_json::Value| {
        let server = &server;
        async move { server.post_json("/cgi-bin/clear_quota/v2", &body).await }
    };
    v2(json!({"appid": app.appid, "appsecret": "wrong"}))
        .await
        .assert_code(40125);
    v2(json!({"appid": app.appid})).await.assert_code(41004);
    v2(json!({"appid": app.appid, "appsecret": app.secret}))
        .await
        .assert_code(0);
    assert!(list(app.token.clone()).await.json["kf_list"].is_array());

    // openapi/quota/clear resets one API.
    list(app.token.clone()).await.assert_code(45009);
    server
        .call(
            "/cgi-bin/openapi/quota/clear",
            &app.token,
            json!({"cgi_path": "/cgi-bin/nope"}),
        )
        .await
        .assert_code(76021);
    server
        .call(
            "/cgi-bin/openapi/quota/clear",
            &app.token,
            json!({"cgi_path": "/cgi-bin/customservice/getkflist"}),
        )
        .await
        .assert_code(0);
    assert!(list(app.token.clone()).await.json["kf_list"].is_array());

    // Three clears spent (the refused 76021 did not count); seven more, then 48006.
    for _ in 0..7 {
        server
            .call(
                "/cgi-bin/clear_quota",
                &app.token,
                json!({"appid": app.appid}),
            )
            .await
            .assert_code(0);
    }
    server
        .call(
            "/cgi-bin/clear_quota",
            &app.token,
            json!({"appid": app.appid}),
        )
        .await
        .assert_code(48006);
    v2(json!({"appid": app.appid, "appsecret": app.secret}))
        .await
        .assert_code(48006);
    // Next month (32 days on is always another month) the allowance is back.
    server.advance(32 * 86_400);
    let token = server.token(&app.appid, &app.secret).await;
    server
        .call("/cgi-bin/clear_quota", &token, json!({"appid": app.appid}))
        .await
        .assert_code(0);
}

#[tokio::test]
async fn counters_survive_a_restart() {
    let server = TestServer::spawn().await;
    let app = server.app_with(json!({"wechat_id": "persist", "quotas": {"/cgi-bin/customservice/getkflist": {"daily": 2}}})).await;
    for _ in 0..2 {
        assert!(
            server
                .get(&format!(
                    "/cgi-bin/customservice/getkflist?access_token={}",
                    app.token
                ))
                .await
                .json["kf_list"]
                .is_array()
        );
    }
    let (db_path, clock) = (server.db_path.clone(), std::sync::Arc::clone(&server.clock));
    let dir = server.stop().await;
    let server = TestServer::spawn_at(&db_path, clock).await;
    server
        .get(&format!(
            "/cgi-bin/customservice/getkflist?access_token={}",
            app.token
        ))
        .await
        .assert_code(45009);
    drop(server.stop().await);
    drop(dir);
}

#[tokio::test]
async fn the_day_turns_at_midnight_in_shanghai_not_utc() {
    let server = TestServer::spawn().await;
    let app = server.app_with(json!({"wechat_id": "shanghai", "quotas": {"/cgi-bin/customservice/getkflist": {"daily": 1}}})).await;
    // 10 s before Shanghai midnight, which is 16:00 UTC: no UTC day boundary near.
    let wait = until_shanghai_midnight(server.clock.now());
    server.advance(if wait > 10 { wait - 10 } else { wait + 86_390 });
    let url = format!(
        "/cgi-bin/customservice/getkflist?access_token={}",
        app.token
    );
    // The token was minted before the move; fetch one that is alive now.
    let token = server.token(&app.appid, &app.secret).await;
    let url = url.replace(&app.token, &token);
    assert!(server.get(&url).await.json["kf_list"].is_array());
    server.get(&url).await.assert_code(45009);
    server.advance(20);
    assert!(
        server.get(&url).await.json["kf_list"].is_array(),
        "a new day in Shanghai"
    );
}

#[tokio::test]
async fn a_deleted_app_leaves_no_counts_behind() {
    let server = TestServer::spawn().await;
    let body = json!({"wechat_id": "reborn", "appid": "wx00000000000000ab", "secret": "SecretSecret0123", "quotas": {"/cgi-bin/customservice/getkflist": {"daily": 1}}});
    let app = server.app_with(body.clone()).await;
    let url = |token: &str| format!("/cgi-bin/customservice/getkflist?access_token={token}");
    assert!(server.get(&url(&app.token)).await.json["kf_list"].is_array());
    server.get(&url(&app.token)).await.assert_code(45009);
    let (status, _) = server
        .admin_json(
            reqwest::Method::DELETE,
            &format!("/kefu/v1/apps/{}", app.appid),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let again = server.app_with(body).await;
    assert!(
        server.get(&url(&again.token)).await.json["kf_list"].is_array(),
        "a fresh count"
    );
}
