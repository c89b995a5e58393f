//! The operations surface of `kefu serve` as a CI job uses it: `kefu healthcheck`
//! against the same configuration, and the public health endpoints.

use std::process::{Command, Output};

use crate::common::{free_port, http, serve, temp_dir};

/// Runs `kefu healthcheck` with `args` and the given environment.
fn healthcheck(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kefu"))
        .arg("healthcheck")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run kefu healthcheck")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_reads_the_serve_configuration_and_exits_by_readiness() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    // Nothing listens yet: 1, saying why.
    let down = healthcheck(&["--listen", &listen], &[]);
    assert_eq!(down.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&down.stderr).contains("not ready"),
        "{down:?}"
    );

    let dir = temp_dir("healthcheck");
    let db = dir.join("kefu.db");
    let http = http();
    let kefu = serve(
        db.to_str().unwrap(),
        port,
        "healthcheck-admin-token",
        &[],
        &http,
    )
    .await;
    // The flag, and the variable `kefu serve` reads, name the same server.
    let up = healthcheck(&["--listen", &listen], &[]);
    assert_eq!(up.status.code(), Some(0), "{up:?}");
    assert_eq!(String::from_utf8_lossy(&up.stdout).trim(), "ready");
    let up = healthcheck(&[], &[("KEFU_LISTEN", &listen)]);
    assert_eq!(up.status.code(), Some(0), "{up:?}");

    // Public, no token.
    for (path, status) in [("/kefu/v1/livez", "live"), ("/kefu/v1/readyz", "ready")] {
        let answer = http
            .get(format!("{}{path}", kefu.base))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body, serde_json::json!({ "status": status }));
    }
    drop(kefu);
    let down = healthcheck(&["--listen", &listen], &[]);
    assert_eq!(down.status.code(), Some(1));
    let _ = std::fs::remove_dir_all(dir);
}
