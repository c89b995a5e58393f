use reqwest::multipart::{Form, Part};

use crate::helpers::{TestServer, jpeg};

fn form(bytes: Vec<u8>, name: &str) -> Form {
    Form::new().part(
        name.to_owned(),
        Part::bytes(bytes)
            .file_name("head.png")
            .mime_str("image/png")
            .unwrap(),
    )
}

#[tokio::test]
async fn jpeg_upload_is_served_back() {
    let server = TestServer::spawn().await;
    let app = server.app("imgs").await;
    server
        .add(&app.token, &app.account("a"), "a")
        .await
        .assert_code(0);
    let image = jpeg(2048);
    // The name says PNG; the bytes say JPEG: the bytes win.
    let url = server.url(&format!(
        "/customservice/kfaccount/uploadheadimg?access_token={}&kf_account=a%40imgs",
        app.token
    ));
    server
        .send(
            server
                .http
                .post(&url)
                .multipart(form(image.clone(), "media")),
        )
        .await
        .assert_code(0);
    let list = server.list(&app.token).await;
    let headimg = list[0]["kf_headimgurl"].as_str().unwrap();
    assert!(
        headimg.starts_with(&server.base),
        "absolute URL on this server: {headimg}"
    );
    let response = server.http.get(headimg).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    assert_eq!(response.bytes().await.unwrap().as_ref(), image.as_slice());

    // A second upload gets a new URL; the list follows it.
    let second = jpeg(4096);
    server
        .send(
            server
                .http
                .post(&url)
                .multipart(form(second.clone(), "media")),
        )
        .await
        .assert_code(0);
    let newer = server.list(&app.token).await[0]["kf_headimgurl"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(newer, headimg);
    assert_eq!(
        server
            .http
            .get(&newer)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        second.as_slice()
    );
}

#[tokio::test]
async fn raw_multipart_shapes_from_real_clients() {
    let server = TestServer::spawn().await;
    let app = server.app("rawmp").await;
    server
        .add(&app.token, &app.account("a"), "a")
        .await
        .assert_code(0);
    let image = jpeg(512);
    let mut body = Vec::new();
    body.extend_from_slice(
        b"--XyZ\r\nContent-Disposition: form-data; name=\"media\"; filename=\"a.jpg\"\r\n\r\n",
    );
    body.extend_from_slice(&image);
    body.extend_from_slice(b"\r\n--XyZ--\r\n");
    // kf_account before access_token, '@' raw, and a media part with no Content-Type of its own.
    let url = server.url(&format!(
        "/customservice/kfaccount/uploadheadimg?kf_account=a@rawmp&access_token={}",
        app.token
    ));
    server
        .send(
            server
                .http
                .post(&url)
                .header("content-type", "multipart/form-data; boundary=XyZ")
                .body(body),
        )
        .await
        .assert_code(0);
    let headimg = server.list(&app.token).await[0]["kf_headimgurl"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        server
            .http
            .get(&headimg)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        image.as_slice()
    );
}

#[tokio::test]
async fn upload_errors() {
    let server = TestServer::spawn().await;
    let app = server.app("imgerr").await;
    server
        .add(&app.token, &app.account("a"), "a")
        .await
        .assert_code(0);
    let url = |account: &str| {
        server.url(&format!(
            "/customservice/kfaccount/uploadheadimg?access_token={}&kf_account={account}",
            app.token
        ))
    };
    let png = b"\x89PNG\r\n\x1a\n0000000000".to_vec();
    server
        .send(
            server
                .http
                .post(url("a@imgerr"))
                .multipart(form(png, "media")),
        )
        .await
        .assert_code(40005);
    let big = jpeg(5 * 1024 * 1024 + 1);
    server
        .send(
            server
                .http
                .post(url("a@imgerr"))
                .multipart(form(big, "media")),
        )
        .await
        .assert_code(40009);
    server
        .send(
            server
                .http
                .post(url("a@imgerr"))
                .multipart(form(jpeg(100), "file")),
        )
        .await
        .assert_code(41005);
    server
        .send(
            server
                .http
                .post(url("nosuch@imgerr"))
                .multipart(form(jpeg(100), "media")),
        )
        .await
        .assert_code(65401);
    server
        .send(
            server
                .http
                .post(url("a@other"))
                .multipart(form(jpeg(100), "media")),
        )
        .await
        .assert_code(65401);
    server
        .send(
            server
                .http
                .post(server.url(&format!(
                    "/customservice/kfaccount/uploadheadimg?access_token={}",
                    app.token
                )))
                .multipart(form(jpeg(100), "media")),
        )
        .await
        .assert_code(65401);
    server
        .send(server.http.post(url("a@imgerr")).body("not multipart"))
        .await
        .assert_code(47001);
    server
        .send(server.http.post(url("a@imgerr")))
        .await
        .assert_code(44002);
    let huge = jpeg(6 * 1024 * 1024);
    server
        .send(
            server
                .http
                .post(url("a@imgerr"))
                .multipart(form(huge, "media")),
        )
        .await
        .assert_code(45002);
    server
        .send(server.http.get(url("a@imgerr")))
        .await
        .assert_code(43002);
    assert_eq!(
        server.list(&app.token).await[0]["kf_headimgurl"],
        "",
        "no failed upload left an image"
    );
}

#[tokio::test]
async fn missing_images_are_404() {
    let server = TestServer::spawn().await;
    let response = server
        .http
        .get(server.url("/kefu/v1/headimg/wx0000000000000000/2001/1.jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}
