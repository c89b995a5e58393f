//! `POST /kefu/v1/reset` under load: requests in flight finish before the store is
//! replaced, and none lands after, so what a reset leaves is exactly the fixtures.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kefu_api::admin::fixtures::Fixtures;
use reqwest::Method;
use serde_json::json;

use crate::helpers::TestServer;

const APPID: &str = "wx0123456789abcdef";
const SECRET: &str = "0123456789abcdef0123456789abcdef";
const WRITERS: usize = 8;

fn fixtures() -> Fixtures {
    serde_json::from_value(json!({
        "apps": [{
            "appid": APPID,
            "secret": SECRET,
            "wechat_id": "shop",
            "kf_accounts": [{"kf_account": "a@shop", "nickname": "fixture"}],
        }],
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reset_waits_for_requests_in_flight_and_none_lands_after_it() {
    let server = TestServer::spawn_with(|config| {
        config.fixtures = fixtures();
    })
    .await;
    resets_under_load(Arc::new(server)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reset_on_postgres_waits_for_requests_in_flight_and_none_lands_after_it() {
    let Some(schema) = kefu_store::test_support::PgSchema::create().await else {
        return;
    };
    let server = TestServer::spawn_with(|config| {
        config.fixtures = fixtures();
        config.database = kefu_server::Database::Postgres(schema.url().to_owned());
    })
    .await;
    resets_under_load(Arc::new(server)).await;
}

async fn resets_under_load(server: Arc<TestServer>) {
    for round in 0..5 {
        // Writers change the fixture's account until their token stops working.
        let token = server.token(APPID, SECRET).await;
        let acknowledged = Arc::new(AtomicU64::new(0));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (server, token, acknowledged) = (
                    Arc::clone(&server),
                    token.clone(),
                    Arc::clone(&acknowledged),
                );
                tokio::spawn(async move {
                    loop {
                        let answer = server
                            .update(&token, "a@shop", &format!("r{round}w{w}"))
                            .await;
                        if answer.errcode() != 0 {
                            answer.assert_code(40001);
                            return;
                        }
                        acknowledged.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while acknowledged.load(Ordering::SeqCst) < 50 {
            assert!(
                writers.iter().all(|w| !w.is_finished()),
                "a writer stopped before the reset"
            );
            assert!(
                std::time::Instant::now() < deadline,
                "the writers are stuck"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let (status, _) = server
            .admin_json(Method::POST, "/kefu/v1/reset", None)
            .await;
        assert_eq!(status, 204);
        // Right after the reset, and once every writer has stopped: the fixture.
        let (_, kfs) = server
            .admin_json(Method::GET, &format!("/kefu/v1/apps/{APPID}/kf"), None)
            .await;
        assert_eq!(kfs[0]["kf_nick"], "fixture", "round {round}: {kfs}");
        for writer in writers {
            writer.await.unwrap();
        }
        let (_, kfs) = server
            .admin_json(Method::GET, &format!("/kefu/v1/apps/{APPID}/kf"), None)
            .await;
        assert_eq!(kfs[0]["kf_nick"], "fixture", "round {round}: {kfs}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_fixtures_a_reset_empties_the_store_and_needs_the_admin_token() {
    let server = TestServer::spawn().await;
    let app = server.app("shop").await;
    let anonymous = server
        .send(server.http.post(server.url("/kefu/v1/reset")))
        .await;
    assert_eq!(anonymous.status, 401);
    let (status, _) = server
        .admin_json(Method::POST, "/kefu/v1/reset", None)
        .await;
    assert_eq!(status, 204);
    let (_, apps) = server.admin_json(Method::GET, "/kefu/v1/apps", None).await;
    assert_eq!(apps, json!([]));
    server
        .get(&format!(
            "/cgi-bin/customservice/getkflist?access_token={}",
            app.token
        ))
        .await
        .assert_code(40001);
}

// A reset whose caller goes away while it waits for a call in flight still happens,
// whole: the store, and the request log in memory with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_whose_caller_goes_away_still_happens_whole() {
    const LIST: &str = "/cgi-bin/customservice/getkflist";
    let server = Arc::new(
        TestServer::spawn_with(|config| {
            config.fixtures = fixtures();
        })
        .await,
    );
    server.app("other").await;
    let token = server.token(APPID, SECRET).await;
    let rule = json!({"appid": APPID, "path": LIST, "errcode": 0, "latency_ms": 1500, "times": 1});
    let (status, created) = server
        .admin_json(Method::POST, "/kefu/v1/faults", Some(rule))
        .await;
    assert_eq!(status, 201, "{created}");
    let slow = {
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            let answer = server.get(&format!("{LIST}?access_token={token}")).await;
            assert!(answer.json["kf_list"].is_array(), "{}", answer.raw);
        })
    };
    // The rule has fired: the slow call is in flight, and a reset waits for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while server
        .admin_json(Method::GET, "/kefu/v1/faults", None)
        .await
        .1
        != json!([])
    {
        assert!(std::time::Instant::now() < deadline, "the rule never fired");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let gave_up = server
        .admin(Method::POST, "/kefu/v1/reset")
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    assert!(
        gave_up.is_err(),
        "the reset answered before the call in flight ended"
    );
    slow.await.unwrap();

    // The reset happens all the same: the app made since is gone, the calls with it.
    loop {
        let (_, apps) = server.admin_json(Method::GET, "/kefu/v1/apps", None).await;
        let (_, summary) = server
            .admin_json(Method::GET, "/kefu/v1/requests/summary", None)
            .await;
        if apps.as_array().map(Vec::len) == Some(1) && summary["total"] == 0 {
            assert_eq!(apps[0]["appid"], APPID);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no reset: {apps} {summary}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
