use serde_json::json;

use crate::helpers::{TestServer, jpeg};

#[tokio::test]
async fn account_types_and_switches() {
    let server = TestServer::spawn().await;
    let sandbox = server
        .app_with(json!({"wechat_id": "sandy", "account_type": "sandbox"}))
        .await;
    let disabled = server
        .app_with(json!({"wechat_id": "off", "new_kf_enabled": false}))
        .await;
    let unverified = server
        .app_with(json!({"wechat_id": "unver", "verified": false}))
        .await;
    let unverified_sub = server
        .app_with(json!({"wechat_id": "unsub", "account_type": "subscription", "verified": false}))
        .await;
    let mini = server
        .app_with(json!({"wechat_id": "mini", "account_type": "miniprogram", "verified": false}))
        .await;

    for app in [&sandbox, &disabled] {
        server
            .add(&app.token, &app.account("a"), "a")
            .await
            .assert_code(65400);
        server
            .get(&format!(
                "/cgi-bin/customservice/getkflist?access_token={}",
                app.token
            ))
            .await
            .assert_code(65400);
    }
    for app in [&unverified, &unverified_sub] {
        server
            .add(&app.token, &app.account("a"), "a")
            .await
            .assert_code(48001);
        server
            .update(&app.token, &app.account("a"), "a")
            .await
            .assert_code(48001);
    }
    // Scope comes before the body: a bad body still answers 65400.
    server
        .post(
            &format!(
                "/customservice/kfaccount/update?access_token={}",
                sandbox.token
            ),
            "{",
        )
        .await
        .assert_code(65400);

    // Mini programs may use the kf API, but have no uploadheadimg.
    server
        .add(&mini.token, &mini.account("a"), "a")
        .await
        .assert_code(0);
    let form =
        reqwest::multipart::Form::new().part("media", reqwest::multipart::Part::bytes(jpeg(100)));
    server
        .send(
            server
                .http
                .post(server.url(&format!(
                    "/customservice/kfaccount/uploadheadimg?access_token={}&kf_account=a@mini",
                    mini.token
                )))
                .multipart(form),
        )
        .await
        .assert_code(48001);

    // Switching the feature on (admin PATCH) opens the API at once.
    let response = server
        .admin(
            reqwest::Method::PATCH,
            &format!("/kefu/v1/apps/{}", disabled.appid),
        )
        .json(&json!({"new_kf_enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    server
        .add(&disabled.token, &disabled.account("a"), "a")
        .await
        .assert_code(0);
}
