//! `kefu serve` as a CI job and a service manager run it: a configuration file, a wait
//! on `kefu healthcheck`, load, SIGTERM (drained, counted calls flushed, exit 0), a
//! restart on the same store; the shutdown timeout; logs as JSON at the level of
//! `KEFU_LOG`; shell completions.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Load, assert_acknowledged, free_port, http, post_json, temp_dir};

const ADMIN: &str = "service-admin-token-0123456789";
const ACCOUNTS: usize = 4;

fn kefu(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kefu"));
    command.args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("KEFU_") || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command
}

/// A server process, killed if a failed assertion leaves it running.
struct Served(Option<Child>);

impl Served {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("running")
    }

    /// The process, no longer killed when this is dropped.
    fn take(mut self) -> Child {
        self.0.take().expect("running")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `kefu serve --config FILE`, the admin token in the variable the file names.
fn serve(config: &Path) -> Served {
    Served(Some(
        kefu(&["serve", "--config", config.to_str().unwrap()])
            .env("CI_KEFU_ADMIN", ADMIN)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn kefu serve"),
    ))
}

/// Waits until `kefu healthcheck --config FILE` exits 0, as a CI job would (in the same
/// environment as the server).
fn wait_healthy(config: &Path, served: &mut Served) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kefu(&["healthcheck", "--config", config.to_str().unwrap()])
        .env("CI_KEFU_ADMIN", ADMIN)
        .output()
        .unwrap()
        .status
        .success()
    {
        assert!(
            served.child().try_wait().unwrap().is_none(),
            "kefu serve exited"
        );
        assert!(Instant::now() < deadline, "never healthy");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sigterm(served: &mut Served) {
    let status = Command::new("kill")
        .args(["-TERM", &served.child().id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the process to exit (bounded far above what it should take).
async fn exit_code(mut child: Child) -> Option<i32> {
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("kefu did not exit");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ci_job_starts_loads_stops_with_sigterm_and_restarts_on_the_same_store() {
    let dir = temp_dir("service");
    let (port, metrics_port) = (free_port(), free_port());
    let base = format!("http://127.0.0.1:{port}");
    let config = dir.join("kefu.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\ndatabase_url = \"kefu.db\"\n\
             admin_token = {{ env = \"CI_KEFU_ADMIN\" }}\nno_demo = true\n\
             metrics_listen = \"127.0.0.1:{metrics_port}\"\n"
        ),
    )
    .unwrap();
    let mut served = serve(&config);
    wait_healthy(&config, &mut served);

    let client = http();
    let created: Value = client
        .post(format!("{base}/kefu/v1/apps"))
        .bearer_auth(ADMIN)
        .json(&json!({"wechat_id": "ci"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (appid, secret) = (
        created["appid"].as_str().unwrap(),
        created["secret"].as_str().unwrap(),
    );
    let token: Value = client
        .get(format!(
            "{base}/cgi-bin/token?grant_type=client_credential&appid={appid}&secret={secret}"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    // Load: one writer per account, noting the last nickname answered 0.
    let load = Load::start(&client, &base, &token, "ci", ACCOUNTS).await;
    while load.total() < 200 {
        assert!(
            load.writers.iter().any(|w| !w.is_finished()),
            "the load stopped"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The metrics, on their own port without the token and under the admin token:
    // every update answered 0 so far is counted.
    let answered = load.total();
    let updates =
        "kefu_wechat_requests_total{path=\"/customservice/kfaccount/update\",errcode=\"0\"} ";
    for request in [
        client.get(format!("http://127.0.0.1:{metrics_port}/metrics")),
        client
            .get(format!("{base}/kefu/v1/metrics"))
            .bearer_auth(ADMIN),
    ] {
        let text = request.send().await.unwrap().text().await.unwrap();
        let counted: u64 = text
            .lines()
            .find_map(|line| line.strip_prefix(updates))
            .unwrap_or_else(|| panic!("no update counter in\n{text}"))
            .parse()
            .unwrap();
        assert!(
            counted >= answered,
            "{counted} counted, {answered} answered"
        );
    }
    sigterm(&mut served);
    assert_eq!(exit_code(served.take()).await, Some(0), "SIGTERM exits 0");
    let acked = load.finish().await;

    // Restarted on the same store: the same token works, every acknowledged update is
    // there, and every call counted before the stop was written at the stop.
    let mut served = serve(&config);
    wait_healthy(&config, &mut served);
    assert_acknowledged(&client, &base, &token, &acked).await;
    let quota = post_json(
        &client,
        &format!("{base}/cgi-bin/openapi/quota/get?access_token={token}"),
        json!({"cgi_path": "/customservice/kfaccount/update"}),
    )
    .await;
    let used = quota["quota"]["used"].as_u64().unwrap();
    assert!(
        used >= acked.iter().sum::<u64>(),
        "used {used}, acknowledged {acked:?}"
    );
    sigterm(&mut served);
    assert_eq!(exit_code(served.take()).await, Some(0));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shutdown_timeout_bounds_the_drain_and_logs_are_json_at_the_level_asked() {
    let dir = temp_dir("shutdown");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut served = Served(Some(
        kefu(&[
            "serve",
            "--no-demo",
            "--shutdown-timeout",
            "1",
            "--log-format",
            "json",
            "--database-url",
            dir.join("kefu.db").to_str().unwrap(),
        ])
        .env("KEFU_LISTEN", format!("127.0.0.1:{port}"))
        .env("KEFU_ADMIN_TOKEN", ADMIN)
        .env("KEFU_LOG", "warn")
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kefu(&["healthcheck", "--listen", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap()
        .status
        .success()
    {
        assert!(
            served.child().try_wait().unwrap().is_none(),
            "kefu serve exited"
        );
        assert!(Instant::now() < deadline, "never healthy");
        std::thread::sleep(Duration::from_millis(50));
    }
    let client = http();
    // A call that takes a minute (the longest a fault rule holds one).
    let added = client
        .post(format!("{base}/kefu/v1/faults"))
        .bearer_auth(ADMIN)
        .json(&json!({"path": "/cgi-bin/token", "errcode": -1, "times": 1, "latency_ms": 60_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    let slow = tokio::spawn({
        let client = client.clone();
        let url = format!(
            "{base}/cgi-bin/token?grant_type=client_credential&appid=wx0123456789abcdef&secret=x"
        );
        async move { client.get(url).send().await.is_ok() }
    });
    // The rule goes once it fired: the call is then in flight.
    loop {
        let rules: Value = client
            .get(format!("{base}/kefu/v1/faults"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if rules.as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stderr = served.child().stderr.take().unwrap();
    sigterm(&mut served);
    assert_eq!(exit_code(served.take()).await, Some(0));
    assert!(!slow.await.unwrap(), "the slow call was cut, not answered");

    let logged = std::io::read_to_string(stderr).unwrap();
    let lines: Vec<Value> = logged
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    assert!(
        lines
            .iter()
            .all(|line| line["level"] != "INFO" && line["level"] != "DEBUG"),
        "KEFU_LOG=warn wins over RUST_LOG: {logged}"
    );
    assert!(
        lines.iter().any(|line| line["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("after the shutdown timeout"))),
        "{logged}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let out = kefu(&["completions", shell]).output().unwrap();
        assert!(out.status.success());
        let script = String::from_utf8(out.stdout).unwrap();
        for word in ["serve", "healthcheck", "config", "shutdown-timeout"] {
            assert!(script.contains(word), "{shell}: {word}");
        }
        if shell == "bash" {
            let mut check = Command::new("bash")
                .arg("-n")
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            std::io::Write::write_all(&mut check.stdin.take().unwrap(), script.as_bytes()).unwrap();
            assert!(check.wait().unwrap().success(), "bash -n");
        }
    }
}
