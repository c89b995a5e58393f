//! kefu inside a Rust test: a real kefu server (WeChat's customer service API) on
//! `127.0.0.1` and a free port, over a temporary SQLite store that is deleted when the
//! test ends, started in one line.
//!
//! ```
//! use std::time::Duration;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let kefu = kefu_testing::Kefu::start().await?;
//!     let shop = kefu.app("shop").await?;
//!
//!     // The code under test talks to kefu.base_url() instead of api.weixin.qq.com.
//!     let http = reqwest::Client::new();
//!     let token: serde_json::Value = http
//!         .get(format!(
//!             "{}/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
//!             kefu.base_url(),
//!             shop.appid,
//!             shop.secret
//!         ))
//!         .send()
//!         .await?
//!         .json()
//!         .await?;
//!     let token = token["access_token"].as_str().unwrap();
//!     let added: serde_json::Value = http
//!         .post(format!(
//!             "{}/customservice/kfaccount/add?access_token={token}",
//!             kefu.base_url()
//!         ))
//!         .body(r#"{"kf_account":"anna@shop","nickname":"Anna"}"#)
//!         .send()
//!         .await?
//!         .json()
//!         .await?;
//!     assert_eq!(added["errcode"], 0);
//!
//!     // What the code sent, as kefu recorded it.
//!     let adds = kefu.calls().path("/customservice/kfaccount/add").appid(&shop.appid);
//!     assert_eq!(adds.errcode(0).count().await?, 1);
//!
//!     // Two hours later the token has expired (42001).
//!     kefu.advance(Duration::from_secs(7200)).await?;
//!     let list: serde_json::Value = http
//!         .get(format!(
//!             "{}/cgi-bin/customservice/getkflist?access_token={token}",
//!             kefu.base_url()
//!         ))
//!         .send()
//!         .await?
//!         .json()
//!         .await?;
//!     assert_eq!(list["errcode"], 42001);
//!     Ok(())
//! }
//! ```
//!
//! [`Kefu::builder`] declares the apps, fault rules and clock offset a server starts
//! with (or any fixtures `kefu serve` reads); [`Kefu::reset`] puts it back to exactly
//! that, between test cases.
//! Everything [`Kefu`] does through kefu's admin API (`/kefu/v1`, README "Endpoints")
//! is also open to the test over HTTP with [`Kefu::admin_token`].

use std::collections::HashMap;
use std::time::Duration;

use kefu_api::admin::fixtures::{AppFixture, Fixtures};
use kefu_api::admin::{ClockAdvance, CreatedApp, FaultView, NewApp, NewFault};
use kefu_api::{AppId, AppSecret};
use kefu_server::config::Durability;
use kefu_server::state::AppState;
use kefu_server::{Application, Config, Database, Secret, StartupError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Mutex, oneshot};
use tokio::task::JoinHandle;

pub use kefu_api::AppAlias;
pub use kefu_store::LoggedRequest;

