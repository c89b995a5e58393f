//! Building and running the server: [`Application::build`] opens the store and binds
//! the listeners the configuration names (port 0 picks a free port, as tests do);
//! [`Application::run_until`] serves until the given future completes.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Version, header};
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::GracefulShutdown;
use kefu_api::AppAlias;
use kefu_api::admin::{CreatedApp, NewApp};
use kefu_store::postgres::{PostgresOptions, PostgresStore};
use kefu_store::sqlite::{SqliteOptions, SqliteStore};
use kefu_store::{CommitObserver, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::clock::Clock;
use crate::config::{Config, Database, Limits};
use crate::conn::{Activity, Gate, Watched};
use crate::metrics::Metrics;
use crate::secrets::digest;
use crate::state::{AppState, Shared};
use crate::tls::{self, TlsMaterial};
use crate::{admin, wechat};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The store could not be opened.
    #[error("cannot open the store: {0}")]
    Store(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS certificate could not be loaded or generated.
    #[error("TLS: {0}")]
    Tls(String),
    /// The fixtures are invalid, or the store contradicts them.
    #[error("fixtures: {0}")]
    Fixtures(String),
    /// The demo app could not be created.
    #[error("cannot create the demo app: {0}")]
    Demo(String),
}

/// Housekeeping at the server clock's now: the shared clock followed, counters
/// persisted, old request records and tickets forgotten. Runs every second, on clock
/// moves and at shutdown.
///
/// A round runs to its end on a task of its own, even when whoever asked for it stops
/// waiting (the client of a clock move that went away): it takes the request log's
/// calls and counts out of memory before it writes them.
pub async fn maintain(state: &AppState) {
    let state = state.clone();
    if let Err(error) = tokio::spawn(async move { round(&state).await }).await {
        tracing::error!(%error, "a housekeeping round failed");
    }
}

async fn round(state: &AppState) {
    let _one_at_a_time = state.housekeeping.lock().await;
    // Follow the shared test clock when another instance moved it.
    match state.store.clock_offset().await {
        Ok(offset) => state.clock.raise_to(offset),
        Err(error) => tracing::warn!(%error, "cannot read the shared clock"),
    }
    let now = state.clock.now();
    let log_before = now - kefu_api::endpoints::rid_get::RETENTION_SECS;
    if let Err(error) = state.store.maintain(now, log_before).await {
        tracing::warn!(%error, "housekeeping failed; it is retried");
    }
    // Sessions idle for 30 minutes end, and the developers' servers hear of it.
    match state.store.end_idle_sessions(now).await {
        Ok(ended) => {
            for session in ended {
                state.pushes.queue(
                    &session.appid,
                    &session.openid,
                    crate::push::Told::Ended(session.kf_account),
                    now,
                );
            }
        }
        Err(error) => tracing::warn!(%error, "idle sessions could not be ended; retried"),
    }
}

/// Opens (creating or migrating as needed) the store the configuration names.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, StartupError> {
    open_store_with(config, None).await
}

/// Opens the store, telling `commits` of its batches of writes.
async fn open_store_with(
    config: &Config,
    commits: Option<Arc<dyn CommitObserver>>,
) -> Result<Arc<dyn Store>, StartupError> {
    let store: Arc<dyn Store> = match &config.database {
        Database::Sqlite(path) => {
            let options = SqliteOptions {
                durability: config.durability,
                log: config.log_limits,
                commits,
                ..SqliteOptions::new(path.clone())
            };
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&options))
                .await
                .map_err(|e| StartupError::Store(e.to_string()))?
                .map_err(|e| StartupError::Store(e.to_string()))?;
            Arc::new(store)
        }
        Database::Postgres(url) => {
            let options = PostgresOptions {
                pool_size: config.pg_pool_size,
                log: config.log_limits,
                commits,
                ..PostgresOptions::new(url.clone())
            };
            let store = PostgresStore::open(&options)
                .await
                .map_err(|e| StartupError::Store(e.to_string()))?;
            Arc::new(store)
        }
    };
    Ok(store)
}

/// A bound, ready-to-run server.
pub struct Application {
    state: AppState,
    surface: Arc<Surface>,
    http: TcpListener,
    https: Option<(TcpListener, TlsMaterial)>,
    /// The listener of `--metrics-listen`.
    metrics: Option<TcpListener>,
    push_queue: crate::push::PushQueue,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("http", &self.http.local_addr().ok())
            .field(
                "https",
                &self.https.as_ref().and_then(|(l, _)| l.local_addr().ok()),
            )
            .finish_non_exhaustive()
    }
}

