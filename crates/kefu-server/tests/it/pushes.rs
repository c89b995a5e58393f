//! Pushes to the developer's server (docs/behaviour.md, "Pushes"), received by a
//! callback written with the unmodified wechatpy library (`tests/clients/
//! callback_server.py`): it checks every signature and decrypts safe-mode bodies with
//! wechatpy's own crypto, and answers with wechatpy's replies. The retries are watched
//! on a callback that never answers.

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestServer, on_both_stores};

const TOKEN: &str = "kefuCallbackToken";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

/// The wechatpy callback, running.
struct Callback {
    child: Child,
    url: String,
    pushes: tokio::sync::mpsc::UnboundedReceiver<Value>,
}

impl Drop for Callback {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

impl Callback {
    /// Starts it; `None` after saying SKIPPED when wechatpy (with its crypto) is missing.
    fn start(mode: &str, appid: &str) -> Option<Callback> {
        let available = Command::new(python())
            .args(["-c", "import wechatpy.crypto, cryptography"])
            .output()
            .map_err(|e| e.to_string())
            .and_then(|out| {
                if out.status.success() {
                    Ok(())
                } else {
                    Err(String::from_utf8_lossy(&out.stderr).into_owned())
                }
            });
        if !kefu_store::test_support::service_or_skip(
            "wechatpy (the callback's judge)",
            available,
            "pip install -r tests/clients/requirements.txt",
        ) {
            return None;
        }
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/clients/callback_server.py");
        let mut child = Command::new(python())
            .arg(script)
            .args(["--token", TOKEN, "--aes-key", AES_KEY, "--appid", appid])
            .args(["--mode", mode])
            .stdout(Stdio::piped())
            .spawn()
            .expect("the callback starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("a first line").unwrap();
        let port = first
            .strip_prefix("listening ")
            .expect("the port")
            .to_owned();
        let (sender, pushes) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let value: Value = serde_json::from_str(&line).unwrap_or(json!({"raw": line}));
                if sender.send(value).is_err() {
                    return;
                }
            }
        });
        Some(Callback {
            child,
            url: format!("http://127.0.0.1:{port}/wechat"),
            pushes,
        })
    }

    /// The next push wechatpy received.
    async fn next(&mut self) -> Value {
        tokio::time::timeout(Duration::from_secs(20), self.pushes.recv())
            .await
            .expect("a push within 20 seconds")
            .expect("the callback runs")
    }
}

