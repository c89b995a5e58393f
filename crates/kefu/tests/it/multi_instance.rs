//! Several `kefu serve` processes on one PostgreSQL database behave as one WeChat:
//! tokens, changes, quotas and the test clock are shared, and WeChat's invariants hold
//! however the requests are spread. Each test has its own schema; without
//! `KEFU_TEST_POSTGRES_URL` they say SKIPPED (and fail under CI).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::common;
use crate::common::{Kefu, free_port, get_json, http, post_json};
use kefu_store::test_support::PgSchema;
use serde_json::{Value, json};

const ADMIN: &str = "multi-admin-token";
const APPID: &str = "wx00000000000000dd";
const SECRET: &str = "MultiInstanceSecret01";
const CROWD_APPID: &str = "wx00000000000000de";

/// Starts `n` instances on the schema.
async fn start(schema: &PgSchema, n: usize, http: &reqwest::Client) -> Vec<Kefu> {
    let mut instances = Vec::new();
    for _ in 0..n {
        let extra = ["--pg-pool-size", "4"];
        instances.push(common::serve(schema.url(), free_port(), ADMIN, &extra, http).await);
    }
    instances
}

async fn admin(http: &reqwest::Client, kefu: &Kefu, path: &str, body: Value) -> (u16, Value) {
    let response = http
        .post(format!("{}{path}", kefu.base))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Creates the app; `settings` (whitelist, quotas, bans) are merged into the request.
async fn create_app(http: &reqwest::Client, kefu: &Kefu, settings: Value) {
    let mut body = json!({"wechat_id": "multi", "appid": APPID, "secret": SECRET});
    if let (Some(body), Some(settings)) = (body.as_object_mut(), settings.as_object()) {
        body.extend(settings.clone());
    }
    let (status, answer) = admin(http, kefu, "/kefu/v1/apps", body).await;
    assert_eq!(status, 201, "{answer}");
}

async fn token(http: &reqwest::Client, kefu: &Kefu) -> Value {
    get_json(
        http,
        format!(
            "{}/cgi-bin/token?grant_type=client_credential&appid={APPID}&secret={SECRET}",
            kefu.base
        ),
    )
    .await
}

async fn access_token(http: &reqwest::Client, kefu: &Kefu) -> String {
    let answer = token(http, kefu).await;
    answer["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"))
        .to_owned()
}

async fn list(http: &reqwest::Client, kefu: &Kefu, token: &str) -> Value {
    get_json(
        http,
        format!(
            "{}/cgi-bin/customservice/getkflist?access_token={token}",
            kefu.base
        ),
    )
    .await
}

fn kf_url(kefu: &Kefu, action: &str, token: &str) -> String {
    format!(
        "{}/customservice/kfaccount/{action}?access_token={token}",
        kefu.base
    )
}

fn tally(codes: &[i64]) -> HashMap<i64, usize> {
    codes.iter().fold(HashMap::new(), |mut map, code| {
        *map.entry(*code).or_default() += 1;
        map
    })
}

/// POSTs each body to `action` on the instances in turn, all at once; answers the
/// errcodes in order.
async fn spread(
    http: &reqwest::Client,
    instances: &[Kefu],
    action: &str,
    token: &str,
    bodies: Vec<Value>,
) -> Vec<i64> {
    let tasks: Vec<_> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            let url = kf_url(&instances[i % instances.len()], action, token);
            let http = http.clone();
            tokio::spawn(async move {
                post_json(&http, url, body).await["errcode"]
                    .as_i64()
                    .unwrap()
            })
        })
        .collect();
    let mut codes = Vec::new();
    for task in tasks {
        codes.push(task.await.unwrap());
    }
    codes
}

