//! IP whitelists, bans, diagnostics (docs/behaviour.md, "Platform rules").

use reqwest::Method;
use serde_json::json;

use crate::helpers::TestServer;

#[tokio::test]
async fn ip_whitelist_on_the_secret_endpoints() {
    let server = TestServer::spawn().await;
    let created = server
        .create_app(json!({"wechat_id": "walled", "ip_whitelist": ["203.0.113.7"]}))
        .await;
    let app = crate::helpers::TestApp {
        appid: created.app.appid,
        secret: created.secret.expose().to_owned(),
        wechat_id: created.app.wechat_id,
        original_id: created.app.original_id,
        token: String::new(),
    };
    let token_url = format!(
        "/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
        app.appid, app.secret
    );
    let denied = server.get(&token_url).await;
    denied.assert_code_with(
        40164,
        "invalid ip 127.0.0.1 ipv6 ::ffff:127.0.0.1, not in whitelist",
    );
    // X-Forwarded-For from an untrusted peer is ignored.
    let spoofed = server
        .send(
            server
                .http
                .get(server.url(&token_url))
                .header("x-forwarded-for", "203.0.113.7"),
        )
        .await;
    spoofed.assert_code(40164);
    let stable =
        json!({"grant_type": "client_credential", "appid": app.appid, "secret": app.secret});
    server
        .post_json("/cgi-bin/stable_token", &stable)
        .await
        .assert_code(40164);
    server
        .post_json(
            "/cgi-bin/clear_quota/v2",
            &json!({"appid": app.appid, "appsecret": app.secret}),
        )
        .await
        .assert_code(40164);
    // Allowing loopback opens it.
    let (status, _) = server
        .admin_json(
            Method::PATCH,
            &format!("/kefu/v1/apps/{}", app.appid),
            Some(json!({"ip_whitelist": ["127.0.0.1"]})),
        )
        .await;
    assert_eq!(status, 200);
    assert!(server.get(&token_url).await.json["access_token"].is_string());
}

#[tokio::test]
async fn forwarded_for_from_a_trusted_proxy() {
    let server = TestServer::spawn_with(|config| {
        config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]
    })
    .await;
    let created = server
        .create_app(json!({"wechat_id": "proxied", "ip_whitelist": ["203.0.113.7"]}))
        .await;
    let token_url = format!(
        "/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
        created.app.appid,
        created.secret.expose()
    );
    let allowed = server
        .send(
            server
                .http
                .get(server.url(&token_url))
                .header("x-forwarded-for", "203.0.113.7"),
        )
        .await;
    assert!(allowed.json["access_token"].is_string(), "{}", allowed.raw);
    let other = server
        .send(
            server
                .http
                .get(server.url(&token_url))
                .header("x-forwarded-for", "198.51.100.4"),
        )
        .await;
    other.assert_code_with(
        40164,
        "invalid ip 198.51.100.4 ipv6 ::ffff:198.51.100.4, not in whitelist",
    );
}

#[tokio::test]
async fn banned_apis_answer_48004() {
    let server = TestServer::spawn().await;
    let app = server
        .app_with(json!({"wechat_id": "banned", "banned_apis": ["/customservice/kfaccount/add"]}))
        .await;
    server
        .add(&app.token, &app.account("a"), "a")
        .await
        .assert_code(48004);
    assert_eq!(server.list(&app.token).await.len(), 0);
    let (status, _) = server
        .admin_json(
            Method::PATCH,
            &format!("/kefu/v1/apps/{}", app.appid),
            Some(json!({"banned_apis": []})),
        )
        .await;
    assert_eq!(status, 200);
    server
        .add(&app.token, &app.account("a"), "a")
        .await
        .assert_code(0);
}

