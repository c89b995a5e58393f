//! `kefu serve` as a CI job and a service manager run it: a configuration file, a wait
//! on `kefu healthcheck`, load, SIGTERM (drained, counted calls flushed, exit 0), a
//! restart on the same store; the shutdown timeout; logs as JSON at the level of
//! `KEFU_LOG`; shell completions.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{free_port, http, temp_dir};

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

async fn post(client: &reqwest::Client, url: &str, body: Value) -> Value {
    client
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
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
    for i in 0..ACCOUNTS {
        let url = format!("{base}/customservice/kfaccount/add?access_token={token}");
        let added = post(
            &client,
            &url,
            json!({"kf_account": format!("k{i}@ci"), "nickname": "s0"}),
        )
        .await;
        assert_eq!(added["errcode"], 0);
    }

    // Load: one writer per account, noting the last nickname answered 0.
    let acknowledged: Arc<Vec<AtomicU64>> =
        Arc::new((0..ACCOUNTS).map(|_| AtomicU64::new(0)).collect());
    let writers: Vec<_> = (0..ACCOUNTS)
        .map(|i| {
            let (client, acknowledged) = (client.clone(), Arc::clone(&acknowledged));
            let url = format!("{base}/customservice/kfaccount/update?access_token={token}");
            tokio::spawn(async move {
                for seq in 1.. {
                    let body =
                        json!({"kf_account": format!("k{i}@ci"), "nickname": format!("s{seq}")});
                    let Ok(response) = client.post(&url).json(&body).send().await else {
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
    let total = |a: &[AtomicU64]| a.iter().map(|n| n.load(Ordering::SeqCst)).sum::<u64>();
    while total(&acknowledged) < 200 {
        assert!(writers.iter().any(|w| !w.is_finished()), "the load stopped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The metrics, on their own port without the token and under the admin token:
    // every update answered 0 so far is counted.
    let answered = total(&acknowledged);
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
    for writer in writers {
        writer.await.unwrap();
    }
    let acked: Vec<u64> = acknowledged
        .iter()
        .map(|a| a.load(Ordering::SeqCst))
        .collect();

    // Restarted on the same store: the same token works, every acknowledged update is
    // there, and every call counted before the stop was written at the stop.
    let mut served = serve(&config);
    wait_healthy(&config, &mut served);
    let list: Value = client
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
    let quota = post(
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