/// Everything a connection needs to answer its requests: WeChat's paths, found in
/// [`wechat::Routes`], and the rest (kefu's own under `/kefu/v1`, and `40066 invalid
/// url` for any other path) through axum's router.
struct Surface {
    state: AppState,
    /// WeChat's paths (none on the metrics listener).
    routes: Option<wechat::Routes>,
    router: Router,
}

impl Surface {
    /// Only the metrics, at `/metrics`, without the admin token (`--metrics-listen`):
    /// anything else is 404, and a scrape never waits for a reset.
    fn metrics(state: AppState) -> Surface {
        let router = Router::new()
            .route(
                "/metrics",
                axum::routing::get(
                    |State(state): State<AppState>, headers: HeaderMap| async move {
                        crate::metrics::scrape(&state, &headers).await
                    },
                ),
            )
            .fallback(|| async { (StatusCode::NOT_FOUND, "only /metrics is served here\n") })
            .with_state(state.clone());
        Surface {
            state,
            routes: None,
            router,
        }
    }

    fn new(state: AppState) -> Surface {
        let mut router = admin::router(state.clone());
        if state.console {
            router = router.merge(crate::console::router());
        }
        let router = router
            .route("/", axum::routing::any(crate::console::root))
            .route(
                &format!("{}/{{*rest}}", kefu_api::admin::PREFIX),
                axum::routing::any(admin::not_found),
            )
            .fallback(wechat::invalid_url)
            .with_state(state.clone());
        Surface {
            routes: Some(wechat::Routes::new(state.metrics.as_deref())),
            state,
            router,
        }
    }

