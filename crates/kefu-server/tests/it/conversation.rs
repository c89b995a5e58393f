//! Fans, sessions, customer service messages, typing and history over real HTTP: every
//! rule of docs/behaviour.md's "Fans", "Sessions", "Messages" and "History", with the
//! test clock for every window and timeout.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Answer, TestApp, TestServer, on_both_stores};

const SEND: &str = "/cgi-bin/message/custom/send";
const TYPING: &str = "/cgi-bin/message/custom/typing";
const CREATE: &str = "/customservice/kfsession/create";
const CLOSE: &str = "/customservice/kfsession/close";

impl TestServer {
    /// The app with a new token (after the clock moved past the old one's 2 hours).
    pub(crate) async fn fresh_token(&self, mut app: TestApp) -> TestApp {
        app.token = self.token(&app.appid, &app.secret).await;
        app
    }

    /// The server clock, as the admin surface reads it.
    pub(crate) async fn clock_now(&self) -> i64 {
        let (_, clock) = self.admin_json(Method::GET, "/kefu/v1/clock", None).await;
        clock["now"].as_i64().unwrap()
    }

    /// A fan of the app, made through the admin API; answers its openid.
    pub(crate) async fn fan(&self, app: &TestApp) -> String {
        let (status, fan) = self
            .admin_json(
                Method::POST,
                &format!("/kefu/v1/apps/{}/fans", app.appid),
                Some(json!({"nickname": "fan"})),
            )
            .await;
        assert_eq!(status, 201, "{fan}");
        let openid = fan["openid"].as_str().unwrap().to_owned();
        assert_eq!(openid.len(), 28, "WeChat's shape");
        openid
    }

    /// The fan does something; answers the admin answer.
    pub(crate) async fn fan_does(&self, app: &TestApp, openid: &str, action: Value) -> Value {
        let (status, acted) = self
            .admin_json(
                Method::POST,
                &format!("/kefu/v1/apps/{}/fans/{openid}/actions", app.appid),
                Some(action),
            )
            .await;
        assert_eq!(status, 200, "{acted}");
        acted
    }

    /// The fan as the admin surface shows it.
    pub(crate) async fn fan_view(&self, app: &TestApp, openid: &str) -> Value {
        let (status, fan) = self
            .admin_json(
                Method::GET,
                &format!("/kefu/v1/apps/{}/fans/{openid}", app.appid),
                None,
            )
            .await;
        assert_eq!(status, 200, "{fan}");
        fan
    }

    /// Sends a text to the fan.
    pub(crate) async fn send_text(&self, app: &TestApp, openid: &str, text: &str) -> Answer {
        self.call(
            SEND,
            &app.token,
            json!({"touser": openid, "msgtype": "text", "text": {"content": text}}),
        )
        .await
    }

    /// An account of the app, bound to a worker and online.
    pub(crate) async fn serving(&self, app: &TestApp, prefix: &str) -> String {
        let account = app.account(prefix);
        self.add(&app.token, &account, prefix).await.assert_code(0);
        self.bind(app, &account, &format!("worker_{prefix}")).await;
        let (status, view) = self
            .admin_json(
                Method::POST,
                &format!("/kefu/v1/apps/{}/kf/{account}/online", app.appid),
                Some(json!({"status": 1})),
            )
            .await;
        assert_eq!(status, 200, "{view}");
        account
    }
}

fn text(content: &str) -> Value {
    json!({"type": "text", "content": content})
}

