//! Crash consistency: under write load, `kefu serve` is killed with SIGKILL; after a
//! restart on the same file, every update that had been answered errcode 0 is there.

use std::path::Path;
use std::time::Duration;

use crate::common;
use crate::common::{Kefu, free_port};

use serde_json::json;

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
    let load = common::Load::start(&http, &base, &token, "crash", ACCOUNTS).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    kefu.child.kill().expect("SIGKILL");
    let _ = kefu.child.wait();
    let acked = load.finish().await;
    assert!(acked.iter().sum::<u64>() > 100, "the load ran: {acked:?}");
    drop(kefu);

    // The store opens cleanly and holds every acknowledged update (or the one in flight).
    let _kefu = start(&db, durability, port, &http).await;
    let token = self::token(&http, &base).await;
    common::assert_acknowledged(&http, &base, &token, &acked).await;
    let _ = std::fs::remove_dir_all(&dir);
}