/// How many matching calls [`Calls`] lists at most (the newest).
pub const CALLS_SCANNED: usize = 100_000;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server could not start.
    #[error("kefu could not start: {0}")]
    Start(#[from] StartupError),
    /// A call to the server failed.
    #[error("calling kefu: {0}")]
    Http(#[from] reqwest::Error),
    /// The server refused an admin call: its status and answer.
    #[error("kefu answered {status}: {body}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The answer (an `{"error","message"}` document).
        body: String,
    },
    /// The store failed.
    #[error("kefu's store: {0}")]
    Store(#[from] kefu_store::StoreError),
    /// The temporary directory could not be made.
    #[error("temporary directory: {0}")]
    Io(#[from] std::io::Error),
}

/// An app the server knows, with its AppSecret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestApp {
    /// `wx` + 16 hex.
    pub appid: String,
    /// The AppSecret, in clear.
    pub secret: String,
    /// The WeChat ID; kf accounts are `name@` it.
    pub wechat_id: String,
}

impl From<CreatedApp> for TestApp {
    fn from(created: CreatedApp) -> TestApp {
        TestApp {
            appid: created.app.appid,
            secret: created.secret.expose().to_owned(),
            wechat_id: created.app.wechat_id,
        }
    }
}

/// What a server starts with, and what [`Kefu::reset`] brings it back to.
#[derive(Debug, Clone, Default)]
pub struct KefuBuilder {
    fixtures: Fixtures,
}

impl KefuBuilder {
    /// An app to create (give its `appid` and `secret` to keep those your code has;
    /// they are generated otherwise).
    #[must_use]
    pub fn app(mut self, mut app: NewApp) -> KefuBuilder {
        if app.appid.is_none() {
            app.appid = AppId::parse(&kefu_server::secrets::new_appid()).ok();
        }
        if app.secret.is_none() {
            app.secret = AppSecret::parse(kefu_server::secrets::new_app_secret()).ok();
        }
        self.fixtures.apps.push(AppFixture {
            app,
            kf_accounts: Vec::new(),
        });
        self
    }

    /// A fault rule to install.
    #[must_use]
    pub fn fault(mut self, fault: NewFault) -> KefuBuilder {
        self.fixtures.faults.push(fault);
        self
    }

    /// How far ahead of real time the server clock starts.
    #[must_use]
    pub fn clock_offset(mut self, offset: Duration) -> KefuBuilder {
        self.fixtures.clock_offset_secs = offset.as_secs();
        self
    }

    /// Declarations as `kefu serve` reads them (README, "Fixtures and reset"): apps
    /// with their kf accounts, platforms, fault rules, a clock offset; added to those
    /// given so far. Avatar paths are read as given.
    #[must_use]
    pub fn fixtures(mut self, fixtures: Fixtures) -> KefuBuilder {
        self.fixtures.merge(fixtures);
        self
    }

    /// Starts the server in that state.
    ///
    /// # Errors
    /// When the server cannot start, or refuses one of the declared things (a
    /// duplicate appid, say).
    pub async fn start(self) -> Result<Kefu, Error> {
        // reqwest needs the process's TLS provider chosen; the test's own clients too.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let admin_token = Secret::new(kefu_server::secrets::new_admin_token());
        let declared: HashMap<String, TestApp> = self
            .fixtures
            .apps
            .iter()
            .filter_map(|fixture| {
                let app = &fixture.app;
                Some((
                    app.wechat_id.as_str().to_owned(),
                    TestApp {
                        appid: app.appid.as_ref()?.as_str().to_owned(),
                        secret: app.secret.as_ref()?.expose().to_owned(),
                        wechat_id: app.wechat_id.as_str().to_owned(),
                    },
                ))
            })
            .collect();
        let running = Running::start(&admin_token, self.fixtures).await?;
        Ok(Kefu {
            base_url: running.base_url.clone(),
            admin_token,
            http: reqwest::Client::new(),
            running: Mutex::new(Some(running)),
            apps: Mutex::new(declared.clone()),
            declared,
        })
    }
}

/// One run of the server: its state, and how to stop it.
struct Running {
    state: AppState,
    base_url: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Running {
    async fn start(admin_token: &Secret, fixtures: Fixtures) -> Result<Running, Error> {
        let dir = tempfile::Builder::new().prefix("kefu-testing-").tempdir()?;
        let mut config = Config::new(
            Database::Sqlite(dir.path().join("kefu.db")),
            admin_token.clone(),
        );
        config.listen = ([127, 0, 0, 1], 0).into();
        config.durability = Durability::Normal;
        config.fixtures = fixtures;
        let app = Application::build(config).await?;
        let state = app.state().clone();
        let port = app.port();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        Ok(Running {
            state,
            base_url: format!("http://127.0.0.1:{port}"),
            stop,
            task,
            _dir: dir,
        })
    }

    /// Stops accepting, lets requests in flight finish, closes the store and deletes it.
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// A kefu server running inside this process (see the crate docs). Dropping it stops
/// the server; [`Kefu::stop`] also waits until it has stopped.
pub struct Kefu {
    base_url: String,
    admin_token: Secret,
    http: reqwest::Client,
    running: Mutex<Option<Running>>,
    /// The apps made through [`Kefu::app`] or declared, by WeChat ID.
    apps: Mutex<HashMap<String, TestApp>>,
    /// The declared apps, by WeChat ID.
    declared: HashMap<String, TestApp>,
}

impl std::fmt::Debug for Kefu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kefu")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Kefu {
    /// Starts a server with no app, on a free port of 127.0.0.1, over a temporary
    /// SQLite store (durability `normal`: nothing is fsynced).
    ///
    /// # Errors
    /// When the server cannot start.
    pub async fn start() -> Result<Kefu, Error> {
        KefuBuilder::default().start().await
    }

    /// A server starting with declared apps, fault rules and clock offset.
    #[must_use]
    pub fn builder() -> KefuBuilder {
        KefuBuilder::default()
    }

    /// `http://127.0.0.1:PORT`: where the code under test sends WeChat's calls.
    #[must_use]
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The bearer token of kefu's admin API (`/kefu/v1`).
    #[must_use]
    pub fn admin_token(&self) -> &str {
        self.admin_token.expose()
    }

    /// The app with this WeChat ID: the declared one, or one made on first use (a
    /// verified service account with the new customer service feature on), with its
    /// appid and secret.
    ///
    /// # Errors
    /// When the WeChat ID is not one (1–30 of letters, digits, `_`, `-`), or the server
    /// refuses.
    pub async fn app(&self, wechat_id: &str) -> Result<TestApp, Error> {
        let mut apps = self.apps.lock().await;
        if let Some(app) = apps.get(wechat_id) {
            return Ok(app.clone());
        }
        let alias = AppAlias::parse(wechat_id).map_err(|e| Error::Refused {
            status: 400,
            body: e.to_string(),
        })?;
        let created: CreatedApp = self
            .admin_post(kefu_api::admin::APPS, &NewApp::new(alias))
            .await?;
        let app = TestApp::from(created);
        apps.insert(app.wechat_id.clone(), app.clone());
        Ok(app)
    }

    /// Moves the server clock forward (never back): tokens, quotas, invitations and
    /// every other time-based rule see the time pass.
    ///
    /// # Errors
    /// When the server refuses.
    pub async fn advance(&self, by: Duration) -> Result<(), Error> {
        let _: serde_json::Value = self
            .admin_post(
                kefu_api::admin::CLOCK,
                &ClockAdvance {
                    advance_secs: by.as_secs(),
                },
            )
            .await?;
        Ok(())
    }

    /// Installs a fault rule (README, "Fault injection"); answers it with its id.
    ///
    /// # Errors
    /// When the rule breaks one of the admin API's rules.
    pub async fn fault(&self, fault: NewFault) -> Result<FaultView, Error> {
        self.admin_post(kefu_api::admin::FAULTS, &fault).await
    }

    /// The WeChat calls the server recorded, to filter and count: what the code under
    /// test sent.
    #[must_use]
    pub fn calls(&self) -> Calls<'_> {
        Calls {
            kefu: self,
            path: None,
            appid: None,
            errcode: None,
        }
    }

    /// Puts the server back to the state it started in (`POST /kefu/v1/reset`): the
    /// declared apps with the same appids and secrets, fault rules and clock offset,
    /// and nothing else — no token, counter, account or recorded call, and no app
    /// made by [`Kefu::app`]. Requests in flight are answered first; requests sent
    /// meanwhile wait for it.
    ///
    /// # Errors
    /// When the server refuses.
    pub async fn reset(&self) -> Result<(), Error> {
        let response = self
            .http
            .post(format!("{}{}", self.base_url, kefu_api::admin::RESET))
            .bearer_auth(self.admin_token.expose())
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(Error::Refused {
                status: status.as_u16(),
                body: response.text().await.unwrap_or_default(),
            });
        }
        *self.apps.lock().await = self.declared.clone();
        Ok(())
    }

    /// Stops the server and waits until its store is closed and deleted.
    pub async fn stop(self) {
        if let Some(running) = self.running.lock().await.take() {
            running.stop().await;
        }
    }

    async fn state(&self) -> Option<AppState> {
        self.running
            .lock()
            .await
            .as_ref()
            .map(|running| running.state.clone())
    }

    async fn admin_post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, Error> {
        let response = self
            .http
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(self.admin_token.expose())
            .json(body)
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(Error::Refused {
                status: status.as_u16(),
                body: response.text().await.unwrap_or_default(),
            });
        }
        Ok(response.json().await?)
    }
}