async fn configure(server: &TestServer, app: &TestApp, url: &str, mode: &str) {
    let (status, changed) = server
        .admin_json(
            Method::PATCH,
            &format!("/kefu/v1/apps/{}", app.appid),
            Some(json!({"callback": {
                "url": url, "token": TOKEN, "encoding_aes_key": AES_KEY, "mode": mode,
            }})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    // The Token and the key are secrets: no answer shows them.
    assert_eq!(
        changed["callback"],
        json!({"url": url, "mode": mode, "has_encoding_aes_key": true})
    );
    let (_, listed) = server.admin_json(Method::GET, "/kefu/v1/apps", None).await;
    for answer in [changed.to_string(), listed.to_string()] {
        assert!(
            !answer.contains(TOKEN) && !answer.contains(AES_KEY),
            "{answer}"
        );
    }
}

async fn waits(server: &TestServer, app: &TestApp) -> Value {
    server
        .get(&format!(
            "/customservice/kfsession/getwaitcase?access_token={}",
            app.token
        ))
        .await
        .json
}

/// Polls `check` until it holds (the callback answers on its own time).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within 10 seconds");
}

async fn pushes_in_mode(server: TestServer, mode: &str) {
    let app = server.app("shop").await;
    let Some(mut callback) = Callback::start(mode, &app.appid) else {
        return;
    };
    configure(&server, &app, &callback.url, mode).await;
    let fan = server.fan(&app).await;
    // A plain message, checked and decrypted by wechatpy.
    let acted = server
        .fan_does(
            &app,
            &fan,
            json!({"type": "text", "content": "hello 客服 ]]> <&>"}),
        )
        .await;
    assert_eq!(acted["pushed"], true);
    let push = callback.next().await;
    assert_eq!(push["type"], "text", "{push}");
    assert_eq!(push["content"], "hello 客服 ]]> <&>");
    assert_eq!(push["source"], fan);
    assert_eq!(push["target"], app.original_id);
    assert_eq!(push["openid_query"], fan);
    assert_eq!(push["encrypted"], mode != "plain");
    assert!((push["time"].as_i64().unwrap() - server.clock_now().await).abs() <= 2);
    // Events.
    let acted = server
        .fan_does(&app, &fan, json!({"type": "click", "key": "MENU_1"}))
        .await;
    assert_eq!(acted["pushed"], true, "{acted}");

    let push = callback.next().await;
    assert_eq!(
        (push["event"].as_str(), push["key"].as_str()),
        (Some("click"), Some("MENU_1"))
    );
    // The developer transfers the fan: it waits in the queue.
    server
        .fan_does(&app, &fan, json!({"type": "text", "content": "transfer"}))
        .await;
    callback.next().await;
    eventually("the transfer", || async {
        waits(&server, &app).await["count"] == 1
    })
    .await;
    assert_eq!(waits(&server, &app).await["waitcaselist"][0]["openid"], fan);
    // An account takes the fan: kf_create_session is pushed.
    let a = server.serving(&app, "a").await;
    server
        .call(
            "/customservice/kfsession/create",
            &app.token,
            json!({"kf_account": a, "openid": fan}),
        )
        .await
        .assert_code(0);
    let push = callback.next().await;
    assert_eq!(
        (push["event"].as_str(), push["account"].as_str()),
        (Some("kf_create_session"), Some(a.as_str())),
        "{push}"
    );
    // While served, the fan's messages go to the account, not the callback.
    let acted = server
        .fan_does(
            &app,
            &fan,
            json!({"type": "text", "content": "for the account"}),
        )
        .await;
    assert_eq!(acted["pushed"], false);
    server
        .call(
            "/customservice/kfsession/close",
            &app.token,
            json!({"kf_account": a, "openid": fan}),
        )
        .await
        .assert_code(0);
    let push = callback.next().await;
    assert_eq!(push["event"], "kf_close_session", "{push}");
    // A transfer to a named account serves the fan at once.
    server
        .fan_does(
            &app,
            &fan,
            json!({"type": "text", "content": format!("transfer:{a}")}),
        )
        .await;
    callback.next().await;
    let push = callback.next().await;
    assert_eq!(
        (push["event"].as_str(), push["account"].as_str()),
        (Some("kf_create_session"), Some(a.as_str())),
        "{push}"
    );
    server
        .call(
            "/customservice/kfsession/close",
            &app.token,
            json!({"kf_account": a, "openid": fan}),
        )
        .await
        .assert_code(0);
    callback.next().await;
    // A passive reply is recorded as sent to the fan.
    server
        .fan_does(&app, &fan, json!({"type": "text", "content": "echo hi"}))
        .await;
    callback.next().await;
    eventually("the passive reply on the timeline", || async {
        server.fan_view(&app, &fan).await["timeline"][0]["text"] == "you said: hi"
    })
    .await;
    // Every delivery is in the request log, with what it made of the answer.
    let (_, log) = server
        .admin_json(Method::GET, "/kefu/v1/requests?limit=100", None)
        .await;
    let pushes: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|call| call["method"] == "PUSH")
        .collect();
    assert!(pushes.len() >= 9, "{pushes:?}");
    assert!(
        pushes.iter().any(|p| p["reason"]
            .as_str()
            .unwrap()
            .contains("transfer_customer_service")),
        "{pushes:?}"
    );
    assert!(pushes.iter().all(|p| p["errcode"] == 0), "{pushes:?}");
}

async fn plain_pushes_are_signed_as_wechat_signs(server: TestServer) {
    pushes_in_mode(server, "plain").await;
}

async fn compatible_pushes_carry_the_encrypted_copy(server: TestServer) {
    pushes_in_mode(server, "compatible").await;
}

async fn safe_pushes_are_encrypted_as_wxbizmsgcrypt_does(server: TestServer) {
    pushes_in_mode(server, "safe").await;
}

async fn a_scan_by_a_new_fan_is_its_subscribe_and_a_payment_is_not_pushed(server: TestServer) {
    let app = server.app("shop").await;
    let Some(mut callback) = Callback::start("plain", &app.appid) else {
        return;
    };
    configure(&server, &app, &callback.url, "plain").await;
    let fan = server.fan(&app).await;
    server
        .fan_does(&app, &fan, json!({"type": "unfollow"}))
        .await;
    assert_eq!(callback.next().await["event"], "unsubscribe");
    server
        .fan_does(&app, &fan, json!({"type": "scan", "key": "scene_7"}))
        .await;
    let push = callback.next().await;
    assert_eq!(push["event"], "subscribe_scan", "{push}");
    assert_eq!(push["scene_id"], "scene_7");
    let acted = server.fan_does(&app, &fan, json!({"type": "pay"})).await;
    assert_eq!(acted["pushed"], false);
    server.fan_does(&app, &fan, json!({"type": "image"})).await;
    assert_eq!(
        callback.next().await["type"],
        "image",
        "the payment was not pushed"
    );
}

