use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestServer;

#[tokio::test]
async fn admin_needs_the_bearer_token() {
    let server = TestServer::spawn().await;
    for request in [
        server.http.get(server.url("/kefu/v1/apps")),
        server
            .http
            .get(server.url("/kefu/v1/apps"))
            .bearer_auth("wrong"),
        server
            .http
            .post(server.url("/kefu/v1/apps"))
            .json(&json!({"wechat_id": "x"})),
        server
            .http
            .get(server.url("/kefu/v1/clock"))
            .header("authorization", "Basic abc"),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized");
    }
    let health = server
        .http
        .get(server.url("/kefu/v1/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        server
            .admin_json(Method::GET, "/kefu/v1/nope", None)
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn app_crud() {
    let server = TestServer::spawn().await;
    let created = server.create_app(json!({"wechat_id": "crud"})).await;
    assert!(kefu_api::AppId::parse(&created.app.appid).is_ok());
    assert!(kefu_api::OriginalId::parse(&created.app.original_id).is_ok());
    assert_eq!(created.secret.expose().len(), 32);
    assert_eq!(
        created.app.account_type,
        kefu_api::admin::AccountType::Service
    );
    assert!(created.app.verified && created.app.new_kf_enabled);

    let listed: Value = server
        .admin_json(Method::GET, "/kefu/v1/apps", None)
        .await
        .1;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(
        listed[0].get("secret").is_none(),
        "the secret is shown once only"
    );
    assert!(!listed.to_string().contains(created.secret.expose()));

    let path = format!("/kefu/v1/apps/{}", created.app.appid);
    let patched: Value = server
        .admin_json(
            Method::PATCH,
            &path,
            Some(json!({"account_type": "subscription", "verified": false})),
        )
        .await
        .1;
    assert_eq!(patched["account_type"], "subscription");
    assert_eq!(patched["verified"], false);
    let got: Value = server.admin_json(Method::GET, &path, None).await.1;
    assert_eq!(got, patched);

    assert_eq!(server.admin_json(Method::DELETE, &path, None).await.0, 204);
    assert_eq!(server.admin_json(Method::GET, &path, None).await.0, 404);
    assert_eq!(server.admin_json(Method::DELETE, &path, None).await.0, 404);
}

#[tokio::test]
async fn chosen_appid_and_secret() {
    let server = TestServer::spawn().await;
    let created = server
        .create_app(json!({"wechat_id": "chosen", "appid": "wx0123456789abcdef", "secret": "MySecretFromProduction0123"}))
        .await;
    assert_eq!(created.app.appid, "wx0123456789abcdef");
    let token = server
        .token("wx0123456789abcdef", "MySecretFromProduction0123")
        .await;
    assert!(!token.is_empty());
}

#[tokio::test]
async fn invalid_and_conflicting_apps() {
    let server = TestServer::spawn().await;
    server
        .create_app(json!({"wechat_id": "taken", "appid": "wx00000000000000aa"}))
        .await;
    for (body, status, error) in [
        (json!({}), 400, "invalid_body"),
        (json!({"wechat_id": "has space"}), 400, "invalid_wechat_id"),
        (
            json!({"wechat_id": "ok", "original_id": "gh_1"}),
            400,
            "invalid_original_id",
        ),
        (
            json!({"wechat_id": "ok", "appid": "app1"}),
            400,
            "invalid_appid",
        ),
        (
            json!({"wechat_id": "ok", "secret": "short"}),
            400,
            "invalid_secret",
        ),
        (
            json!({"wechat_id": "ok", "account_type": "enterprise"}),
            400,
            "invalid_body",
        ),
        (json!({"wechat_id": "taken"}), 409, "conflict"),
        (
            json!({"wechat_id": "other", "appid": "wx00000000000000aa"}),
            409,
            "conflict",
        ),
    ] {
        let (code, answer) = server
            .admin_json(Method::POST, "/kefu/v1/apps", Some(body.clone()))
            .await;
        assert_eq!(code, status, "{body}");
        assert_eq!(answer["error"], error, "{body}: {answer}");
    }
    let garbage = server
        .admin(Method::POST, "/kefu/v1/apps")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);
}

#[tokio::test]
async fn renaming_an_app_with_accounts_is_refused() {
    let server = TestServer::spawn().await;
    let app = server.app("named").await;
    server
        .add(&app.token, &app.account("a"), "a")
        .await
        .assert_code(0);
    let (status, _) = server
        .admin_json(
            Method::PATCH,
            &format!("/kefu/v1/apps/{}", app.appid),
            Some(json!({"wechat_id": "renamed"})),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(server.list(&app.token).await[0]["kf_account"], "a@named");
}

#[tokio::test]
async fn rotating_the_secret() {
    let server = TestServer::spawn().await;
    let app = server.app("rotate").await;
    let rotated: Value = server
        .admin_json(
            Method::POST,
            &format!("/kefu/v1/apps/{}/secret", app.appid),
            None,
        )
        .await
        .1;
    let secret = rotated["secret"].as_str().unwrap();
    assert_ne!(secret, app.secret);
    server
        .get(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
            app.appid, app.secret
        ))
        .await
        .assert_code(40125);
    assert!(!server.token(&app.appid, secret).await.is_empty());
}

#[tokio::test]
async fn deleting_an_app_kills_its_tokens() {
    let server = TestServer::spawn().await;
    let app = server.app("doomed").await;
    server
        .add(&app.token, &app.account("a"), "a")
        .await
        .assert_code(0);
    let response = server
        .admin(Method::DELETE, &format!("/kefu/v1/apps/{}", app.appid))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    server
        .get(&format!(
            "/cgi-bin/customservice/getkflist?access_token={}",
            app.token
        ))
        .await
        .assert_code(40001);
    server
        .get(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
            app.appid, app.secret
        ))
        .await
        .assert_code(40013);
}

#[tokio::test]
async fn the_clock_can_be_advanced_over_http() {
    let server = TestServer::spawn().await;
    let app = server.app("clocked").await;
    let before: Value = server
        .admin_json(Method::GET, "/kefu/v1/clock", None)
        .await
        .1;
    let after: Value = server
        .admin_json(
            Method::POST,
            "/kefu/v1/clock",
            Some(json!({"advance_secs": 7201})),
        )
        .await
        .1;
    assert_eq!(after["offset_secs"], 7201);
    assert!(after["now"].as_i64().unwrap() >= before["now"].as_i64().unwrap() + 7201);
    server
        .get(&format!(
            "/cgi-bin/customservice/getkflist?access_token={}",
            app.token
        ))
        .await
        .assert_code(42001);
}