    /// Answers one request that came from `peer`, over HTTPS or not.
    async fn answer(&self, mut request: Request, peer: SocketAddr, https: bool) -> Response {
        if https {
            request.extensions_mut().insert(wechat::Https);
        }
        let Some(routes) = &self.routes else {
            // The metrics listener: its router answers everything.
            return match self.router.clone().oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
        };
        if request.method() == Method::CONNECT {
            return connect_refused(&self.state);
        }
        // Every request but a reset, the health checks and a scrape waits while a reset
        // runs, and a reset waits for the requests in flight.
        let path = request.uri().path();
        let _shared = if path == kefu_api::admin::RESET
            || path == kefu_api::admin::LIVEZ
            || path == kefu_api::admin::READYZ
            || path == kefu_api::admin::METRICS
        {
            None
        } else {
            Some(self.state.reset_lock.read().await)
        };
        if let Some(route) = routes.find(request.uri().path(), request.method()) {
            return wechat::edge::serve(&self.state, request, peer.ip(), &route).await;
        }
        request.extensions_mut().insert(ConnectInfo(peer));
        let http1 = request.version() <= Version::HTTP_11;
        let (request, read) = tracked(request);
        let mut response = match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        if http1 && !read.load(Ordering::Relaxed) {
            // The handler did not read the body to its end: the rest of it is still on
            // the connection, which hyper will close. Say so.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// `CONNECT` names no path, so it is answered as any method on a path WeChat does not
/// have (`40066`), but with status 405: a 2xx answer to `CONNECT` opens a tunnel and
/// carries no body. The connection is closed.
fn connect_refused(state: &AppState) -> Response {
    let rid = wechat::reply::new_rid(state.clock.now());
    let answered = wechat::reply::Answered::error(kefu_api::ErrCode::InvalidUrl, rid);
    let mut response =
        wechat::reply::envelope_response(StatusCode::METHOD_NOT_ALLOWED, answered.body);
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The request with its body wrapped so as to tell whether it was read to its end.
fn tracked(request: Request) -> (Request, Arc<AtomicBool>) {
    let (parts, body) = request.into_parts();
    let read = Arc::new(AtomicBool::new(http_body::Body::is_end_stream(&body)));
    let body = axum::body::Body::new(Tracked {
        inner: body,
        read: Arc::clone(&read),
    });
    (Request::from_parts(parts, body), read)
}

/// A body that notes when it has been read to its end.
struct Tracked {
    inner: axum::body::Body,
    read: Arc<AtomicBool>,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(None) = polled {
            self.read.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })
}

impl Application {
    /// Opens the store and binds the listeners, with a clock reading real time.
    pub async fn build(config: Config) -> Result<Application, StartupError> {
        Application::build_with_clock(config, Arc::new(Clock::new())).await
    }

    /// Like [`Application::build`], with a given clock (tests advance it).
    pub async fn build_with_clock(
        config: Config,
        clock: Arc<Clock>,
    ) -> Result<Application, StartupError> {
        let metrics = config.metrics.then(|| Arc::new(Metrics::new()));
        let store = open_store_with(&config, metrics.as_ref().map(|m| m.commit_observer())).await?;
        // The shared test clock, as another instance (or a previous run) left it.
        clock.raise_to(
            store
                .clock_offset()
                .await
                .map_err(|e| StartupError::Store(e.to_string()))?,
        );
        // The fixtures' times (creation, invitations' expiry) are those of the clock they
        // set: the real time plus their offset, whatever the store's clock says now.
        let declared = Clock::new();
        declared.set_offset(i64::try_from(config.fixtures.clock_offset_secs).unwrap_or(i64::MAX));
        let fixtures = crate::fixtures::Prepared::new(&config.fixtures, declared.now())
            .map_err(StartupError::Fixtures)?;
        let (pushes, push_queue) =
            crate::push::Pushes::new(config.pushes).map_err(StartupError::Tls)?;
        let state = AppState::new(Shared {
            store,
            clock,
            admin_token: Arc::new(digest(config.admin_token.expose())),
            public_url: config.public_url.as_deref().map(Arc::from),
            faults: Arc::default(),
            trusted_proxies: config.trusted_proxies.clone().into(),
            request_log: config.request_log,
            stable_locks: Arc::default(),
            lists: Arc::default(),
            limits: config.limits,
            log_limits: config.log_limits,
            pushes: Arc::new(pushes),
            fixtures: Arc::new(fixtures),
            reset_lock: Arc::default(),
            housekeeping: Arc::default(),
            console: config.console,
            sessions: Arc::default(),
            live: Arc::default(),
            metrics,
        });
        let outcome = crate::fixtures::apply(&state, config.reset_fixtures)
            .await
            .map_err(StartupError::Fixtures)?;
        match outcome {
            crate::fixtures::Outcome::None => {}
            outcome => tracing::info!(?outcome, "fixtures"),
        }
        let http = bind(config.listen).await?;
        let https = match &config.https {
            Some(https) => {
                let material = tls::load(https).map_err(StartupError::Tls)?;
                Some((bind(https.listen).await?, material))
            }
            None => None,
        };
        let metrics = match config.metrics_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let surface = Arc::new(Surface::new(state.clone()));
        Ok(Application {
            state,
            surface,
            http,
            https,
            metrics,
            push_queue,
        })
    }

    /// The HTTP listener's address.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.http
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The HTTP listener's port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// The address metrics are served on without the admin token, when enabled.
    #[must_use]
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The HTTPS listener's address and certificate file, when enabled.
    #[must_use]
    pub fn https(&self) -> Option<(SocketAddr, &TlsMaterial)> {
        self.https
            .as_ref()
            .and_then(|(listener, material)| Some((listener.local_addr().ok()?, material)))
    }

    /// The shared state (its clock and store).
    #[must_use]
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Creates the demo app when the store has none: a verified service account with
    /// the new kf feature on, WeChat ID `test` (so WeChat's own example `test1@test`
    /// works). Answers the app with its secret when it was created.
    pub async fn ensure_demo_app(&self) -> Result<Option<CreatedApp>, StartupError> {
        let apps = self
            .state
            .store
            .apps()
            .await
            .map_err(|e| StartupError::Demo(e.to_string()))?;
        if !apps.is_empty() {
            return Ok(None);
        }
        let alias = AppAlias::parse("test").map_err(|e| StartupError::Demo(e.to_string()))?;
        let new = NewApp::new(alias);
        match admin::create_app(&self.state, new).await {
            Ok(created) => Ok(Some(created)),
            // Another instance on the same database made it first.
            Err(_)
                if self
                    .state
                    .store
                    .apps()
                    .await
                    .is_ok_and(|apps| !apps.is_empty()) =>
            {
                Ok(None)
            }
            Err(error) => Err(StartupError::Demo(error.message().to_owned())),
        }
    }

    /// Serves until `shutdown` completes, then stops accepting, lets requests in
    /// flight finish (for at most [`Limits::shutdown_timeout`]), persists what they
    /// counted and recorded, and closes the store.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let live = Arc::clone(&self.state.live);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
            // The live request log's streams end, or they would hold the server open.
            live.close();
        });
        let self_state = self.state.clone();
        let limits = self.state.limits;
        let gate = Gate::start(Limits {
            max_connections: crate::conn::raise_open_file_limit(limits.max_connections),
            ..limits
        });
        let https_task = self.https.map(|(listener, material)| {
            tokio::spawn(serve(
                listener,
                Some(TlsAcceptor::from(material.config)),
                Arc::clone(&self.surface),
                Arc::clone(&gate),
                stop_rx.clone(),
                limits.shutdown_timeout,
            ))
        });
        let metrics_task = self.metrics.map(|listener| {
            // A gate of its own: scrapes get in while clients fill the main one.
            let gate = Gate::start(Limits {
                max_connections: METRICS_CONNECTIONS,
                ..limits
            });
            tokio::spawn(serve(
                listener,
                None,
                Arc::new(Surface::metrics(self.state.clone())),
                gate,
                stop_rx.clone(),
                limits.shutdown_timeout,
            ))
        });
        let pushing = tokio::spawn(crate::push::run(
            self.state.clone(),
            self.push_queue,
            stop_rx.clone(),
        ));
        let housekeeping = {
            let (state, mut stop) = (self.state.clone(), stop_rx.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
                loop {
                    tokio::select! {
                        _ = tick.tick() => maintain(&state).await,
                        _ = stop.changed() => break,
                    }
                }
            })
        };
        serve(
            self.http,
            None,
            self.surface,
            gate,
            stop_rx,
            limits.shutdown_timeout,
        )
        .await;
        for task in [https_task, metrics_task].into_iter().flatten() {
            let _ = task.await;
        }
        let _ = housekeeping.await;
        let _ = pushing.await;
        // Every request has finished: persist what they counted.
        maintain(&self_state).await;
        Ok(())
    }
}

