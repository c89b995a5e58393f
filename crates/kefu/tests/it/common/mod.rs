//! What the tests that run `kefu serve` as a process share.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free port on 127.0.0.1.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An HTTP client (the process's TLS provider chosen first).
pub(crate) fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A running `kefu serve`, killed when dropped.
pub(crate) struct Kefu {
    pub child: Child,
    pub base: String,
}

impl Drop for Kefu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `kefu serve --no-demo` on `port` with the admin token and a database URL,
/// plus `extra` flags, and waits until it answers.
pub(crate) async fn serve(
    database_url: &str,
    port: u16,
    admin: &str,
    extra: &[&str],
    http: &reqwest::Client,
) -> Kefu {
    let child = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(["serve", "--no-demo", "--admin-token", admin])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--database-url", database_url])
        .args(extra)
        .env_remove("KEFU_NO_DEMO")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kefu serve");
    let kefu = Kefu {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    wait_until_up(&kefu, http).await;
    kefu
}

async fn wait_until_up(kefu: &Kefu, http: &reqwest::Client) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let health = http
            .get(format!("{}/kefu/v1/health", kefu.base))
            .send()
            .await;
        if health.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        assert!(Instant::now() < deadline, "kefu did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `GET url`; the JSON answered.
pub(crate) async fn get_json(
    http: &reqwest::Client,
    url: impl reqwest::IntoUrl,
) -> serde_json::Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// `POST url` with a JSON body; the JSON answered.
pub(crate) async fn post_json(
    http: &reqwest::Client,
    url: impl reqwest::IntoUrl,
    body: serde_json::Value,
) -> serde_json::Value {
    http.post(url)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `GET {base}/cgi-bin/token` for the app; the token.
pub(crate) async fn access_token(
    http: &reqwest::Client,
    base: &str,
    appid: &str,
    secret: &str,
) -> String {
    let answer = get_json(
        http,
        &format!("{base}/cgi-bin/token?grant_type=client_credential&appid={appid}&secret={secret}"),
    )
    .await;
    answer["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {answer}"))
        .to_owned()
}

/// A fresh directory under the system's temporary one.
pub(crate) fn temp_dir(name: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("kefu-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Update load on kf accounts `k0@{domain}`, `k1@{domain}`, …: one writer per account,
/// each sending the nicknames s1, s2, … in order and noting the last one answered
/// errcode 0. A writer stops at its first failure (the server went away).
pub(crate) struct Load {
    /// The last sequence number each account's writer saw answered 0.
    pub acknowledged: std::sync::Arc<Vec<std::sync::atomic::AtomicU64>>,
    /// The writers.
    pub writers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Adds `accounts` accounts (nickname `s0`) with `token` on the server at `base`,
    /// then starts a writer on each.
    pub(crate) async fn start(
        http: &reqwest::Client,
        base: &str,
        token: &str,
        domain: &str,
        accounts: usize,
    ) -> Load {
        use serde_json::{Value, json};
        use std::sync::atomic::{AtomicU64, Ordering};

        let add = format!("{base}/customservice/kfaccount/add?access_token={token}");
        for i in 0..accounts {
            let body = json!({"kf_account": format!("k{i}@{domain}"), "nickname": "s0"});
            let answer = post_json(http, &add, body).await;
            assert_eq!(answer["errcode"], 0, "{answer}");
        }
        let acknowledged: std::sync::Arc<Vec<AtomicU64>> =
            std::sync::Arc::new((0..accounts).map(|_| AtomicU64::new(0)).collect());
        let writers = (0..accounts)
            .map(|i| {
                let (http, acknowledged) = (http.clone(), std::sync::Arc::clone(&acknowledged));
                let url = format!("{base}/customservice/kfaccount/update?access_token={token}");
                let account = format!("k{i}@{domain}");
                tokio::spawn(async move {
                    for seq in 1.. {
                        let body = json!({"kf_account": account, "nickname": format!("s{seq}")});
                        let Ok(response) = http.post(&url).json(&body).send().await else {
                            return;
                        };
                        let Ok(answer) = response.json::<Value>().await else {
                            return;
                        };
                        if answer["errcode"] != 0 {
                            return;
                        }
                        acknowledged[i].store(seq, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        Load {
            acknowledged,
            writers,
        }
    }

    /// How many updates were answered 0 so far, over all accounts.
    pub(crate) fn total(&self) -> u64 {
        self.acknowledged
            .iter()
            .map(|n| n.load(std::sync::atomic::Ordering::SeqCst))
            .sum()
    }

    /// Waits for the writers (the server stopped), and answers each account's last
    /// acknowledged sequence number.
    pub(crate) async fn finish(self) -> Vec<u64> {
        for writer in self.writers {
            writer.await.unwrap();
        }
        self.acknowledged
            .iter()
            .map(|n| n.load(std::sync::atomic::Ordering::SeqCst))
            .collect()
    }
}

/// Asserts that the server at `base` lists exactly the load's accounts, each with its
/// last acknowledged nickname or the one in flight after it.
pub(crate) async fn assert_acknowledged(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    acked: &[u64],
) {
    let list = get_json(
        http,
        &format!("{base}/cgi-bin/customservice/getkflist?access_token={token}"),
    )
    .await;
    let list = list["kf_list"].as_array().expect("a list");
    assert_eq!(list.len(), acked.len());
    for kf in list {
        let account = kf["kf_account"].as_str().unwrap();
        let i: usize = account[1..account.find('@').unwrap()].parse().unwrap();
        let stored: u64 = kf["kf_nick"].as_str().unwrap()[1..].parse().unwrap();
        assert!(
            stored == acked[i] || stored == acked[i] + 1,
            "{account}: stored s{stored}, last acknowledged s{}",
            acked[i]
        );
    }
}