/// A filter over the recorded WeChat calls ([`Kefu::calls`]), like WireMock's
/// `verify`: every condition given must hold. [`Calls::count`] is exact over the
/// request log's retention. [`Calls::list`] has the request log do the filtering (as
/// `GET /kefu/v1/requests?path=…&errcode=…` does) over every call it holds (README,
/// "Limits") and answers the newest [`CALLS_SCANNED`] that match: failed calls are held
/// on disk, successful ones only among the newest 4,096 calls in memory.
#[derive(Debug, Clone)]
pub struct Calls<'a> {
    kefu: &'a Kefu,
    path: Option<String>,
    appid: Option<String>,
    errcode: Option<i64>,
}

impl Calls<'_> {
    /// Calls to this WeChat path (`/customservice/kfaccount/update`), exactly.
    #[must_use]
    pub fn path(mut self, path: &str) -> Self {
        self.path = Some(path.to_owned());
        self
    }

    /// Calls made for this app (by its token or credentials).
    #[must_use]
    pub fn appid(mut self, appid: &str) -> Self {
        self.appid = Some(appid.to_owned());
        self
    }

    /// Calls answered with this errcode (0 for a success).
    #[must_use]
    pub fn errcode(mut self, errcode: i64) -> Self {
        self.errcode = Some(errcode);
        self
    }

    fn filter(&self) -> kefu_store::LogFilter<'_> {
        kefu_store::LogFilter {
            appid: self.appid.as_deref(),
            path: self.path.as_deref(),
            errcode: self.errcode,
        }
    }

    /// The matching calls, newest first.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn list(&self) -> Result<Vec<LoggedRequest>, Error> {
        let Some(state) = self.kefu.state().await else {
            return Ok(Vec::new());
        };
        Ok(state
            .store
            .logged_requests(self.filter(), CALLS_SCANNED)
            .await?)
    }

    /// How many calls match, exactly: every call of the request log's retention (7
    /// days of the server clock) is counted by app, path and errcode, failed or not,
    /// however many there were.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn count(&self) -> Result<u64, Error> {
        let Some(state) = self.kefu.state().await else {
            return Ok(0);
        };
        let since = state.clock.now() - kefu_api::endpoints::rid_get::RETENTION_SECS;
        let filter = self.filter();
        Ok(state
            .call_counts(filter.appid, since)
            .await?
            .iter()
            .filter(|count| filter.matches(count.appid.as_deref(), &count.path, count.errcode))
            .map(|count| count.count)
            .sum())
    }
}
