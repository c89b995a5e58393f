//! Crash consistency: under write load, `kefu serve` is killed with SIGKILL; after a
//! restart on the same file, every update that had been answered errcode 0 is there.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::common;
use crate::common::{Kefu, free_port};

use serde_json::{Value, json};

const ADMIN: &str = "crash-admin-token";
const APPID: &str = "wx00000000000000cc";
const SECRET: &str = "CrashTestSecret0123";
const ACCOUNTS: usize = 16;

async fn start(db: &Path, durability: &str, port: u16, http: &reqwest::Client) -> Kefu {
    let args = ["--durability", durability];
    common::serve(db.to_str().expect("a UTF-8 path"), port, ADMIN, &args, http).await
}

async fn token(http: &reqwest::Client, base: &str) -> String {
    common::access_token(http, base, APPID, SECRET).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_updates_survive_sigkill() {
    acknowledged_updates_survive_sigkill_with("full").await;
}

/// The writer of `--durability normal` is a task on the server's runtime, and its
/// commits do not wait for the disk: a killed process loses none of them all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_updates_survive_sigkill_with_durability_normal() {
    acknowledged_updates_survive_sigkill_with("normal").await;
}

async fn acknowledged_updates_survive_sigkill_with(durability: &str) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = common::temp_dir(&format!("crash-{durability}"));
    let db = dir.join("crash.db");
    let http = reqwest::Client::new();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut kefu = start(&db, durability, port, &http).await;
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
    kefu.child.kill().expect("SIGKILL");
    let _ = kefu.child.wait();
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
    let _kefu = start(&db, durability, port, &http).await;
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
