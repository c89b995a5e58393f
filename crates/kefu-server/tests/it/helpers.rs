//! A real server on 127.0.0.1:0 with a fresh SQLite file, driven over HTTP.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kefu_api::AppAlias;
use kefu_api::admin::{CreatedApp, NewApp};
use kefu_server::{Application, Clock, Config, Database, Secret};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub(crate) const ADMIN_TOKEN: &str = "test-admin-token";

/// An HTTP client (reqwest needs the process's TLS provider chosen first).
pub(crate) fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

pub(crate) fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        kefu_server::telemetry::init("debug");
    }
}

pub(crate) struct TestServer {
    pub base: String,
    pub http: reqwest::Client,
    pub clock: Arc<Clock>,
    pub db_path: PathBuf,
    /// `http://host:port` of the metrics listener, when configured.
    pub metrics_base: Option<String>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL schema of a server on PostgreSQL, dropped after the server.
    _schema: Option<kefu_store::test_support::PgSchema>,
}

/// One answer of a WeChat endpoint.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub content_type: String,
    pub raw: String,
    pub json: Value,
}

impl Answer {
    pub(crate) fn errcode(&self) -> i64 {
        self.json["errcode"]
            .as_i64()
            .unwrap_or_else(|| panic!("no errcode in {}", self.raw))
    }

    pub(crate) fn errmsg(&self) -> &str {
        self.json["errmsg"].as_str().unwrap_or("")
    }

    /// Asserts the code and the exact errmsg before ` rid: …`.
    #[track_caller]
    pub(crate) fn assert_code_with(&self, code: i64, errmsg: &str) {
        assert_eq!(self.status, 200, "{}", self.raw);
        assert_eq!(self.errcode(), code, "{}", self.raw);
        let (message, rid) = self
            .errmsg()
            .rsplit_once(" rid: ")
            .unwrap_or_else(|| panic!("no rid: {}", self.raw));
        assert_eq!(message, errmsg);
        assert!(rid.parse::<kefu_api::Rid>().is_ok(), "{rid}");
    }

    /// Asserts WeChat's envelope (HTTP 200, its content type) and the code.
    #[track_caller]
    pub(crate) fn assert_code(&self, code: i64) {
        assert_eq!(self.status, 200, "{}", self.raw);
        assert_eq!(self.content_type, "application/json; encoding=utf-8");
        assert_eq!(self.errcode(), code, "{}", self.raw);
        if code != 0 {
            let expected = match kefu_api::ErrCode::from_code(code) {
                // The one message with details: check it with `assert_code_with`.
                kefu_api::ErrCode::IpNotInWhitelist => {
                    let (message, _) = self.errmsg().rsplit_once(" rid: ").unwrap();
                    assert!(
                        message.starts_with("invalid ip ")
                            && message.ends_with(", not in whitelist")
                    );
                    return;
                }
                known => known.errmsg(),
            };
            let errmsg = self.errmsg();
            assert!(
                errmsg.starts_with(expected),
                "errmsg {errmsg:?} should start with {expected:?}"
            );
            let rid = kefu_api::Rid::from_errmsg(errmsg)
                .unwrap_or_else(|| panic!("no rid in {errmsg:?}"));
            assert_eq!(errmsg, format!("{expected} rid: {rid}"));
        } else {
            assert_eq!(self.raw, r#"{"errcode":0,"errmsg":"ok"}"#);
        }
    }
}

impl TestServer {
    pub(crate) async fn spawn() -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let db_path = dir.path().join("kefu.db");
        let mut server = TestServer::spawn_at(&db_path, Arc::new(Clock::new())).await;
        server._dir = Some(dir);
        server
    }

    pub(crate) async fn spawn_at(db_path: &Path, clock: Arc<Clock>) -> TestServer {
        TestServer::spawn_configured(db_path, clock, |_| {}).await
    }

    /// A fresh server on a fresh PostgreSQL schema; `None` (the test says SKIPPED, or
    /// fails under CI) without a PostgreSQL to use.
    pub(crate) async fn spawn_postgres() -> Option<TestServer> {
        let schema = kefu_store::test_support::PgSchema::create().await?;
        let url = schema.url().to_owned();
        let mut server =
            TestServer::spawn_with(|config| config.database = Database::Postgres(url)).await;
        server._schema = Some(schema);
        Some(server)
    }

