//! The web console over plain HTTP: sign-in and its session, CSRF, refusal of
//! cross-site requests, the redirect of `/`, console tokens, the request log's filters
//! and its live stream.

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode, redirect};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, TestServer};

/// A form body, encoded.
fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// A client that shows redirects instead of following them.
fn plain() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs in; answers the cookie (`name=value`) and the page's CSRF token.
async fn sign_in(server: &TestServer) -> (String, String) {
    let response = plain()
        .post(server.url("/kefu/console/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("token", ADMIN_TOKEN)]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/kefu/console/");
    let set = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/kefu"] {
        assert!(set.contains(attribute), "{set} lacks {attribute}");
    }
    let cookie = set.split(';').next().unwrap().to_owned();
    let page = plain()
        .get(server.url("/kefu/console/"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        !html.contains(ADMIN_TOKEN),
        "the admin token is in the page"
    );
    let csrf = html
        .split(r#"name="kefu-csrf" content=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page has its CSRF token")
        .to_owned();
    (cookie, csrf)
}

#[tokio::test]
async fn a_wrong_token_is_refused_with_a_clear_message_and_no_session() {
    let server = TestServer::spawn().await;
    let response = plain()
        .post(server.url("/kefu/console/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("token", "not-the-admin-token")]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get(SET_COOKIE).is_none());
    let html = response.text().await.unwrap();
    assert!(
        html.contains("That is not this server's admin token."),
        "{html}"
    );
    assert!(html.contains(r#"data-testid="signin-error""#));
}

#[tokio::test]
async fn pages_are_never_served_without_a_session() {
    let server = TestServer::spawn().await;
    for page in [
        "/kefu/console/",
        "/kefu/console/debugger",
        "/kefu/console/requests",
    ] {
        let response = plain().get(server.url(page)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{page}");
        assert_eq!(response.headers()[LOCATION], "/kefu/console/signin");
    }
    // A made-up cookie is no session.
    let response = plain()
        .get(server.url("/kefu/console/"))
        .header(COOKIE, "kefu_console=made-up")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let signin = plain()
        .get(server.url("/kefu/console/signin"))
        .send()
        .await
        .unwrap();
    assert_eq!(signin.status(), 200);
    assert!(signin.text().await.unwrap().contains("Admin token"));
}

#[tokio::test]
async fn the_session_stands_for_the_token_and_changes_need_its_csrf_token() {
    let server = TestServer::spawn().await;
    let (cookie, csrf) = sign_in(&server).await;
    let http = plain();
    let apps = http
        .get(server.url("/kefu/v1/apps"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(apps.status(), 200);

    let create = |extra: &[(&str, &str)]| {
        let mut request = http
            .post(server.url("/kefu/v1/apps"))
            .header(COOKIE, &cookie)
            .json(&json!({"wechat_id": "consoleapp"}));
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        request
    };
    let refused = create(&[]).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "forbidden");
    let wrong = create(&[("x-csrf-token", "wrong")]).send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);

    // From another site, even with the CSRF token.
    let evil = create(&[("x-csrf-token", &csrf), ("origin", "http://evil.example")])
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), StatusCode::FORBIDDEN);
    let cross = create(&[("x-csrf-token", &csrf), ("sec-fetch-site", "cross-site")])
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    // Nothing was made.
    let (_, listed) = server.admin_json(Method::GET, "/kefu/v1/apps", None).await;
    assert_eq!(listed.as_array().unwrap().len(), 0);

    let origin = server.base.clone();
    let made = create(&[
        ("x-csrf-token", &csrf),
        ("origin", &origin),
        ("sec-fetch-site", "same-origin"),
    ])
    .send()
    .await
    .unwrap();
    assert_eq!(made.status(), StatusCode::CREATED);
    // Behind a proxy that rewrites `Host`, the browser's own word on where a request
    // comes from decides.
    let proxied = http
        .post(server.url("/kefu/v1/apps"))
        .header(COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .header("origin", "https://kefu.example")
        .header("sec-fetch-site", "same-origin")
        .json(&json!({"wechat_id": "proxiedapp"}))
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), StatusCode::CREATED);

    // The bearer token from another site is refused too.
    let bearer = http
        .delete(server.url("/kefu/v1/faults/1"))
        .bearer_auth(ADMIN_TOKEN)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn sign_in_and_sign_out_from_another_site_are_refused() {
    let server = TestServer::spawn().await;
    let response = plain()
        .post(server.url("/kefu/console/signin"))
        .header("origin", "http://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("token", ADMIN_TOKEN)]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().get(SET_COOKIE).is_none());

    let (cookie, csrf) = sign_in(&server).await;
    let forged = plain()
        .post(server.url("/kefu/console/signout"))
        .header(COOKIE, &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("csrf", "guess")]))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let out = plain()
        .post(server.url("/kefu/console/signout"))
        .header(COOKIE, &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("csrf", csrf.as_str())]))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(
        out.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let after = plain()
        .get(server.url("/kefu/v1/apps"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sessions_are_bounded_and_the_oldest_goes() {
    let server = TestServer::spawn().await;
    let (first, _) = sign_in(&server).await;
    let (second, _) = sign_in(&server).await;
    for _ in 0..kefu_server::console::MAX_SESSIONS - 1 {
        sign_in(&server).await;
    }
    let status = |cookie: String| {
        let http = plain();
        let url = server.url("/kefu/v1/apps");
        async move {
            http.get(url)
                .header(COOKIE, cookie)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(status(first).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(second).await, StatusCode::OK);
}

#[tokio::test]
async fn a_browser_at_the_root_is_sent_to_the_console_and_others_get_40066() {
    let server = TestServer::spawn().await;
    let browser = plain()
        .get(server.url("/"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(browser.status(), StatusCode::SEE_OTHER);
    assert_eq!(browser.headers()[LOCATION], "/kefu/console/");
    server.get("/").await.assert_code(40066);

    let off = TestServer::spawn_with(|config| config.console = false).await;
    let browser = plain()
        .get(off.url("/"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(browser.status(), 200);
    let body: Value = browser.json().await.unwrap();
    assert_eq!(body["errcode"], 40066);
    off.get("/kefu/console/").await.assert_code(40066);
}

#[tokio::test]
async fn a_console_token_works_as_an_access_token_and_replaces_only_its_own_kind() {
    let server = TestServer::spawn().await;
    let app = server.app("consoletok").await;
    let mint = || async {
        let (status, body) = server
            .admin_json(
                Method::POST,
                &format!("/kefu/v1/apps/{}/tokens", app.appid),
                None,
            )
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["expires_in"], 7200);
        body["access_token"].as_str().unwrap().to_owned()
    };
    let first = mint().await;
    let account = app.account("a");
    server.add(&first, &account, "first").await.assert_code(0);
    let second = mint().await;
    server.advance(301);
    // The first console token is superseded after the grace; the app's own is not.
    server
        .update(&first, &account, "x")
        .await
        .assert_code(40001);
    server.update(&second, &account, "y").await.assert_code(0);
    server
        .update(&app.token, &account, "z")
        .await
        .assert_code(0);
    // No quota is spent by minting: the token call's counter is untouched.
    let (status, missing) = server
        .admin_json(
            Method::POST,
            "/kefu/v1/apps/wx00000000000000ff/tokens",
            None,
        )
        .await;
    assert_eq!(status, 404, "{missing}");
}

#[tokio::test]
async fn the_catalog_check_and_the_errcode_table_answer_as_the_contract_does() {
    let server = TestServer::spawn().await;
    let (status, table) = server
        .admin_json(Method::GET, "/kefu/v1/errcodes", None)
        .await;
    assert_eq!(status, 200);
    let row = table
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["errcode"] == 47001)
        .expect("47001 is in the table")
        .clone();
    assert!(!row["meaning"].as_str().unwrap().is_empty());

    let (status, catalog) = server
        .admin_json(Method::GET, "/kefu/v1/catalog", None)
        .await;
    assert_eq!(status, 200);
    assert!(
        catalog
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "kf_update")
    );

    let server = &server;
    let check = |body: &str| {
        let body = json!({"query": [], "body": body});
        async move {
            server
                .admin_json(Method::POST, "/kefu/v1/catalog/kf_update/check", Some(body))
                .await
        }
    };
    let (_, fine) = check(r#"{"kf_account":"a@test","nickname":"ok"}"#).await;
    assert_eq!(fine, json!({"ok": true, "errcode": 0, "reason": ""}));
    let (_, broken) = check(r#"{"kf_account": "#).await;
    assert_eq!(broken["ok"], false);
    assert_eq!(broken["errcode"], 47001);
    let (_, long) = check(r#"{"kf_account":"a@test","nickname":"12345678901234567"}"#).await;
    assert_eq!(long["errcode"], 65403, "{long}");
    let (status, _) = server
        .admin_json(Method::POST, "/kefu/v1/catalog/nope/check", Some(json!({})))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_request_log_filters_by_path_errcode_and_a_pasted_errmsg() {
    let server = TestServer::spawn().await;
    let app = server.app("filters").await;
    let account = app.account("a");
    server.add(&app.token, &account, "a").await.assert_code(0);
    let failed = server.update("not-a-token", &account, "b").await;
    failed.assert_code(40001);
    let errmsg = failed.errmsg().to_owned();
    let rid = kefu_api::Rid::from_errmsg(&errmsg).unwrap().to_string();

    let query = format!(
        "/kefu/v1/requests?rid={}",
        form_urlencoded::byte_serialize(errmsg.as_bytes()).collect::<String>()
    );
    let (status, found) = server.admin_json(Method::GET, &query, None).await;
    assert_eq!(status, 200);
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found[0]["rid"], rid.as_str());
    assert!(!found[0]["reason"].as_str().unwrap().is_empty());

    let (_, by_code) = server
        .admin_json(Method::GET, "/kefu/v1/requests?errcode=40001", None)
        .await;
    assert!(
        by_code
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["errcode"] == 40001)
    );
    assert!(
        by_code
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["rid"] == rid.as_str())
    );
    let (_, by_path) = server
        .admin_json(
            Method::GET,
            "/kefu/v1/requests?path=/customservice/kfaccount/add",
            None,
        )
        .await;
    let by_path = by_path.as_array().unwrap();
    assert_eq!(by_path.len(), 1, "{by_path:?}");
    assert_eq!(by_path[0]["errcode"], 0);
    let (_, none) = server
        .admin_json(Method::GET, "/kefu/v1/requests?rid=no+rid+here", None)
        .await;
    assert_eq!(none, json!([]));
}

#[tokio::test]
async fn a_stream_opened_with_a_session_ends_when_the_session_signs_out() {
    let server = TestServer::spawn().await;
    let app = server.app("signedout").await;
    let (cookie, csrf) = sign_in(&server).await;
    let mut by_session = plain()
        .get(server.url("/kefu/v1/requests/stream"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(by_session.status(), 200);
    let mut by_token = server
        .admin(Method::GET, "/kefu/v1/requests/stream")
        .send()
        .await
        .unwrap();
    assert_eq!(by_token.status(), 200);
    // The first chunks say the streams are open: both readers are registered by then.
    for stream in [&mut by_session, &mut by_token] {
        let opened = stream.chunk().await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&opened).starts_with(':'));
    }

    let out = plain()
        .post(server.url("/kefu/console/signout"))
        .header(COOKIE, &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("csrf", csrf.as_str())]))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    // The session's stream ends within a second or so (keep-alive comments aside).
    let ended = tokio::time::timeout(std::time::Duration::from_secs(3), async {
        while let Some(chunk) = by_session.chunk().await.ok().flatten() {
            assert!(
                String::from_utf8_lossy(&chunk).starts_with(':'),
                "no call was made"
            );
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived its session");

    // The token's stream goes on.
    let failed = server.update(&app.token, "nobody@signedout", "n").await;
    let rid = kefu_api::Rid::from_errmsg(failed.errmsg())
        .unwrap()
        .to_string();
    let mut seen = String::new();
    while !seen.contains(&rid) {
        let chunk = by_token
            .chunk()
            .await
            .unwrap()
            .expect("the token's stream goes on");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn the_stream_shows_each_call_as_it_is_made_and_ends_with_the_server() {
    let server = TestServer::spawn().await;
    let app = server.app("stream").await;
    let mut stream = server
        .admin(Method::GET, "/kefu/v1/requests/stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    // The first chunk says the stream is open: the reader is registered by then.
    let opened = stream.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&opened).starts_with(':'));

    let failed = server.update(&app.token, "nobody@stream", "n").await;
    let rid = kefu_api::Rid::from_errmsg(failed.errmsg())
        .unwrap()
        .to_string();
    let mut seen = String::new();
    while !seen.contains(&rid) {
        let chunk = stream.chunk().await.unwrap().expect("the stream goes on");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let event = seen
        .split("\n\n")
        .find(|e| e.contains(&rid))
        .unwrap()
        .to_owned();
    assert!(event.starts_with("event: call\ndata: {"), "{event}");
    let data: Value = serde_json::from_str(event.split_once("data: ").unwrap().1).unwrap();
    assert_eq!(data["rid"], rid.as_str());
    assert_eq!(data["appid"], app.appid.as_str());
    assert_ne!(data["errcode"], 0);

    // Stopping the server ends the stream (and the server does stop).
    let dir = server.stop().await;
    while let Some(chunk) = stream.chunk().await.ok().flatten() {
        assert!(!chunk.is_empty());
    }
    drop(dir);
}

#[tokio::test]
async fn an_apps_tokens_are_listed_with_their_state_and_one_is_ended_by_hash() {
    let server = TestServer::spawn().await;
    let app = server.app("tokenlist").await;
    let path = format!("/kefu/v1/apps/{}/tokens", app.appid);
    let (status, minted) = server.admin_json(Method::POST, &path, None).await;
    assert_eq!(status, 201, "{minted}");
    let console = minted["access_token"].as_str().unwrap().to_owned();
    let (status, listed) = server.admin_json(Method::GET, &path, None).await;
    assert_eq!(status, 200, "{listed}");
    let listed = listed.as_array().unwrap().clone();
    let kinds: Vec<&str> = listed.iter().map(|t| t["kind"].as_str().unwrap()).collect();
    assert!(
        kinds.contains(&"console") && kinds.contains(&"token"),
        "{kinds:?}"
    );
    assert!(listed.iter().all(|t| t["state"] == "live"), "{listed:?}");
    assert!(!serde_json::to_string(&listed).unwrap().contains(&console));
    let basic = listed.iter().find(|t| t["kind"] == "token").unwrap();
    assert_eq!(
        basic["expires_at"].as_i64().unwrap() - basic["issued_at"].as_i64().unwrap(),
        7200
    );

    // Expire the app's own token by its hash: 42001 from now on, the console token
    // still works.
    let hash = basic["hash"].as_str().unwrap().to_owned();
    let (status, _) = server
        .admin_json(
            Method::POST,
            &path,
            Some(json!({"action": "expire", "hash": hash})),
        )
        .await;
    assert_eq!(status, 204);
    let account = app.account("a");
    server
        .add(&app.token, &account, "a")
        .await
        .assert_code(42001);
    server.add(&console, &account, "a").await.assert_code(0);
    let (_, listed) = server.admin_json(Method::GET, &path, None).await;
    let basic = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["hash"] == hash.as_str())
        .unwrap()
        .clone();
    assert_eq!(basic["state"], "expired");

    // Invalidate the console token by its value.
    let (status, _) = server
        .admin_json(
            Method::POST,
            &path,
            Some(json!({"action": "invalidate", "access_token": console})),
        )
        .await;
    assert_eq!(status, 204);
    server
        .update(&console, &account, "b")
        .await
        .assert_code(40001);

    // Another app's token, an unknown hash or a malformed one are refused.
    let other = server.app("othertok").await;
    let (status, _) = server
        .admin_json(
            Method::POST,
            &path,
            Some(json!({"action": "expire", "access_token": other.token})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = server
        .admin_json(
            Method::POST,
            &path,
            Some(json!({"action": "expire", "hash": "zz"})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = server
        .admin_json(Method::POST, &path, Some(json!({"action": "expire"})))
        .await;
    assert_eq!(status, 400);
    let (status, _) = server
        .admin_json(Method::GET, "/kefu/v1/apps/wx00000000000000ff/tokens", None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn moving_the_clock_tells_what_lapsed() {
    let server = TestServer::spawn().await;
    let app = server.app("lapsing").await;
    let account = app.account("a");
    server.add(&app.token, &account, "a").await.assert_code(0);
    server
        .call(
            "/customservice/kfaccount/inviteworker",
            &app.token,
            json!({"kf_account": account, "invite_wx": "worker_9"}),
        )
        .await
        .assert_code(0);

    // Five minutes: nothing lapses.
    let (status, small) = server
        .admin_json(
            Method::POST,
            "/kefu/v1/clock",
            Some(json!({"advance_secs": 300})),
        )
        .await;
    assert_eq!(status, 200, "{small}");
    assert_eq!(small["lapsed"]["tokens"], json!([]));
    assert_eq!(small["lapsed"]["invitations"], json!([]));
    let (_, read) = server.admin_json(Method::GET, "/kefu/v1/clock", None).await;
    assert!(read.get("lapsed").is_none(), "{read}");

    // Eight days: the token expired, the invitation ran out, and a new day began.
    let (_, moved) = server
        .admin_json(
            Method::POST,
            "/kefu/v1/clock",
            Some(json!({"advance_secs": 8 * 86400})),
        )
        .await;
    let lapsed = &moved["lapsed"];
    assert_eq!(lapsed["to"], moved["now"]);
    let token = lapsed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["appid"] == app.appid.as_str() && t["kind"] == "token")
        .unwrap_or_else(|| panic!("{lapsed}"))
        .clone();
    assert_eq!(token["what"], "expired");
    let invitation = &lapsed["invitations"][0];
    assert_eq!(invitation["kf_account"], account.as_str());
    assert_eq!(invitation["invite_wx"], "worker_9");
    let quota = lapsed["quotas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["path"] == "/cgi-bin/token")
        .unwrap_or_else(|| panic!("{lapsed}"))
        .clone();
    assert!(quota["used"].as_u64().unwrap() >= 1);
    assert_eq!(lapsed["truncated"], false);
    // What it says is so: the token is dead (forgotten, even: 7 days past its expiry).
    server
        .update(&app.token, &account, "b")
        .await
        .assert_code(40001);
}