#[tokio::test]
async fn rid_get_finds_the_apps_own_requests() {
    let server = TestServer::spawn().await;
    let app = server.app("diag").await;
    let other = server.app("nosy").await;
    let failed = server.update(&app.token, &app.account("nosuch"), "x").await;
    failed.assert_code(65401);
    let rid = kefu_api::Rid::from_errmsg(failed.errmsg())
        .unwrap()
        .to_string();

    let answer = server
        .call(
            "/cgi-bin/openapi/rid/get",
            &app.token,
            json!({ "rid": rid }),
        )
        .await;
    assert_eq!(answer.json["errcode"], 0, "{}", answer.raw);
    let request = &answer.json["request"];
    // The query string alone, as WeChat documents it (`access_token=50_Im7xxxx`): code
    // that parses it as a query string must be able to.
    let url = request["request_url"].as_str().unwrap();
    assert!(url.starts_with("access_token="), "{url}");
    let pairs: Vec<(String, String)> = form_urlencoded::parse(url.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(pairs.len(), 1, "{url}");
    assert!(pairs[0].1.ends_with("***"), "{url}");
    assert!(!url.contains(&app.token), "the token is masked: {url}");
    assert!(
        request["request_body"]
            .as_str()
            .unwrap()
            .contains("nosuch@diag")
    );
    assert!(request["response_body"].as_str().unwrap().contains("65401"));
    assert_eq!(request["client_ip"], "127.0.0.1");
    assert!(request["invoke_time"].as_i64().unwrap() > 0 && request["cost_in_ms"].is_i64());

    server
        .call(
            "/cgi-bin/openapi/rid/get",
            &other.token,
            json!({ "rid": rid }),
        )
        .await
        .assert_code(76003);
    server
        .call(
            "/cgi-bin/openapi/rid/get",
            &app.token,
            json!({ "rid": "nonsense" }),
        )
        .await
        .assert_code(76002);
    server
        .call("/cgi-bin/openapi/rid/get", &app.token, json!({}))
        .await
        .assert_code(76002);
    server
        .call(
            "/cgi-bin/openapi/rid/get",
            &app.token,
            json!({ "rid": "00000001-00000002-00000003" }),
        )
        .await
        .assert_code(76001);

    // Kept 7 days, then deleted.
    server.advance_over_http(7 * 24 * 3600 + 1).await;
    let token = server.token(&app.appid, &app.secret).await;
    server
        .call("/cgi-bin/openapi/rid/get", &token, json!({ "rid": rid }))
        .await
        .assert_code(76001);
    let (_, log) = server
        .admin_json(
            Method::GET,
            &format!("/kefu/v1/requests?appid={}&limit=1000", app.appid),
            None,
        )
        .await;
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .all(|entry| entry["rid"] != rid.as_str()),
        "the record is gone"
    );
}

#[tokio::test]
async fn the_log_never_holds_a_secret_or_a_whole_token() {
    let server = TestServer::spawn().await;
    let app = server.app("secretive").await;
    let stable = server
        .post_json(
            "/cgi-bin/stable_token",
            &json!({"grant_type": "client_credential", "appid": app.appid, "secret": app.secret}),
        )
        .await;
    let stable_token = stable.json["access_token"].as_str().unwrap().to_owned();
    server.update(&app.token, &app.account("a"), "x").await;
    let (_, log) = server
        .admin_json(Method::GET, "/kefu/v1/requests?limit=1000", None)
        .await;
    let text = log.to_string();
    assert_eq!(
        log.as_array().unwrap().len(),
        3,
        "token, stable_token, update: {text}"
    );
    for secret in [&app.secret, &app.token, &stable_token] {
        assert!(
            !text.contains(secret.as_str()),
            "{secret} leaked into the log"
        );
    }
    let db = std::fs::read(&server.db_path).unwrap_or_default();
    let wal = std::fs::read(server.db_path.with_extension("db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        let haystack = String::from_utf8_lossy(&bytes);
        assert!(!haystack.contains(&app.secret) && !haystack.contains(&app.token));
    }
}
