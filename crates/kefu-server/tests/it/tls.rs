//! The HTTPS listener with a generated certificate, reached the way a client with a
//! hard-coded `https://api.weixin.qq.com` reaches it: by name, redirected to loopback.

use std::sync::Arc;

use kefu_server::config::HttpsConfig;
use kefu_server::{Application, Clock, Config, Database, Secret};

use crate::helpers::ADMIN_TOKEN;

#[tokio::test]
async fn https_with_a_generated_certificate() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(
        Database::Sqlite(dir.path().join("kefu.db")),
        Secret::new(ADMIN_TOKEN),
    );
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.https = Some(HttpsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        cert_and_key: None,
        generated_dir: dir.path().join("kefu-tls"),
    });
    let app = Application::build_with_clock(config.clone(), Arc::new(Clock::new()))
        .await
        .unwrap();
    let demo = app
        .ensure_demo_app()
        .await
        .unwrap()
        .expect("empty store gets the demo app");
    assert_eq!(demo.app.wechat_id, "test");
    let (https_addr, material) = app.https().expect("https is on");
    assert!(material.generated);
    let pem = std::fs::read(&material.cert_path).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async {
        let _ = stop_rx.await;
    }));

    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .resolve("api.weixin.qq.com", https_addr)
        .build()
        .unwrap();
    let base = format!("https://api.weixin.qq.com:{}", https_addr.port());
    let token: serde_json::Value = client
        .get(format!(
            "{base}/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
            demo.app.appid,
            demo.secret.expose()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap();
    let added: serde_json::Value = client
        .post(format!(
            "{base}/customservice/kfaccount/add?access_token={token}"
        ))
        .body(r#"{"kf_account":"test1@test","nickname":"客服1"}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(added["errcode"], 0);

    // A head image uploaded over HTTPS is handed out as an https URL on the same host.
    let form = reqwest::multipart::Form::new().part(
        "media",
        reqwest::multipart::Part::bytes(crate::helpers::jpeg(64)),
    );
    client
        .post(format!("{base}/customservice/kfaccount/uploadheadimg?access_token={token}&kf_account=test1@test"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let list: serde_json::Value = client
        .get(format!(
            "{base}/cgi-bin/customservice/getkflist?access_token={token}"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = list["kf_list"][0]["kf_headimgurl"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{base}/kefu/v1/headimg/")),
        "{url}"
    );
    assert_eq!(client.get(url).send().await.unwrap().status(), 200);

    let _ = stop_tx.send(());
    task.await.unwrap().unwrap();

    // The generated certificate is kept, so clients can keep trusting it.
    let again = Application::build_with_clock(config, Arc::new(Clock::new()))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(&again.https().unwrap().1.cert_path).unwrap(),
        pem
    );
    assert!(
        again.ensure_demo_app().await.unwrap().is_none(),
        "the demo app is created once"
    );
}

#[tokio::test]
async fn https_with_a_user_certificate() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["kefu.internal".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("mine.pem"), dir.path().join("mine.key"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    let mut config = Config::new(
        Database::Sqlite(dir.path().join("kefu.db")),
        Secret::new(ADMIN_TOKEN),
    );
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.https = Some(HttpsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        cert_and_key: Some((cert.clone(), key)),
        generated_dir: dir.path().join("unused"),
    });
    let app = Application::build_with_clock(config, Arc::new(Clock::new()))
        .await
        .unwrap();
    let (addr, material) = app.https().unwrap();
    assert!(!material.generated);
    assert_eq!(material.cert_path, cert);
    assert!(
        !dir.path().join("unused").exists(),
        "nothing generated when a certificate is given"
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async {
        let _ = stop_rx.await;
    }));
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(generated.cert.pem().as_bytes()).unwrap()])
        .resolve("kefu.internal", addr)
        .build()
        .unwrap();
    let answer = client
        .get(format!("https://kefu.internal:{}/nowhere", addr.port()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(answer.starts_with(r#"{"errcode":40066,"#), "{answer}");
    let _ = stop_tx.send(());
    task.await.unwrap().unwrap();
}