async fn a_fans_message_lets_five_replies_through_and_48_hours_close_the_window(
    server: TestServer,
) {
    let app = server.app("shop").await;
    let fan = server.fan(&app).await;
    server
        .send_text(&app, &fan, "too early")
        .await
        .assert_code(45015);
    server.fan_does(&app, &fan, text("hello")).await;
    for n in 0..5 {
        server
            .send_text(&app, &fan, &format!("reply {n}"))
            .await
            .assert_code(0);
    }
    let sixth = server.send_text(&app, &fan, "sixth").await;
    sixth.assert_code(45047);
    assert_eq!(
        sixth.errmsg().split(" rid: ").next(),
        Some("out of response count limit")
    );
    let view = server.fan_view(&app, &fan).await;
    assert_eq!(view["windows"][0]["kind"], "message");
    assert_eq!(view["windows"][0]["left"], 0);
    assert_eq!(view["can_send"], false);
    let timeline = view["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 6);
    assert_eq!(timeline[0]["text"], "reply 4");
    assert_eq!(timeline[0]["opercode"], 2002);
    assert_eq!(timeline[5]["text"], "hello");
    assert_eq!(timeline[5]["opercode"], 2003);
    server.advance_over_http(48 * 3600).await;
    let app = server.fresh_token(app).await;
    server
        .send_text(&app, &fan, "late")
        .await
        .assert_code(45015);
    // The reason says which window closed and when.
    let (_, log) = server
        .admin_json(Method::GET, "/kefu/v1/requests?limit=1", None)
        .await;
    let reason = log[0]["reason"].as_str().unwrap();
    assert!(reason.contains("closed at"), "{reason}");
}

async fn a_click_a_follow_or_a_scan_opens_three_for_a_minute_and_a_payment_any_number(
    server: TestServer,
) {
    let app = server.app("shop").await;
    let fan = server.fan(&app).await;
    for action in [
        json!({"type": "click", "key": "MENU_1"}),
        json!({"type": "follow"}),
        json!({"type": "scan", "key": "scene_7"}),
    ] {
        server.fan_does(&app, &fan, action).await;
        for _ in 0..3 {
            server.send_text(&app, &fan, "r").await.assert_code(0);
        }
        server.send_text(&app, &fan, "r").await.assert_code(45047);
        server.advance_over_http(60).await;
        server.send_text(&app, &fan, "r").await.assert_code(45015);
    }
    server.fan_does(&app, &fan, json!({"type": "pay"})).await;
    for _ in 0..30 {
        server.send_text(&app, &fan, "r").await.assert_code(0);
    }
    server.advance_over_http(48 * 3600).await;
    let app = server.fresh_token(app).await;
    server.send_text(&app, &fan, "r").await.assert_code(45015);
}

async fn unfollowing_closes_the_window(server: TestServer) {
    let app = server.app("shop").await;
    let fan = server.fan(&app).await;
    server.fan_does(&app, &fan, json!({"type": "pay"})).await;
    server.send_text(&app, &fan, "r").await.assert_code(0);
    server
        .fan_does(&app, &fan, json!({"type": "unfollow"}))
        .await;
    server.send_text(&app, &fan, "r").await.assert_code(45015);
    let (status, refused) = server
        .admin_json(
            Method::POST,
            &format!("/kefu/v1/apps/{}/fans/{fan}/actions", app.appid),
            Some(text("still here?")),
        )
        .await;
    assert_eq!((status, refused["error"].as_str()), (409, Some("conflict")));
}

async fn the_window_counts_are_per_app_settings(server: TestServer) {
    let app = server.app("shop").await;
    let (status, changed) = server
        .admin_json(
            Method::PATCH,
            &format!("/kefu/v1/apps/{}", app.appid),
            Some(json!({"windows": {"message": {"secs": 100, "limit": 20}}})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["windows"]["message"]["limit"], 20);
    assert_eq!(
        changed["windows"]["event"]["limit"], 3,
        "the others keep WeChat's"
    );
    let fan = server.fan(&app).await;
    server.fan_does(&app, &fan, text("hi")).await;
    for _ in 0..20 {
        server.send_text(&app, &fan, "r").await.assert_code(0);
    }
    server.send_text(&app, &fan, "r").await.assert_code(45047);
    let (status, bad) = server
        .admin_json(
            Method::PATCH,
            &format!("/kefu/v1/apps/{}", app.appid),
            Some(json!({"windows": {"message": {"secs": 0}}})),
        )
        .await;
    assert_eq!(
        (status, bad["error"].as_str()),
        (400, Some("invalid_window"))
    );
}

async fn every_msgtype_is_checked_for_its_object(server: TestServer) {
    let app = server.app("shop").await;
    let fan = server.fan(&app).await;
    server.fan_does(&app, &fan, json!({"type": "pay"})).await;
    let ok = [
        json!({"msgtype": "text", "text": {"content": "hi"}}),
        json!({"msgtype": "image", "image": {"media_id": "m"}}),
        json!({"msgtype": "voice", "voice": {"media_id": "m"}}),
        json!({"msgtype": "video", "video": {"media_id": "m", "thumb_media_id": "t", "title": "a"}}),
        json!({"msgtype": "music", "music": {"musicurl": "u", "hqmusicurl": "h", "thumb_media_id": "t"}}),
        json!({"msgtype": "news", "news": {"articles": [{"title": "a", "url": "u"}]}}),
        json!({"msgtype": "mpnews", "mpnews": {"media_id": "m"}}),
        json!({"msgtype": "mpnewsarticle", "mpnewsarticle": {"article_id": "a"}}),
        json!({"msgtype": "msgmenu", "msgmenu": {"head_content": "h", "list": [{"id": "1", "content": "yes"}]}}),
        json!({"msgtype": "wxcard", "wxcard": {"card_id": "c"}}),
        json!({"msgtype": "miniprogrampage", "miniprogrampage": {"title": "t", "appid": "wx1", "pagepath": "p", "thumb_media_id": "m"}}),
    ];
    for mut body in ok {
        body["touser"] = json!(fan);
        server
            .call(SEND, &app.token, body.clone())
            .await
            .assert_code(0);
    }
    let refused = [
        (json!({"msgtype": "sticker", "sticker": {}}), 47001),
        (json!({"msgtype": "image"}), 47001),
        (json!({"msgtype": "image", "image": {"media_id": 5}}), 47001),
        (
            json!({"msgtype": "video", "video": {"media_id": "m"}}),
            47001,
        ),
        (json!({"msgtype": "text", "text": {"content": ""}}), 44004),
        (
            json!({"msgtype": "news", "news": {"articles": [{"title": "a"}, {"title": "b"}]}}),
            45008,
        ),
    ];
    for (mut body, code) in refused {
        body["touser"] = json!(fan);
        server
            .call(SEND, &app.token, body.clone())
            .await
            .assert_code(code);
    }
    let message = json!({"msgtype": "text", "text": {"content": "hi"}});
    let mut unknown = message.clone();
    unknown["touser"] = json!("oNobody00000000000000000000x");
    server
        .call(SEND, &app.token, unknown)
        .await
        .assert_code(40003);
    let mut as_nobody = message.clone();
    as_nobody["touser"] = json!(fan);
    as_nobody["customservice"] = json!({"kf_account": "nobody@shop"});
    server
        .call(SEND, &app.token, as_nobody)
        .await
        .assert_code(65401);
    let account = app.account("a");
    server.add(&app.token, &account, "A").await.assert_code(0);
    let mut as_a = message.clone();
    as_a["touser"] = json!(fan);
    as_a["customservice"] = json!({"kf_account": account});
    server.call(SEND, &app.token, as_a).await.assert_code(0);
    let view = server.fan_view(&app, &fan).await;
    assert_eq!(view["timeline"][0]["worker"], account);
    assert_eq!(view["timeline"][1]["text"], "[miniprogrampage]");
}

async fn typing_needs_a_message_in_the_last_30_seconds_and_lasts_15(server: TestServer) {
    let app = server.app("shop").await;
    let fan = server.fan(&app).await;
    let typing = |command: &str| json!({"touser": fan, "command": command});
    server
        .call(TYPING, &app.token, typing("Typing"))
        .await
        .assert_code(45015);
    server.fan_does(&app, &fan, text("hi")).await;
    server
        .call(TYPING, &app.token, typing("Typing"))
        .await
        .assert_code(0);
    server
        .call(TYPING, &app.token, typing("Typing"))
        .await
        .assert_code(45081);
    server
        .call(TYPING, &app.token, typing("Dancing"))
        .await
        .assert_code(45072);
    server.advance_over_http(16).await;
    server
        .call(TYPING, &app.token, typing("Typing"))
        .await
        .assert_code(0);
    // Sending cancels typing, and counts as an exchange.
    server.send_text(&app, &fan, "answer").await.assert_code(0);
    assert!(server.fan_view(&app, &fan).await["typing_until"].is_null());
    server
        .call(TYPING, &app.token, typing("Typing"))
        .await
        .assert_code(0);
    server
        .call(TYPING, &app.token, typing("CancelTyping"))
        .await
        .assert_code(0);
    server.advance_over_http(31).await;
    server
        .call(TYPING, &app.token, typing("Typing"))
        .await
        .assert_code(45080);
}

async fn a_session_is_created_listed_counted_and_closed(server: TestServer) {
    let app = server.app("shop").await;
    let fan = server.fan(&app).await;
    server.fan_does(&app, &fan, text("help")).await;
    let session = |account: &str, openid: &str| json!({"kf_account": account, "openid": openid});
    // An account that exists but is neither bound nor online.
    let idle = app.account("idle");
    server.add(&app.token, &idle, "Idle").await.assert_code(0);
    server
        .call(CREATE, &app.token, session(&idle, &fan))
        .await
        .assert_code(65402);
    server.bind(&app, &idle, "worker_idle").await;
    server
        .call(CREATE, &app.token, session(&idle, &fan))
        .await
        .assert_code(65415);
    server
        .call(CREATE, &app.token, session(&app.account("nobody"), &fan))
        .await
        .assert_code(65401);
    server
        .call(
            CREATE,
            &app.token,
            session(&idle, "oNobody00000000000000000000x"),
        )
        .await
        .assert_code(40003);
    let a = server.serving(&app, "a").await;
    let b = server.serving(&app, "b").await;
    server
        .call(CREATE, &app.token, session(&a, &fan))
        .await
        .assert_code(0);
    server
        .call(CREATE, &app.token, session(&a, &fan))
        .await
        .assert_code(0);
    server
        .call(CREATE, &app.token, session(&b, &fan))
        .await
        .assert_code(65414);
    let got = server
        .get(&format!(
            "/customservice/kfsession/getsession?access_token={}&openid={fan}",
            app.token
        ))
        .await;
    assert_eq!(got.json["kf_account"], a);
    assert!(got.json["createtime"].as_i64().unwrap() > 0);
    assert!(got.json.get("errcode").is_none(), "payload only");
    let list = server
        .get(&format!(
            "/customservice/kfsession/getsessionlist?access_token={}&kf_account={a}",
            app.token
        ))
        .await;
    assert_eq!(list.json["sessionlist"][0]["openid"], fan);
    let online = server
        .get(&format!(
            "/cgi-bin/customservice/getonlinekflist?access_token={}",
            app.token
        ))
        .await;
    let accepted: Vec<(String, i64)> = online.json["kf_online_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kf| {
            (
                kf["kf_account"].as_str().unwrap().to_owned(),
                kf["accepted_case"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(accepted.contains(&(a.clone(), 1)), "{accepted:?}");
    assert!(accepted.contains(&(b.clone(), 0)), "{accepted:?}");
    server
        .call(CLOSE, &app.token, session(&b, &fan))
        .await
        .assert_code(65414);
    server
        .call(CLOSE, &app.token, session(&a, &fan))
        .await
        .assert_code(0);
    server
        .call(CLOSE, &app.token, session(&a, &fan))
        .await
        .assert_code(65413);
    let got = server
        .get(&format!(
            "/customservice/kfsession/getsession?access_token={}&openid={fan}",
            app.token
        ))
        .await;
    assert_eq!(got.json, json!({"createtime": 0, "kf_account": ""}));
}

async fn a_session_idle_for_thirty_minutes_ends_by_itself(server: TestServer) {
    let app = server.app("shop").await;
    let fan = server.fan(&app).await;
    server.fan_does(&app, &fan, text("help")).await;
    let a = server.serving(&app, "a").await;
    server
        .call(CREATE, &app.token, json!({"kf_account": a, "openid": fan}))
        .await
        .assert_code(0);
    server.advance_over_http(29 * 60).await;
    // A message either way keeps it going.
    server.fan_does(&app, &fan, text("still there?")).await;
    server.advance_over_http(29 * 60).await;
    let got = server
        .get(&format!(
            "/customservice/kfsession/getsession?access_token={}&openid={fan}",
            app.token
        ))
        .await;
    assert_eq!(got.json["kf_account"], a);
    server.advance_over_http(60).await;
    let got = server
        .get(&format!(
            "/customservice/kfsession/getsession?access_token={}&openid={fan}",
            app.token
        ))
        .await;
    assert_eq!(got.json["kf_account"], "");
    let accounts = server.list(&app.token).await;
    assert!(accounts.iter().all(|kf| kf.get("accepted_case").is_none()));
    let (_, kfs) = server
        .admin_json(
            Method::GET,
            &format!("/kefu/v1/apps/{}/kf", app.appid),
            None,
        )
        .await;
    let served = kfs
        .as_array()
        .unwrap()
        .iter()
        .find(|kf| kf["kf_account"] == a)
        .unwrap();
    assert_eq!(served["accepted_case"], 0);
    let timeline = server.fan_view(&app, &fan).await["timeline"].clone();
    assert_eq!(timeline[0]["opercode"], 1004, "the end is recorded");
}

async fn the_waiting_queue_lists_a_hundred_in_arrival_order_and_counts_them_all(
    server: TestServer,
) {
    let app = server.app("shop").await;
    let mut fans = Vec::new();
    for _ in 0..102 {
        let fan = server.fan(&app).await;
        server.fan_does(&app, &fan, text("anyone?")).await;
        let (status, view) = server
            .admin_json(
                Method::POST,
                &format!("/kefu/v1/apps/{}/fans/{fan}/queue", app.appid),
                Some(json!({})),
            )
            .await;
        assert_eq!(status, 200, "{view}");
        assert_eq!(view["session"]["state"], "waiting");
        fans.push(fan);
    }
    let wait = server
        .get(&format!(
            "/customservice/kfsession/getwaitcase?access_token={}",
            app.token
        ))
        .await;
    assert_eq!(wait.json["count"], 102);
    let listed: Vec<&str> = wait.json["waitcaselist"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["openid"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 100);
    assert_eq!(
        listed,
        fans[..100].iter().map(String::as_str).collect::<Vec<_>>()
    );
    // Taking one out of the queue.
    let a = server.serving(&app, "a").await;
    server
        .call(
            CREATE,
            &app.token,
            json!({"kf_account": a, "openid": fans[0]}),
        )
        .await
        .assert_code(0);
    let wait = server
        .get(&format!(
            "/customservice/kfsession/getwaitcase?access_token={}",
            app.token
        ))
        .await;
    assert_eq!(wait.json["count"], 101);
    assert_eq!(wait.json["waitcaselist"][0]["openid"], fans[1]);
}

async fn the_online_simulation_makes_real_sessions(server: TestServer) {
    let app = server.app("shop").await;
    let a = app.account("a");
    server.add(&app.token, &a, "A").await.assert_code(0);
    let online = |accepted_case: i64| json!({"status": 1, "accepted_case": accepted_case});
    let path = format!("/kefu/v1/apps/{}/kf/{a}/online", app.appid);
    let (status, refused) = server
        .admin_json(Method::POST, &path, Some(online(2)))
        .await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (409, Some("rejected")),
        "{refused}"
    );
    // The refusal left nothing behind: the account is offline and no fan was made.
    let (_, fans) = server
        .admin_json(
            Method::GET,
            &format!("/kefu/v1/apps/{}/fans", app.appid),
            None,
        )
        .await;
    assert_eq!(fans, json!([]));
    let (_, kfs) = server
        .admin_json(
            Method::GET,
            &format!("/kefu/v1/apps/{}/kf", app.appid),
            None,
        )
        .await;
    assert_eq!(kfs[0]["online_status"], 0, "{kfs}");
    for wrong in [
        json!({"status": 0, "accepted_case": 2}),
        json!({"status": 1, "accepted_case": 101}),
    ] {
        let (status, refused) = server.admin_json(Method::POST, &path, Some(wrong)).await;
        assert_eq!(
            (status, refused["error"].as_str()),
            (400, Some("invalid_status")),
            "{refused}"
        );
    }
    server.bind(&app, &a, "worker_a").await;
    let (status, view) = server
        .admin_json(Method::POST, &path, Some(online(3)))
        .await;
    assert_eq!(
        (status, view["accepted_case"].clone()),
        (200, json!(3)),
        "{view}"
    );
    let list = server
        .get(&format!(
            "/customservice/kfsession/getsessionlist?access_token={}&kf_account={a}",
            app.token
        ))
        .await;
    assert_eq!(list.json["sessionlist"].as_array().unwrap().len(), 3);
    let (_, view) = server
        .admin_json(Method::POST, &path, Some(online(1)))
        .await;
    assert_eq!(view["accepted_case"], 1);
}

async fn history_pages_by_msgid_and_refuses_long_or_wrong_ranges(server: TestServer) {
    let app = server.app("shop").await;
    let fan = server.fan(&app).await;
    let start = server.clock_now().await;
    server.fan_does(&app, &fan, json!({"type": "pay"})).await;
    // 25,000 sends, 32 at a time.
    let total = 25_000;
    let url = server.url(&format!("{SEND}?access_token={}", app.token));
    let mut senders = tokio::task::JoinSet::new();
    for worker in 0..32 {
        let (http, url, fan) = (reqwest::Client::new(), url.clone(), fan.clone());
        senders.spawn(async move {
            for n in (worker..total).step_by(32) {
                let body =
                    json!({"touser": fan, "msgtype": "text", "text": {"content": format!("m{n}")}});
                let answer: Value = http
                    .post(&url)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert_eq!(answer["errcode"], 0, "{answer}");
            }
        });
    }
    while let Some(done) = senders.join_next().await {
        done.unwrap();
    }
    let end = server.clock_now().await;
    let page = |msgid: i64, number: i64| json!({"starttime": start, "endtime": end, "msgid": msgid, "number": number});
    let (mut msgid, mut seen, mut pages) = (1, 0, 0);
    loop {
        let answer = server
            .call(
                "/customservice/msgrecord/getmsglist",
                &app.token,
                page(msgid, 10_000),
            )
            .await;
        let records = answer.json["recordlist"].as_array().unwrap().clone();
        assert_eq!(answer.json["number"], records.len());
        if records.is_empty() {
            break;
        }
        seen += records.len();
        pages += 1;
        msgid = answer.json["msgid"].as_i64().unwrap();
    }
    assert_eq!(seen, total + 1, "every send and the payment, each once");
    assert_eq!(pages, 3);
    let (server_ref, app_ref) = (&server, &app);
    let code = |body: Value| async move {
        server_ref
            .call("/customservice/msgrecord/getmsglist", &app_ref.token, body)
            .await
            .errcode()
    };
    assert_eq!(
        code(json!({"starttime": 0, "endtime": 86_401, "msgid": 1, "number": 10})).await,
        65417
    );
    assert_eq!(
        code(json!({"starttime": 10, "endtime": 5, "msgid": 1, "number": 10})).await,
        65416
    );
    assert_eq!(
        code(json!({"starttime": 0, "endtime": 5, "msgid": 1, "number": 10_001})).await,
        65416
    );
    assert_eq!(
        code(json!({"starttime": 0, "endtime": 5, "msgid": 1, "number": "ten"})).await,
        47001
    );
    // The legacy form reads the same records by page.
    let legacy = server
        .call(
            "/customservice/msgrecord/getrecord",
            &app.token,
            json!({"starttime": start, "endtime": end, "pageindex": 2, "pagesize": 50}),
        )
        .await;
    let records = legacy.json["recordlist"].as_array().unwrap();
    assert_eq!(records.len(), 50);
    assert_eq!(records[0]["openid"], fan);
    assert_eq!(records[0]["opercode"], 2002);
    let first = server
        .call(
            "/customservice/msgrecord/getrecord",
            &app.token,
            json!({"starttime": start, "endtime": end, "pageindex": 1, "pagesize": 1}),
        )
        .await;
    assert_eq!(
        first.json["recordlist"][0]["text"], "[pay]",
        "the payment came first"
    );
}

async fn the_platform_rules_hold_for_sessions_and_messages(server: TestServer) {
    // An unverified official account may neither send nor open sessions.
    let unverified = server
        .app_with(json!({"wechat_id": "unverified", "verified": false}))
        .await;
    let fan = server.fan(&unverified).await;
    server.fan_does(&unverified, &fan, text("hi")).await;
    server
        .send_text(&unverified, &fan, "r")
        .await
        .assert_code(48001);
    server
        .get(&format!(
            "/customservice/kfsession/getwaitcase?access_token={}",
            unverified.token
        ))
        .await
        .assert_code(48001);
    // A sandbox test account may send (WeChat lets it), but has no multi-customer-service.
    let sandbox = server
        .app_with(json!({"wechat_id": "sandbox", "account_type": "sandbox"}))
        .await;
    let fan = server.fan(&sandbox).await;
    server.fan_does(&sandbox, &fan, text("hi")).await;
    server.send_text(&sandbox, &fan, "r").await.assert_code(0);
    server
        .get(&format!(
            "/customservice/kfsession/getwaitcase?access_token={}",
            sandbox.token
        ))
        .await
        .assert_code(65400);
    // Quotas, bans and faults apply as to every API.
    let app = server
        .app_with(json!({
            "wechat_id": "shop",
            "quotas": {"/cgi-bin/message/custom/send": {"daily": 2}},
            "banned_apis": ["/cgi-bin/message/custom/typing"],
        }))
        .await;
    let fan = server.fan(&app).await;
    server.fan_does(&app, &fan, json!({"type": "pay"})).await;
    server.send_text(&app, &fan, "1").await.assert_code(0);
    server.send_text(&app, &fan, "2").await.assert_code(0);
    server.send_text(&app, &fan, "3").await.assert_code(45009);
    server
        .call(
            TYPING,
            &app.token,
            json!({"touser": fan, "command": "Typing"}),
        )
        .await
        .assert_code(48004);
    let (status, _) = server
        .admin_json(
            Method::POST,
            "/kefu/v1/faults",
            Some(json!({"path": CREATE, "errcode": -1, "times": 1})),
        )
        .await;
    assert_eq!(status, 201);
    let a = server.serving(&app, "a").await;
    server
        .call(CREATE, &app.token, json!({"kf_account": a, "openid": fan}))
        .await
        .assert_code(-1);
    server
        .call(CREATE, &app.token, json!({"kf_account": a, "openid": fan}))
        .await
        .assert_code(0);
}

async fn twenty_concurrent_sends_into_a_window_of_five_give_five_oks(server: TestServer) {
    let app = server.app("shop").await;
    let fan = server.fan(&app).await;
    server.fan_does(&app, &fan, text("hello")).await;
    let url = server.url(&format!("{SEND}?access_token={}", app.token));
    let mut sends = tokio::task::JoinSet::new();
    for n in 0..20 {
        let (http, url, fan) = (reqwest::Client::new(), url.clone(), fan.clone());
        sends.spawn(async move {
            let body =
                json!({"touser": fan, "msgtype": "text", "text": {"content": format!("m{n}")}});
            let answer: Value = http
                .post(&url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            answer["errcode"].as_i64().unwrap()
        });
    }
    let mut codes = Vec::new();
    while let Some(code) = sends.join_next().await {
        codes.push(code.unwrap());
    }
    codes.sort_unstable();
    assert_eq!(codes, [vec![0; 5], vec![45047; 15]].concat());
}

on_both_stores!(
    a_fans_message_lets_five_replies_through_and_48_hours_close_the_window,
    a_click_a_follow_or_a_scan_opens_three_for_a_minute_and_a_payment_any_number,
    unfollowing_closes_the_window,
    the_window_counts_are_per_app_settings,
    every_msgtype_is_checked_for_its_object,
    typing_needs_a_message_in_the_last_30_seconds_and_lasts_15,
    a_session_is_created_listed_counted_and_closed,
    a_session_idle_for_thirty_minutes_ends_by_itself,
    the_waiting_queue_lists_a_hundred_in_arrival_order_and_counts_them_all,
    the_online_simulation_makes_real_sessions,
    history_pages_by_msgid_and_refuses_long_or_wrong_ranges,
    the_platform_rules_hold_for_sessions_and_messages,
    twenty_concurrent_sends_into_a_window_of_five_give_five_oks,
);
