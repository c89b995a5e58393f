//! Third-party platforms (docs/behaviour.md): tickets, component and authorizer tokens,
//! refresh-token rotation and the permission-set gate.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestServer;

struct Platform {
    appid: String,
    secret: String,
}

async fn platform(server: &TestServer, body: Value) -> Platform {
    let (status, created) = server
        .admin_json(Method::POST, "/kefu/v1/components", Some(body))
        .await;
    assert_eq!(status, 201, "{created}");
    Platform {
        appid: created["component_appid"].as_str().unwrap().to_owned(),
        secret: created["secret"].as_str().unwrap().to_owned(),
    }
}

async fn ticket(server: &TestServer, platform: &Platform) -> String {
    let (status, ticket) = server
        .admin_json(
            Method::POST,
            &format!("/kefu/v1/components/{}/ticket", platform.appid),
            None,
        )
        .await;
    assert_eq!(status, 200);
    ticket["component_verify_ticket"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn component_token(
    server: &TestServer,
    platform: &Platform,
    ticket: &str,
) -> crate::helpers::Answer {
    server
        .post_json(
            "/cgi-bin/component/api_component_token",
            &json!({"component_appid": platform.appid, "component_appsecret": platform.secret, "component_verify_ticket": ticket}),
        )
        .await
}

async fn authorize(
    server: &TestServer,
    platform: &Platform,
    appid: &str,
    funcscopes: &[u32],
) -> String {
    let (status, created) = server
        .admin_json(
            Method::POST,
            &format!("/kefu/v1/components/{}/authorizations", platform.appid),
            Some(json!({"appid": appid, "funcscopes": funcscopes})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    created["authorizer_refresh_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn authorizer_token(
    server: &TestServer,
    component_token: &str,
    platform: &Platform,
    appid: &str,
    refresh: &str,
) -> crate::helpers::Answer {
    server
        .post_json(
            &format!("/cgi-bin/component/api_authorizer_token?component_access_token={component_token}"),
            &json!({"component_appid": platform.appid, "authorizer_appid": appid, "authorizer_refresh_token": refresh}),
        )
        .await
}

#[tokio::test]
async fn an_authorizer_with_funcscope_19_may_add_but_not_update() {
    let server = TestServer::spawn().await;
    let app = server.app("authed").await;
    let platform = platform(&server, json!({})).await;
    let ticket = ticket(&server, &platform).await;
    let answer = component_token(&server, &platform, &ticket).await;
    assert_eq!(answer.json["expires_in"], 7200, "{}", answer.raw);
    let component_token = answer.json["component_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let refresh = authorize(&server, &platform, &app.appid, &[19]).await;
    let answer = authorizer_token(&server, &component_token, &platform, &app.appid, &refresh).await;
    assert_eq!(answer.json["expires_in"], 7200, "{}", answer.raw);
    let token = answer.json["authorizer_access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    server
        .add(&token, &app.account("a"), "a")
        .await
        .assert_code(0);
    server
        .update(&token, &app.account("a"), "b")
        .await
        .assert_code(61007);
    assert_eq!(
        server.list(&token).await[0]["kf_nick"],
        "a",
        "list is allowed with 19"
    );
    // With set 6 the same token may update (the gate reads the authorization now).
    authorize(&server, &platform, &app.appid, &[6]).await;
    server
        .update(&token, &app.account("a"), "b")
        .await
        .assert_code(0);
    // With none of the kf sets, nothing.
    authorize(&server, &platform, &app.appid, &[2, 3]).await;
    server
        .get(&format!(
            "/cgi-bin/customservice/getkflist?access_token={token}"
        ))
        .await
        .assert_code(61007);
    // A component token is not an access_token.
    server
        .get(&format!(
            "/cgi-bin/customservice/getkflist?access_token={component_token}"
        ))
        .await
        .assert_code(40001);
}

#[tokio::test]
async fn refresh_tokens_rotate_with_five_minutes_of_overlap() {
    let server = TestServer::spawn().await;
    let app = server.app("rotating").await;
    let platform = platform(&server, json!({})).await;
    let ticket = ticket(&server, &platform).await;
    let ctoken = component_token(&server, &platform, &ticket).await.json["component_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = authorize(&server, &platform, &app.appid, &[1]).await;
    let answer = authorizer_token(&server, &ctoken, &platform, &app.appid, &first).await;
    let second = answer.json["authorizer_refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(second, first);
    let refresh_of = |answer: crate::helpers::Answer| {
        answer.json["authorizer_refresh_token"]
            .as_str()
            .unwrap_or_else(|| panic!("{}", answer.raw))
            .to_owned()
    };
    // A replaced token still works within 5 minutes, without cutting off the one that
    // replaced it: two workers may each hold one. (298: the real clock may turn a second
    // meanwhile.)
    server.advance(298);
    let third = refresh_of(authorizer_token(&server, &ctoken, &platform, &app.appid, &first).await);
    let fourth =
        refresh_of(authorizer_token(&server, &ctoken, &platform, &app.appid, &second).await);
    assert!([&first, &second, &third].iter().all(|old| **old != fourth));
    // Each replaced token dies 5 minutes after it was replaced.
    server.advance(3);
    authorizer_token(&server, &ctoken, &platform, &app.appid, &first)
        .await
        .assert_code(61023);
    server.advance(300);
    authorizer_token(&server, &ctoken, &platform, &app.appid, &second)
        .await
        .assert_code(61023);
    authorizer_token(&server, &ctoken, &platform, &app.appid, &third)
        .await
        .assert_code(61023);
    authorizer_token(
        &server,
        &ctoken,
        &platform,
        &app.appid,
        "refreshtoken@@@forged",
    )
    .await
    .assert_code(61023);
    let fifth =
        refresh_of(authorizer_token(&server, &ctoken, &platform, &app.appid, &fourth).await);
    assert_ne!(fifth, fourth);
}

#[tokio::test]
async fn component_errors() {
    let server = TestServer::spawn().await;
    let app = server.app("compapp").await;
    let platform = platform(&server, json!({})).await;
    let walled = platform_with_wall(&server).await;
    let ticket = ticket(&server, &platform).await;
    let post = |body: Value| {
        let server = &server;
        async move {
            server
                .post_json("/cgi-bin/component/api_component_token", &body)
                .await
        }
    };
    post(json!({})).await.assert_code(41018);
    server
        .post("/cgi-bin/component/api_component_token", "")
        .await
        .assert_code(41018);
    post(json!({"component_appid": "wx0000000000000000", "component_appsecret": "x", "component_verify_ticket": ticket}))
        .await
        .assert_code(61011);
    post(json!({"component_appid": platform.appid, "component_verify_ticket": ticket}))
        .await
        .assert_code(41004);
    post(json!({"component_appid": platform.appid, "component_appsecret": "bad", "component_verify_ticket": ticket}))
        .await
        .assert_code(40125);
    post(json!({"component_appid": platform.appid, "component_appsecret": platform.secret, "component_verify_ticket": "ticket@@@nope"}))
        .await
        .assert_code(61006);
    let walled_ticket = self::ticket(&server, &walled).await;
    component_token(&server, &walled, &walled_ticket)
        .await
        .assert_code(61004);
    // Tickets live 12 hours, and then say so (61005, not 61006) for a while.
    server.advance_over_http(12 * 3600 + 60).await;
    component_token(&server, &platform, &ticket)
        .await
        .assert_code(61005);
    // A platform's appid on /cgi-bin/token.
    server
        .get(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
            platform.appid, platform.secret
        ))
        .await
        .assert_code(61024);

    let fresh = self::ticket(&server, &platform).await;
    let ctoken = component_token(&server, &platform, &fresh).await.json["component_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let refresh = authorize(&server, &platform, &app.appid, &[1]).await;
    let url = format!("/cgi-bin/component/api_authorizer_token?component_access_token={ctoken}");
    server.post(&url, "").await.assert_code(41018);
    server.post(&url, "null").await.assert_code(41018);
    server
        .post_json(&url, &json!({"authorizer_appid": app.appid}))
        .await
        .assert_code(41018);
    server
        .post_json(&url, &json!({"component_appid": "wx0000000000000001", "authorizer_appid": app.appid, "authorizer_refresh_token": refresh}))
        .await
        .assert_code(61011);
    server
        .post("/cgi-bin/component/api_authorizer_token", "{}")
        .await
        .assert_code(41001);
    server
        .post(
            "/cgi-bin/component/api_authorizer_token?component_access_token=bad",
            "{}",
        )
        .await
        .assert_code(40001);
    // `access_token=` works as well as `component_access_token=`.
    let answer = server
        .post_json(
            &format!("/cgi-bin/component/api_authorizer_token?access_token={ctoken}"),
            &json!({"component_appid": platform.appid, "authorizer_appid": app.appid, "authorizer_refresh_token": refresh}),
        )
        .await;
    assert!(
        answer.json["authorizer_access_token"].is_string(),
        "{}",
        answer.raw
    );
}

async fn platform_with_wall(server: &TestServer) -> Platform {
    platform(server, json!({"ip_whitelist": ["203.0.113.9"]})).await
}

#[tokio::test]
async fn an_authorizer_with_funcscope_19_may_send_messages_but_not_open_sessions() {
    let server = TestServer::spawn().await;
    let app = server.app("authed").await;
    let fan = server.fan(&app).await;
    server
        .fan_does(&app, &fan, json!({"type": "text", "content": "hi"}))
        .await;
    let platform = platform(&server, json!({})).await;
    let ticket = ticket(&server, &platform).await;
    let component_token =
        component_token(&server, &platform, &ticket).await.json["component_access_token"]
            .as_str()
            .unwrap()
            .to_owned();
    let refresh = authorize(&server, &platform, &app.appid, &[19]).await;
    let answer = authorizer_token(&server, &component_token, &platform, &app.appid, &refresh).await;
    let token = answer.json["authorizer_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .call(
            "/cgi-bin/message/custom/send",
            &token,
            json!({"touser": fan, "msgtype": "text", "text": {"content": "hi"}}),
        )
        .await
        .assert_code(0);
    let history = server
        .call(
            "/customservice/msgrecord/getmsglist",
            &token,
            json!({"starttime": 0, "endtime": 10, "msgid": 1, "number": 10}),
        )
        .await;
    assert!(history.json["recordlist"].is_array(), "{}", history.raw);
    let account = server.serving(&app, "a").await;
    server
        .call(
            "/customservice/kfsession/create",
            &token,
            json!({"kf_account": account, "openid": fan}),
        )
        .await
        .assert_code(61007);
    authorize(&server, &platform, &app.appid, &[1]).await;
    server
        .call(
            "/customservice/kfsession/create",
            &token,
            json!({"kf_account": account, "openid": fan}),
        )
        .await
        .assert_code(0);
}
