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

/// `GET {base}/cgi-bin/token` for the app; the token.
pub(crate) async fn access_token(
    http: &reqwest::Client,
    base: &str,
    appid: &str,
    secret: &str,
) -> String {
    let answer: serde_json::Value = http
        .get(format!(
            "{base}/cgi-bin/token?grant_type=client_credential&appid={appid}&secret={secret}"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
