//! `kefu requests`: its filters, and `--follow`, which prints each call as it is made.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::common::{free_port, http, serve, temp_dir};

const ADMIN: &str = "requests-admin-token-0123";

fn kefu(base: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kefu"));
    command
        .arg("requests")
        .args(args)
        .env("KEFU_BASE_URL", base)
        .env("KEFU_ADMIN_TOKEN", ADMIN)
        .stdin(Stdio::null());
    command
}

#[tokio::test]
async fn requests_filter_by_a_pasted_errmsg_and_follow_prints_new_calls() {
    let http = http();
    let dir = temp_dir("requests");
    let db = dir.join("kefu.db");
    let server = serve(db.to_str().unwrap(), free_port(), ADMIN, &[], &http).await;
    let failed = |nickname: &'static str| {
        let (http, base) = (http.clone(), server.base.clone());
        async move {
            let answer: serde_json::Value = http
                .post(format!(
                    "{base}/customservice/kfaccount/update?access_token=nope"
                ))
                .body(format!(r#"{{"kf_account":"a@b","nickname":"{nickname}"}}"#))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            answer["errmsg"].as_str().unwrap().to_owned()
        }
    };
    let first = failed("one").await;
    let rid = kefu_api::Rid::from_errmsg(&first).unwrap().to_string();
    let found = kefu(&server.base, &["--rid", &first]).output().unwrap();
    assert!(found.status.success());
    let shown: serde_json::Value = serde_json::from_slice(&found.stdout).unwrap();
    assert_eq!(shown.as_array().unwrap().len(), 1);
    assert_eq!(shown[0]["rid"], rid.as_str());
    let none = kefu(&server.base, &["--errcode", "0"]).output().unwrap();
    let none: serde_json::Value = serde_json::from_slice(&none.stdout).unwrap();
    assert_eq!(none, serde_json::json!([]));

    let mut follow = kefu(&server.base, &["--follow", "--errcode", "40001"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    // The newest matching call first.
    let old = lines.next().unwrap().unwrap();
    assert!(old.contains(&rid), "{old}");
    // Each new call as it is made (the stream is open once the old ones are shown).
    let second = failed("two").await;
    let new_rid = kefu_api::Rid::from_errmsg(&second).unwrap().to_string();
    let line = lines.next().unwrap().unwrap();
    assert!(line.contains(&new_rid), "{line}");
    assert!(line.contains("/customservice/kfaccount/update"), "{line}");
    assert!(line.contains("40001"), "{line}");
    assert!(line.contains("no such token"), "{line}");
    let _ = follow.kill();
    let _ = follow.wait();
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
