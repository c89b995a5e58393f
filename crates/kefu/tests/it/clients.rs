//! Clients of a real `kefu serve`: unmodified third-party WeChat client libraries, and
//! kefu's own `kefu app` commands.
//!
//! Each test starts `kefu serve` on a fresh store with the demo app, on free ports, and runs
//! one driver script from `tests/clients/` (workspace root) against its HTTPS listener. The
//! libraries hard-code `https://api.weixin.qq.com`; the drivers redirect that host to kefu the
//! way users do (a hosts-file stand-in) and trust kefu's generated certificate, so TLS
//! verification stays on. Each driver goes through the kf account calls, then a
//! conversation: a simulated fan (made and moved through kefu's admin API) writes in, and
//! the library replies up to the window's limit, opens and closes a session and reads the
//! history with its own methods.
//!
//! The libraries are installed outside cargo:
//!
//! ```text
//! pip install -r tests/clients/requirements.txt     # wechatpy
//! npm ci --prefix tests/clients                      # co-wechat-api, wechat-api
//! ```
//!
//! Missing libraries skip the test with a loud `SKIPPED` line, unless the `CI` environment
//! variable is set: then the test fails. `PYTHON` and `NODE` choose the interpreters
//! (default `python3`, `node`).

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long `kefu serve` may take to print its banner.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one driver script may run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

fn clients_dir() -> PathBuf {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/clients"));
    dir.canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

/// Skips (locally) or fails (in CI) when a client library is not installed.
/// Returns `true` when the test should go on.
fn require(available: Result<(), String>, what: &str, install: &str) -> bool {
    kefu_store::test_support::service_or_skip(
        what,
        available,
        &format!("install it with: {install}"),
    )
}

/// A unique scratch directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!(
            "kefu-clients-{name}-{}-{nanos}",
            std::process::id()
        ));
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// What `kefu serve` printed that the drivers need.
#[derive(Debug, Default)]
struct Banner {
    http_base: Option<String>,
    admin_token: Option<String>,
    https_port: Option<u16>,
    cert: Option<PathBuf>,
    appid: Option<String>,
    secret: Option<String>,
    wechat_id: Option<String>,
}

impl Banner {
    fn complete(&self) -> bool {
        self.http_base.is_some()
            && self.admin_token.is_some()
            && self.https_port.is_some()
            && self.cert.is_some()
            && self.appid.is_some()
            && self.secret.is_some()
            && self.wechat_id.is_some()
    }

