use crate::helpers::TestServer;

#[tokio::test]
async fn token_success_has_wechats_shape() {
    let server = TestServer::spawn().await;
    let app = server.app("tokenapp").await;
    let answer = server
        .get(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
            app.appid, app.secret
        ))
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.content_type, "application/json; encoding=utf-8");
    let object = answer.json.as_object().unwrap();
    assert_eq!(
        object.len(),
        2,
        "only access_token and expires_in: {}",
        answer.raw
    );
    assert_eq!(answer.json["expires_in"], 7200);
    let token = answer.json["access_token"].as_str().unwrap();
    assert!(token.len() >= 128 && token.len() <= 512, "{}", token.len());
    let (prefix, rest) = token.split_once('_').unwrap();
    assert!(prefix.bytes().all(|b| b.is_ascii_digit()));
    assert!(
        rest.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    );
    assert_ne!(token, app.token, "each call mints a new token");
}

#[tokio::test]
async fn token_errors() {
    let server = TestServer::spawn().await;
    let app = server.app("tokenerr").await;
    let (id, secret) = (&app.appid, &app.secret);
    for (query, code) in [
        (format!("appid={id}&secret={secret}"), 40002),
        (
            format!("grant_type=password&appid={id}&secret={secret}"),
            40002,
        ),
        (
            format!("grant_type=client_credential&secret={secret}"),
            41002,
        ),
        (
            format!("grant_type=client_credential&appid=&secret={secret}"),
            41002,
        ),
        (format!("grant_type=client_credential&appid={id}"), 41004),
        (
            format!("grant_type=client_credential&appid=wx0000000000000000&secret={secret}"),
            40013,
        ),
        (
            format!("grant_type=client_credential&appid={id}&secret=wrong"),
            40125,
        ),
    ] {
        server
            .get(&format!("/cgi-bin/token?{query}"))
            .await
            .assert_code(code);
    }
    server
        .post("/cgi-bin/token?grant_type=client_credential", "")
        .await
        .assert_code(43001);
}

#[tokio::test]
async fn token_verdicts_on_business_calls() {
    let server = TestServer::spawn().await;
    let app = server.app("verdicts").await;
    server
        .get("/cgi-bin/customservice/getkflist")
        .await
        .assert_code(41001);
    server
        .get("/cgi-bin/customservice/getkflist?access_token=")
        .await
        .assert_code(41001);
    for garbage in ["garbage", "12_abc", &"x".repeat(600)] {
        server
            .get(&format!(
                "/cgi-bin/customservice/getkflist?access_token={garbage}"
            ))
            .await
            .assert_code(40001);
    }
    // A token in the body does not count.
    server
        .post(
            "/customservice/kfaccount/update",
            format!(
                r#"{{"access_token":"{}","kf_account":"a@verdicts","nickname":"n"}}"#,
                app.token
            ),
        )
        .await
        .assert_code(41001);
}

#[tokio::test]
async fn superseded_token_keeps_working_for_five_minutes() {
    let server = TestServer::spawn().await;
    let app = server.app("grace").await;
    let old = app.token.clone();
    let new = server.token(&app.appid, &app.secret).await;
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
    assert!(list(old.clone()).await.json["kf_list"].is_array());
    // 298: the real clock may turn a second meanwhile.
    server.advance(298);
    assert!(
        list(old.clone()).await.json["kf_list"].is_array(),
        "still inside the grace"
    );
    server.advance(3);
    list(old.clone()).await.assert_code(40001);
    list(old.clone()).await.assert_code(40001); // the verdict is stable
    assert!(
        list(new.clone()).await.json["kf_list"].is_array(),
        "the new token works"
    );
}

#[tokio::test]
async fn token_expires_after_7200_seconds() {
    let server = TestServer::spawn().await;
    let app = server.app("expiry").await;
    // 7198: the real clock may turn a second meanwhile.
    server.advance(7198);
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
    server.advance(3);
    for _ in 0..2 {
        server
            .get(&format!(
                "/cgi-bin/customservice/getkflist?access_token={}",
                app.token
            ))
            .await
            .assert_code(42001);
    }
    // A fresh token works again.
    let fresh = server.token(&app.appid, &app.secret).await;
    assert!(
        server
            .get(&format!(
                "/cgi-bin/customservice/getkflist?access_token={fresh}"
            ))
            .await
            .json["kf_list"]
            .is_array()
    );
}

#[tokio::test]
async fn tokens_of_one_app_do_not_open_another() {
    let server = TestServer::spawn().await;
    let one = server.app("appone").await;
    let two = server.app("apptwo").await;
    server
        .add(&one.token, &one.account("a"), "one")
        .await
        .assert_code(0);
    // App two's token cannot touch app one's accounts: the suffix is foreign.
    server
        .update(&two.token, &one.account("a"), "two")
        .await
        .assert_code(65401);
    assert_eq!(server.list(&two.token).await.len(), 0);
    assert_eq!(server.list(&one.token).await[0]["kf_nick"], "one");
}
