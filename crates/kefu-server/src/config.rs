//! Server configuration. The `kefu` binary fills it from defaults, `KEFU_*`
//! environment variables and flags (in rising precedence).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use kefu_api::Secret;
pub use kefu_store::LogLimits;
pub use kefu_store::sqlite::Durability;

/// Where the data lives.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// An SQLite file (`./kefu.db`, `sqlite://path` or `sqlite:path`).
    Sqlite(PathBuf),
    /// A PostgreSQL database (`postgres://user:password@host:port/db?options=…`).
    Postgres(String),
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Database {
    /// What to print about the store: the file, or the URL without its password.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Database::Sqlite(path) => format!("SQLite {}", path.display()),
            Database::Postgres(url) => format!("PostgreSQL {}", redact_password(url)),
        }
    }

    /// Reads a database URL: a plain path, a `sqlite:`/`sqlite://` URL or a
    /// `postgres://`/`postgresql://` URL.
    pub fn parse(url: &str) -> Result<Database, String> {
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = path.split('?').next().unwrap_or(path);
            return if path.is_empty() {
                Err("the sqlite URL names no file".to_owned())
            } else {
                Ok(Database::Sqlite(path.into()))
            };
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Database::Postgres(url.to_owned()));
        }
        if url.contains("://") {
            return Err(format!("unsupported database URL {url:?}"));
        }
        Ok(Database::Sqlite(url.into()))
    }
}

/// `url` with the password of its userinfo part replaced by `***`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        _ => url.to_owned(),
    }
}

/// The optional HTTPS listener.
#[derive(Debug, Clone)]
pub struct HttpsConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// PEM certificate chain and private key; when absent a self-signed certificate
    /// for `api.weixin.qq.com`, `localhost` and `127.0.0.1` is generated (and kept in
    /// `generated_dir` so clients can keep trusting it).
    pub cert_and_key: Option<(PathBuf, PathBuf)>,
    /// Where a generated certificate is written.
    pub generated_dir: PathBuf,
}

/// Timeouts and bounds of connections and requests (README, "Limits").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a client may take to send a request's head, from its first byte.
    pub header_timeout: Duration,
    /// How long a connection may sit idle between requests before it is closed.
    pub idle_timeout: Duration,
    /// How long a client may take to send a request's body.
    pub body_timeout: Duration,
    /// The most connections open at once (over all listeners); past it new clients
    /// wait to be accepted while idle connections are closed to make room.
    pub max_connections: usize,
    /// How long a stopping server waits for requests in flight before it closes their
    /// connections.
    pub shutdown_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            max_connections: 4096,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// The plain HTTP listener (`127.0.0.1:8080`; port 0 picks a free one).
    pub listen: SocketAddr,
    /// The optional HTTPS listener.
    pub https: Option<HttpsConfig>,
    /// The store.
    pub database: Database,
    /// How durable an acknowledged change is (SQLite; PostgreSQL follows the server's
    /// `synchronous_commit`).
    pub durability: Durability,
    /// PostgreSQL connections each instance keeps open.
    pub pg_pool_size: usize,
    /// The bearer token of the admin surface.
    pub admin_token: Secret,
    /// The base of URLs the server hands out (head images), e.g.
    /// `https://kefu.example.com`; when absent, taken from each request's `Host`.
    pub public_url: Option<String>,
    /// Create the demo app when the store has no apps.
    pub demo_app: bool,
    /// Proxies whose `X-Forwarded-For` is believed for the caller's IP; others are
    /// ignored and the socket's peer is the caller.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Record every WeChat call for `rid/get` and `GET /kefu/v1/requests`.
    pub request_log: bool,
    /// Timeouts and bounds of connections and requests.
    pub limits: Limits,
    /// What the request log may hold, in memory and in the store.
    pub log_limits: LogLimits,
    /// How pushes to the developers' callbacks are delivered.
    pub pushes: crate::push::PushSettings,
    /// The declared state the server starts in and a reset goes back to.
    pub fixtures: kefu_api::admin::fixtures::Fixtures,
    /// Replace a store that contradicts the fixtures by them, rather than refuse to
    /// start.
    pub reset_fixtures: bool,
    /// Whether the web console is served under `/kefu/console/`.
    pub console: bool,
    /// Whether metrics are kept (and served at `/kefu/v1/metrics`).
    pub metrics: bool,
    /// Where metrics are also served, at `/metrics`, without the admin token.
    pub metrics_listen: Option<SocketAddr>,
}

impl Config {
    /// A configuration for the given database with every other setting at its default.
    #[must_use]
    pub fn new(database: Database, admin_token: Secret) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            https: None,
            database,
            durability: Durability::Full,
            pg_pool_size: 8,
            admin_token,
            public_url: None,
            demo_app: false,
            trusted_proxies: Vec::new(),
            request_log: true,
            limits: Limits::default(),
            log_limits: LogLimits::default(),
            pushes: crate::push::PushSettings::default(),
            fixtures: kefu_api::admin::fixtures::Fixtures::default(),
            reset_fixtures: false,
            console: true,
            metrics: true,
            metrics_listen: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert_eq!(
            Database::parse("./kefu.db"),
            Ok(Database::Sqlite("./kefu.db".into()))
        );
        assert_eq!(
            Database::parse("sqlite://data/k.db"),
            Ok(Database::Sqlite("data/k.db".into()))
        );
        assert_eq!(
            Database::parse("sqlite:k.db?mode=rwc"),
            Ok(Database::Sqlite("k.db".into()))
        );
        assert_eq!(
            Database::parse("postgres://localhost/test"),
            Ok(Database::Postgres("postgres://localhost/test".into()))
        );
        assert_eq!(
            Database::parse("postgresql://kefu:pw@db:5432/kefu?options=x").map(|db| db.describe()),
            Ok("PostgreSQL postgresql://kefu:***@db:5432/kefu?options=x".to_owned())
        );
        assert!(Database::parse("mysql://x").is_err());
    }
}
