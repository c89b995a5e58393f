//! Arbitrary methods, paths, queries and bodies on every WeChat path: always HTTP 200
//! with a WeChat envelope, never a 5xx, and the server keeps answering.

use std::sync::OnceLock;

use proptest::prelude::*;

use crate::helpers::TestServer;

struct Shared {
    base: String,
    token: String,
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
}

/// One server for all cases, on its own runtime (proptest cases are synchronous).
fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (base, token) = runtime.block_on(async {
            let server = TestServer::spawn().await;
            let app = server.app("props").await;
            server
                .add(&app.token, &app.account("a"), "a")
                .await
                .assert_code(0);
            let out = (server.base.clone(), app.token.clone());
            // Keep the server (and its temp dir) for the whole test run.
            #[allow(
                clippy::mem_forget,
                reason = "the server outlives every case by design"
            )]
            std::mem::forget(server);
            out
        });
        Shared {
            base,
            token,
            runtime,
            http: crate::helpers::client(),
        }
    })
}

/// Every path the server registers (from its routing table, so a new endpoint is
/// covered the day it is added), a path WeChat does not have, and a right name under
/// the wrong prefix.
fn paths() -> Vec<&'static str> {
    let mut paths: Vec<&'static str> = kefu_server::wechat_paths()
        .into_iter()
        .map(|(path, _)| path)
        .collect();
    paths.sort_unstable();
    paths.extend(["/random/path", "/cgi-bin/customservice/kfaccount/add"]);
    paths
}

#[test]
fn the_property_covers_every_registered_path() {
    let paths = paths();
    for (path, _) in kefu_server::wechat_paths() {
        assert!(paths.contains(&path), "{path}");
    }
    // 18 paths today (aliases included), and the two WeChat does not have.
    assert_eq!(paths.len(), kefu_server::wechat_paths().len() + 2);
    assert!(paths.len() >= 20, "{paths:?}");
}

fn body_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        ".{0,64}".prop_map(String::into_bytes),
        (
            proptest::option::of(".{0,24}"),
            proptest::option::of(".{0,24}"),
            any::<bool>()
        )
            .prop_map(|(account, nick, extra)| {
                let mut object = serde_json::Map::new();
                // The other endpoints' fields, some of the time.
                if extra {
                    for (key, value) in [
                        ("grant_type", "client_credential"),
                        ("appid", "wx0000000000000000"),
                        ("secret", "x"),
                        ("component_appid", "wx0000000000000001"),
                        ("rid", "6b000000-00000000-00000000"),
                        ("cgi_path", "/cgi-bin/token"),
                        ("invite_wx", "worker_one"),
                    ] {
                        object.insert(key.into(), value.into());
                    }
                }
                if let Some(account) = account {
                    object.insert("kf_account".into(), account.into());
                }
                if let Some(nick) = nick {
                    object.insert("nickname".into(), nick.into());
                }
                if extra {
                    object.insert("password".into(), serde_json::json!([1, {"x": null}]));
                }
                serde_json::Value::Object(object).to_string().into_bytes()
            }),
        Just(b"null".to_vec()),
        Just(br#"{"kf_account":{"nested":true},"nickname":1.5}"#.to_vec()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_request_gets_a_wechat_envelope(
        method in prop_oneof![Just("GET"), Just("POST"), Just("PUT"), Just("DELETE"), Just("PATCH")],
        path in proptest::sample::select(paths()),
        with_token in any::<bool>(),
        query in "[a-z_%@0-9=&]{0,40}",
        body in body_strategy(),
        content_type in proptest::option::of(prop_oneof![
            Just("application/json"), Just("text/plain"), Just("multipart/form-data; \
                boundary=x"), Just("multipart/form-data"),
        ]),
    ) {
        let shared = shared();
        let token = if with_token { shared.token.as_str() } else { "" };
        let url = format!("{}{path}?access_token={token}&{query}", shared.base);
        let (status, content, text) = shared.runtime.block_on(async {
            let mut request = shared.http.request(method.parse().unwrap(), &url).body(body.clone());
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let content = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
            (status, content, response.text().await.unwrap())
        });
        prop_assert_eq!(status, 200, "{} {} → {}", method, url, text);
        prop_assert_eq!(content.as_deref(), Some("application/json; encoding=utf-8"));
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        if let Some(code) = json.get("errcode") {
            let code = code.as_i64().unwrap();
            prop_assert!(code != -1, "no internal failure: {}", text);
            prop_assert!(!matches!(kefu_api::ErrCode::from_code(code), kefu_api::ErrCode::Unknown(_)), "{}", text);
        } else {
            let payload = [
                "kf_list", "kf_online_list", "access_token", "component_access_token",
                "authorizer_access_token", "sessionlist", "waitcaselist", "createtime",
                "recordlist",
            ];
            prop_assert!(payload.iter().any(|key| json.get(key).is_some()), "{}", text);
        }
    }
}
