//! `kefu serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use kefu_api::admin::CreatedApp;
use kefu_api::admin::fixtures::Fixtures;
use kefu_server::config::{Durability, HttpsConfig, Limits, LogLimits};
use kefu_server::secrets::MIN_ADMIN_TOKEN_CHARS;
use kefu_server::{Application, Config, Database, Secret, telemetry};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DurabilityArg {
    /// Every acknowledged change is fsynced (survives power loss).
    Full,
    /// Survives a crash of kefu; may lose the last moments on power loss.
    Normal,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    /// Lines for people.
    Text,
    /// One JSON object a line.
    Json,
}

/// Flags of `kefu serve`; each has a `KEFU_*` environment variable.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// A configuration file (TOML): its `[server]` table sets any of these flags, under
    /// its own name with `_` for `-`; the environment and the command line win over it.
    #[arg(long, env = "KEFU_CONFIG")]
    config: Option<PathBuf>,
    /// A directory of fixture files (`*.toml`, `*.json`): the state the server starts
    /// in and `POST /kefu/v1/reset` goes back to, with those of the configuration file.
    #[arg(long, env = "KEFU_FIXTURES")]
    fixtures: Option<PathBuf>,
    /// Replace a store that contradicts the fixtures by them (everything it holds goes).
    #[arg(long, env = "KEFU_RESET_FIXTURES", value_parser = clap::builder::BoolishValueParser::new())]
    reset_fixtures: bool,
    /// The fixtures read from the files, by [`ServeArgs::load_fixtures`].
    #[arg(skip)]
    declared: Fixtures,
    /// Address of the HTTP listener.
    #[arg(long, env = "KEFU_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The store: an SQLite file path or `sqlite://path` (one instance), or a
    /// `postgres://user@host/db` URL (any number of instances).
    #[arg(long, env = "KEFU_DATABASE_URL", default_value = "./kefu.db")]
    database_url: String,
    /// PostgreSQL connections this instance keeps open.
    #[arg(long, env = "KEFU_PG_POOL_SIZE", default_value_t = 8)]
    pg_pool_size: usize,
    /// Bearer token of the admin surface (/kefu/v1); generated and printed when absent.
    #[arg(long, env = "KEFU_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<Secret>,
    /// Also listen for HTTPS here (e.g. 127.0.0.1:8443, or 0.0.0.0:443 behind a hosts entry).
    #[arg(long, env = "KEFU_HTTPS_LISTEN")]
    https_listen: Option<SocketAddr>,
    /// PEM certificate chain for HTTPS (default: a generated self-signed certificate).
    #[arg(long, env = "KEFU_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS.
    #[arg(long, env = "KEFU_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Base of the URLs kefu hands out (head images); default: the request's Host.
    #[arg(long, env = "KEFU_PUBLIC_URL")]
    public_url: Option<String>,
    /// How durable an acknowledged change is.
    #[arg(long, env = "KEFU_DURABILITY", value_enum, default_value = "full")]
    durability: DurabilityArg,
    /// Do not create the demo app on an empty store.
    #[arg(long, env = "KEFU_NO_DEMO", value_parser = clap::builder::BoolishValueParser::new())]
    no_demo: bool,
    /// Proxies whose X-Forwarded-For gives the caller's IP (comma-separated).
    #[arg(long, env = "KEFU_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Vec<std::net::IpAddr>,
    /// Do not record WeChat calls (rid/get then finds nothing).
    #[arg(long, env = "KEFU_NO_REQUEST_LOG", value_parser = clap::builder::BoolishValueParser::new())]
    no_request_log: bool,
    /// Seconds a client may take to send a request's head, from its first byte.
    #[arg(long, env = "KEFU_HEADER_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout: u64,
    /// Seconds a connection may sit idle between requests.
    #[arg(long, env = "KEFU_IDLE_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout: u64,
    /// Seconds a client may take to send a request's body.
    #[arg(long, env = "KEFU_BODY_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    body_timeout: u64,
    /// The most connections open at once (past it, idle ones are closed to make room).
    #[arg(long, env = "KEFU_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: u64,
    /// The most failed calls the request log keeps in the store.
    #[arg(long, env = "KEFU_REQUEST_LOG_ROWS", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    request_log_rows: u64,
    /// The most MiB of failed calls the request log keeps in the store.
    #[arg(long, env = "KEFU_REQUEST_LOG_DISK_MB", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    request_log_disk_mb: u64,
    /// The most MiB of calls the request log keeps in memory.
    #[arg(long, env = "KEFU_REQUEST_LOG_MEMORY_MB", default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..))]
    request_log_memory_mb: u64,
    /// The most failed calls written to the store in one second (more are only counted).
    #[arg(long, env = "KEFU_REQUEST_LOG_PER_SECOND", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    request_log_per_second: u64,
    /// Seconds a push waits for the developer's server to answer (WeChat waits 5).
    #[arg(long, env = "KEFU_PUSH_TIMEOUT", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    push_timeout: u64,
    /// Seconds a stopping server (SIGTERM, Ctrl-C) waits for requests in flight.
    #[arg(long, env = "KEFU_SHUTDOWN_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    shutdown_timeout: u64,
    /// How log lines are written (the level comes from KEFU_LOG, else RUST_LOG).
    #[arg(long, env = "KEFU_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormatArg,
    /// How many times a push that got no answer is tried again (WeChat: 3).
    #[arg(long, env = "KEFU_PUSH_RETRIES", default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=10))]
    push_retries: u32,
    /// Do not serve the web console (/kefu/console/).
    #[arg(long, env = "KEFU_NO_CONSOLE", value_parser = clap::builder::BoolishValueParser::new())]
    no_console: bool,
    /// Keep no metrics (GET /kefu/v1/metrics answers 404).
    #[arg(long, env = "KEFU_NO_METRICS", value_parser = clap::builder::BoolishValueParser::new())]
    no_metrics: bool,
    /// Also serve the metrics at /metrics on this address, without the admin token
    /// (for a Prometheus that scrapes a port of its own, e.g. 127.0.0.1:9464).
    #[arg(long, env = "KEFU_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
}