/// The most connections the metrics listener keeps open.
const METRICS_CONNECTIONS: usize = 16;

/// How long a client may take to complete its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Accepts connections on `listener` (through TLS when an acceptor is given), as many
/// as the `gate` lets in, and serves HTTP/1 and HTTP/2 on them until `stop`; then stops
/// accepting and waits for the open connections (idle ones are closed) — at most
/// `shutdown_timeout`, after which the busy ones are left to be closed with the process.
async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    surface: Arc<Surface>,
    gate: Arc<Gate>,
    mut stop: watch::Receiver<bool>,
    shutdown_timeout: std::time::Duration,
) {
    let graceful = GracefulShutdown::new();
    loop {
        let room = tokio::select! {
            room = gate.room() => room,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, say: give the open connections a moment.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let admitted = gate.admit(room);
        let counted = surface.state.metrics.as_ref().map(|m| m.connection());
        // Answers go out whole: no reason to wait for more to send.
        let _ = stream.set_nodelay(true);
        let https = tls.is_some();
        let surface = Arc::clone(&surface);
        let activity = Arc::clone(&admitted.activity);
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let surface = Arc::clone(&surface);
            let in_flight = activity.request();
            async move {
                let request = request.map(axum::body::Body::new);
                let response = surface.answer(request, peer, https).await;
                drop(in_flight);
                Ok::<_, Infallible>(response)
            }
        });
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let activity = Arc::clone(&admitted.activity);
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let served = match tls {
                None => {
                    let io = TokioIo::new(Watched::new(stream, Arc::clone(&activity)));
                    let connection = builder.serve_connection(io, service);
                    until_closed(watcher.watch(connection), &activity).await
                }
                Some(acceptor) => {
                    // A client that never finishes its handshake must not hold the
                    // server open.
                    let tls =
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(error)) => {
                                tracing::debug!(%error, %peer, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                    let io = TokioIo::new(Watched::new(tls, Arc::clone(&activity)));
                    let connection = builder.serve_connection(io, service);
                    until_closed(watcher.watch(connection), &activity).await
                }
            };
            if let Err(error) = served {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
            drop(admitted);
            drop(counted);
        });
    }
    drop(listener);
    if tokio::time::timeout(shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            timeout_secs = shutdown_timeout.as_secs(),
            "requests still in flight after the shutdown timeout; their connections are closed"
        );
    }
}

/// Serves a connection until it ends, or until the sweeper closes it for outstaying
/// (then it is dropped, which closes the socket).
async fn until_closed<F, E>(connection: F, activity: &Activity) -> Result<(), E>
where
    F: Future<Output = Result<(), E>>,
{
    tokio::select! {
        served = connection => served,
        () = activity.closed() => Ok(()),
    }
}