/// Waits until `kefu` follows the shared clock to at least `offset` (it re-reads it
/// every second).
async fn clock_reaches(http: &reqwest::Client, kefu: &Kefu, offset: i64) -> Duration {
    let started = Instant::now();
    loop {
        let clock: Value = http
            .get(format!("{}/kefu/v1/clock", kefu.base))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if clock["offset_secs"].as_i64().unwrap() >= offset {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the clock did not propagate"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_changes_and_the_clock_are_shared() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let http = http();
    let kefus = start(&schema, 2, &http).await;
    let (a, b) = (&kefus[0], &kefus[1]);
    create_app(&http, a, json!({})).await;

    // A token minted on A is valid on B; an update through A is listed through B at once.
    let first = access_token(&http, a).await;
    let body = json!({"kf_account": "one@multi", "nickname": "before"});
    assert_eq!(
        post_json(&http, kf_url(a, "add", &first), body).await["errcode"],
        0
    );
    let body = json!({"kf_account": "one@multi", "nickname": "after"});
    assert_eq!(
        post_json(&http, kf_url(a, "update", &first), body).await["errcode"],
        0
    );
    let listed = list(&http, b, &first).await;
    assert_eq!(listed["kf_list"][0]["kf_nick"], "after", "{listed}");

    // Superseded through B: the old token keeps working on A for the grace, then
    // answers 40001 on both once the shared clock moves past it.
    let second = access_token(&http, b).await;
    assert!(list(&http, a, &first).await["kf_list"].is_array());
    let (status, _) = admin(&http, a, "/kefu/v1/clock", json!({"advance_secs": 301})).await;
    assert_eq!(status, 200);
    let lag = clock_reaches(&http, b, 301).await;
    assert!(
        lag < Duration::from_secs(3),
        "B followed the clock after {lag:?}"
    );
    for kefu in [a, b] {
        assert_eq!(list(&http, kefu, &first).await["errcode"], 40001);
        assert!(list(&http, kefu, &second).await["kf_list"].is_array());
    }

    // Invalidated through A: refused by B at once (nothing caches a verdict).
    let action = json!({"access_token": second, "action": "invalidate"});
    let (status, _) = admin(&http, a, "/kefu/v1/tokens", action).await;
    assert_eq!(status, 204);
    assert_eq!(list(&http, b, &second).await["errcode"], 40001);

    // rid/get on B finds a failed call made on A, once A has written its log (each
    // second).
    let third = access_token(&http, b).await;
    let failed = post_json(
        &http,
        kf_url(a, "del", &third),
        json!({"kf_account": "nobody@multi"}),
    )
    .await;
    assert_eq!(failed["errcode"], 65401, "{failed}");
    let rid = failed["errmsg"]
        .as_str()
        .unwrap()
        .rsplit_once(" rid: ")
        .unwrap()
        .1
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found = post_json(
            &http,
            format!("{}/cgi-bin/openapi/rid/get?access_token={third}", b.base),
            json!({ "rid": rid }),
        )
        .await;
        if found["errcode"] == 0 {
            assert!(found["request"]["invoke_time"].is_i64(), "{found}");
            break;
        }
        assert!(Instant::now() < deadline, "{found}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quotas_are_shared() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let http = http();
    let kefus = start(&schema, 2, &http).await;
    let quotas = json!({"quotas": {"/cgi-bin/token": {"daily": 4}}});
    create_app(&http, &kefus[0], quotas).await;
    for kefu in [&kefus[0], &kefus[1], &kefus[0], &kefus[1]] {
        assert!(token(&http, kefu).await["access_token"].is_string());
    }
    for kefu in &kefus {
        assert_eq!(token(&http, kefu).await["errcode"], 45009);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invariants_hold_across_three_instances() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let http = http();
    let kefus = start(&schema, 3, &http).await;
    create_app(&http, &kefus[0], json!({})).await;
    let token = access_token(&http, &kefus[0]).await;

    // 50 concurrent adds of one account: exactly one 0, 49 × 65406.
    let bodies = (0..50).map(|i| json!({"kf_account": "same@multi", "nickname": format!("n{i}")}));
    let codes = spread(&http, &kefus, "add", &token, bodies.collect()).await;
    assert_eq!(tally(&codes), HashMap::from([(0, 1), (65406, 49)]));

    // 120 concurrent adds of distinct accounts to another app: exactly 100 succeed and
    // 20 get 65405.
    let body = json!({"wechat_id": "crowd", "appid": CROWD_APPID, "secret": SECRET});
    let (status, answer) = admin(&http, &kefus[1], "/kefu/v1/apps", body).await;
    assert_eq!(status, 201, "{answer}");
    let crowd = common::access_token(&http, &kefus[2].base, CROWD_APPID, SECRET).await;
    let bodies = (0..120).map(|i| json!({"kf_account": format!("k{i}@crowd"), "nickname": "n"}));
    let codes = spread(&http, &kefus, "add", &crowd, bodies.collect()).await;
    assert_eq!(tally(&codes), HashMap::from([(0, 100), (65405, 20)]));
    let listed = list(&http, &kefus[2], &crowd).await;
    let mut ids: Vec<i64> = listed["kf_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kf| kf["kf_id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (2001..=2100).collect::<Vec<_>>(),
        "never a 101st account"
    );

    // 60 concurrent updates of one account: it keeps one submitted nickname, and every
    // instance lists the same one.
    let bodies = (0..60).map(|i| json!({"kf_account": "same@multi", "nickname": format!("u{i}")}));
    let codes = spread(&http, &kefus, "update", &token, bodies.collect()).await;
    assert_eq!(tally(&codes), HashMap::from([(0, 60)]));
    let mut seen = Vec::new();
    for kefu in &kefus {
        let listed = list(&http, kefu, &token).await;
        let same = listed["kf_list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|kf| kf["kf_account"] == "same@multi")
            .cloned()
            .unwrap();
        seen.push(same["kf_nick"].as_str().unwrap().to_owned());
    }
    assert!((0..60).any(|i| seen[0] == format!("u{i}")), "{seen:?}");
    assert!(seen.iter().all(|nick| *nick == seen[0]), "{seen:?}");

    // 30 concurrent stable_token calls: one token, whichever instance answers.
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let (http, url) = (
                http.clone(),
                format!("{}/cgi-bin/stable_token", kefus[i % 3].base),
            );
            let body = json!({"grant_type": "client_credential", "appid": APPID, "secret": SECRET});
            tokio::spawn(async move { post_json(&http, url, body).await })
        })
        .collect();
    let mut stable = Vec::new();
    for task in tasks {
        let answer = task.await.unwrap();
        stable.push(
            answer["access_token"]
                .as_str()
                .unwrap_or_else(|| panic!("{answer}"))
                .to_owned(),
        );
    }
    assert!(
        stable.iter().all(|t| *t == stable[0]),
        "one stable token for all"
    );

    // 30 concurrent basic token fetches: once the grace is over exactly one works.
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let http = http.clone();
            let url = format!(
                "{}/cgi-bin/token?grant_type=client_credential&appid={APPID}&secret={SECRET}",
                kefus[i % 3].base
            );
            tokio::spawn(async move { get_json(&http, url).await })
        })
        .collect();
    let mut fetched = Vec::new();
    for task in tasks {
        fetched.push(
            task.await.unwrap()["access_token"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let (status, _) = admin(
        &http,
        &kefus[1],
        "/kefu/v1/clock",
        json!({"advance_secs": 301}),
    )
    .await;
    assert_eq!(status, 200);
    let mut valid = 0;
    for (i, candidate) in fetched.iter().enumerate() {
        let kefu = &kefus[i % 3];
        clock_reaches(&http, kefu, 301).await;
        if list(&http, kefu, candidate).await["kf_list"].is_array() {
            valid += 1;
        }
    }
    assert_eq!(valid, 1, "exactly one current token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_window_of_five_lets_five_of_twenty_sends_through_across_two_instances() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let http = http();
    let kefus = start(&schema, 2, &http).await;
    create_app(&http, &kefus[0], json!({})).await;
    let token = access_token(&http, &kefus[0]).await;
    let (status, fan) = admin(
        &http,
        &kefus[1],
        &format!("/kefu/v1/apps/{APPID}/fans"),
        json!({}),
    )
    .await;
    assert_eq!(status, 201, "{fan}");
    let openid = fan["openid"].as_str().unwrap().to_owned();
    let (status, acted) = admin(
        &http,
        &kefus[1],
        &format!("/kefu/v1/apps/{APPID}/fans/{openid}/actions"),
        json!({"type": "text", "content": "hello"}),
    )
    .await;
    assert_eq!(status, 200, "{acted}");
    let bodies: Vec<Value> = (0..20)
        .map(|n| json!({"touser": openid, "msgtype": "text", "text": {"content": format!("m{n}")}}))
        .collect();
    let tasks: Vec<_> = (0..20_usize)
        .zip(bodies)
        .map(|(i, body): (usize, Value)| {
            let url = format!(
                "{}/cgi-bin/message/custom/send?access_token={token}",
                kefus[i % 2].base
            );
            let http = http.clone();
            tokio::spawn(async move {
                post_json(&http, url, body).await["errcode"]
                    .as_i64()
                    .unwrap()
            })
        })
        .collect();
    let mut codes = Vec::new();
    for task in tasks {
        codes.push(task.await.unwrap());
    }
    let counts = tally(&codes);
    assert_eq!(
        (counts.get(&0), counts.get(&45047)),
        (Some(&5), Some(&15)),
        "{codes:?}"
    );
}
