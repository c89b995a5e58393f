//! The SDK against a real kefu server spawned in-process on 127.0.0.1:0. Token
//! requests are counted from the server's own request log.

use std::sync::Arc;

use kefu_api::ErrCode;
use kefu_client::{Client, Credentials, MemoryTokenStore, RetryPolicy, TokenStore};
use kefu_server::{Application, Config, Database, Secret};
use serde_json::{Value, json};

const ADMIN: &str = "client-test-admin";

struct Server {
    base: String,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

struct App {
    appid: String,
    secret: String,
}

impl Server {
    async fn start() -> Server {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new(
            Database::Sqlite(dir.path().join("k.db")),
            Secret::new(ADMIN),
        );
        config.listen = "127.0.0.1:0".parse().unwrap();
        let app = Application::build(config).await.unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        Server {
            base,
            http: reqwest::Client::new(),
            stop: Some(stop),
            _dir: dir,
        }
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap_or(Value::Null)
    }

    async fn app(&self, wechat_id: &str) -> App {
        let created = self
            .admin(
                reqwest::Method::POST,
                "/kefu/v1/apps",
                Some(json!({"wechat_id": wechat_id})),
            )
            .await;
        App {
            appid: created["appid"].as_str().unwrap().to_owned(),
            secret: created["secret"].as_str().unwrap().to_owned(),
        }
    }

    fn client(&self, app: &App) -> kefu_client::ClientBuilder {
        Client::builder()
            .base_url(&self.base)
            .app(&app.appid, &app.secret)
    }

    /// How many calls the server recorded for `appid` on paths starting with `path`.
    async fn calls(&self, appid: &str, path: &str) -> usize {
        let log = self
            .admin(
                reqwest::Method::GET,
                &format!("/kefu/v1/requests?appid={appid}&limit=1000"),
                None,
            )
            .await;
        log.as_array()
            .unwrap()
            .iter()
            .filter(|entry| {
                entry["request_url"]
                    .as_str()
                    .unwrap_or("")
                    .split('?')
                    .next()
                    == Some(path)
            })
            .count()
    }

    /// Makes a token answer 40001 (`invalidate`) or 42001 (`expire`) from now on.
    async fn token_action(&self, token: &str, action: &str) {
        let body = json!({"access_token": token, "action": action});
        self.admin(reqwest::Method::POST, "/kefu/v1/tokens", Some(body))
            .await;
    }

