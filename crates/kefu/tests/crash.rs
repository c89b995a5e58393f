//! Crash consistency: under write load, `kefu serve` is killed with SIGKILL; after a
//! restart on the same file, every update that had been answered errcode 0 is there.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ADMIN: &str = "crash-admin-token";
const APPID: &str = "wx00000000000000cc";
const SECRET: &str = "CrashTestSecret0123";
const ACCOUNTS: usize = 16;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Kefu(Child);

impl Drop for Kefu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start(db: &Path, port: u16, http: &reqwest::Client) -> Kefu {
    let child = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args([
            "serve",
            "--no-demo",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-token",
            ADMIN,
        ])
        .arg("--database-url")
        .arg(db)
        .env_remove("KEFU_NO_DEMO")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kefu serve");
    let kefu = Kefu(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let health = http
            .get(format!("http://127.0.0.1:{port}/kefu/v1/health"))
            .send()
            .await;
        if health.is_ok_and(|r| r.status().is_success()) {
            return kefu;
        }
        assert!(Instant::now() < deadline, "kefu did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn token(http: &reqwest::Client, base: &str) -> String {
    let answer: Value = http
        .get(format!(
            "{base}/cgi-bin/token?grant_type=client_credential&appid={APPID}&secret={SECRET}"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_updates_survive_sigkill() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile_dir();
    let db = dir.join("crash.db");
    let http = reqwest::Client::new();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut kefu = start(&db, port, &http).await;
    let created = http
        .post(format!("{base}/kefu/v1/apps"))
        .bearer_auth(ADMIN)
        .json(&json!({"wechat_id": "crash", "appid": APPID, "secret": SECRET}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let token = token(&http, &base).await;
    for i in 0..ACCOUNTS {
        let body = json!({"kf_account": format!("k{i}@crash"), "nickname": "s0"});
        let answer: Value = http
            .post(format!(
                "{base}/customservice/kfaccount/add?access_token={token}"
            ))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["errcode"], 0);
    }

    // One writer per account, each sending s1, s2, … in order and noting the last
    // sequence number answered 0.
    let acknowledged: Arc<Vec<AtomicU64>> =
        Arc::new((0..ACCOUNTS).map(|_| AtomicU64::new(0)).collect());
    let writers: Vec<_> = (0..ACCOUNTS)
        .map(|i| {
            let (http, acknowledged) = (http.clone(), Arc::clone(&acknowledged));
            let url = format!("{base}/customservice/kfaccount/update?access_token={token}");
            tokio::spawn(async move {
                for seq in 1.. {
                    let body =
                        json!({"kf_account": format!("k{i}@crash"), "nickname": format!("s{seq}")});
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
    tokio::time::sleep(Duration::from_millis(1500)).await;
    kefu.0.kill().expect("SIGKILL");
    let _ = kefu.0.wait();
    for writer in writers {
        let _ = writer.await;
    }
    let acked: Vec<u64> = acknowledged
        .iter()
        .map(|a| a.load(Ordering::SeqCst))
        .collect();
    assert!(acked.iter().sum::<u64>() > 100, "the load ran: {acked:?}");
    drop(kefu);

    // The store opens cleanly and holds every acknowledged update (or the one in flight).
    let _kefu = start(&db, port, &http).await;
    let token = self::token(&http, &base).await;
    let list: Value = http
        .get(format!(
            "{base}/cgi-bin/customservice/getkflist?access_token={token}"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = list["kf_list"].as_array().expect("a list");
    assert_eq!(list.len(), ACCOUNTS);
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
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("kefu-crash-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
