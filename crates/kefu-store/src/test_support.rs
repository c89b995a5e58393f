//! Test helpers (feature `test-support`): the one rule for a test that needs a service
//! (PostgreSQL, Redis, a client library), and a fresh PostgreSQL schema per test, so
//! that tests on one database run in parallel without seeing each other.

use std::time::Duration;

use tokio_postgres::NoTls;

/// The environment variable naming the PostgreSQL database tests may use.
pub const POSTGRES_URL_VAR: &str = "KEFU_TEST_POSTGRES_URL";

/// Whether the tests run under CI: `CI` is set to anything but empty, `0` or `false`.
#[must_use]
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// Whether a test that needs `service` goes on: `true` when the service is `available`;
/// otherwise, under CI the test fails (CI must provide every service), and elsewhere it
/// says SKIPPED on standard error, with how to provide the service, and answers
/// `false`.
///
/// # Panics
/// Under CI, when the service is not available.
#[must_use]
pub fn service_or_skip(service: &str, available: Result<(), String>, how: &str) -> bool {
    match available {
        Ok(()) => true,
        Err(why) if under_ci() => {
            panic!("{service} is not available ({why}); CI must provide it: {how}")
        }
        Err(why) => {
            // Straight to the process's stderr: the test harness captures eprintln!, and
            // a skip must be seen without --nocapture.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: {service} is not available ({why}); {how} (with CI set, this fails)"
            );
            false
        }
    }
}

/// The PostgreSQL URL tests use, or `None` after saying SKIPPED (see
/// [`service_or_skip`]).
///
/// # Panics
/// Under CI, when the variable is not set.
#[must_use]
pub fn postgres_url() -> Option<String> {
    let url = std::env::var(POSTGRES_URL_VAR).unwrap_or_default();
    let available = if url.is_empty() {
        Err(format!("{POSTGRES_URL_VAR} is not set"))
    } else {
        Ok(())
    };
    service_or_skip(
        "PostgreSQL",
        available,
        &format!("set {POSTGRES_URL_VAR}=postgres://… to run this test on PostgreSQL"),
    )
    .then_some(url)
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
