//! PostgreSQL briefly unreachable: the server answers `-1 system error` in WeChat's
//! envelope, writes nothing halfway, and recovers by itself once the database is back.
//! The database is cut off by a TCP proxy between the server's pool and PostgreSQL,
//! which can drop every connection and refuse new ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kefu_server::Database;
use kefu_store::test_support::PgSchema;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use crate::helpers::TestServer;

/// A TCP proxy to PostgreSQL that can be cut.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    links: Arc<std::sync::Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let links = Arc::new(std::sync::Mutex::new(Vec::<AbortHandle>::new()));
        let (cut_flag, link_list) = (Arc::clone(&cut), Arc::clone(&links));
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if cut_flag.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let upstream = upstream.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                link_list.lock().unwrap().push(link.abort_handle());
            }
        })
        .abort_handle();
        Proxy {
            port,
            cut,
            links,
            accept,
        }
    }

    /// Drops every open connection and refuses new ones.
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }
}

/// `url` with its host and port replaced by `127.0.0.1:port`; answers it with the
/// original `host:port`.
fn through(url: &str, port: u16) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((userinfo, host)) => (format!("{userinfo}@"), host),
        None => (String::new(), authority),
    };
    let upstream = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    (
        format!("{scheme}://{userinfo}127.0.0.1:{port}{tail}"),
        upstream,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_answers_minus_one_and_heals() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let (_, upstream) = through(schema.url(), 0);
    let proxy = Proxy::start(upstream).await;
    let (url, _) = through(schema.url(), proxy.port);
    let server = TestServer::spawn_with(|config| {
        config.database = Database::Postgres(url);
        config.pg_pool_size = 4;
    })
    .await;
    let app = server.app("outage").await;
    server
        .add(&app.token, "a@outage", "before")
        .await
        .assert_code(0);

    proxy.cut();
    server
        .update(&app.token, "a@outage", "during")
        .await
        .assert_code(-1);
    server
        .add(&app.token, "b@outage", "during")
        .await
        .assert_code(-1);
    server
        .get(&format!(
            "/cgi-bin/customservice/getkflist?access_token={}",
            app.token
        ))
        .await
        .assert_code(-1);
    let fetch = server
        .get(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
            app.appid, app.secret
        ))
        .await;
    fetch.assert_code(-1);

    proxy.restore();
    let started = Instant::now();
    let list = loop {
        let answer = server
            .get(&format!(
                "/cgi-bin/customservice/getkflist?access_token={}",
                app.token
            ))
            .await;
        if let Some(list) = answer.json["kf_list"].as_array() {
            break list.clone();
        }
        answer.assert_code(-1);
        assert!(started.elapsed() < Duration::from_secs(15), "no recovery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Nothing of the failed calls was written.
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["kf_nick"], "before");
    server
        .update(&app.token, "a@outage", "after")
        .await
        .assert_code(0);
    assert_eq!(server.list(&app.token).await[0]["kf_nick"], "after");
    drop(server.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readyz_says_unavailable_while_the_database_is_unreachable() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let (_, upstream) = through(schema.url(), 0);
    let proxy = Proxy::start(upstream).await;
    let (url, _) = through(schema.url(), proxy.port);
    let server = TestServer::spawn_with(|config| {
        config.database = Database::Postgres(url);
        config.pg_pool_size = 2;
    })
    .await;
    let ready = server.get("/kefu/v1/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.raw);
    assert_eq!(ready.json["status"], "ready");

    proxy.cut();
    let down = server.get("/kefu/v1/readyz").await;
    assert_eq!(down.status, 503, "{}", down.raw);
    assert_eq!(down.json["status"], "unavailable");
    let reason = down.json["reason"].as_str().unwrap();
    assert!(reason.contains("PostgreSQL does not answer"), "{reason}");
    // The process itself still answers.
    assert_eq!(server.get("/kefu/v1/livez").await.status, 200);

    proxy.restore();
    let started = Instant::now();
    while server.get("/kefu/v1/readyz").await.status != 200 {
        assert!(started.elapsed() < Duration::from_secs(15), "no recovery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(server.stop().await);
}
