//! `kefu serve` as a process keeps secrets to itself: an AppSecret sent under every
//! spelling of its key, and the access tokens it hands out, reach neither its standard
//! output nor its standard error nor its files; it refuses an admin token too short to
//! guard them; it raises its soft open-file limit to the hard one; and when it must
//! answer `-1 system error`, its log names the cause under the rid the client got.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::common;
use crate::common::{free_port, http, temp_dir};
use serde_json::{Value, json};

const ADMIN: &str = "secrets-admin-token-0123456789";
const SECRET: &str = "Pr0cessS3cr3t0123456789Xy";

/// A `kefu serve` whose output goes to files; killed when dropped.
struct Served {
    child: Child,
    base: String,
    dir: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `kefu serve` command, its store in `dir/data`; `soft_nofile` starts it under a
/// shell that lowered the soft open-file limit first.
fn command(dir: &Path, port: u16, admin: &str, soft_nofile: Option<u64>) -> Command {
    let bin = env!("CARGO_BIN_EXE_kefu");
    let mut command = match soft_nofile {
        Some(limit) => {
            let mut sh = Command::new("sh");
            sh.arg("-c")
                .arg(format!("ulimit -Sn {limit} && exec \"$0\" \"$@\""))
                .arg(bin);
            sh
        }
        None => Command::new(bin),
    };
    std::fs::create_dir_all(dir.join("data")).unwrap();
    command
        .args(["serve", "--no-demo"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--database-url")
        .arg(dir.join("data").join("kefu.db"))
        .env("KEFU_ADMIN_TOKEN", admin)
        .env("RUST_LOG", "debug")
        .env_remove("KEFU_NO_DEMO")
        .env_remove("KEFU_LISTEN")
        .env_remove("KEFU_DATABASE_URL")
        .stdin(Stdio::null());
    command
}

async fn start(name: &str, soft_nofile: Option<u64>) -> Served {
    let dir = temp_dir(name);
    let port = free_port();
    let child = command(&dir, port, ADMIN, soft_nofile)
        .stdout(std::fs::File::create(dir.join("stdout.txt")).unwrap())
        .stderr(std::fs::File::create(dir.join("stderr.txt")).unwrap())
        .spawn()
        .expect("spawn kefu serve");
    let served = Served {
        child,
        base: format!("http://127.0.0.1:{port}"),
        dir,
    };
    let client = http();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let health = client
            .get(format!("{}/kefu/v1/health", served.base))
            .send()
            .await;
        if health.is_ok_and(|r| r.status().is_success()) {
            return served;
        }
        assert!(
            Instant::now() < deadline,
            "kefu did not start: {}",
            std::fs::read_to_string(served.dir.join("stderr.txt")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits up to `limit` for the process to exit.
fn wait_for_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kefu did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every file under `dir`, with its bytes.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            files.push((path, bytes));
        }
    }
    files
}

fn rid_of(answer: &Value) -> String {
    let errmsg = answer["errmsg"].as_str().unwrap_or_default();
    kefu_api::Rid::from_errmsg(errmsg)
        .unwrap_or_else(|| panic!("no rid in {answer}"))
        .to_string()
}

#[tokio::test]
async fn no_secret_and_no_whole_token_reaches_the_output_or_the_files_of_kefu_serve() {
    let client = http();
    let mut served = start("secrets", None).await;
    let base = served.base.clone();
    let created: kefu_api::admin::CreatedApp = {
        let response = client
            .post(format!("{base}/kefu/v1/apps"))
            .bearer_auth(ADMIN)
            .json(&json!({"wechat_id": "leaky", "secret": SECRET}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    };
    let appid = created.app.appid;
    let token = common::access_token(&client, &base, &appid, SECRET).await;

    let get = |path: String| {
        let client = client.clone();
        let url = format!("{base}{path}");
        async move {
            let answer: Value = client.get(url).send().await.unwrap().json().await.unwrap();
            answer
        }
    };
    let post = |path: String, body: String| {
        let client = client.clone();
        let url = format!("{base}{path}");
        async move {
            let answer: Value = client
                .post(url)
                .body(body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            answer
        }
    };

    let mut tokens = vec![token.clone()];
    let mut stable_tokens = Vec::new();
    let mut failed = Vec::new();
    // The secret in the query, under every spelling of its key.
    for key in [
        "secret",
        "secr%65t",
        "%73ecret",
        "SECRET",
        "SeCrEt",
        "secret+",
        "%20secret",
    ] {
        let answer = get(format!(
            "/cgi-bin/token?grant_type=client_credential&appid={appid}&{key}={SECRET}"
        ))
        .await;
        match answer["access_token"].as_str() {
            Some(minted) => tokens.push(minted.to_owned()),
            None => failed.push(rid_of(&answer)),
        }
    }
    // The same on calls that fail (the only ones written to the database): an appid
    // that is no app's (40013).
    const NO_APP: &str = "wx00000000000000ff";
    for key in ["secret", "secr%65t", "%73ecret", "SECR%45T"] {
        let answer = get(format!(
            "/cgi-bin/token?grant_type=client_credential&appid={NO_APP}&{key}={SECRET}"
        ))
        .await;
        assert!(answer["access_token"].is_null(), "{answer}");
        failed.push(rid_of(&answer));
    }
    // In a JSON body, under every spelling, at any depth.
    let escaped = [
        "secret",
        r"secr\u0065t",
        r"\u0073\u0065\u0063\u0072\u0065\u0074",
        r"SECR\u0045T",
        "SECRET",
        " secret ",
    ];
    for (appid, key) in escaped
        .iter()
        .map(|key| (appid.as_str(), key))
        .chain(escaped.iter().map(|key| (NO_APP, key)))
    {
        let answer = post(
            "/cgi-bin/stable_token".to_owned(),
            format!(r#"{{"grant_type":"client_credential","appid":"{appid}","{key}":"{SECRET}"}}"#),
        )
        .await;
        match answer["access_token"].as_str() {
            Some(stable) => stable_tokens.push(stable.to_owned()),
            None => failed.push(rid_of(&answer)),
        }
    }
    let answer = post(
        "/cgi-bin/clear_quota/v2".to_owned(),
        format!(r#"{{"appid":"{appid}","app\u0073ecret":"{SECRET}"}}"#),
    )
    .await;
    assert!(answer["errcode"].is_i64(), "{answer}");
    // The token, in the query under several spellings and in a body, on failing calls
    // (written to the database) and on good ones.
    let nested = format!(
        r#"{{"kf_account":"nobody@leaky","nickname":"n","access_token":"{token}",
            "more":[{{"Pass\u0077ord":"{SECRET}","refresh":{{"t":"{token}"}}}}]}}"#
    );
    let mut owned = None;
    for key in ["access_token", "access_tok%65n", "ACCESS_TOKEN"] {
        let answer = post(
            format!("/customservice/kfaccount/update?{key}={token}"),
            nested.clone(),
        )
        .await;
        assert_ne!(answer["errcode"], 0, "{answer}");
        failed.push(rid_of(&answer));
        if key == "access_token" {
            owned = Some(rid_of(&answer));
        }
    }
    let answer = post(
        format!("/customservice/kfaccount/update?access_token={token}"),
        format!(r#"{{"kf_account":"nobody@leaky","nickname":"n","Pass\u0077ord":"{SECRET}"}}"#),
    )
    .await;
    assert_eq!(answer["errcode"], 65401, "{answer}");
    failed.push(rid_of(&answer));
    let list = get(format!(
        "/cgi-bin/customservice/getkflist?access_token={token}"
    ))
    .await;
    assert!(list["kf_list"].is_array(), "{list}");
    let rid_get = post(
        format!("/cgi-bin/openapi/rid/get?access_token={token}"),
        json!({ "rid": owned.expect("the app's own failed call") }).to_string(),
    )
    .await;
    assert_eq!(rid_get["errcode"], 0, "{rid_get}");
    assert!(!rid_get.to_string().contains(SECRET) && !rid_get.to_string().contains(&token));
    assert!(
        tokens.len() >= 3,
        "secret= and secr%65t= minted tokens: {tokens:?}"
    );
    assert!(
        !stable_tokens.is_empty(),
        "secret and its escapes minted a stable token"
    );
    assert!(failed.len() >= 20, "{failed:?}");

    // Stop it as an operator would: SIGTERM; it writes what it holds and exits.
    let pid = served.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = wait_for_exit(&mut served.child, Duration::from_secs(20));
    assert!(status.success(), "kefu serve exited with {status}");

    let stdout = std::fs::read_to_string(served.dir.join("stdout.txt")).unwrap();
    let stderr = std::fs::read_to_string(served.dir.join("stderr.txt")).unwrap();
    assert!(stdout.contains("serving"), "{stdout}");
    assert!(
        stderr.contains("shutting down"),
        "the logs were captured: {stderr}"
    );
    for (name, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        assert!(!text.contains(SECRET), "the secret is in {name}");
        assert!(!text.contains(ADMIN), "the admin token is in {name}");
        for token in tokens.iter().chain(&stable_tokens) {
            assert!(!text.contains(token.as_str()), "a whole token is in {name}");
        }
    }
    let files = files_under(&served.dir.join("data"));
    let all: Vec<u8> = files.iter().flat_map(|(_, bytes)| bytes.clone()).collect();
    let all = String::from_utf8_lossy(&all);
    for rid in &failed {
        assert!(
            all.contains(rid.as_str()),
            "the failed call {rid} was written"
        );
    }
    for (path, bytes) in &files {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            !text.contains(SECRET),
            "the secret is in {}",
            path.display()
        );
        // Tokens from /cgi-bin/token are kept as hashes (only the current stable token is
        // kept whole, by design).
        for token in &tokens {
            assert!(
                !text.contains(token.as_str()),
                "a whole token is in {}",
                path.display()
            );
        }
    }
    let _ = std::fs::remove_dir_all(&served.dir);
}

#[tokio::test]
async fn kefu_serve_refuses_an_admin_token_shorter_than_16_characters() {
    for (how, short) in [("flag", "abc123xyz"), ("env", "fifteen-chars15")] {
        assert!(short.chars().count() < 16);
        let dir = temp_dir("short-admin");
        let port = free_port();
        let mut command = command(&dir, port, "", None);
        if how == "flag" {
            command
                .env_remove("KEFU_ADMIN_TOKEN")
                .args(["--admin-token", short]);
        } else {
            command.env("KEFU_ADMIN_TOKEN", short);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = wait_for_exit(&mut child, Duration::from_secs(15));
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!status.success(), "{how}: a short admin token was accepted");
        assert!(
            stderr.contains("at least 16 characters"),
            "{how}: the refusal says why: {stderr:?}"
        );
        assert!(
            !stderr.contains(short),
            "{how}: the refusal repeats the token"
        );
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "{how}: nothing listens"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    // Sixteen characters are enough.
    let dir = temp_dir("long-admin");
    let port = free_port();
    let sixteen = "sixteen-chars-16";
    assert_eq!(sixteen.chars().count(), 16);
    let child = command(&dir, port, sixteen, None)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let served = Served {
        child,
        base: format!("http://127.0.0.1:{port}"),
        dir: dir.clone(),
    };
    let client = http();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Ok(response) = client
            .get(format!("{}/kefu/v1/apps", served.base))
            .bearer_auth(sixteen)
            .send()
            .await
        {
            break response.status();
        }
        assert!(Instant::now() < deadline, "kefu did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status, 200);
    drop(served);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The soft and hard "Max open files" of a `/proc/<pid>/limits` text.
fn open_files(limits: &str) -> (String, String) {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap_or_else(|| panic!("no open-file limit in {limits}"));
    let mut fields = line["Max open files".len()..].split_whitespace();
    (
        fields.next().unwrap().to_owned(),
        fields.next().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn kefu_serve_raises_its_soft_open_file_limit_to_the_hard_limit() {
    const LOW: u64 = 1024;
    let (_, hard) = open_files(&std::fs::read_to_string("/proc/self/limits").unwrap());
    if hard.parse::<u64>().is_ok_and(|hard| hard <= LOW) {
        eprintln!("SKIPPED: the hard open-file limit ({hard}) is not above {LOW}");
        return;
    }
    // The shell really starts its child with the lower soft limit.
    let shown = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -Sn {LOW} && exec cat /proc/self/limits"))
        .output()
        .unwrap();
    assert_eq!(
        open_files(&String::from_utf8_lossy(&shown.stdout)),
        (LOW.to_string(), hard.clone())
    );

    let served = start("nofile", Some(LOW)).await;
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", served.child.id())).unwrap();
    let (soft, child_hard) = open_files(&limits);
    assert_eq!(child_hard, hard, "{limits}");
    assert_eq!(
        soft, hard,
        "the soft limit was raised to the hard one: {limits}"
    );
    let dir = served.dir.clone();
    drop(served);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_system_error_is_logged_with_its_rid_and_its_cause() {
    let client = http();
    let served = start("system-error", None).await;
    let base = served.base.clone();
    let created: kefu_api::admin::CreatedApp = client
        .post(format!("{base}/kefu/v1/apps"))
        .bearer_auth(ADMIN)
        .json(&json!({"wechat_id": "broken", "secret": SECRET}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = common::access_token(&client, &base, &created.app.appid, SECRET).await;
    // Break the store under the running server: its accounts' table goes.
    let db = rusqlite::Connection::open(served.dir.join("data").join("kefu.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute_batch("DROP TABLE kf_accounts").unwrap();
    let answer: Value = client
        .post(format!(
            "{base}/customservice/kfaccount/add?access_token={token}"
        ))
        .body(r#"{"kf_account":"a@broken","nickname":"a"}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["errcode"], -1, "{answer}");
    let rid = rid_of(&answer);
    // The log line may take a moment to reach the file.
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let stderr = std::fs::read_to_string(served.dir.join("stderr.txt")).unwrap();
        let stdout = std::fs::read_to_string(served.dir.join("stdout.txt")).unwrap();
        if let Some(line) = stderr
            .lines()
            .chain(stdout.lines())
            .find(|line| line.contains(&rid) && line.contains("system error"))
        {
            break line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no log line names {rid}:\n{stderr}{stdout}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(line.contains("no such table: kf_accounts"), "{line}");
    // Told once.
    let stderr = std::fs::read_to_string(served.dir.join("stderr.txt")).unwrap();
    assert_eq!(stderr.matches(rid.as_str()).count(), 1, "{stderr}");
    assert!(line.contains("/customservice/kfaccount/add"), "{line}");
    assert!(line.contains(&created.app.appid), "{line}");
    // And the request log gives the reason, pointing there.
    let log: Value = client
        .get(format!("{base}/kefu/v1/requests?limit=100"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entry = log
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["rid"] == rid.as_str())
        .unwrap_or_else(|| panic!("{rid} not in {log}"));
    assert!(
        entry["reason"].as_str().unwrap().contains("server's log"),
        "{entry}"
    );
}
