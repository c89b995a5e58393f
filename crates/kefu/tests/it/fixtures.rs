//! Fixtures as a CI job uses them, from `examples/ci/kefu.toml` itself: a fresh store
//! brought to the declared state, `kefu reset` back to it, a restart keeping a store
//! that holds it, and a store that contradicts it refused unless `--reset-fixtures`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{free_port, http, temp_dir};

const ADMIN: &str = "fixtures-admin-token-0123456789";
const APPID: &str = "wx0123456789abcdef";
const SECRET: &str = "0123456789abcdef0123456789abcdef";
const SECOND_SECRET: &str = "secondsecret0123456789";

fn kefu(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kefu"));
    command.args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("KEFU_") {
            command.env_remove(key);
        }
    }
    command
        .env("CI_KEFU_ADMIN", ADMIN)
        .env("CI_SECOND_SECRET", SECOND_SECRET);
    command
}

/// The example, copied beside its image, listening on `port`.
fn example(port: u16) -> PathBuf {
    let dir = temp_dir("fixtures");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ci");
    std::fs::copy(examples.join("anna.jpg"), dir.join("anna.jpg")).unwrap();
    let text = std::fs::read_to_string(examples.join("kefu.toml"))
        .unwrap()
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
    std::fs::write(dir.join("kefu.toml"), text).unwrap();
    dir.join("kefu.toml")
}

struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(config: &Path, extra: &[&str]) -> Served {
    let mut served = Served(
        kefu(&["serve", "--config", config.to_str().unwrap()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kefu(&["healthcheck", "--config", config.to_str().unwrap()])
        .output()
        .unwrap()
        .status
        .success()
    {
        assert!(served.0.try_wait().unwrap().is_none(), "kefu serve exited");
        assert!(Instant::now() < deadline, "never healthy");
        std::thread::sleep(Duration::from_millis(50));
    }
    served
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn token(&self, appid: &str, secret: &str) -> Value {
        self.get(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={appid}&secret={secret}"
        ))
        .await
    }

    async fn list(&self, token: &str) -> Value {
        self.get(&format!(
            "/cgi-bin/customservice/getkflist?access_token={token}"
        ))
        .await
    }

    async fn update(&self, token: &str, account: &str) -> i64 {
        self.post(
            &format!("/customservice/kfaccount/update?access_token={token}"),
            json!({"kf_account": account, "nickname": "changed"}),
        )
        .await["errcode"]
            .as_i64()
            .unwrap()
    }
}

fn reset(base: &str) -> std::process::Output {
    kefu(&["reset"])
        .env("KEFU_BASE_URL", base)
        .env("KEFU_ADMIN_TOKEN", ADMIN)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_fixtures_are_applied_reset_kept_and_defended() {
    let port = free_port();
    let config = example(port);
    let client = Client {
        http: http(),
        base: format!("http://127.0.0.1:{port}"),
    };
    let served = serve(&config, &[]);

    // The declared apps, with the declared secrets.
    let token = client.token(APPID, SECRET).await;
    let token = token["access_token"].as_str().unwrap().to_owned();
    let second = client.token("wx00000000000000b2", SECOND_SECRET).await;
    assert!(second["access_token"].is_string(), "{second}");
    // Their accounts: the bound worker, the pending invitation, the head image.
    let list = client.list(&token).await;
    let accounts = list["kf_list"].as_array().unwrap();
    assert_eq!(accounts.len(), 2, "{list}");
    assert_eq!(accounts[0]["kf_account"], "anna@shop");
    assert_eq!(accounts[0]["kf_wx"], "anna_wx");
    assert_eq!(accounts[1]["kf_account"], "ben@shop");
    assert_eq!(accounts[1]["invite_wx"], "ben_wx");
    let image = client
        .http
        .get(accounts[0]["kf_headimgurl"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        &image[..],
        &std::fs::read(config.with_file_name("anna.jpg")).unwrap()[..]
    );
    let online = client
        .get(&format!(
            "/cgi-bin/customservice/getonlinekflist?access_token={token}"
        ))
        .await;
    assert_eq!(online["kf_online_list"][0]["kf_account"], "anna@shop");
    assert_eq!(online["kf_online_list"][0]["status"], 1);
    // The platform: its ticket and its authorization's refresh token work.
    let component = client
        .post(
            "/cgi-bin/component/api_component_token",
            json!({"component_appid": "wx0000000000000c01", "component_appsecret": "platformsecret0123456789", "component_verify_ticket": "ticket@@@ci"}),
        )
        .await;
    let component = component["component_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let authorizer = client
        .post(
            &format!("/cgi-bin/component/api_authorizer_token?component_access_token={component}"),
            json!({"component_appid": "wx0000000000000c01", "authorizer_appid": APPID, "authorizer_refresh_token": "refreshtoken@@@ci"}),
        )
        .await;
    assert!(
        authorizer["authorizer_access_token"].is_string(),
        "{authorizer}"
    );
    // The fault rule, the ban, the clock.
    assert_eq!(client.update(&token, "anna@shop").await, -1);
    assert_eq!(client.update(&token, "anna@shop").await, 0);
    let del = client
        .get(&format!(
            "/customservice/kfaccount/del?access_token={token}&kf_account=ben@shop"
        ))
        .await;
    assert_eq!(del["errcode"], 48004);
    assert_eq!(client.get("/kefu/v1/clock").await["offset_secs"], 86_400);

    // A test case changes things; `kefu reset` puts them back.
    let added = client
        .post(
            &format!("/customservice/kfaccount/add?access_token={token}"),
            json!({"kf_account": "carl@shop", "nickname": "Carl"}),
        )
        .await;
    assert_eq!(added["errcode"], 0);
    client
        .post("/kefu/v1/clock", json!({"advance_secs": 3600}))
        .await;
    let openids: Vec<Value> = client
        .get(&format!("/kefu/v1/apps/{APPID}/kf"))
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|kf| kf["kf_openid"].clone())
        .collect();
    let out = reset(&client.base);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        client.get("/kefu/v1/requests").await,
        json!([]),
        "the calls are gone"
    );
    assert_eq!(
        client.list(&token).await["errcode"],
        40001,
        "so are the tokens"
    );
    assert_eq!(client.get("/kefu/v1/clock").await["offset_secs"], 86_400);
    let token = client.token(APPID, SECRET).await;
    let token = token["access_token"].as_str().unwrap().to_owned();
    let kfs = client.get(&format!("/kefu/v1/apps/{APPID}/kf")).await;
    let kfs = kfs.as_array().unwrap();
    assert_eq!(kfs.len(), 2, "carl is gone: {kfs:?}");
    assert_eq!(kfs[0]["kf_nick"], "Anna", "{kfs:?}");
    assert_eq!(
        kfs.iter()
            .map(|kf| kf["kf_openid"].clone())
            .collect::<Vec<_>>()[..2],
        openids[..2],
        "every reset gives the same accounts"
    );
    assert_eq!(
        client.update(&token, "anna@shop").await,
        -1,
        "the fault is back"
    );
    let added = client
        .post(
            &format!("/customservice/kfaccount/add?access_token={token}"),
            json!({"kf_account": "dora@shop", "nickname": "Dora"}),
        )
        .await;
    assert_eq!(added["errcode"], 0);
    drop(served);

    // A store that holds the fixtures is kept as it is: the token and Dora stay.
    let served = serve(&config, &[]);
    assert_eq!(
        client.list(&token).await["kf_list"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    drop(served);

    // Another secret for the app: refused, the store untouched …
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace(SECRET, "anothersecret0123456789")).unwrap();
    let out = kefu(&["serve", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("contradicts the fixtures")
            && stderr.contains(&format!("app {APPID} has another secret"))
            && stderr.contains("--reset-fixtures"),
        "{stderr}"
    );
    // … unless --reset-fixtures: then the store is the fixtures.
    let _served = serve(&config, &["--reset-fixtures"]);
    assert!(client.token(APPID, "anothersecret0123456789").await["access_token"].is_string());
    assert_eq!(client.list(&token).await["errcode"], 40001);
    let _ = std::fs::remove_dir_all(config.parent().unwrap());
}

#[test]
fn a_mistake_in_the_fixtures_names_the_file_and_line() {
    let dir = temp_dir("fixtures-mistake");
    let config = dir.join("kefu.toml");
    for (text, said) in [
        (
            "[[apps]]\nappid = \"wx0123456789abcdef\"\nsecret = \"short\"\nwechat_id = \"shop\"\n",
            ":1: ",
        ),
        (
            "[[apps]]\nappid = \"wx0123456789abcdef\"\nsecret = \"0123456789abcdef\"\nwechat_id = \"shop\"\nnickname = \"x\"\n",
            ":5: unknown field `nickname`",
        ),
        (
            "[[platforms]]\ncomponent_appid = \"wx0000000000000c01\"\nsecret = { env = \"KEFU_TEST_NO_SUCH\" }\n",
            ":3: secret: the environment variable KEFU_TEST_NO_SUCH is not set",
        ),
        ("clock_offset = 1\n", ":1: unknown field `clock_offset`"),
        (
            "[[faults]]\npath = \"/cgi-bin/token\"\nlatency_ms = 60001\n",
            ":1: latency_ms must be at most 60000",
        ),
    ] {
        std::fs::write(&config, text).unwrap();
        let out = kefu(&["serve", "--config", config.to_str().unwrap()])
            .current_dir(&dir)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(
            stderr.starts_with(&format!("kefu: {}{said}", config.display())),
            "{text}: {stderr}"
        );
    }
    // A fixtures directory: JSON with its line.
    let fixtures = dir.join("fixtures");
    std::fs::create_dir_all(&fixtures).unwrap();
    std::fs::write(
        fixtures.join("a.json"),
        "{\n  \"apps\": [\n    {\"appid\": 1}\n  ]\n}\n",
    )
    .unwrap();
    let out = kefu(&["serve", "--fixtures", fixtures.to_str().unwrap()])
        .current_dir(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!("kefu: {}:3: ", fixtures.join("a.json").display())),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixtures_directory_of_json_and_toml_files_is_applied() {
    let port = free_port();
    let dir = temp_dir("fixtures-dir");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fixtures");
    let listen = format!("127.0.0.1:{port}");
    let database = dir.join("kefu.db");
    let mut served = Served(
        kefu(&["serve", "--fixtures", examples.to_str().unwrap()])
            .args([
                "--listen",
                &listen,
                "--database-url",
                database.to_str().unwrap(),
            ])
            .env("KEFU_ADMIN_TOKEN", ADMIN)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kefu(&["healthcheck", "--listen", &listen])
        .output()
        .unwrap()
        .status
        .success()
    {
        assert!(served.0.try_wait().unwrap().is_none(), "kefu serve exited");
        assert!(Instant::now() < deadline, "never healthy");
        std::thread::sleep(Duration::from_millis(50));
    }
    let client = Client {
        http: http(),
        base: format!("http://{listen}"),
    };
    // apps.json: the app and its account; faults.toml: the rule.
    let apps = client.get("/kefu/v1/apps").await;
    assert_eq!(apps[0]["appid"], APPID, "{apps}");
    let kfs = client.get(&format!("/kefu/v1/apps/{APPID}/kf")).await;
    assert_eq!(kfs[0]["kf_account"], "anna@shop", "{kfs}");
    let faults = client.get("/kefu/v1/faults").await;
    assert_eq!(faults[0]["path"], "/cgi-bin/token", "{faults}");
    assert_eq!(faults[0]["errcode"], 45009, "{faults}");
    drop(served);
    let _ = std::fs::remove_dir_all(dir);
}
