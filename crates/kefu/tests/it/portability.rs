//! `kefu export` and `kefu import` move a deployment from SQLite to PostgreSQL: the
//! document written from a running SQLite server loads into an empty PostgreSQL store,
//! which then serves the same apps (same secrets), accounts and ids; exporting it again
//! gives the same document. Without `KEFU_TEST_POSTGRES_URL` the test says SKIPPED
//! (and fails under CI).

use std::process::{Command, Output, Stdio};

use crate::common;
use crate::common::{Kefu, free_port};
use kefu_store::test_support::PgSchema;
use serde_json::{Value, json};

const ADMIN: &str = "port-admin-token";
const APPID: &str = "wx00000000000000ee";
const SECRET: &str = "PortabilitySecret01";

async fn serve(database_url: &str, http: &reqwest::Client) -> (Kefu, String) {
    let kefu = common::serve(database_url, free_port(), ADMIN, &[], http).await;
    let base = kefu.base.clone();
    (kefu, base)
}

fn kefu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(args)
        .env("KEFU_ADMIN_TOKEN", ADMIN)
        .stdin(Stdio::null())
        .output()
        .expect("run kefu")
}

async fn token(http: &reqwest::Client, base: &str) -> String {
    common::access_token(http, base, APPID, SECRET).await
}

/// Adds a kf account; the errcode.
async fn add(http: &reqwest::Client, base: &str, token: &str, account: &str, nick: &str) -> i64 {
    let answer: Value = http
        .post(format!(
            "{base}/customservice/kfaccount/add?access_token={token}"
        ))
        .json(&json!({"kf_account": account, "nickname": nick}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["errcode"]
        .as_i64()
        .unwrap_or_else(|| panic!("{answer}"))
}

async fn kf_list(http: &reqwest::Client, base: &str, token: &str) -> Value {
    let answer: Value = http
        .get(format!(
            "{base}/cgi-bin/customservice/getkflist?access_token={token}"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["kf_list"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn export_from_sqlite_imports_into_postgres() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let http = common::http();
    let dir = common::temp_dir("port");
    let sqlite = dir.join("kefu.db");
    let document = dir.join("export.json");

    let (server, base) = serve(sqlite.to_str().unwrap(), &http).await;
    let created = http
        .post(format!("{base}/kefu/v1/apps"))
        .bearer_auth(ADMIN)
        .json(
            &json!({"wechat_id": "port", "appid": APPID, "secret": SECRET,
                      "banned_apis": ["/customservice/kfaccount/inviteworker"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let sqlite_token = token(&http, &base).await;
    for (account, nick) in [("a@port", "甲"), ("b@port", "乙"), ("c@port", "丙")] {
        assert_eq!(add(&http, &base, &sqlite_token, account, nick).await, 0);
    }
    let before = kf_list(&http, &base, &sqlite_token).await;

    // From the running server, through its admin API.
    let out = kefu(&[
        "export",
        "--base-url",
        &base,
        "-o",
        document.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(server);

    // Into an empty PostgreSQL store, directly.
    let out = kefu(&[
        "import",
        document.to_str().unwrap(),
        "--database-url",
        schema.url(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("imported 1 apps, 3 kf accounts"));
    // A second import is refused: the store is no longer empty.
    let again = kefu(&[
        "import",
        document.to_str().unwrap(),
        "--database-url",
        schema.url(),
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    // The PostgreSQL server serves the same app (same secret), accounts and ids.
    let (server, base) = serve(schema.url(), &http).await;
    let pg_token = token(&http, &base).await;
    assert_eq!(kf_list(&http, &base, &pg_token).await, before);
    assert_eq!(add(&http, &base, &pg_token, "d@port", "丁").await, 0);
    let after = kf_list(&http, &base, &pg_token).await;
    assert_eq!(
        after[3]["kf_id"], 2004,
        "ids continue where SQLite left them"
    );
    drop(server);

    // Round trip: PostgreSQL's export is SQLite's plus the new account.
    let out = kefu(&["export", "--database-url", schema.url()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut from_pg: Value = serde_json::from_slice(&out.stdout).unwrap();
    let from_sqlite: Value =
        serde_json::from_str(&std::fs::read_to_string(&document).unwrap()).unwrap();
    let accounts = from_pg["apps"][0]["kf_accounts"].as_array_mut().unwrap();
    assert_eq!(accounts.pop().unwrap()["kf_account"], "d@port");
    from_pg["apps"][0]["next_kf_id"] = json!(2004);
    assert_eq!(from_pg, from_sqlite);
    assert_eq!(
        from_sqlite["apps"][0]["settings"]["banned_apis"],
        json!(["/customservice/kfaccount/inviteworker"])
    );
    let _ = std::fs::remove_dir_all(&dir);
}