impl ServeArgs {
    /// Reads the fixtures of the configuration file and of `--fixtures DIR`; a mistake
    /// in them names the file and line.
    pub(crate) fn load_fixtures(&mut self) -> Result<(), String> {
        let mut fixtures = match &self.config {
            Some(path) => crate::config_file::fixtures(path).map_err(|e| e.to_string())?,
            None => Fixtures::default(),
        };
        if let Some(dir) = &self.fixtures {
            fixtures.merge(crate::config_file::fixtures_dir(dir).map_err(|e| e.to_string())?);
        }
        self.declared = fixtures;
        Ok(())
    }

    /// The HTTP listener's address.
    pub(crate) fn listen(&self) -> SocketAddr {
        self.listen
    }
}

fn size(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

pub(crate) async fn run(mut args: ServeArgs) -> Result<(), String> {
    telemetry::init_as(
        "info,kefu=info",
        match args.log_format {
            LogFormatArg::Text => telemetry::LogFormat::Text,
            LogFormatArg::Json => telemetry::LogFormat::Json,
        },
    );
    if args.no_metrics && args.metrics_listen.is_some() {
        return Err(
            "--metrics-listen serves metrics, which --no-metrics turns off: \
                    leave out one of them"
                .to_owned(),
        );
    }
    let database = Database::parse(&args.database_url)?;
    let fixtures = std::mem::take(&mut args.declared);
    // A generated certificate is kept beside the SQLite file, or in the working
    // directory.
    let generated_dir = match &database {
        Database::Sqlite(db_path) => db_path
            .parent()
            .map_or_else(|| PathBuf::from("."), PathBuf::from)
            .join("kefu-tls"),
        Database::Postgres(_) => PathBuf::from("kefu-tls"),
    };
    let (admin_token, admin_generated) = match args.admin_token.filter(|t| !t.expose().is_empty()) {
        Some(token) if token.expose().chars().count() < MIN_ADMIN_TOKEN_CHARS => {
            return Err(format!(
                "the admin token must be at least {MIN_ADMIN_TOKEN_CHARS} characters long \
                 (a short one can be guessed by trying); leave it out to have one generated"
            ));
        }
        Some(token) => (token, false),
        None => (Secret::new(kefu_server::secrets::new_admin_token()), true),
    };
    let config = Config {
        listen: args.listen,
        https: args.https_listen.map(|listen| HttpsConfig {
            listen,
            cert_and_key: args.tls_cert.zip(args.tls_key),
            generated_dir,
        }),
        database: database.clone(),
        durability: match args.durability {
            DurabilityArg::Full => Durability::Full,
            DurabilityArg::Normal => Durability::Normal,
        },
        pg_pool_size: args.pg_pool_size,
        admin_token: admin_token.clone(),
        public_url: args.public_url,
        demo_app: !args.no_demo && fixtures.is_empty(),
        trusted_proxies: args.trusted_proxies,
        request_log: !args.no_request_log,
        pushes: kefu_server::push::PushSettings {
            timeout: Duration::from_secs(args.push_timeout),
            retries: args.push_retries,
        },
        limits: Limits {
            header_timeout: Duration::from_secs(args.header_timeout),
            idle_timeout: Duration::from_secs(args.idle_timeout),
            body_timeout: Duration::from_secs(args.body_timeout),
            max_connections: size(args.max_connections),
            shutdown_timeout: Duration::from_secs(args.shutdown_timeout),
        },
        log_limits: LogLimits {
            disk_rows: args.request_log_rows,
            disk_bytes: args.request_log_disk_mb.saturating_mul(1 << 20),
            memory_bytes: size(args.request_log_memory_mb.saturating_mul(1 << 20)),
            per_second: size(args.request_log_per_second),
        },
        fixtures,
        reset_fixtures: args.reset_fixtures,
        console: !args.no_console,
        metrics: !args.no_metrics,
        metrics_listen: args.metrics_listen,
    };
    let app = Application::build(config.clone())
        .await
        .map_err(|e| e.to_string())?;
    let demo = if config.demo_app {
        app.ensure_demo_app().await.map_err(|e| e.to_string())?
    } else {
        None
    };

    let addr = app.local_addr();
    let base = format!("http://{}", callable(addr));
    println!(
        "kefu {} serving WeChat's customer service API",
        env!("CARGO_PKG_VERSION")
    );
    println!("  HTTP:   {base}");
    if let Some((https_addr, material)) = app.https() {
        println!(
            "  HTTPS:  https://{}  (certificate: {}{})",
            callable(https_addr),
            material.cert_path.display(),
            if material.generated {
                ", self-signed for api.weixin.qq.com, localhost, 127.0.0.1"
            } else {
                ""
            }
        );
    }
    if config.console {
        println!("  console: {base}{}", kefu_api::admin::CONSOLE);
    }
    if let Some(metrics_addr) = app.metrics_addr() {
        println!("  metrics: http://{}/metrics", callable(metrics_addr));
    } else if config.metrics {
        println!(
            "  metrics: {base}{} (admin token)",
            kefu_api::admin::METRICS
        );
    }
    println!("  store:  {}", database.describe());
    if admin_generated {
        println!(
            "  admin token (generated; set KEFU_ADMIN_TOKEN to keep one): {}",
            admin_token.expose()
        );
    } else {
        println!("  admin token: as given (KEFU_ADMIN_TOKEN / --admin-token)");
    }
    match demo {
        Some(created) => print_demo(&base, &created),
        None => println!(
            "\nApps: GET {base}/kefu/v1/apps with 'Authorization: Bearer <admin token>', or \
                `kefu app list`."
        ),
    }
    println!();

    let result = app
        .run_until(shutdown_signal())
        .await
        .map_err(|e| e.to_string());
    tracing::info!("stopped");
    result
}

/// An address a client can call: a wildcard listener is reached on loopback.
pub(crate) fn callable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}

