use std::sync::Arc;

use crate::helpers::{TestServer, jpeg};

#[tokio::test]
async fn everything_survives_a_restart() {
    let server = TestServer::spawn().await;
    let app = server.app("durable").await;
    server
        .add(&app.token, &app.account("a"), "客服1")
        .await
        .assert_code(0);
    server
        .add(&app.token, &app.account("b"), "b")
        .await
        .assert_code(0);
    server
        .update(&app.token, &app.account("a"), "客服2")
        .await
        .assert_code(0);
    let url = server.url(&format!(
        "/customservice/kfaccount/uploadheadimg?access_token={}&kf_account=b@durable",
        app.token
    ));
    let image = jpeg(300);
    let form = reqwest::multipart::Form::new()
        .part("media", reqwest::multipart::Part::bytes(image.clone()));
    server
        .send(server.http.post(url).multipart(form))
        .await
        .assert_code(0);
    let superseded = app.token.clone();
    let current = server.token(&app.appid, &app.secret).await;
    let before = server.list(&current).await;

    let clock = Arc::clone(&server.clock);
    let db_path = server.db_path.clone();
    let dir = server.stop().await;
    let server = TestServer::spawn_at(&db_path, clock).await;

    // Apps, accounts, images and tokens (with their grace) come back.
    let after = server.list(&current).await;
    assert_eq!(after.len(), 2);
    assert_eq!(after[0]["kf_nick"], "客服2");
    assert_eq!(after[0]["kf_id"], before[0]["kf_id"]);
    let headimg = after[1]["kf_headimgurl"].as_str().unwrap();
    assert_eq!(
        server
            .http
            .get(headimg)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        image.as_slice()
    );
    assert_eq!(
        server.list(&superseded).await.len(),
        2,
        "still in its grace period"
    );
    server.advance(301);
    server
        .get(&format!(
            "/cgi-bin/customservice/getkflist?access_token={superseded}"
        ))
        .await
        .assert_code(40001);
    // The secret is still the same secret.
    assert!(!server.token(&app.appid, &app.secret).await.is_empty());
    // kf_ids keep counting after a restart.
    let token = server.token(&app.appid, &app.secret).await;
    server
        .add(&token, &app.account("c"), "c")
        .await
        .assert_code(0);
    assert_eq!(server.list(&token).await[2]["kf_id"], 2003);
    drop(server.stop().await);
    drop(dir);
}

#[tokio::test]
async fn a_second_process_cannot_open_the_same_file() {
    let server = TestServer::spawn().await;
    let options = kefu_store::sqlite::SqliteOptions::new(&server.db_path);
    let second = kefu_store::sqlite::SqliteStore::open(&options);
    let error = second.expect_err("the file is locked");
    assert!(error.to_string().contains("in use"), "{error}");
}
