use crate::helpers::TestServer;

#[tokio::test]
async fn unknown_paths_are_40066() {
    let server = TestServer::spawn().await;
    let app = server.app("paths").await;
    for path in [
        "/",
        "/nope",
        "/cgi-bin/customservice/kfaccount/add",
        "/customservice/kfaccount/update/",
        "/customservice/kfaccount",
        "/cgi-bin/getkflist",
        "/kefu",
    ] {
        server
            .get(&format!("{path}?access_token={}", app.token))
            .await
            .assert_code(40066);
        server
            .post(&format!("{path}?access_token={}", app.token), "{}")
            .await
            .assert_code(40066);
    }
}

#[tokio::test]
async fn wrong_methods() {
    let server = TestServer::spawn().await;
    for path in [
        "/customservice/kfaccount/add",
        "/customservice/kfaccount/update",
        "/customservice/kfaccount/uploadheadimg",
        "/customservice/kfaccount/inviteworker",
    ] {
        server.get(path).await.assert_code(43002);
        server
            .send(server.http.delete(server.url(path)))
            .await
            .assert_code(43002);
    }
    for path in [
        "/cgi-bin/token",
        "/cgi-bin/customservice/getkflist",
        "/cgi-bin/customservice/getonlinekflist",
        "/customservice/getkflist",
    ] {
        server.post(path, "{}").await.assert_code(43001);
    }
}

#[tokio::test]
async fn oversized_bodies_are_45002() {
    let server = TestServer::spawn().await;
    let app = server.app("big").await;
    server
        .add(&app.token, &app.account("a"), "a")
        .await
        .assert_code(0);
    let padding = "x".repeat(1024 * 1024);
    let body = format!(r#"{{"kf_account":"a@big","nickname":"b","pad":"{padding}"}}"#);
    server
        .post(
            &format!("/customservice/kfaccount/update?access_token={}", app.token),
            body,
        )
        .await
        .assert_code(45002);
    // Also when streamed without a Content-Length.
    let chunks = Chunks(
        format!(r#"{{"kf_account":"a@big","nickname":"b","pad":"{padding}"}}"#).into_bytes(),
    );
    server
        .send(
            server
                .http
                .post(server.url(&format!(
                    "/customservice/kfaccount/update?access_token={}",
                    app.token
                )))
                .body(reqwest::Body::wrap(chunks)),
        )
        .await
        .assert_code(45002);
    assert_eq!(server.list(&app.token).await[0]["kf_nick"], "a");
    // The token is judged before the size.
    let huge = vec![b'x'; 6 * 1024 * 1024];
    server
        .post("/customservice/kfaccount/update?access_token=bad", huge)
        .await
        .assert_code(40001);
}

/// A body sent in 64 KiB chunks, with no Content-Length.
struct Chunks(Vec<u8>);

impl http_body::Body for Chunks {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>> {
        if self.0.is_empty() {
            return std::task::Poll::Ready(None);
        }
        let take = self.0.len().min(64 * 1024);
        let chunk: Vec<u8> = self.0.drain(..take).collect();
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(bytes::Bytes::from(chunk)))))
    }
}

#[tokio::test]
async fn head_requests_change_nothing() {
    let server = TestServer::spawn().await;
    let app = server.app("heads").await;
    server
        .add(&app.token, &app.account("a"), "a")
        .await
        .assert_code(0);
    let token_url = format!(
        "/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
        app.appid, app.secret
    );
    let head = server
        .http
        .head(server.url(&token_url))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    let del_url = format!(
        "/customservice/kfaccount/del?access_token={}&kf_account=a@heads",
        app.token
    );
    assert_eq!(
        server
            .http
            .head(server.url(&del_url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // No token was minted (the current one is not superseded) and nothing was deleted.
    server.advance(301);
    assert_eq!(server.list(&app.token).await.len(), 1);
}
