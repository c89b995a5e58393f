use serde_json::{Value, json};

use crate::helpers::{TestApp, TestServer};

async fn invite(
    server: &TestServer,
    app: &TestApp,
    account: &str,
    wx: &str,
) -> crate::helpers::Answer {
    server
        .post_json(
            &format!(
                "/customservice/kfaccount/inviteworker?access_token={}",
                app.token
            ),
            &json!({"kf_account": account, "invite_wx": wx}),
        )
        .await
}

async fn answer(
    server: &TestServer,
    app: &TestApp,
    account: &str,
    action: &str,
) -> reqwest::StatusCode {
    server
        .admin(
            reqwest::Method::POST,
            &format!("/kefu/v1/apps/{}/kf/{account}/invitation", app.appid),
        )
        .json(&json!({"action": action}))
        .send()
        .await
        .unwrap()
        .status()
}

async fn entry(server: &TestServer, app: &TestApp, account: &str) -> Value {
    server
        .list(&app.token)
        .await
        .into_iter()
        .find(|kf| kf["kf_account"] == account)
        .unwrap()
}

#[tokio::test]
async fn invitation_lifecycle() {
    let server = TestServer::spawn().await;
    let app = server.app("inv").await;
    let (a, b) = (app.account("a"), app.account("b"));
    server.add(&app.token, &a, "a").await.assert_code(0);
    server.add(&app.token, &b, "b").await.assert_code(0);

    let before = server.clock.now();
    invite(&server, &app, &a, "worker_one").await.assert_code(0);
    let after = server.clock.now();
    let kf = entry(&server, &app, &a).await;
    assert_eq!(kf["invite_wx"], "worker_one");
    assert_eq!(kf["invite_status"], "waiting");
    // Seven days from the invitation (the clock's second may turn during the call).
    let expires = kf["invite_expire_time"].as_i64().unwrap();
    assert!(
        (before..=after).contains(&(expires - 7 * 24 * 3600)),
        "{expires} is not 7 days after {before}..={after}"
    );
    assert!(kf.get("kf_wx").is_none());

    invite(&server, &app, &a, "worker_one")
        .await
        .assert_code(65408);
    invite(&server, &app, &a, "worker_two")
        .await
        .assert_code(65411);
    invite(&server, &app, &b, "worker_one")
        .await
        .assert_code(65408);
    // b waits for worker_two; inviting worker_one (pending on a) to b: b's own pending
    // invitation is checked first.
    invite(&server, &app, &b, "worker_two").await.assert_code(0);
    invite(&server, &app, &b, "worker_one")
        .await
        .assert_code(65411);
    assert_eq!(answer(&server, &app, &b, "reject").await, 200);

    assert_eq!(answer(&server, &app, &a, "accept").await, 200);
    let kf = entry(&server, &app, &a).await;
    assert_eq!(kf["kf_wx"], "worker_one");
    assert!(kf.get("invite_wx").is_none() && kf.get("invite_status").is_none());
    invite(&server, &app, &a, "worker_two")
        .await
        .assert_code(65412);
    invite(&server, &app, &b, "worker_one")
        .await
        .assert_code(65407);
    assert_eq!(
        answer(&server, &app, &a, "accept").await,
        409,
        "nothing pending"
    );

    invite(&server, &app, &b, "worker_two").await.assert_code(0);
    assert_eq!(answer(&server, &app, &b, "reject").await, 200);
    assert_eq!(entry(&server, &app, &b).await["invite_status"], "rejected");
    // A rejected invitation no longer blocks a new one.
    invite(&server, &app, &b, "worker_three")
        .await
        .assert_code(0);
    assert_eq!(answer(&server, &app, &b, "expire").await, 200);
    assert_eq!(entry(&server, &app, &b).await["invite_status"], "expired");
}

#[tokio::test]
async fn invitations_lapse_after_seven_days() {
    let server = TestServer::spawn().await;
    let app = server.app("lapse").await;
    let a = app.account("a");
    server.add(&app.token, &a, "a").await.assert_code(0);
    invite(&server, &app, &a, "worker_one").await.assert_code(0);
    // 2 seconds short: the real clock may turn a second meanwhile.
    server.advance(7 * 24 * 3600 - 2);
    let token = server.token(&app.appid, &app.secret).await;
    let app = TestApp { token, ..app };
    assert_eq!(entry(&server, &app, &a).await["invite_status"], "waiting");
    server.advance(2);
    assert_eq!(entry(&server, &app, &a).await["invite_status"], "expired");
    invite(&server, &app, &a, "worker_two").await.assert_code(0);
}

#[tokio::test]
async fn invite_validation() {
    let server = TestServer::spawn().await;
    let app = server.app("invval").await;
    let a = app.account("a");
    server.add(&app.token, &a, "a").await.assert_code(0);
    for bad in [
        "short",
        "1starts_with_digit",
        "has space1",
        "waytoolongwechatid_123",
        "",
    ] {
        invite(&server, &app, &a, bad).await.assert_code(65409);
    }
    invite(&server, &app, &app.account("nosuch"), "worker_one")
        .await
        .assert_code(65401);
    invite(&server, &app, "a@elsewhere", "worker_one")
        .await
        .assert_code(65401);
    server
        .post(
            &format!(
                "/customservice/kfaccount/inviteworker?access_token={}",
                app.token
            ),
            "",
        )
        .await
        .assert_code(44002);
    assert!(entry(&server, &app, &a).await.get("invite_wx").is_none());
}

#[tokio::test]
async fn a_worker_binds_at_most_five_accounts() {
    let server = TestServer::spawn().await;
    let mut apps = Vec::new();
    for i in 0..6 {
        let app = server.app(&format!("bind{i}")).await;
        let account = app.account("a");
        server.add(&app.token, &account, "a").await.assert_code(0);
        apps.push((app, account));
    }
    for (app, account) in &apps[..5] {
        invite(&server, app, account, "busy_worker")
            .await
            .assert_code(0);
        assert_eq!(answer(&server, app, account, "accept").await, 200);
    }
    let (app, account) = &apps[5];
    invite(&server, app, account, "busy_worker")
        .await
        .assert_code(65410);
}
