//! Test helpers (feature `test-support`): a fresh PostgreSQL schema per test, so that
//! tests on one database run in parallel without seeing each other.

use std::time::Duration;

use tokio_postgres::NoTls;

/// The environment variable naming the PostgreSQL database tests may use.
pub const POSTGRES_URL_VAR: &str = "KEFU_TEST_POSTGRES_URL";

/// The PostgreSQL URL tests use, or `None` after saying so on standard error. Under CI
/// (`CI` set) a missing URL fails the test instead: the PostgreSQL half must run there.
///
/// # Panics
/// When `CI` is set and the variable is not.
#[must_use]
pub fn postgres_url() -> Option<String> {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{POSTGRES_URL_VAR} is not set: the PostgreSQL tests cannot run under CI"
            );
            eprintln!(
                "SKIPPED (PostgreSQL not configured): set {POSTGRES_URL_VAR}=postgres://… to \
                    run this test on PostgreSQL"
            );
            None
        }
    }
}

/// A schema made for one test and dropped (with everything in it) when this is dropped.
#[derive(Debug)]
pub struct PgSchema {
    base: String,
    name: String,
    url: String,
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

impl PgSchema {
    /// Creates a schema with a random name in the database of [`postgres_url`]; `None`
    /// when PostgreSQL is not configured.
    ///
    /// # Panics
    /// When the database cannot be reached: a configured PostgreSQL must work.
    pub async fn create() -> Option<PgSchema> {
        let base = postgres_url()?;
        let name = format!("kefu_test_{:016x}", rand_u64());
        let client = connect(&base)
            .await
            .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR}: cannot connect: {e}"));
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .unwrap_or_else(|e| panic!("cannot create schema {name}: {e}"));
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options=-c%20search_path%3D{name}");
        Some(PgSchema { base, name, url })
    }

    /// A URL whose connections use the schema.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        // Its own thread and runtime: this may run inside (or outside) any runtime.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(client) = connect(&base).await {
                    let sql =
                        format!("SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {name} CASCADE");
                    let drop_schema = client.batch_execute(&sql);
                    let _ = tokio::time::timeout(Duration::from_secs(15), drop_schema).await;
                }
            });
        })
        .join();
    }
}
