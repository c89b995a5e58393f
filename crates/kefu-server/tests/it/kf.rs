use serde_json::json;

use crate::helpers::TestServer;

#[tokio::test]
async fn add_update_list_flow() {
    let server = TestServer::spawn().await;
    let app = server.app("flow").await;
    server
        .add(&app.token, &app.account("test1"), "客服1")
        .await
        .assert_code(0);
    let list = server.list(&app.token).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["kf_account"], app.account("test1"));
    assert_eq!(list[0]["kf_nick"], "客服1");
    assert_eq!(list[0]["kf_id"], 2001);
    assert!(list[0]["kf_id"].is_number(), "kf_id must be a JSON number");
    assert_eq!(list[0]["kf_headimgurl"], "");
    assert!(list[0].get("kf_wx").is_none() && list[0].get("invite_wx").is_none());

    server
        .update(&app.token, &app.account("test1"), "客服2")
        .await
        .assert_code(0);
    assert_eq!(server.list(&app.token).await[0]["kf_nick"], "客服2");
}

#[tokio::test]
async fn list_bodies_have_no_errcode() {
    let server = TestServer::spawn().await;
    let app = server.app("emptylist").await;
    let answer = server
        .get(&format!(
            "/cgi-bin/customservice/getkflist?access_token={}",
            app.token
        ))
        .await;
    assert_eq!(answer.raw, r#"{"kf_list":[]}"#);
    assert_eq!(answer.content_type, "application/json; encoding=utf-8");
    for path in [
        "/customservice/getkflist",
        "/cgi-bin/customservice/getonlinekflist",
        "/customservice/getonlinekflist",
    ] {
        let answer = server
            .get(&format!("{path}?access_token={}", app.token))
            .await;
        assert_eq!(answer.status, 200);
        assert!(
            answer.json.get("errcode").is_none(),
            "{path}: {}",
            answer.raw
        );
    }
    let online = server
        .get(&format!(
            "/cgi-bin/customservice/getonlinekflist?access_token={}",
            app.token
        ))
        .await;
    assert_eq!(online.raw, r#"{"kf_online_list":[]}"#);
}

#[tokio::test]
async fn add_rules() {
    let server = TestServer::spawn().await;
    let app = server.app("addrules").await;
    let t = &app.token;
    server.add(t, &app.account("dup"), "n").await.assert_code(0);
    server
        .add(t, &app.account("dup"), "other")
        .await
        .assert_code(65406);
    // Case is kept: a different case is a different account.
    server.add(t, &app.account("DUP"), "n").await.assert_code(0);
    // The original id works as a suffix too.
    server
        .add(t, &format!("orig@{}", app.original_id), "n")
        .await
        .assert_code(0);
    for bad in [
        "",
        "nosuffix",
        "@addrules",
        "x@",
        "toolongprefix@addrules",
        "a-b@addrules",
        "a@foreign",
        "a@b@addrules",
    ] {
        server.add(t, bad, "n").await.assert_code(65404);
    }
    server
        .post(
            &format!("/customservice/kfaccount/add?access_token={t}"),
            r#"{"nickname":"n"}"#,
        )
        .await
        .assert_code(65404);
    server
        .add(t, &app.account("nick"), "")
        .await
        .assert_code(65403);
    server
        .add(t, &app.account("nick"), &"长".repeat(17))
        .await
        .assert_code(65403);
    server
        .add(t, &app.account("nick"), "  ")
        .await
        .assert_code(65403);
    server
        .add(t, &app.account("nick"), "a\u{7}b")
        .await
        .assert_code(65403);
    server
        .add(t, &app.account("nick"), &"长".repeat(16))
        .await
        .assert_code(0);
    // Nothing half-written: the rejected calls left no account behind.
    let accounts: Vec<String> = server
        .list(t)
        .await
        .iter()
        .map(|kf| kf["kf_account"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        accounts,
        [
            app.account("dup"),
            app.account("DUP"),
            format!("orig@{}", app.original_id),
            app.account("nick")
        ]
    );
}

#[tokio::test]
async fn the_hundred_and_first_account_is_refused() {
    let server = TestServer::spawn().await;
    let app = server.app("limit").await;
    for i in 0..100 {
        server
            .add(&app.token, &app.account(&format!("k{i}")), "n")
            .await
            .assert_code(0);
    }
    server
        .add(&app.token, &app.account("k100"), "n")
        .await
        .assert_code(65405);
    // A duplicate at the limit is still a duplicate.
    server
        .add(&app.token, &app.account("k5"), "n")
        .await
        .assert_code(65406);
    let list = server.list(&app.token).await;
    assert_eq!(list.len(), 100);
    assert_eq!(list[99]["kf_id"], 2100);
}

#[tokio::test]
async fn kf_ids_count_up_and_are_never_reused() {
    let server = TestServer::spawn().await;
    let app = server.app("ids").await;
    server
        .add(&app.token, &app.account("a"), "a")
        .await
        .assert_code(0);
    server
        .add(&app.token, &app.account("b"), "b")
        .await
        .assert_code(0);
    server
        .get(&format!(
            "/customservice/kfaccount/del?access_token={}&kf_account={}",
            app.token,
            app.account("b")
        ))
        .await
        .assert_code(0);
    server
        .add(&app.token, &app.account("c"), "c")
        .await
        .assert_code(0);
    let ids: Vec<i64> = server
        .list(&app.token)
        .await
        .iter()
        .map(|kf| kf["kf_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [2001, 2003]);
}

#[tokio::test]
async fn update_rules_and_order() {
    let server = TestServer::spawn().await;
    let app = server.app("upd").await;
    let t = &app.token;
    let path = format!("/customservice/kfaccount/update?access_token={t}");
    server
        .add(t, &app.account("a"), "before")
        .await
        .assert_code(0);
    // Any problem with the account is 65401: missing, malformed, foreign, unknown.
    server
        .post(&path, r#"{"nickname":"x"}"#)
        .await
        .assert_code(65401);
    server
        .post(&path, r#"{"kf_account":null,"nickname":"x"}"#)
        .await
        .assert_code(65401);
    for bad in [
        "",
        "bad",
        "a@other",
        &app.account("nosuch"),
        &app.account("toolongprefix"),
    ] {
        server.update(t, bad, "x").await.assert_code(65401);
    }
    // Account before nickname: both bad → 65401.
    server.update(t, "bad", "").await.assert_code(65401);
    server
        .post(&path, format!(r#"{{"kf_account":"{}"}}"#, app.account("a")))
        .await
        .assert_code(65403);
    server
        .update(t, &app.account("a"), &"x".repeat(17))
        .await
        .assert_code(65403);
    // Body shape before the account.
    server.post(&path, "").await.assert_code(44002);
    server.post(&path, "null").await.assert_code(44002);
    server.post(&path, "{").await.assert_code(47001);
    server.post(&path, "[]").await.assert_code(47001);
    server.post(&path, r#""text""#).await.assert_code(47001);
    server
        .post(&path, r#"{"kf_account":1,"nickname":"x"}"#)
        .await
        .assert_code(47001);
    server
        .post(&path, r#"{"kf_account":"a@upd","nickname":["x"]}"#)
        .await
        .assert_code(47001);
    // Token before body: a bad token with a bad body is the token's error.
    server
        .post("/customservice/kfaccount/update?access_token=nope", "{")
        .await
        .assert_code(40001);
    server
        .post("/customservice/kfaccount/update", "")
        .await
        .assert_code(41001);
    // None of it changed the account.
    assert_eq!(server.list(t).await[0]["kf_nick"], "before");
}

#[tokio::test]
async fn bodies_are_read_whatever_the_content_type() {
    let server = TestServer::spawn().await;
    let app = server.app("ctype").await;
    let url = server.url(&format!(
        "/customservice/kfaccount/update?access_token={}",
        app.token
    ));
    server
        .add(&app.token, &app.account("a"), "n0")
        .await
        .assert_code(0);
    for (i, content_type) in [
        None,
        Some("application/json"),
        Some("application/json; charset=utf-8"),
        Some("text/plain; charset=UTF-8"),
        Some("text/json"),
        Some("application/x-www-form-urlencoded"),
    ]
    .into_iter()
    .enumerate()
    {
        let nickname = format!("n{}", i + 1);
        let body = format!(
            r#"{{"kf_account":"{}","nickname":"{nickname}","password":"e10adc3949ba59abbe56e057f20f883e"}}"#,
            app.account("a")
        );
        let mut request = server.http.post(&url).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        server.send(request).await.assert_code(0);
        assert_eq!(
            server.list(&app.token).await[0]["kf_nick"],
            nickname.as_str(),
            "{content_type:?}"
        );
    }
}

#[tokio::test]
async fn unicode_escapes_are_decoded() {
    let server = TestServer::spawn().await;
    let app = server.app("escapes").await;
    server
        .post(
            &format!("/customservice/kfaccount/add?access_token={}", app.token),
            format!(
                r#"{{"kf_account":"{}","nickname":"\u5ba2\u670d1"}}"#,
                app.account("u")
            ),
        )
        .await
        .assert_code(0);
    assert_eq!(server.list(&app.token).await[0]["kf_nick"], "客服1");
}

#[tokio::test]
async fn head_image_urls_follow_the_host_the_client_used() {
    let server = TestServer::spawn().await;
    let app = server.app("hosted").await;
    server
        .add(&app.token, &app.account("a"), "a")
        .await
        .assert_code(0);
    let form = reqwest::multipart::Form::new().part(
        "media",
        reqwest::multipart::Part::bytes(crate::helpers::jpeg(64)),
    );
    let upload = format!(
        "/customservice/kfaccount/uploadheadimg?access_token={}&kf_account=a@hosted",
        app.token
    );
    server
        .send(server.http.post(server.url(&upload)).multipart(form))
        .await
        .assert_code(0);
    let answer = server
        .send(
            server
                .http
                .get(server.url(&format!(
                    "/cgi-bin/customservice/getkflist?access_token={}",
                    app.token
                )))
                .header("host", "api.weixin.qq.com"),
        )
        .await;
    let url = answer.json["kf_list"][0]["kf_headimgurl"].as_str().unwrap();
    assert!(
        url.starts_with("http://api.weixin.qq.com/kefu/v1/headimg/"),
        "{url}"
    );
}

#[tokio::test]
async fn any_host_header_is_accepted() {
    let server = TestServer::spawn().await;
    let app = server.app("hosts").await;
    for host in ["api.weixin.qq.com", "example.invalid:9999", "127.0.0.1"] {
        let answer = server
            .send(
                server
                    .http
                    .get(server.url(&format!(
                        "/cgi-bin/customservice/getkflist?access_token={}",
                        app.token
                    )))
                    .header("host", host),
            )
            .await;
        assert_eq!(answer.json, json!({"kf_list": []}), "{host}");
    }
}
