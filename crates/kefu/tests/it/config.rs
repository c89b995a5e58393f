//! `kefu serve --config`: the file's `[server]` table under the environment and the
//! flags, its secrets and relative paths, and its mistakes stopping the start with the
//! file, line and what was expected.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{free_port, http, temp_dir};

/// `kefu` with `args`, in `cwd`, with no `KEFU_*` variable but `env`.
fn kefu(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kefu"));
    command.args(args).current_dir(cwd);
    for (key, _) in std::env::vars() {
        if key.starts_with("KEFU_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    command
}

/// A server process, killed when dropped.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(mut command: Command) -> Served {
    Served(
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn kefu serve"),
    )
}

/// Waits until `kefu healthcheck` with these arguments says ready.
fn wait_ready(args: &[&str], cwd: &Path, env: &[(&str, &str)], served: &mut Served) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = kefu(args, cwd, env).output().unwrap();
        if out.status.success() {
            return;
        }
        assert!(
            served.0.try_wait().unwrap().is_none(),
            "kefu serve exited early"
        );
        assert!(Instant::now() < deadline, "never ready: {out:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn apps(base: &str, token: &str) -> reqwest::Response {
    http()
        .get(format!("{base}/kefu/v1/apps"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_fills_what_the_environment_and_flags_leave() {
    let dir = temp_dir("config");
    let elsewhere = temp_dir("config-cwd");
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    std::fs::write(dir.join("admin.txt"), "file-admin-token-0123456789\n").unwrap();
    let config = dir.join("kefu.toml");
    std::fs::write(
        &config,
        format!(
            "# kefu in CI\n[server]\nlisten = \"127.0.0.1:{file_port}\"\n\
             database_url = \"data/kefu.db\"\nadmin_token = {{ file = \"admin.txt\" }}\n\
             no_demo = true\nrequest_log_rows = 1_000\npush_retries = 2\n\
             trusted_proxies = [\"10.0.0.2\"]\n"
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();

    // The file alone: its address, its admin token, its store beside it (not in the
    // working directory), no demo app.
    let mut served = spawn(kefu(&["serve", "--config", config], &elsewhere, &[]));
    wait_ready(
        &["healthcheck", "--config", config],
        &elsewhere,
        &[],
        &mut served,
    );
    let base = format!("http://127.0.0.1:{file_port}");
    let listed = apps(&base, "file-admin-token-0123456789").await;
    assert_eq!(listed.status(), 200);
    assert_eq!(listed.text().await.unwrap(), "[]");
    assert!(dir.join("data/kefu.db").exists());
    assert!(!elsewhere.join("data").exists());
    drop(served);

    // The environment over the file, a flag over the environment; the rest from the
    // file still (the same store, no demo app).
    let env = [
        ("KEFU_CONFIG", config),
        ("KEFU_LISTEN", &*format!("127.0.0.1:{env_port}")),
        ("KEFU_ADMIN_TOKEN", "env-admin-token-0123456789"),
    ];
    let flag = format!("127.0.0.1:{flag_port}");
    let mut served = spawn(kefu(&["serve", "--listen", &flag], &elsewhere, &env));
    wait_ready(
        &["healthcheck", "--listen", &flag],
        &elsewhere,
        &env,
        &mut served,
    );
    let base = format!("http://127.0.0.1:{flag_port}");
    assert_eq!(
        apps(&base, "file-admin-token-0123456789").await.status(),
        401
    );
    let listed = apps(&base, "env-admin-token-0123456789").await;
    assert_eq!(listed.status(), 200);
    assert_eq!(listed.text().await.unwrap(), "[]");
    // Nothing listens where the file or the environment said.
    assert!(std::net::TcpStream::connect(("127.0.0.1", file_port)).is_err());
    assert!(std::net::TcpStream::connect(("127.0.0.1", env_port)).is_err());
    drop(served);
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(elsewhere);
}

#[test]
fn a_mistake_in_the_file_stops_the_start_with_file_line_and_what_was_expected() {
    let dir = temp_dir("config-mistakes");
    let cases = [
        (
            "listen = 8080",
            "server.listen: invalid value '8080'",
            "socket address",
        ),
        (
            "header_timeout = 0",
            "server.header_timeout: invalid value '0'",
            "not in 1..",
        ),
        (
            "durability = \"fast\"",
            "server.durability: invalid value 'fast'",
            "full, normal",
        ),
        (
            "listn = \"x\"",
            "unknown key `listn` in [server]",
            "listen, database_url,",
        ),
        (
            "no_demo = \"yes\"",
            "server.no_demo:",
            "expected true or false",
        ),
        (
            "listen = [\"a\"]",
            "server.listen:",
            "expected a single value",
        ),
        (
            "admin_token = { env = \"KEFU_TEST_UNSET_VARIABLE\" }",
            "server.admin_token:",
            "KEFU_TEST_UNSET_VARIABLE is not set",
        ),
        (
            "admin_token = { file = \"missing.txt\" }",
            "server.admin_token:",
            "cannot read",
        ),
        (
            "admin_token = { vault = \"x\" }",
            "server.admin_token:",
            "expected `env` or `file`",
        ),
    ];
    for (line, said, expected) in cases {
        let path = dir.join("kefu.toml");
        std::fs::write(&path, format!("# line 1\n\n[server]\n{line}\n")).unwrap();
        let out = kefu(&["serve", "--config", path.to_str().unwrap()], &dir, &[])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{line}: {stderr}");
        let prefix = format!("kefu: {}:4: {said}", path.display());
        assert!(stderr.starts_with(&prefix), "{line}: {stderr}");
        assert!(stderr.contains(expected), "{line}: {stderr}");
    }
    // Outside [server], and TOML that does not parse.
    std::fs::write(dir.join("top.toml"), "listen = \"x\"\n").unwrap();
    std::fs::write(dir.join("broken.toml"), "[server]\nlisten = \n").unwrap();
    for (file, said) in [
        ("top.toml", ":1: unknown field `listen`"),
        ("broken.toml", ":2: "),
    ] {
        let path = dir.join(file);
        let out = kefu(&["serve", "--config", path.to_str().unwrap()], &dir, &[])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(said), "{stderr}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boolean_variables_take_what_people_write() {
    for (value, demo) in [("1", false), ("yes", false), ("off", true), ("false", true)] {
        let dir = temp_dir("config-bool");
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let env = [
            ("KEFU_NO_DEMO", value),
            ("KEFU_LISTEN", &*listen),
            ("KEFU_ADMIN_TOKEN", "bool-admin-token-0123456789"),
        ];
        let mut served = spawn(kefu(&["serve"], &dir, &env));
        wait_ready(&["healthcheck"], &dir, &env, &mut served);
        let listed: serde_json::Value =
            apps(&format!("http://{listen}"), "bool-admin-token-0123456789")
                .await
                .json()
                .await
                .unwrap();
        assert_eq!(
            listed.as_array().unwrap().len(),
            usize::from(demo),
            "{value}"
        );
        drop(served);
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn a_metrics_listener_without_metrics_stops_the_start() {
    let out = kefu(
        &["serve", "--no-metrics", "--metrics-listen", "127.0.0.1:0"],
        &std::env::temp_dir(),
        &[],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("--metrics-listen") && stderr.contains("--no-metrics"),
        "{stderr}"
    );
}