    async fn fault(&self, rule: Value) {
        self.admin(reqwest::Method::POST, "/kefu/v1/faults", Some(rule))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_callers_cause_one_token_request() {
    let server = Server::start().await;
    let app = server.app("flight").await;
    let client = server.client(&app).build().unwrap();
    for result in concurrent_lists(&[client], 64).await {
        assert!(result.unwrap().is_empty());
    }
    assert_eq!(server.calls(&app.appid, "/cgi-bin/token").await, 1);
    assert_eq!(
        server
            .calls(&app.appid, "/cgi-bin/customservice/getkflist")
            .await,
        64
    );
}

#[tokio::test]
async fn an_invalidated_token_is_refetched_exactly_once() {
    let server = Server::start().await;
    let app = server.app("recover").await;
    let client = server.client(&app).build().unwrap();
    client.kf_add("a@recover", "a").await.unwrap();
    let token = client.access_token().await.unwrap();
    server.token_action(&token, "invalidate").await;
    client.kf_update("a@recover", "b").await.unwrap();
    assert_eq!(client.kf_list().await.unwrap()[0].kf_nick, "b");
    assert_eq!(
        server.calls(&app.appid, "/cgi-bin/token").await,
        2,
        "one fetch, one refetch"
    );
    assert_eq!(
        server
            .calls(&app.appid, "/customservice/kfaccount/update")
            .await,
        2,
        "refused once, then done"
    );
    assert_ne!(client.access_token().await.unwrap(), token);
}

#[tokio::test]
async fn a_stale_token_does_not_evict_a_fresh_one() {
    let store: Arc<dyn TokenStore> = Arc::new(MemoryTokenStore::new());
    let server = Server::start().await;
    let app = server.app("stale").await;
    let one = server
        .client(&app)
        .token_store(Arc::clone(&store))
        .build()
        .unwrap();
    let two = server
        .client(&app)
        .token_store(Arc::clone(&store))
        .build()
        .unwrap();
    let first = one.access_token().await.unwrap();
    server.token_action(&first, "expire").await;
    // `one` meets 42001 and refreshes; `two` then still holds… nothing stale: it reads the store.
    one.kf_list().await.unwrap();
    let refreshed = two.access_token().await.unwrap();
    assert_ne!(refreshed, first);
    let key = format!(
        "{}:{}:token",
        server.base.trim_start_matches("http://"),
        app.appid
    );
    assert_eq!(
        store.get(&key).await.unwrap().map(|t| t.token),
        Some(refreshed.clone())
    );
    assert!(
        !store.invalidate(&key, &first).await.unwrap(),
        "compare-and-invalidate"
    );
    assert_eq!(two.access_token().await.unwrap(), refreshed);
    assert_eq!(server.calls(&app.appid, "/cgi-bin/token").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_clients_sharing_redis_fetch_one_token() {
    let url = std::env::var("KEFU_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!("kefu-test:{}:", rand_suffix());
    let mut stores = Vec::new();
    for _ in 0..3 {
        match kefu_client::RedisTokenStore::connect(&url, prefix.clone()).await {
            Ok(store) => stores.push(store),
            Err(error) => {
                // Fails under CI; says SKIPPED elsewhere.
                let _ = kefu_store::test_support::service_or_skip(
                    &format!("Redis at {url}"),
                    Err(error.to_string()),
                    "start one, or set KEFU_TEST_REDIS_URL",
                );
                return;
            }
        }
    }
    let server = Server::start().await;
    let app = server.app("shared").await;
    // Three clients with separate connections, as three processes would have.
    let clients: Vec<Client> = stores
        .into_iter()
        .map(|store| {
            server
                .client(&app)
                .token_store(Arc::new(store))
                .build()
                .unwrap()
        })
        .collect();
    for result in concurrent_lists(&clients, 60).await {
        result.unwrap();
    }
    assert_eq!(
        server.calls(&app.appid, "/cgi-bin/token").await,
        1,
        "one token request between three clients"
    );
}

/// Runs `n` `kf_list` calls at once over clones of the clients (round robin).
async fn concurrent_lists(
    clients: &[Client],
    n: usize,
) -> Vec<kefu_client::Result<Vec<kefu_api::endpoints::kf_list::KfInfo>>> {
    let calls: Vec<_> = (0..n)
        .map(|i| {
            let client = clients[i % clients.len()].clone();
            tokio::spawn(async move { client.kf_list().await })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for call in calls {
        results.push(call.await.expect("task"));
    }
    results
}

fn rand_suffix() -> String {
    format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

#[tokio::test]
async fn add_is_never_retried_after_minus_one_but_update_is() {
    let server = Server::start().await;
    let app = server.app("retries").await;
    let client = server
        .client(&app)
        .retry(RetryPolicy {
            max_retries: 2,
            initial_backoff: std::time::Duration::from_millis(10),
            ..RetryPolicy::default()
        })
        .build()
        .unwrap();
    server.fault(json!({"path": "/customservice/kfaccount/add", "errcode": -1, "applied": true, "times": 1})).await;
    let error = client.kf_add("a@retries", "a").await.unwrap_err();
    assert_eq!(error.code(), Some(ErrCode::SystemError));
    assert!(error.is_uncertain() && error.rid().is_some());
    assert_eq!(
        server
            .calls(&app.appid, "/customservice/kfaccount/add")
            .await,
        1,
        "no blind retry"
    );
    assert_eq!(
        client.kf_list().await.unwrap().len(),
        1,
        "it was applied all the same"
    );

    server
        .fault(json!({"path": "/customservice/kfaccount/update", "errcode": -1, "times": 2}))
        .await;
    client.kf_update("a@retries", "b").await.unwrap();
    assert_eq!(
        server
            .calls(&app.appid, "/customservice/kfaccount/update")
            .await,
        3
    );
    assert_eq!(client.kf_list().await.unwrap()[0].kf_nick, "b");

    let no_retries = server
        .client(&app)
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    server
        .fault(json!({"path": "/customservice/kfaccount/update", "errcode": -1, "times": 1}))
        .await;
    assert_eq!(
        no_retries
            .kf_update("a@retries", "c")
            .await
            .unwrap_err()
            .code(),
        Some(ErrCode::SystemError)
    );
}

#[tokio::test]
async fn inputs_are_refused_with_the_servers_codes() {
    let server = Server::start().await;
    let app = server.app("checked").await;
    let client = server.client(&app).build().unwrap();
    client.kf_add("a@checked", "a").await.unwrap();
    let token = client.access_token().await.unwrap();
    let cases: &[(&str, &str, &str)] = &[
        ("/customservice/kfaccount/add", "no-at-sign", "n"),
        ("/customservice/kfaccount/add", "toolongprefix@checked", "n"),
        ("/customservice/kfaccount/add", "b@checked", ""),
        (
            "/customservice/kfaccount/add",
            "b@checked",
            "一二三四五六七八九十一二三四五六七",
        ),
        ("/customservice/kfaccount/update", "bad account", "n"),
        ("/customservice/kfaccount/update", "a@checked", "   "),
        ("/customservice/kfaccount/update", "a@checked", "tab\there"),
    ];
    for (path, account, nickname) in cases {
        let before = server.calls(&app.appid, path).await;
        let refused = if path.ends_with("add") {
            client.kf_add(account, nickname).await
        } else {
            client.kf_update(account, nickname).await
        }
        .unwrap_err();
        assert!(refused.is_validation(), "{refused}");
        assert_eq!(
            server.calls(&app.appid, path).await,
            before,
            "nothing was sent"
        );
        let raw: Value = server
            .http
            .post(format!("{}{path}?access_token={token}", server.base))
            .json(&json!({"kf_account": account, "nickname": nickname}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            refused.code().map(ErrCode::code),
            raw["errcode"].as_i64(),
            "{path} {account:?} {nickname:?}"
        );
    }
    let refused = client.kf_invite("a@checked", "1nvalid").await.unwrap_err();
    let raw: Value = server
        .http
        .post(format!(
            "{}/customservice/kfaccount/inviteworker?access_token={token}",
            server.base
        ))
        .json(&json!({"kf_account": "a@checked", "invite_wx": "1nvalid"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(refused.code().map(ErrCode::code), raw["errcode"].as_i64());
    assert_eq!(
        client
            .kf_upload_headimg("a@checked", b"GIF89a".to_vec())
            .await
            .unwrap_err()
            .code(),
        Some(ErrCode::InvalidFileType)
    );
}

#[tokio::test]
async fn every_endpoint_through_the_sdk() {
    let server = Server::start().await;
    let app = server.app("full").await;
    let client = server.client(&app).build().unwrap();
    client.kf_add("a@full", "客服1").await.unwrap();
    assert_eq!(
        client.kf_add("a@full", "客服1").await.unwrap_err().code(),
        Some(ErrCode::KfAccountExists)
    );
    client.kf_update("a@full", "客服2").await.unwrap();
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0];
    jpeg.extend_from_slice(&[0; 64]);
    client
        .kf_upload_headimg("a@full", jpeg.clone())
        .await
        .unwrap();
    let list = client.kf_list().await.unwrap();
    assert_eq!(list[0].kf_nick, "客服2");
    assert!(list[0].kf_headimgurl.starts_with(&server.base));
    client.kf_invite("a@full", "worker_one").await.unwrap();
    assert_eq!(
        client.kf_list().await.unwrap()[0].invite_wx.as_deref(),
        Some("worker_one")
    );
    server
        .admin(
            reqwest::Method::POST,
            &format!("/kefu/v1/apps/{}/kf/a@full/invitation", app.appid),
            Some(json!({"action": "accept"})),
        )
        .await;
    server
        .admin(
            reqwest::Method::POST,
            &format!("/kefu/v1/apps/{}/kf/a@full/online", app.appid),
            Some(json!({"status": 1, "accepted_case": 2})),
        )
        .await;
    assert_eq!(client.kf_online_list().await.unwrap()[0].accepted_case, 2);
    client.kf_delete("a@full").await.unwrap();
    assert_eq!(
        client.kf_delete("a@full").await.unwrap_err().code(),
        Some(ErrCode::InvalidKfAccount)
    );
    assert!(client.kf_list().await.unwrap().is_empty());
    let token = client.fetch_token().await.unwrap();
    assert_eq!(token.expires_in, 7200);
}

#[tokio::test]
async fn stable_token_mode() {
    let server = Server::start().await;
    let app = server.app("stablesdk").await;
    let client = server.client(&app).stable_token(true).build().unwrap();
    client.kf_list().await.unwrap();
    client.kf_list().await.unwrap();
    assert_eq!(server.calls(&app.appid, "/cgi-bin/stable_token").await, 1);
    assert_eq!(server.calls(&app.appid, "/cgi-bin/token").await, 0);
    // A forced refresh within 30 s of the token's birth answers the same token.
    let current = client.access_token().await.unwrap();
    assert_eq!(
        client.fetch_stable_token(true).await.unwrap().access_token,
        current.clone().into()
    );
    // Once invalidated, the client recovers through the stable endpoint, with one refetch.
    server.token_action(&current, "invalidate").await;
    client.kf_list().await.unwrap();
    assert_ne!(client.access_token().await.unwrap(), current);
    assert_eq!(
        server.calls(&app.appid, "/cgi-bin/stable_token").await,
        3,
        "first fetch, forced, refetch"
    );
    assert_eq!(server.calls(&app.appid, "/cgi-bin/token").await, 0);
}

#[tokio::test]
async fn an_external_token_is_used_as_is() {
    let server = Server::start().await;
    let app = server.app("external").await;
    let token = server
        .client(&app)
        .build()
        .unwrap()
        .access_token()
        .await
        .unwrap();
    let client = Client::builder()
        .base_url(&server.base)
        .credentials(Credentials::Token(token.clone().into()))
        .build()
        .unwrap();
    assert!(client.kf_list().await.unwrap().is_empty());
    server.token_action(&token, "expire").await;
    let error = client.kf_list().await.unwrap_err();
    assert!(error.is_token_error());
    assert_eq!(error.code(), Some(ErrCode::AccessTokenExpired));
    assert_eq!(
        server.calls(&app.appid, "/cgi-bin/token").await,
        1,
        "no refetch without a secret"
    );
}

#[tokio::test]
async fn a_third_party_platform_acting_for_an_app() {
    let server = Server::start().await;
    let app = server.app("delegated").await;
    let platform = server
        .admin(
            reqwest::Method::POST,
            "/kefu/v1/components",
            Some(json!({})),
        )
        .await;
    let component_appid = platform["component_appid"].as_str().unwrap();
    let ticket = server
        .admin(
            reqwest::Method::POST,
            &format!("/kefu/v1/components/{component_appid}/ticket"),
            None,
        )
        .await;
    let component_token: Value = server
        .http
        .post(format!("{}/cgi-bin/component/api_component_token", server.base))
        .json(&json!({"component_appid": component_appid, "component_appsecret": platform["secret"], "component_verify_ticket": ticket["component_verify_ticket"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let auth = server
        .admin(
            reqwest::Method::POST,
            &format!("/kefu/v1/components/{component_appid}/authorizations"),
            Some(json!({"appid": app.appid, "funcscopes": [19]})),
        )
        .await;
    let client = Client::builder()
        .base_url(&server.base)
        .credentials(Credentials::Authorizer {
            component_appid: component_appid.to_owned(),
            component_access_token: component_token["component_access_token"]
                .as_str()
                .unwrap()
                .into(),
            authorizer_appid: app.appid.clone(),
            refresh_token: auth["authorizer_refresh_token"].as_str().unwrap().into(),
        })
        .build()
        .unwrap();
    client.kf_add("a@delegated", "a").await.unwrap();
    assert_eq!(
        client
            .kf_update("a@delegated", "b")
            .await
            .unwrap_err()
            .code(),
        Some(ErrCode::ApiUnauthorizedToComponent)
    );
}

#[tokio::test]
async fn secrets_never_show() {
    let server = Server::start().await;
    let app = server.app("quiet").await;
    let client = server.client(&app).build().unwrap();
    let token = client.access_token().await.unwrap();
    let debug = format!("{client:?}");
    assert!(
        !debug.contains(&app.secret) && !debug.contains(&token),
        "{debug}"
    );
    // A transport failure names no URL (which would carry the token).
    let offline = Client::builder()
        .base_url("http://127.0.0.1:9")
        .credentials(Credentials::Token(token.clone().into()))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let error = offline.kf_list().await.unwrap_err();
    assert!(error.is_transport() && error.code().is_none());
    for text in [error.to_string(), format!("{error:?}")] {
        assert!(!text.contains(&token), "{text}");
    }
    let refused = client.kf_update("nosuch@quiet", "x").await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrCode::InvalidKfAccount));
    assert!(!refused.to_string().contains(&token));
}

#[tokio::test]
async fn a_refused_token_is_retried_only_once() {
    let server = Server::start().await;
    let app = server.app("once").await;
    let client = server.client(&app).build().unwrap();
    server
        .fault(json!({"path": "/cgi-bin/customservice/getkflist", "errcode": 40014, "times": 3}))
        .await;
    let error = client.kf_list().await.unwrap_err();
    assert_eq!(error.code(), Some(ErrCode::InvalidAccessToken));
    assert!(error.is_token_error());
    assert_eq!(
        server
            .calls(&app.appid, "/cgi-bin/customservice/getkflist")
            .await,
        2,
        "one retry, not a loop"
    );
    assert_eq!(server.calls(&app.appid, "/cgi-bin/token").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_refresh_is_shared_by_the_callers_that_waited() {
    let server = Server::start().await;
    let app = server.app("wrongsecret").await;
    let client = Client::builder()
        .base_url(&server.base)
        .app(&app.appid, "not-the-secret")
        .build()
        .unwrap();
    for result in concurrent_lists(&[client], 64).await {
        assert_eq!(result.unwrap_err().code(), Some(ErrCode::InvalidAppsecret));
    }
    assert_eq!(
        server.calls(&app.appid, "/cgi-bin/token").await,
        1,
        "64 callers, one refused token request"
    );
}

#[tokio::test]
async fn timeouts_are_retried_only_where_harmless() {
    let server = Server::start().await;
    let app = server.app("slow").await;
    let client = server
        .client(&app)
        .timeout(std::time::Duration::from_millis(300))
        .retry(RetryPolicy {
            max_retries: 1,
            initial_backoff: std::time::Duration::from_millis(10),
            ..RetryPolicy::default()
        })
        .build()
        .unwrap();
    client.access_token().await.unwrap();
    server.fault(json!({"path": "/customservice/kfaccount/add", "errcode": 0, "latency_ms": 800, "times": 1})).await;
    let error = client.kf_add("a@slow", "a").await.unwrap_err();
    assert!(error.is_transport() && error.is_uncertain(), "{error}");
    assert!(error.to_string().contains("timed out"), "{error}");
    // The fault delayed the first attempt, and the server dropped it with the
    // connection; a retry would have gone through (the fault fires once).
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    assert!(
        client.kf_list().await.unwrap().is_empty(),
        "add was not retried"
    );
    client.kf_add("a@slow", "a").await.unwrap();

    server.fault(json!({"path": "/cgi-bin/customservice/getkflist", "errcode": 0, "latency_ms": 800, "times": 1})).await;
    assert_eq!(
        client.kf_list().await.unwrap().len(),
        1,
        "the list is retried"
    );
    // A retried delete whose first attempt was applied still reports success.
    server.fault(json!({"path": "/customservice/kfaccount/del", "errcode": -1, "applied": true, "times": 1})).await;
    client.kf_delete("a@slow").await.unwrap();
    assert!(client.kf_list().await.unwrap().is_empty());
}

#[tokio::test]
async fn sessions_messages_and_history_through_the_sdk() {
    let server = Server::start().await;
    let app = server.app("talk").await;
    let client = server.client(&app).build().unwrap();
    let fan = server
        .admin(
            reqwest::Method::POST,
            &format!("/kefu/v1/apps/{}/fans", app.appid),
            Some(json!({})),
        )
        .await["openid"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .admin(
            reqwest::Method::POST,
            &format!("/kefu/v1/apps/{}/fans/{fan}/actions", app.appid),
            Some(json!({"type": "text", "content": "help"})),
        )
        .await;
    client.kf_add("a@talk", "A").await.unwrap();
    client.kf_invite("a@talk", "worker_one").await.unwrap();
    for (path, body) in [
        ("kf/a@talk/invitation", json!({"action": "accept"})),
        ("kf/a@talk/online", json!({"status": 1})),
    ] {
        server
            .admin(
                reqwest::Method::POST,
                &format!("/kefu/v1/apps/{}/{path}", app.appid),
                Some(body),
            )
            .await;
    }
    // Checked before sending, with the server's own rules.
    assert!(
        client
            .send_text("not an openid", "hi", None)
            .await
            .unwrap_err()
            .is_validation()
    );
    for n in 0..5 {
        client
            .send_text(&fan, &format!("r{n}"), Some("a@talk"))
            .await
            .unwrap();
    }
    let spent = client.send_text(&fan, "sixth", None).await.unwrap_err();
    assert_eq!(spent.code(), Some(ErrCode::ResponseCountLimit));
    assert!(!spent.was_retried(), "a send is never retried");
    client.typing(&fan, true).await.unwrap();
    assert_eq!(
        client.typing(&fan, true).await.unwrap_err().code(),
        Some(ErrCode::AlreadyTyping)
    );
    client.kf_session_create("a@talk", &fan).await.unwrap();
    assert_eq!(client.kf_session(&fan).await.unwrap().kf_account, "a@talk");
    assert_eq!(
        client.kf_session_list("a@talk").await.unwrap()[0].openid,
        fan
    );
    assert_eq!(client.kf_online_list().await.unwrap()[0].accepted_case, 1);
    assert_eq!(client.kf_wait_case().await.unwrap().count, 0);
    client.kf_session_close("a@talk", &fan).await.unwrap();
    assert_eq!(
        client
            .kf_session_close("a@talk", &fan)
            .await
            .unwrap_err()
            .code(),
        Some(ErrCode::NoSession)
    );
    let now = server
        .admin(reqwest::Method::GET, "/kefu/v1/clock", None)
        .await["now"]
        .as_i64()
        .unwrap();
    let records = client.msg_records(now - 60, now + 1).await.unwrap();
    let texts: Vec<&str> = records.iter().map(|r| r.text.as_str()).collect();
    assert_eq!(&texts[..6], ["help", "r0", "r1", "r2", "r3", "r4"]);
    assert_eq!(records[1].worker, "a@talk");
    assert!(
        client
            .msg_list(0, 86_401, 1, 10)
            .await
            .unwrap_err()
            .is_validation(),
        "a day and a second is refused before sending"
    );
}