    /// Reads one stdout line of `kefu serve`.
    fn read(&mut self, line: &str) {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("HTTP:") {
            self.http_base = Some(rest.trim().to_owned());
        } else if let Some(rest) = line.strip_prefix("admin token (generated") {
            self.admin_token = rest
                .rsplit_once("): ")
                .map(|(_, token)| token.trim().to_owned());
        } else if let Some(rest) = line.strip_prefix("HTTPS:") {
            // "HTTPS:  https://127.0.0.1:18443  (certificate: /x/kefu-tls/cert.pem, self-signed
            // for ...)"
            let rest = rest.trim();
            let url = rest.split_whitespace().next().unwrap_or_default();
            self.https_port = url
                .rsplit(':')
                .next()
                .and_then(|p| p.trim_end_matches('/').parse().ok());
            if let Some(start) = rest.find("(certificate: ") {
                let cert = &rest[start + "(certificate: ".len()..];
                let end = cert
                    .find(", self-signed")
                    .or_else(|| cert.rfind(')'))
                    .unwrap_or(cert.len());
                self.cert = Some(PathBuf::from(&cert[..end]));
            }
        } else if let Some(v) = line.strip_prefix("appid:") {
            self.appid = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("secret:") {
            self.secret = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("WeChat ID:") {
            self.wechat_id = v.split_whitespace().next().map(str::to_owned);
        }
    }
}

/// A running `kefu serve`; killed (and its store removed) on drop, also when a test panics.
struct Server {
    child: Child,
    http_base: String,
    admin_token: String,
    stderr_path: PathBuf,
    https_port: u16,
    cert: PathBuf,
    appid: String,
    secret: String,
    wechat_id: String,
    // Dropped last: the directory goes after the process that uses it.
    dir: TempDir,
}

impl Server {
    fn start(name: &str) -> Self {
        let dir = TempDir::new(name);
        let stderr_path = dir.0.join("kefu.stderr");
        let stderr = File::create(&stderr_path).expect("create the server's stderr file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_kefu"));
        command
            .arg("serve")
            .arg("--database-url")
            .arg(dir.0.join("k.db"))
            .args(["--listen", "127.0.0.1:0", "--https-listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        // The flags above must win over a developer's KEFU_* settings (e.g. KEFU_NO_DEMO).
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("KEFU_") {
                command.env_remove(key);
            }
        }
        let mut child = command.spawn().expect("spawn kefu serve");
        let stdout = child.stdout.take().expect("piped stdout");

        // A reader thread: forwards lines while we wait for the banner, then keeps draining
        // stdout so the server never blocks on a full pipe.
        let (tx, rx) = mpsc::channel::<String>();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });

        let mut banner = Banner::default();
        let mut seen = Vec::new();
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let failure = loop {
            if banner.complete() {
                break None;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    banner.read(&line);
                    seen.push(line);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    break Some(format!("no complete banner within {STARTUP_TIMEOUT:?}"));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    break Some("kefu serve closed its stdout (exited?)".to_owned());
                }
            }
        };
        let mut server = Self {
            child,
            http_base: banner.http_base.clone().unwrap_or_default(),
            admin_token: banner.admin_token.clone().unwrap_or_default(),
            stderr_path,
            https_port: banner.https_port.unwrap_or_default(),
            cert: banner.cert.clone().unwrap_or_default(),
            appid: banner.appid.clone().unwrap_or_default(),
            secret: banner.secret.clone().unwrap_or_default(),
            wechat_id: banner.wechat_id.clone().unwrap_or_default(),
            dir,
        };
        if let Some(why) = failure {
            let status = server.child.try_wait().ok().flatten();
            panic!(
                "kefu serve did not start: {why}; exit status {status:?}; parsed {banner:?}\n\
                 --- stdout ---\n{}\n--- stderr ---\n{}",
                seen.join("\n"),
                server.stderr()
            );
        }
        assert!(
            server.cert.is_file(),
            "certificate {} (from the HTTPS line) does not exist",
            server.cert.display()
        );
        server
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Runs a driver with a time limit; returns its status and combined output.
    fn run(&self, name: &str, command: &mut Command) -> (ExitStatus, String) {
        let out_path = self.dir.0.join(format!("{name}.out"));
        let out = File::create(&out_path).expect("create the script output file");
        let err = out.try_clone().expect("clone the output file handle");
        let mut child = command
            .current_dir(clients_dir())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
        let deadline = Instant::now() + SCRIPT_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for the script") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{name} did not finish within {SCRIPT_TIMEOUT:?}; output so far:\n{}\n--- \
                        kefu stderr ---\n{}",
                    fs::read_to_string(&out_path).unwrap_or_default(),
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(50));
        };
        (status, fs::read_to_string(&out_path).unwrap_or_default())
    }

    fn check(&self, name: &str, status: ExitStatus, output: &str) {
        // Shown by the test harness on failure, or always with --nocapture.
        println!("--- {name} ---\n{output}");
        assert!(
            status.success(),
            "{name} failed ({status}):\n{output}\n--- kefu stderr ---\n{}",
            self.stderr()
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn node() -> String {
    std::env::var("NODE").unwrap_or_else(|_| "node".to_owned())
}

fn probe(command: &mut Command) -> Result<(), String> {
    match command.stdin(Stdio::null()).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("failed")
            .to_owned()),
        Err(e) => Err(format!("{:?}: {e}", command.get_program())),
    }
}

#[test]
fn wechatpy_completes_the_kf_flow() {
    let available = probe(Command::new(python()).args(["-c", "import wechatpy, requests"]));
    if !require(
        available,
        "wechatpy",
        "pip install -r tests/clients/requirements.txt",
    ) {
        return;
    }
    let server = Server::start("wechatpy");
    let (status, output) = server.run(
        "wechatpy_flow.py",
        Command::new(python())
            .arg(clients_dir().join("wechatpy_flow.py"))
            .arg("--port")
            .arg(server.https_port.to_string())
            .arg("--cert")
            .arg(&server.cert)
            .args(["--appid", &server.appid, "--secret", &server.secret])
            .args(["--wechat-id", &server.wechat_id])
            .args(["--admin-url", &server.http_base])
            // `=`: a generated token may begin with `-`, which a parser takes for a flag.
            .arg(format!("--admin-token={}", server.admin_token))
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONIOENCODING", "utf-8"),
    );
    server.check("wechatpy_flow.py", status, &output);
}