fn print_demo(base: &str, created: &CreatedApp) {
    let app = &created.app;
    println!("\nDemo app created (the secret is shown only this once):");
    println!("  appid:  {}", app.appid);
    println!("  secret: {}", created.secret.expose());
    println!(
        "  WeChat ID: {} (kf accounts are name@{})",
        app.wechat_id, app.wechat_id
    );
    println!("\nTry it (paste into a shell):\n");
    println!(
        "TOKEN=$(curl -s \
            '{base}/cgi-bin/token?grant_type=client_credential&appid={}&secret={}' | sed -E \
                's/.*\"access_token\":\"([^\"]*)\".*/\\1/')",
        app.appid,
        created.secret.expose()
    );
    println!(
        "curl -s -X POST \"{base}/customservice/kfaccount/add?access_token=$TOKEN\" -d \
            '{{\"kf_account\":\"test1@{0}\",\"nickname\":\"客服1\"}}'; echo",
        app.wechat_id
    );
    println!(
        "curl -s -X POST \"{base}/customservice/kfaccount/update?access_token=$TOKEN\" -d \
            '{{\"kf_account\":\"test1@{0}\",\"nickname\":\"客服2\"}}'; echo",
        app.wechat_id
    );
    println!("curl -s \"{base}/cgi-bin/customservice/getkflist?access_token=$TOKEN\"; echo");
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
