//! The test helper as a test uses it: declared apps keep their appid and secret, faults
//! fire, calls are counted by path, app and errcode, and a reset forgets everything but
//! the declared state.

use std::time::Duration;

use kefu_api::admin::{NewApp, NewFault};
use kefu_api::{AppId, AppSecret};
use kefu_testing::{AppAlias, Kefu};
use serde_json::{Value, json};

const APPID: &str = "wx0123456789abcdef";
const SECRET: &str = "0123456789abcdef0123456789abcdef";

async fn token(kefu: &Kefu, appid: &str, secret: &str) -> Value {
    reqwest::get(format!(
        "{}/cgi-bin/token?grant_type=client_credential&appid={appid}&secret={secret}",
        kefu.base_url()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap()
}

async fn add(http: &reqwest::Client, kefu: &Kefu, token: &str, account: &str) -> Value {
    http.post(format!(
        "{}/customservice/kfaccount/add?access_token={token}",
        kefu.base_url()
    ))
    .json(&json!({ "kf_account": account, "nickname": "n" }))
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap()
}

fn declared() -> NewApp {
    let mut app = NewApp::new(AppAlias::parse("prod").unwrap());
    app.appid = Some(AppId::parse(APPID).unwrap());
    app.secret = Some(AppSecret::parse(SECRET).unwrap());
    app
}

// The default test runtime (one thread) serves the server and the test together.
#[tokio::test]
async fn declared_state_calls_faults_and_reset() {
    let kefu = Kefu::builder()
        .app(declared())
        .fault(NewFault {
            appid: None,
            path: "/customservice/kfaccount/del".to_owned(),
            errcode: -1,
            times: None,
            probability: None,
            latency_ms: 0,
            applied: false,
        })
        .start()
        .await
        .unwrap();
    // The declared app, as the production code knows it.
    let prod = kefu.app("prod").await.unwrap();
    assert_eq!((prod.appid.as_str(), prod.secret.as_str()), (APPID, SECRET));
    let answer = token(&kefu, APPID, SECRET).await;
    let access = answer["access_token"].as_str().unwrap().to_owned();

    // An app made on first use, the same one on the next.
    let shop = kefu.app("shop").await.unwrap();
    assert_eq!(kefu.app("shop").await.unwrap(), shop);
    assert_ne!(shop.appid, prod.appid);

    let http = reqwest::Client::new();
    assert_eq!(add(&http, &kefu, &access, "a@prod").await["errcode"], 0);
    assert_eq!(add(&http, &kefu, &access, "a@prod").await["errcode"], 65406);
    let del: Value = http
        .get(format!(
            "{}/customservice/kfaccount/del?access_token={access}&kf_account=a@prod",
            kefu.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(del["errcode"], -1, "the declared fault fires: {del}");

    let adds = kefu.calls().path("/customservice/kfaccount/add");
    assert_eq!(adds.count().await.unwrap(), 2);
    assert_eq!(adds.clone().errcode(0).count().await.unwrap(), 1);
    assert_eq!(adds.clone().errcode(65406).count().await.unwrap(), 1);
    assert_eq!(adds.clone().appid(&shop.appid).count().await.unwrap(), 0);
    assert_eq!(kefu.calls().appid(APPID).count().await.unwrap(), 4);
    let newest = &kefu.calls().list().await.unwrap()[0];
    assert_eq!(newest.path, "/customservice/kfaccount/del");

    // A fault added during the test.
    kefu.fault(NewFault {
        appid: Some(APPID.to_owned()),
        path: "/customservice/kfaccount/add".to_owned(),
        errcode: 45009,
        times: Some(1),
        probability: None,
        latency_ms: 0,
        applied: false,
    })
    .await
    .unwrap();
    assert_eq!(add(&http, &kefu, &access, "b@prod").await["errcode"], 45009);
    assert_eq!(add(&http, &kefu, &access, "b@prod").await["errcode"], 0);

    // Time passes: the token expires.
    kefu.advance(Duration::from_secs(7201)).await.unwrap();
    assert_eq!(add(&http, &kefu, &access, "c@prod").await["errcode"], 42001);

    // Back to the declared state, on the same address, the same client.
    let base = kefu.base_url().to_owned();
    kefu.reset().await.unwrap();
    assert_eq!(kefu.base_url(), base);
    assert_eq!(kefu.calls().count().await.unwrap(), 0);
    assert_eq!(kefu.app("prod").await.unwrap(), prod);
    // The old token is unknown, the clock is back, the accounts are gone.
    assert_eq!(add(&http, &kefu, &access, "a@prod").await["errcode"], 40001);
    let fresh = token(&kefu, APPID, SECRET).await;
    let fresh = fresh["access_token"].as_str().unwrap();
    assert_eq!(add(&http, &kefu, fresh, "a@prod").await["errcode"], 0);
    // The app made on first use is gone with the rest: a new one comes.
    assert_ne!(kefu.app("shop").await.unwrap().appid, shop.appid);
    kefu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_offset_is_declared_and_kept_by_reset() {
    let kefu = Kefu::builder()
        .clock_offset(Duration::from_secs(86_400))
        .start()
        .await
        .unwrap();
    let offset = || async {
        let clock: Value = reqwest::Client::new()
            .get(format!("{}/kefu/v1/clock", kefu.base_url()))
            .bearer_auth(kefu.admin_token())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        clock["offset_secs"].as_i64().unwrap()
    };
    assert_eq!(offset().await, 86_400);
    kefu.advance(Duration::from_secs(60)).await.unwrap();
    assert_eq!(offset().await, 86_460);
    kefu.reset().await.unwrap();
    assert_eq!(offset().await, 86_400);
}

#[tokio::test]
async fn a_refused_app_says_why() {
    let kefu = Kefu::start().await.unwrap();
    let error = kefu.app("not an id").await.unwrap_err();
    assert!(
        matches!(error, kefu_testing::Error::Refused { status: 400, .. }),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixtures_as_kefu_serve_reads_them_survive_a_reset() {
    let fixtures = serde_json::from_value(json!({
        "apps": [{
            "appid": "wx00000000000000f1",
            "secret": "fixturesecret0123456789",
            "wechat_id": "fixed",
            "kf_accounts": [{"kf_account": "x@fixed", "nickname": "X", "online_status": 1}],
        }],
    }))
    .unwrap();
    let kefu = Kefu::builder().fixtures(fixtures).start().await.unwrap();
    let fixed = kefu.app("fixed").await.unwrap();
    assert_eq!(fixed.appid, "wx00000000000000f1");
    let http = reqwest::Client::new();
    for round in 0..2 {
        let answer = token(&kefu, &fixed.appid, &fixed.secret).await;
        let access = answer["access_token"].as_str().unwrap().to_owned();
        let online: Value = http
            .get(format!(
                "{}/cgi-bin/customservice/getonlinekflist?access_token={access}",
                kefu.base_url()
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            online["kf_online_list"][0]["kf_account"], "x@fixed",
            "{round}"
        );
        assert_eq!(add(&http, &kefu, &access, "y@fixed").await["errcode"], 0);
        kefu.reset().await.unwrap();
    }
}

// Past what the request log holds in memory (the newest 4,096 calls), with housekeeping
// rounds moving counts to the store meanwhile: every call is still counted, and a count
// read while calls are made never goes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_is_counted_past_what_memory_holds() {
    const TASKS: u64 = 8;
    const CALLS_EACH: u64 = 625;
    const LIST: &str = "/cgi-bin/customservice/getkflist";

    let kefu = Kefu::start().await.unwrap();
    let shop = kefu.app("shop").await.unwrap();
    let access = token(&kefu, &shop.appid, &shop.secret).await;
    let access = access["access_token"].as_str().unwrap().to_owned();
    let http = reqwest::Client::new();
    let url = format!("{}{LIST}?access_token={access}", kefu.base_url());
    let callers: Vec<_> = (0..TASKS)
        .map(|_| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                for _ in 0..CALLS_EACH {
                    let list: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
                    assert!(list["kf_list"].is_array(), "getkflist answers: {list}");
                }
            })
        })
        .collect();

    let lists = kefu.calls().path(LIST);
    let done = std::sync::atomic::AtomicBool::new(false);
    let running = || !done.load(std::sync::atomic::Ordering::Relaxed);
    let counting = async {
        let mut seen = 0;
        while running() {
            let now = lists.count().await.unwrap();
            assert!(now >= seen, "the count went back from {seen} to {now}");
            seen = now;
        }
    };
    // A clock move runs a housekeeping round at once, alongside the counting; an hour
    // of moves at most, half the token's life.
    let moving = async {
        for _ in 0..3600 {
            if !running() {
                break;
            }
            kefu.advance(Duration::from_secs(1)).await.unwrap();
        }
    };
    let calling = async {
        for caller in callers {
            caller.await.unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    tokio::join!(counting, moving, calling);

    let total = TASKS * CALLS_EACH;
    assert_eq!(lists.count().await.unwrap(), total);
    assert_eq!(
        lists
            .clone()
            .errcode(0)
            .appid(&shop.appid)
            .count()
            .await
            .unwrap(),
        total
    );
    assert_eq!(lists.clone().errcode(40001).count().await.unwrap(), 0);
    assert_eq!(
        kefu.calls().path("/cgi-bin/token").count().await.unwrap(),
        1
    );
    // More successes than memory keeps: the list holds fewer, the count all of them.
    let listed = lists.list().await.unwrap().len();
    assert!(u64::try_from(listed).unwrap() < total, "{listed} listed");
    kefu.stop().await;
}