#[test]
fn node_clients_complete_the_kf_flow() {
    let modules = clients_dir().join("node_modules");
    let available = probe(Command::new(node()).arg("--version")).and_then(|()| {
        ["co-wechat-api", "wechat-api"]
            .iter()
            .find(|m| !modules.join(m).join("package.json").is_file())
            .map_or(Ok(()), |m| {
                Err(format!("{} missing", modules.join(m).display()))
            })
    });
    if !require(
        available,
        "node with co-wechat-api and wechat-api",
        "npm ci --prefix tests/clients",
    ) {
        return;
    }
    let server = Server::start("node");
    let (status, output) = server.run(
        "node_flow.js",
        Command::new(node())
            .arg("--require")
            .arg(clients_dir().join("redirect_preload.js"))
            .arg(clients_dir().join("node_flow.js"))
            .arg("--port")
            .arg(server.https_port.to_string())
            .arg("--cert")
            .arg(&server.cert)
            .args(["--appid", &server.appid, "--secret", &server.secret])
            .args(["--wechat-id", &server.wechat_id, "--lib", "all"])
            .args(["--admin-url", &server.http_base])
            // `=`: a generated token may begin with `-`, which a parser takes for a flag.
            .arg(format!("--admin-token={}", server.admin_token))
            .env("NODE_EXTRA_CA_CERTS", &server.cert)
            .env("KEFU_HTTPS_PORT", server.https_port.to_string()),
    );
    server.check("node_flow.js", status, &output);
}

