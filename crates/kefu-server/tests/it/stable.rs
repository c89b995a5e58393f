//! `POST /cgi-bin/stable_token` (docs/behaviour.md), driven with the test clock.

use serde_json::{Value, json};

use crate::helpers::{TestApp, TestServer};

async fn stable(server: &TestServer, app: &TestApp, force: Option<bool>) -> Value {
    let mut body =
        json!({"grant_type": "client_credential", "appid": app.appid, "secret": app.secret});
    if let Some(force) = force {
        body["force_refresh"] = json!(force);
    }
    let answer = server.post_json("/cgi-bin/stable_token", &body).await;
    assert_eq!(answer.status, 200);
    answer.json
}

fn token(answer: &Value) -> String {
    answer["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {answer}"))
        .to_owned()
}

async fn works(server: &TestServer, token: &str) -> bool {
    server
        .get(&format!(
            "/cgi-bin/customservice/getkflist?access_token={token}"
        ))
        .await
        .json["kf_list"]
        .is_array()
}

#[tokio::test]
async fn the_same_token_while_five_minutes_remain() {
    let server = TestServer::spawn().await;
    let app = server.app("stable").await;
    let first = stable(&server, &app, None).await;
    assert_eq!(first["expires_in"], 7200);
    server.advance(1000);
    let again = stable(&server, &app, None).await;
    assert_eq!(token(&again), token(&first));
    assert_eq!(again["expires_in"], 6200);
    // Inside the last 5 minutes a new one comes, and the old one lives out its time.
    server.advance(7200 - 1000 - 299);
    let rotated = stable(&server, &app, None).await;
    assert_ne!(token(&rotated), token(&first));
    assert_eq!(rotated["expires_in"], 7200);
    assert!(works(&server, &token(&first)).await, "old and new overlap");
    assert!(works(&server, &token(&rotated)).await);
    server.advance(300);
    server
        .get(&format!(
            "/cgi-bin/customservice/getkflist?access_token={}",
            token(&first)
        ))
        .await
        .assert_code(42001);
    assert!(works(&server, &token(&rotated)).await);
}

#[tokio::test]
async fn force_refresh_kills_the_old_token_with_limits() {
    let server = TestServer::spawn().await;
    // The allowance is per Shanghai day: start well before its midnight, so that the
    // 11 minutes this test moves the clock stay in one day.
    let into_day = (server.clock.now() + 8 * 3600).rem_euclid(86_400);
    if into_day > 86_400 - 3600 {
        server.advance(u64::try_from(86_400 - into_day + 60).unwrap());
    }
    let app = server.app("forced").await;
    let first = token(&stable(&server, &app, None).await);
    // Within 30 s of the current token's birth: the current one, unchanged.
    assert_eq!(token(&stable(&server, &app, Some(true)).await), first);
    server.advance(31);
    let second = token(&stable(&server, &app, Some(true)).await);
    assert_ne!(second, first);
    server
        .get(&format!(
            "/cgi-bin/customservice/getkflist?access_token={first}"
        ))
        .await
        .assert_code(40001);
    assert!(works(&server, &second).await);
    // 20 forced refreshes a day (one was spent), then the current token comes back.
    let mut current = second;
    for _ in 0..19 {
        server.advance(31);
        let next = token(&stable(&server, &app, Some(true)).await);
        assert_ne!(next, current);
        current = next;
    }
    server.advance(31);
    assert_eq!(token(&stable(&server, &app, Some(true)).await), current);
}

#[tokio::test]
async fn stable_and_basic_tokens_are_independent() {
    let server = TestServer::spawn().await;
    let app = server.app("indep").await;
    let stable_token = token(&stable(&server, &app, None).await);
    let basic = server.token(&app.appid, &app.secret).await;
    server.advance(301);
    assert!(
        works(&server, &stable_token).await,
        "minting a basic token left the stable one alone"
    );
    server.advance(31);
    let forced = token(&stable(&server, &app, Some(true)).await);
    assert!(
        works(&server, &basic).await,
        "a forced stable refresh left the basic token alone"
    );
    assert!(works(&server, &forced).await);
}

#[tokio::test]
async fn stable_token_errors() {
    let server = TestServer::spawn().await;
    let app = server.app("stablerr").await;
    let query = format!(
        "/cgi-bin/stable_token?grant_type=client_credential&appid={}&secret={}",
        app.appid, app.secret
    );
    server.post(&query, "").await.assert_code(41002);
    server.post(&query, "{}").await.assert_code(41002);
    let server = &server;
    let body = |v: Value| async move { server.post_json("/cgi-bin/stable_token", &v).await };
    body(json!({"appid": app.appid, "secret": app.secret}))
        .await
        .assert_code(40002);
    body(json!({"grant_type": "client_credential", "appid": app.appid}))
        .await
        .assert_code(41004);
    body(json!({"grant_type": "client_credential", "appid": app.appid, "secret": "bad"}))
        .await
        .assert_code(40125);
    body(json!({"grant_type": "client_credential", "appid": "wx0000000000000000", "secret": "x"}))
        .await
        .assert_code(40013);
    body(json!({"grant_type": "client_credential", "appid": app.appid, "secret": app.secret, "force_refresh": "yes"}))
        .await
        .assert_code(47001);
    server.get("/cgi-bin/stable_token").await.assert_code(43002);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_get_one_token() {
    let server = TestServer::spawn().await;
    let app = server.app("crowded").await;
    let body = json!({"grant_type": "client_credential", "appid": app.appid, "secret": app.secret});
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let request = server
                .http
                .post(server.url("/cgi-bin/stable_token"))
                .json(&body);
            tokio::spawn(
                async move { request.send().await.unwrap().json::<Value>().await.unwrap() },
            )
        })
        .collect();
    let mut tokens = Vec::new();
    for handle in handles {
        tokens.push(token(&handle.await.unwrap()));
    }
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert!(works(&server, &tokens[0]).await);
}