    /// A fresh server with a configuration tweak.
    pub(crate) async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let db_path = dir.path().join("kefu.db");
        let mut server =
            TestServer::spawn_configured(&db_path, Arc::new(Clock::new()), tweak).await;
        server._dir = Some(dir);
        server
    }

    async fn spawn_configured(
        db_path: &Path,
        clock: Arc<Clock>,
        tweak: impl FnOnce(&mut Config),
    ) -> TestServer {
        init_logs();
        let mut config = Config::new(
            Database::Sqlite(db_path.to_owned()),
            Secret::new(ADMIN_TOKEN),
        );
        config.listen = "127.0.0.1:0".parse().unwrap();
        tweak(&mut config);
        let app = Application::build_with_clock(config, Arc::clone(&clock))
            .await
            .expect("server builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        let metrics_base = app.metrics_addr().map(|addr| format!("http://{addr}"));
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.run_until(async {
                let _ = stop.await;
            })
            .await
            .expect("server runs");
        });
        TestServer {
            base,
            http: client(),
            clock,
            db_path: db_path.to_owned(),
            metrics_base,
            shutdown: Some(shutdown),
            task: Some(task),
            _dir: None,
            _schema: None,
        }
    }

    /// Stops the server and waits until the store is closed.
    pub(crate) async fn stop(mut self) -> Option<tempfile::TempDir> {
        self.halt().await;
        self._dir.take()
    }

    async fn halt(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
    }

    pub(crate) fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }

    pub(crate) async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let raw = response.text().await.expect("body");
        let json = serde_json::from_str(&raw).unwrap_or(Value::Null);
        Answer {
            status,
            content_type,
            raw,
            json,
        }
    }

    pub(crate) async fn get(&self, path_and_query: &str) -> Answer {
        self.send(self.http.get(self.url(path_and_query))).await
    }

    /// POSTs a raw body with no Content-Type header, as some clients do.
    pub(crate) async fn post(
        &self,
        path_and_query: &str,
        body: impl Into<reqwest::Body>,
    ) -> Answer {
        self.send(self.http.post(self.url(path_and_query)).body(body))
            .await
    }

    pub(crate) async fn post_json(&self, path_and_query: &str, body: &Value) -> Answer {
        self.send(self.http.post(self.url(path_and_query)).json(body))
            .await
    }

    pub(crate) fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN)
    }

    pub(crate) async fn create_app(&self, new: Value) -> CreatedApp {
        let response = self
            .admin(reqwest::Method::POST, "/kefu/v1/apps")
            .json(&new)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{:?}", response.text().await);
        response.json().await.unwrap()
    }

    /// A verified service account with the new kf feature on, and a token for it.
    pub(crate) async fn app(&self, wechat_id: &str) -> TestApp {
        self.app_with(
            serde_json::to_value(NewApp::new(AppAlias::parse(wechat_id).unwrap())).unwrap(),
        )
        .await
    }

    pub(crate) async fn app_with(&self, new: Value) -> TestApp {
        let created = self.create_app(new).await;
        let token = self
            .token(&created.app.appid, created.secret.expose())
            .await;
        TestApp {
            appid: created.app.appid,
            secret: created.secret.expose().to_owned(),
            wechat_id: created.app.wechat_id,
            original_id: created.app.original_id,
            token,
        }
    }

    pub(crate) async fn token(&self, appid: &str, secret: &str) -> String {
        let answer = self
            .get(&format!(
                "/cgi-bin/token?grant_type=client_credential&appid={appid}&secret={secret}"
            ))
            .await;
        answer.json["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token: {}", answer.raw))
            .to_owned()
    }

    /// The app's kf list (WeChat's view).
    pub(crate) async fn list(&self, token: &str) -> Vec<Value> {
        let answer = self
            .get(&format!(
                "/cgi-bin/customservice/getkflist?access_token={token}"
            ))
            .await;
        assert_eq!(answer.status, 200);
        answer.json["kf_list"]
            .as_array()
            .unwrap_or_else(|| panic!("no kf_list: {}", answer.raw))
            .clone()
    }

    pub(crate) async fn add(&self, token: &str, account: &str, nickname: &str) -> Answer {
        self.post_json(
            &format!("/customservice/kfaccount/add?access_token={token}"),
            &serde_json::json!({"kf_account": account, "nickname": nickname}),
        )
        .await
    }

    /// Binds an account to a worker: invited through WeChat's API, accepted through the
    /// simulation.
    pub(crate) async fn bind(&self, app: &TestApp, account: &str, worker: &str) {
        self.call(
            "/customservice/kfaccount/inviteworker",
            &app.token,
            serde_json::json!({"kf_account": account, "invite_wx": worker}),
        )
        .await
        .assert_code(0);
        let (status, view) = self
            .admin_json(
                reqwest::Method::POST,
                &format!("/kefu/v1/apps/{}/kf/{account}/invitation", app.appid),
                Some(serde_json::json!({"action": "accept"})),
            )
            .await;
        assert_eq!(status, 200, "{view}");
    }

    pub(crate) async fn update(&self, token: &str, account: &str, nickname: &str) -> Answer {
        self.post_json(
            &format!("/customservice/kfaccount/update?access_token={token}"),
            &serde_json::json!({"kf_account": account, "nickname": nickname}),
        )
        .await
    }

    pub(crate) fn advance(&self, secs: u64) {
        self.clock.advance(secs);
    }

    /// Moves the clock through the admin API (which also runs housekeeping).
    pub(crate) async fn advance_over_http(&self, secs: u64) {
        let response = self
            .admin(reqwest::Method::POST, "/kefu/v1/clock")
            .json(&serde_json::json!({ "advance_secs": secs }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    /// An admin call with a JSON body; answers the status and the JSON answer (Null for none).
    pub(crate) async fn admin_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.admin(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `POST path?access_token=token` with a JSON body.
    pub(crate) async fn call(&self, path: &str, token: &str, body: Value) -> Answer {
        self.post_json(&format!("{path}?access_token={token}"), &body)
            .await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

pub(crate) struct TestApp {
    pub appid: String,
    pub secret: String,
    pub wechat_id: String,
    pub original_id: String,
    pub token: String,
}

impl TestApp {
    pub(crate) fn account(&self, prefix: &str) -> String {
        format!("{prefix}@{}", self.wechat_id)
    }
}

/// A minimal JPEG: the signature and an end marker are all the server looks at.
pub(crate) fn jpeg(len: usize) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.resize(len.max(6) - 2, 0x42);
    bytes.extend_from_slice(&[0xFF, 0xD9]);
    bytes
}

/// Runs each named test, `async fn name(server: TestServer)`, on a fresh server on each
/// store: `sqlite::name` and `postgres::name` (which says SKIPPED without PostgreSQL).
macro_rules! on_both_stores {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::TestServer::spawn().await).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(server) = $crate::helpers::TestServer::spawn_postgres().await {
                        super::$name(server).await;
                    }
                }
            )+
        }
    };
}
pub(crate) use on_both_stores;