/// Runs `kefu <args…>` against the server; answers (success, stdout, stderr).
fn kefu(server: &Server, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(args)
        .env("KEFU_BASE_URL", &server.http_base)
        .env("KEFU_ADMIN_TOKEN", &server.admin_token)
        .stdin(Stdio::null())
        .output()
        .expect("run kefu");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs `kefu app …`.
fn kefu_app(server: &Server, args: &[&str]) -> (bool, String, String) {
    kefu(server, &[&["app"], args].concat())
}

#[test]
fn kefu_app_commands_manage_apps() {
    let server = Server::start("cli");
    let (ok, out, err) = kefu_app(
        &server,
        &[
            "create",
            "--wechat-id",
            "clishop",
            "--account-type",
            "subscription",
        ],
    );
    assert!(ok, "{err}");
    let created: serde_json::Value = serde_json::from_str(&out).expect("create prints JSON");
    let appid = created["appid"].as_str().unwrap().to_owned();
    assert_eq!(created["account_type"], "subscription");
    assert_eq!(created["secret"].as_str().unwrap().len(), 32);

    let (ok, table, err) = kefu_app(&server, &["list"]);
    assert!(ok, "{err}");
    assert!(table.starts_with("APPID"), "{table}");
    assert!(
        table.contains(&appid) && table.contains(&server.appid),
        "{table}"
    );
    assert!(
        !table.contains(created["secret"].as_str().unwrap()),
        "list never shows secrets"
    );

    let (ok, out, err) = kefu_app(
        &server,
        &["update", &appid, "--verified", "false", "--json"],
    );
    assert!(ok, "{err}");
    let updated: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(updated["verified"], false);

    let (ok, out, err) = kefu_app(&server, &["secret", &appid]);
    assert!(ok, "{err}");
    let rotated: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_ne!(rotated["secret"], created["secret"]);

    let (ok, _, err) = kefu_app(&server, &["delete", &appid]);
    assert!(ok, "{err}");
    let (ok, _, err) = kefu_app(&server, &["get", &appid]);
    assert!(!ok, "a deleted app is gone");
    assert!(err.contains("404") && err.contains("not_found"), "{err}");

    // Failures are a non-zero exit with the server's reason.
    let (ok, _, err) = kefu_app(&server, &["create", "--wechat-id", "bad id"]);
    assert!(!ok);
    assert!(err.contains("invalid_wechat_id"), "{err}");
    let output = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args([
            "app",
            "list",
            "--admin-token",
            "wrong",
            "--base-url",
            &server.http_base,
        ])
        .env_remove("KEFU_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("401"));
}

/// Runs `kefu <args…>` against the server and parses its JSON output.
fn kefu_json(server: &Server, args: &[&str]) -> serde_json::Value {
    let (ok, stdout, stderr) = kefu(server, args);
    assert!(ok, "kefu {args:?}: {stderr}");
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("kefu {args:?} printed {stdout:?}: {e}"))
}

#[test]
fn kefu_sim_and_component_commands() {
    let server = Server::start("sim");
    let clock = kefu_json(&server, &["sim", "clock", "--advance", "60"]);
    assert_eq!(clock["offset_secs"], 60);

    let rule = kefu_json(
        &server,
        &[
            "sim",
            "fault",
            "add",
            "/customservice/kfaccount/add",
            "--errcode",
            "-1",
            "--times",
            "2",
            "--applied",
        ],
    );
    assert_eq!(rule["errcode"], -1);
    assert_eq!(rule["remaining"], 2);
    assert_eq!(rule["applied"], true);
    let rules = kefu_json(&server, &["sim", "fault", "list"]);
    assert_eq!(rules.as_array().unwrap().len(), 1);
    let id = rule["id"].as_u64().unwrap().to_string();
    let (ok, out, err) = kefu(&server, &["sim", "fault", "rm", &id]);
    assert!(ok && out.trim() == "done", "{out}{err}");
    assert_eq!(
        kefu_json(&server, &["sim", "fault", "list"]),
        serde_json::json!([])
    );

    let platform = kefu_json(&server, &["component", "add"]);
    let component = platform["component_appid"].as_str().unwrap().to_owned();
    assert!(platform["secret"].is_string());
    let ticket = kefu_json(&server, &["component", "ticket", &component]);
    assert!(
        ticket["component_verify_ticket"]
            .as_str()
            .unwrap()
            .starts_with("ticket@@@")
    );
    let auth = kefu_json(
        &server,
        &[
            "component",
            "authorize",
            &component,
            &server.appid,
            "--funcscopes",
            "1,19",
        ],
    );
    assert_eq!(auth["funcscopes"], serde_json::json!([1, 19]));
    let list = kefu_json(&server, &["component", "list"]);
    assert_eq!(list[0]["authorizations"][0]["appid"], server.appid.as_str());

    // The request log is empty: nothing has called the WeChat API yet.
    assert_eq!(kefu_json(&server, &["requests"]), serde_json::json!([]));
    let (ok, _, _) = kefu(&server, &["sim", "token", "expire", "no-such-token"]);
    assert!(!ok, "an unknown token is an error");
}

#[test]
fn kefu_kf_and_token_commands_over_the_sdk() {
    let server = Server::start("kf");
    let wechat = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_kefu"))
            .args(args)
            .env("KEFU_BASE_URL", &server.http_base)
            .env("KEFU_APPID", &server.appid)
            .env("KEFU_SECRET", &server.secret)
            .stdin(Stdio::null())
            .output()
            .expect("run kefu");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let account = format!("test1@{}", server.wechat_id);
    let (ok, out, err) = wechat(&["kf", "add", &account, "客服1"]);
    assert!(ok && out.trim() == "ok", "{out}{err}");
    let (ok, out, _) = wechat(&["kf", "add", &account, "客服1"]);
    assert!(!ok && out.is_empty());
    let (ok, _, err) = wechat(&["kf", "update", &account, ""]);
    assert!(!ok);
    assert!(err.contains("errcode 65403"), "{err}");
    let (ok, _, err) = wechat(&["kf", "update", &account, "客服2"]);
    assert!(ok, "{err}");

    let jpeg = server.dir.0.join("head.jpg");
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.extend_from_slice(&[7; 100]);
    fs::write(&jpeg, bytes).unwrap();
    let (ok, _, err) = wechat(&["kf", "avatar", &account, jpeg.to_str().unwrap()]);
    assert!(ok, "{err}");

    let (ok, table, _) = wechat(&["kf", "list"]);
    assert!(ok && table.starts_with("KF_ID"), "{table}");
    assert!(
        table.contains(&account) && table.contains("客服2"),
        "{table}"
    );
    let (ok, out, _) = wechat(&["kf", "list", "--json"]);
    assert!(ok);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["kf_list"][0]["kf_nick"], "客服2");
    assert!(
        list["kf_list"][0]["kf_headimgurl"]
            .as_str()
            .unwrap()
            .ends_with(".jpg")
    );

    let (ok, _, err) = wechat(&["kf", "invite", &account, "worker_one"]);
    assert!(ok, "{err}");
    let (ok, table, _) = wechat(&["kf", "list"]);
    assert!(ok && table.contains("worker_one (waiting)"), "{table}");
    let (ok, out, _) = wechat(&["kf", "online", "--json"]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap(),
        serde_json::json!({"kf_online_list": []})
    );
    let (ok, _, err) = wechat(&["kf", "del", &account]);
    assert!(ok, "{err}");
    let (ok, _, err) = wechat(&["kf", "del", &account]);
    assert!(!ok && err.contains("errcode 65401"), "{err}");

    let (ok, token, _) = wechat(&["token"]);
    assert!(ok && token.trim().len() == 136, "{token}");
    let (ok, out, _) = wechat(&["token", "--stable", "--json"]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["expires_in"],
        7200
    );
    // Without credentials: a clear refusal.
    let output = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(["kf", "list", "--base-url", &server.http_base])
        .env_remove("KEFU_APPID")
        .env_remove("KEFU_SECRET")
        .env_remove("KEFU_ACCESS_TOKEN")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("credentials needed"));
}
