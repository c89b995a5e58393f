use serde_json::json;

use crate::helpers::TestServer;

async fn accounts(server: &TestServer, token: &str) -> Vec<String> {
    server
        .list(token)
        .await
        .iter()
        .map(|kf| kf["kf_account"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn all_four_delete_shapes() {
    let server = TestServer::spawn().await;
    let app = server.app("dels").await;
    let t = &app.token;
    for prefix in ["g", "gp", "p", "q", "o"] {
        server
            .add(t, &app.account(prefix), prefix)
            .await
            .assert_code(0);
    }
    // 1. GET with the account in the query, '@' raw and as %40.
    server
        .get(&format!(
            "/customservice/kfaccount/del?access_token={t}&kf_account=g@dels"
        ))
        .await
        .assert_code(0);
    server
        .get(&format!(
            "/customservice/kfaccount/del?access_token={t}&kf_account=gp%40dels"
        ))
        .await
        .assert_code(0);
    // 2. POST with a JSON body (which may carry nickname and password too).
    server
        .post_json(
            &format!("/customservice/kfaccount/del?access_token={t}"),
            &json!({"kf_account": "p@dels", "nickname": "p", "password": "x"}),
        )
        .await
        .assert_code(0);
    // 3. POST with the account in the query and an empty or {} body.
    server
        .post(
            &format!("/customservice/kfaccount/del?access_token={t}&kf_account=q@dels"),
            "{}",
        )
        .await
        .assert_code(0);
    assert_eq!(accounts(&server, t).await, ["o@dels"]);
    // 4. GET with kf_openid (the mini-program form).
    let kfs: Vec<serde_json::Value> = server
        .admin(
            reqwest::Method::GET,
            &format!("/kefu/v1/apps/{}/kf", app.appid),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let openid = kfs[0]["kf_openid"].as_str().unwrap();
    server
        .get(&format!(
            "/customservice/kfaccount/del?access_token={t}&kf_openid={openid}"
        ))
        .await
        .assert_code(0);
    assert!(accounts(&server, t).await.is_empty());
}

#[tokio::test]
async fn delete_errors() {
    let server = TestServer::spawn().await;
    let app = server.app("delerr").await;
    let t = &app.token;
    server
        .add(t, &app.account("keep"), "keep")
        .await
        .assert_code(0);
    let path = format!("/customservice/kfaccount/del?access_token={t}");
    server
        .get(&format!("{path}&kf_account=nosuch@delerr"))
        .await
        .assert_code(65401);
    server
        .get(&format!("{path}&kf_account=keep@other"))
        .await
        .assert_code(65401);
    server
        .get(&format!("{path}&kf_account=bad"))
        .await
        .assert_code(65401);
    server.get(&path).await.assert_code(65401);
    server.post(&path, "").await.assert_code(65401);
    server
        .get(&format!("{path}&kf_openid=onosuch"))
        .await
        .assert_code(65401);
    server.post(&path, "{").await.assert_code(47001);
    server
        .post(&path, r#"{"kf_account":5}"#)
        .await
        .assert_code(47001);
    // The body wins over the query.
    server
        .post(
            &format!("{path}&kf_account=keep@delerr"),
            r#"{"kf_account":"nosuch@delerr"}"#,
        )
        .await
        .assert_code(65401);
    server
        .send(server.http.put(server.url(&path)))
        .await
        .assert_code(43002);
    assert_eq!(accounts(&server, t).await, ["keep@delerr"]);
    server
        .get(&format!("{path}&kf_account=keep@delerr"))
        .await
        .assert_code(0);
    server
        .get(&format!("{path}&kf_account=keep@delerr"))
        .await
        .assert_code(65401);
}