/// A callback that reads a request and never answers.
async fn silent_callback() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/wx", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (url, task)
}

#[tokio::test]
async fn a_callback_that_never_answers_is_tried_four_times_and_costs_nothing_else() {
    let server = TestServer::spawn_with(|config| {
        config.pushes.timeout = Duration::from_secs(1);
    })
    .await;
    let app = server.app("shop").await;
    let (url, _silent) = silent_callback().await;
    configure(&server, &app, &url, "plain").await;
    let fan = server.fan(&app).await;
    let started = std::time::Instant::now();
    server
        .fan_does(&app, &fan, json!({"type": "text", "content": "anyone?"}))
        .await;
    // The request path never waits for the callback.
    server.fan_does(&app, &fan, json!({"type": "pay"})).await;
    server.send_text(&app, &fan, "answer").await.assert_code(0);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let attempts = || async {
        let (_, log) = server
            .admin_json(Method::GET, "/kefu/v1/requests?limit=100", None)
            .await;
        log.as_array()
            .unwrap()
            .iter()
            .filter(|call| call["method"] == "PUSH")
            .cloned()
            .collect::<Vec<Value>>()
    };
    eventually("four attempts", || async { attempts().await.len() >= 4 }).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let attempts = attempts().await;
    assert_eq!(attempts.len(), 4, "one try and three retries: {attempts:?}");
    assert!(attempts.iter().all(|a| a["errcode"] == -1));
    let reasons: Vec<&str> = attempts
        .iter()
        .map(|a| a["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("attempt 4 of 4") && r.contains("no more attempts")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().all(|r| r.contains("no answer within 1 s")),
        "{reasons:?}"
    );
}

/// A callback that answers `success` to each request, and tells each arrival.
async fn answering_callback() -> (String, tokio::sync::mpsc::UnboundedReceiver<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/wx", listener.local_addr().unwrap());
    let (arrived, arrivals) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let arrived = arrived.clone();
            tokio::spawn(async move {
                let mut buf = vec![0; 64 * 1024];
                let mut read = Vec::new();
                // The head and the body (the push is small): until the XML's end.
                while !String::from_utf8_lossy(&read).contains("</xml>") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = arrived.send(());
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nsuccess",
                    )
                    .await;
            });
        }
    });
    (url, arrivals)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_callback_delays_only_its_own_apps_pushes() {
    let server = TestServer::spawn_with(|config| {
        config.pushes.timeout = Duration::from_secs(3);
    })
    .await;
    let dead = server.app("dead").await;
    let (silent, _silent) = silent_callback().await;
    configure(&server, &dead, &silent, "plain").await;
    // More pushes to the dead callback than can be delivered at once in all.
    for _ in 0..40 {
        let fan = server.fan(&dead).await;
        server
            .fan_does(&dead, &fan, json!({"type": "text", "content": "hello?"}))
            .await;
    }
    let live = server.app("live").await;
    let (url, mut arrivals) = answering_callback().await;
    configure(&server, &live, &url, "plain").await;
    let fan = server.fan(&live).await;
    let started = std::time::Instant::now();
    server
        .fan_does(&live, &fan, json!({"type": "text", "content": "hi"}))
        .await;
    // Each dead push holds its delivery 12 s (4 attempts of 3 s): the live app's push
    // arrives long before any of them is done.
    tokio::time::timeout(Duration::from_secs(3), arrivals.recv())
        .await
        .expect("the live app's push is not held up by the dead callback")
        .expect("the callback runs");
    assert!(started.elapsed() < Duration::from_secs(3));
}

on_both_stores!(
    plain_pushes_are_signed_as_wechat_signs,
    compatible_pushes_carry_the_encrypted_copy,
    safe_pushes_are_encrypted_as_wxbizmsgcrypt_does,
    a_scan_by_a_new_fan_is_its_subscribe_and_a_payment_is_not_pushed,
);
