//! Metrics (README, "Metrics"): what a scrape shows after real calls, on each store;
//! the admin token, the listener of its own, and a server without metrics.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestServer, on_both_stores};

const UPDATE: &str = "/customservice/kfaccount/update";

/// The value of the sample `series` (a name with its labels, as written), if shown.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().expect("a number"))
}

async fn scrape(server: &TestServer) -> String {
    let response = server
        .admin(Method::GET, "/kefu/v1/metrics")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    response.text().await.unwrap()
}

async fn a_scrape_shows_calls_faults_tokens_and_commits(server: TestServer) {
    let app = server.app("metered").await;
    let account = app.account("a");
    server.add(&app.token, &account, "a").await.assert_code(0);
    server
        .update(&app.token, &account, "b")
        .await
        .assert_code(0);
    server
        .update(&app.token, &app.account("nobody"), "c")
        .await
        .assert_code(65_401);
    server
        .update("not-a-token", &account, "d")
        .await
        .assert_code(40_001);
    let (status, _) = server
        .admin_json(
            Method::POST,
            "/kefu/v1/faults",
            Some(json!({"path": UPDATE, "errcode": 45_009, "times": 1})),
        )
        .await;
    assert_eq!(status, 201);
    server
        .update(&app.token, &account, "e")
        .await
        .assert_code(45_009);
    server
        .get("/cgi-bin/no-such-path")
        .await
        .assert_code(40_066);
    server
        .get(&format!("{UPDATE}?access_token={}", app.token))
        .await
        .assert_code(43_002);

    let unauthenticated = server
        .http
        .get(server.url("/kefu/v1/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401, "the admin token is needed");

    let text = scrape(&server).await;
    let series = |errcode: i64| {
        format!("kefu_wechat_requests_total{{path=\"{UPDATE}\",errcode=\"{errcode}\"}}")
    };
    assert_eq!(sample(&text, &series(0)), Some(1.0), "{text}");
    assert_eq!(sample(&text, &series(65_401)), Some(1.0), "{text}");
    assert_eq!(sample(&text, &series(40_001)), Some(1.0), "{text}");
    assert_eq!(sample(&text, &series(45_009)), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, &series(43_002)),
        Some(1.0),
        "a refused method counts under its path"
    );
    assert_eq!(
        sample(
            &text,
            &format!("kefu_wechat_request_duration_seconds_count{{path=\"{UPDATE}\"}}")
        ),
        Some(5.0),
        "every update is timed"
    );
    assert_eq!(
        sample(
            &text,
            &format!("kefu_faults_fired_total{{path=\"{UPDATE}\",errcode=\"45009\"}}")
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "kefu_tokens_minted_total{kind=\"token\"}"),
        Some(1.0),
        "the app's one token"
    );
    assert_eq!(
        sample(&text, "kefu_wechat_unknown_path_requests_total"),
        Some(1.0)
    );
    assert!(
        sample(&text, "kefu_open_connections").unwrap() >= 1.0,
        "the scrape's own connection is open"
    );
    let batches = sample(&text, "kefu_store_write_batch_size_count").unwrap();
    let writes = sample(&text, "kefu_store_write_batch_size_sum").unwrap();
    assert!(
        batches >= 1.0 && writes >= batches,
        "the token mint at least went through a batch: {batches} batches, {writes} writes"
    );
    assert_eq!(
        sample(&text, "kefu_store_commit_duration_seconds_count"),
        Some(batches)
    );
    assert!(
        sample(&text, "kefu_request_log_backlog_calls").unwrap() >= 6.0,
        "the calls just made are in memory: {text}"
    );
    assert!(sample(&text, "kefu_request_log_dropped_total{where=\"memory\"}").is_some());
    assert_eq!(sample(&text, "kefu_clock_offset_seconds"), Some(0.0));

    server.advance_over_http(3_600).await;
    let openmetrics = server
        .admin(Method::GET, "/kefu/v1/metrics")
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(
        openmetrics.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = openmetrics.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(sample(&text, "kefu_clock_offset_seconds"), Some(3_600.0));
}

on_both_stores!(a_scrape_shows_calls_faults_tokens_and_commits);

#[tokio::test]
async fn a_metrics_listener_serves_them_without_the_token() {
    let server = TestServer::spawn_with(|config| {
        config.metrics_listen = Some("127.0.0.1:0".parse().unwrap())
    })
    .await;
    let app = server.app("listened").await;
    server.list(&app.token).await;
    let base = server.metrics_base.clone().expect("a metrics listener");
    let response = server
        .http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert_eq!(
        sample(
            &text,
            "kefu_wechat_requests_total{path=\"/cgi-bin/customservice/getkflist\",errcode=\"0\"}"
        ),
        Some(1.0),
        "{text}"
    );
    let elsewhere = server
        .http
        .get(format!("{base}/kefu/v1/apps"))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 404, "nothing else is served there");
    let wechat = server
        .http
        .post(format!(
            "{base}/customservice/kfaccount/add?access_token={}",
            app.token
        ))
        .json(&json!({"kf_account": app.account("x"), "nickname": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wechat.status(), 404, "nor WeChat's API");
    assert!(
        server.list(&app.token).await.is_empty(),
        "and nothing was added through it"
    );
}

#[tokio::test]
async fn a_server_without_metrics_answers_404() {
    let server = TestServer::spawn_with(|config| config.metrics = false).await;
    let (status, body) = server
        .admin_json(Method::GET, "/kefu/v1/metrics", None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "not_found", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("--no-metrics"),
        "{body}"
    );
}
