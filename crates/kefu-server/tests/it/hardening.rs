//! The hardening of connections, bodies, the request log and imports, over real
//! sockets: raw TCP wherever a client library would hide what the server does (keep-alive,
//! `Connection` headers, half-sent heads, idle connections).

use std::time::{Duration, Instant};

use kefu_server::config::LogLimits;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestServer, jpeg};

// ---------------------------------------------------------------------------------------
// A raw HTTP/1.1 connection, parsed by hand.

/// One HTTP/1.1 answer as it came off the socket.
#[derive(Debug)]
struct RawAnswer {
    status: u16,
    /// Names lowercased, in order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawAnswer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the answer said the connection ends with it.
    fn closes(&self) -> bool {
        self.header("connection").is_some_and(|v| {
            v.split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("close"))
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {:?} ({:?})", self.text(), self.headers))
    }

    /// Asserts WeChat's envelope (HTTP 200, its content type) with `code` and a rid.
    #[track_caller]
    fn assert_envelope(&self, code: i64) {
        assert_eq!(self.status, 200, "{self:?} / {}", self.text());
        self.assert_envelope_body(code);
    }

    #[track_caller]
    fn assert_envelope_body(&self, code: i64) {
        assert_eq!(
            self.header("content-type"),
            Some("application/json; encoding=utf-8"),
            "{:?}",
            self.headers
        );
        let json = self.json();
        assert_eq!(json["errcode"], code, "{}", self.text());
        let errmsg = json["errmsg"].as_str().unwrap_or_default();
        assert!(
            kefu_api::Rid::from_errmsg(errmsg).is_some(),
            "no rid in {errmsg:?}"
        );
    }
}

/// A raw TCP connection to the server, with what was read and not yet parsed.
struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

fn address(server: &TestServer) -> String {
    server
        .base
        .strip_prefix("http://")
        .expect("plain HTTP")
        .to_owned()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

impl Raw {
    async fn connect(server: &TestServer) -> Raw {
        let stream = TcpStream::connect(address(server)).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Reads more bytes; 0 at the end of the stream (a reset counts as an end).
    async fn fill(&mut self) -> usize {
        let mut chunk = vec![0_u8; 64 * 1024];
        match self.stream.read(&mut chunk).await {
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                n
            }
            Err(_) => 0,
        }
    }

    /// Reads until `needle` is buffered; its position.
    async fn until(&mut self, needle: &[u8]) -> usize {
        loop {
            if let Some(at) = find(&self.buf, needle) {
                return at;
            }
            let n = self.fill().await;
            assert!(
                n > 0,
                "the connection ended before a whole answer; read {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    async fn take(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            let read = self.fill().await;
            assert!(read > 0, "the connection ended inside a body");
        }
        self.buf.drain(..n).collect()
    }

    /// The next answer (within 15 s), parsed: status line, headers, and a body framed by
    /// `Content-Length`, chunked encoding, or the end of the connection.
    async fn answer(&mut self) -> RawAnswer {
        tokio::time::timeout(Duration::from_secs(15), self.read_answer())
            .await
            .expect("an answer within 15 s")
    }

    async fn read_answer(&mut self) -> RawAnswer {
        let end = self.until(b"\r\n\r\n").await;
        let head = String::from_utf8(self.buf[..end].to_vec()).expect("an ASCII head");
        self.buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(
            parts.next(),
            Some("HTTP/1.1"),
            "status line {status_line:?}"
        );
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .map(|line| {
                let (name, value) = line
                    .split_once(':')
                    .unwrap_or_else(|| panic!("header line {line:?}"));
                (name.trim().to_ascii_lowercase(), value.trim().to_owned())
            })
            .collect();
        let mut answer = RawAnswer {
            status,
            headers,
            body: Vec::new(),
        };
        if let Some(len) = answer.header("content-length") {
            let len: usize = len.parse().expect("a Content-Length");
            answer.body = self.take(len).await;
        } else if answer
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            loop {
                let line_end = self.until(b"\r\n").await;
                let line = String::from_utf8(self.buf[..line_end].to_vec()).unwrap();
                self.buf.drain(..line_end + 2);
                let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16)
                    .unwrap_or_else(|_| panic!("chunk size {line:?}"));
                if size == 0 {
                    let trailer_end = self.until(b"\r\n").await;
                    self.buf.drain(..trailer_end + 2);
                    break;
                }
                let chunk = self.take(size + 2).await;
                answer.body.extend_from_slice(&chunk[..size]);
            }
        } else if !(status < 200 || status == 204 || status == 304) {
            // Framed by the end of the connection.
            while self.fill().await > 0 {}
            answer.body = std::mem::take(&mut self.buf);
        }
        answer
    }

    /// Waits up to `limit` for the server to end the connection (EOF or reset): how
    /// long that took, or `None` if it is still open. Any byte the server sends instead
    /// fails the test.
    async fn closed_within(&mut self, limit: Duration) -> Option<Duration> {
        assert!(
            self.buf.is_empty(),
            "bytes after the answer: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        let started = Instant::now();
        let mut chunk = [0_u8; 4096];
        match tokio::time::timeout(limit, self.stream.read(&mut chunk)).await {
            Err(_) => None,
            Ok(Ok(0) | Err(_)) => Some(started.elapsed()),
            Ok(Ok(n)) => panic!(
                "the server sent {:?} instead of closing",
                String::from_utf8_lossy(&chunk[..n])
            ),
        }
    }
}

/// A request with a `Content-Length` body (also for GET when there is a body).
fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A POST whose body is sent in chunks of at most `chunk` bytes (no Content-Length).
fn chunked_post(target: &str, headers: &[(&str, &str)], body: &[u8], chunk: usize) -> Vec<u8> {
    let mut head =
        format!("POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    for piece in body.chunks(chunk) {
        bytes.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        bytes.extend_from_slice(piece);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    bytes
}

/// A request every test can send to check that a connection still serves: 40002.
fn probe() -> Vec<u8> {
    request("GET", "/cgi-bin/token?grant_type=probe", &[], b"")
}

/// A multipart body with one part named `media` holding `bytes`.
fn multipart(boundary: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"media\"; filename=\"head.jpg\"\r\n\
         Content-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

/// A client that opens a connection per request (the server closes idle ones in
/// these tests, which a pooled connection could race).
fn unpooled() -> reqwest::Client {
    let _ = crate::helpers::client();
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

async fn admin_get(server: &TestServer, path: &str) -> Value {
    let (status, json) = server.admin_json(Method::GET, path, None).await;
    assert_eq!(status, 200, "{path}: {json}");
    json
}

fn rid_of(errmsg: &str) -> String {
    kefu_api::Rid::from_errmsg(errmsg)
        .unwrap_or_else(|| panic!("no rid in {errmsg:?}"))
        .to_string()
}

// ---------------------------------------------------------------------------------------
// 1. Keep-alive after early answers.

#[tokio::test]
async fn an_early_answer_to_a_request_with_a_body_leaves_the_connection_serving_or_says_close() {
    for request_log in [true, false] {
        let server = TestServer::spawn_with(|config| config.request_log = request_log).await;
        let app = server.app("keep").await;
        let token = app.token.clone();
        let body: &[u8] = br#"{"kf_account":"a@keep","nickname":"n"}"#;
        let over_limit = {
            let mut big = br#"{"kf_account":"a@keep","nickname":"n","pad":""#.to_vec();
            big.resize(2 * 1024 * 1024, b'x');
            big.extend_from_slice(br#""}"#);
            big
        };
        let add = |query: &str| format!("/customservice/kfaccount/add{query}");
        let cases: Vec<(&str, Vec<u8>, i64)> = vec![
            (
                "POST to an unknown path",
                request("POST", "/nope?access_token=x", &[], body),
                40066,
            ),
            (
                "a chunked POST to an unknown path",
                chunked_post("/cgi-bin/nope", &[], body, 7),
                40066,
            ),
            (
                "a 2 MiB POST to an unknown path",
                request("POST", "/customservice/kfaccount/nope", &[], &over_limit),
                40066,
            ),
            ("no token", request("POST", &add(""), &[], body), 41001),
            (
                "a bad token",
                request("POST", &add("?access_token=bad"), &[], body),
                40001,
            ),
            (
                "a bad token with a 2 MiB body",
                request("POST", &add("?access_token=bad"), &[], &over_limit),
                40001,
            ),
            (
                "GET with a body on a POST path",
                request("GET", &add(&format!("?access_token={token}")), &[], body),
                43002,
            ),
            (
                "POST with a body on a GET path",
                request(
                    "POST",
                    &format!("/cgi-bin/customservice/getkflist?access_token={token}"),
                    &[],
                    body,
                ),
                43001,
            ),
            (
                "a 2 MiB JSON body (over the limit)",
                request(
                    "POST",
                    &add(&format!("?access_token={token}")),
                    &[],
                    &over_limit,
                ),
                45002,
            ),
            (
                "a chunked 2 MiB JSON body (over the limit)",
                chunked_post(
                    &add(&format!("?access_token={token}")),
                    &[],
                    &over_limit,
                    64 * 1024,
                ),
                45002,
            ),
        ];
        let mut closed = Vec::new();
        for (what, first, code) in cases {
            let mut conn = Raw::connect(&server).await;
            conn.send(&first).await.expect(what);
            let answer = conn.answer().await;
            answer.assert_envelope(code);
            if answer.closes() {
                assert!(
                    conn.closed_within(Duration::from_secs(3)).await.is_some(),
                    "{what}: the answer said close, the connection stayed open"
                );
                closed.push(what);
            } else {
                // No `Connection: close`: the same socket must carry the next request.
                conn.send(&probe()).await.unwrap_or_else(|e| {
                    panic!("{what} (request_log {request_log}): the next request failed: {e}")
                });
                conn.answer().await.assert_envelope(40002);
            }
        }
        // Every body here is under 16 MiB: it is read and thrown away, so none of these
        // answers needs to end its connection (README, "Limits").
        assert!(
            closed.is_empty(),
            "closed (request_log {request_log}): {closed:?}"
        );
        assert!(
            server.list(&app.token).await.is_empty(),
            "no refused call added anything"
        );
    }
}

#[tokio::test]
async fn a_refused_body_the_client_waits_to_send_is_answered_with_connection_close() {
    let server = TestServer::spawn().await;
    let app = server.app("expect").await;
    let mut conn = Raw::connect(&server).await;
    // The head alone: the client waits for `100 Continue` before sending 2 MiB.
    let head = format!(
        "POST /customservice/kfaccount/add?access_token={} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        app.token,
        2 * 1024 * 1024
    );
    conn.send(head.as_bytes()).await.unwrap();
    let answer = conn.answer().await;
    // Not asked for the body, which is over the limit: 45002 at once, and the body it
    // never sent is not expected on this connection.
    answer.assert_envelope(45002);
    assert!(answer.closes(), "{:?}", answer.headers);
    assert!(
        conn.closed_within(Duration::from_secs(3)).await.is_some(),
        "the connection said close and stayed open"
    );
}

// ---------------------------------------------------------------------------------------
// 2. A body over the upload limit is read, so its answer can be.

#[tokio::test]
async fn a_6_mib_upload_is_read_to_its_end_and_answered_45002_on_a_connection_that_goes_on() {
    let server = TestServer::spawn().await;
    let app = server.app("bigup").await;
    server
        .add(&app.token, &app.account("a"), "a")
        .await
        .assert_code(0);
    let boundary = "kefu-hardening-boundary";
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let headers = [("Content-Type", content_type.as_str())];
    let six_mib = multipart(boundary, &jpeg(6 * 1024 * 1024));
    let upload = |token: &str| {
        format!("/customservice/kfaccount/uploadheadimg?access_token={token}&kf_account=a%40bigup")
    };
    let mut conn = Raw::connect(&server).await;
    async fn write(conn: &mut Raw, bytes: Vec<u8>, what: &str) {
        tokio::time::timeout(Duration::from_secs(30), conn.send(&bytes))
            .await
            .unwrap_or_else(|_| panic!("{what}: the server stopped reading the body"))
            .unwrap_or_else(|e| panic!("{what}: sending failed before the answer: {e}"));
    }
    // With Content-Length: the whole 6 MiB goes out (no EPIPE, no reset), then 45002.
    write(
        &mut conn,
        request("POST", &upload(&app.token), &headers, &six_mib),
        "6 MiB with Content-Length",
    )
    .await;
    let answer = conn.answer().await;
    answer.assert_envelope(45002);
    assert!(!answer.closes(), "{:?}", answer.headers);
    // Chunked, no Content-Length: the same, on the same connection.
    write(
        &mut conn,
        chunked_post(&upload(&app.token), &headers, &six_mib, 256 * 1024),
        "6 MiB chunked",
    )
    .await;
    let answer = conn.answer().await;
    answer.assert_envelope(45002);
    assert!(!answer.closes(), "{:?}", answer.headers);
    // Without a token: 41001, and the 6 MiB is still read off the connection.
    write(
        &mut conn,
        request("POST", &upload(""), &headers, &six_mib),
        "6 MiB without a token",
    )
    .await;
    let answer = conn.answer().await;
    answer.assert_envelope(41001);
    assert!(!answer.closes(), "{:?}", answer.headers);
    // The connection then carries a real upload.
    let small = jpeg(2048);
    write(
        &mut conn,
        request(
            "POST",
            &upload(&app.token),
            &headers,
            &multipart(boundary, &small),
        ),
        "a small upload",
    )
    .await;
    let answer = conn.answer().await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json(), json!({"errcode": 0, "errmsg": "ok"}));
    let list = server.list(&app.token).await;
    let url = list[0]["kf_headimgurl"].as_str().unwrap();
    let image = server
        .http
        .get(url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        image.as_ref(),
        small.as_slice(),
        "only the small image was kept"
    );
}

// ---------------------------------------------------------------------------------------
// 3. Slow heads and idle connections.

/// Sends `head` one byte every 50 ms, then more header bytes forever, until the server
/// ends the connection; how long after the first byte it did (`None`: not within
/// `limit`).
async fn trickle(server: &TestServer, head: &'static [u8], limit: Duration) -> Option<Duration> {
    let stream = TcpStream::connect(address(server)).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let started = Instant::now();
    let sender = tokio::spawn(async move {
        for byte in head.iter().chain(std::iter::repeat(&b'a')) {
            if writer.write_all(std::slice::from_ref(byte)).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut chunk = [0_u8; 1024];
    let ended = tokio::time::timeout(limit, async {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => started.elapsed(),
            Ok(n) => panic!(
                "a half-sent head was answered: {:?}",
                String::from_utf8_lossy(&chunk[..n])
            ),
        }
    })
    .await
    .ok();
    sender.abort();
    ended
}

/// Asks the server's health `n` times, 100 ms apart, each on a new connection; all must
/// answer within a second.
async fn keep_answering(base: String, n: usize) {
    let client = unpooled();
    for _ in 0..n {
        let started = Instant::now();
        let response = client
            .get(format!("{base}/kefu/v1/health"))
            .send()
            .await
            .expect("a normal client is answered");
        assert_eq!(response.status(), 200);
        assert!(started.elapsed() < Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_head_sent_slowly_is_cut_off_after_the_header_timeout_while_others_are_answered() {
    let server = TestServer::spawn_with(|config| {
        config.limits.header_timeout = Duration::from_secs(1);
        config.limits.idle_timeout = Duration::from_secs(30);
    })
    .await;
    // An idle keep-alive connection: the header timeout is not for it.
    let mut idle = Raw::connect(&server).await;
    idle.send(&probe()).await.unwrap();
    idle.answer().await.assert_envelope(40002);

    let normal = tokio::spawn(keep_answering(server.base.clone(), 25));
    // A slowloris: a byte every 50 ms, so the connection never goes quiet.
    let slow = trickle(
        &server,
        b"POST /cgi-bin/stable_token HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
        Duration::from_secs(6),
    );
    // Half a head, then silence.
    let half = async {
        let mut conn = Raw::connect(&server).await;
        conn.send(b"GET /cgi-bin/token?grant_type=x HTTP/1.1\r\nHost: 12")
            .await
            .unwrap();
        conn.closed_within(Duration::from_secs(6)).await
    };
    let (slow, half) = tokio::join!(slow, half);
    let slow = slow.expect("a trickled head is cut off within 6 s");
    assert!(
        slow >= Duration::from_millis(900) && slow < Duration::from_millis(3500),
        "cut off after {slow:?}, the header timeout is 1 s (checked each second)"
    );
    let half = half.expect("half a head is cut off within 6 s");
    assert!(half < Duration::from_millis(3500), "{half:?}");
    normal
        .await
        .expect("the other clients were answered meanwhile");

    // The idle connection outlived both and still serves.
    idle.send(&probe()).await.unwrap();
    idle.answer().await.assert_envelope(40002);
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout_while_others_are_answered() {
    let server = TestServer::spawn_with(|config| {
        config.limits.idle_timeout = Duration::from_secs(1);
        config.limits.header_timeout = Duration::from_secs(30);
    })
    .await;
    let normal = tokio::spawn(keep_answering(server.base.clone(), 20));
    // After an answer…
    let mut used = Raw::connect(&server).await;
    used.send(&probe()).await.unwrap();
    used.answer().await.assert_envelope(40002);
    // …and one that never sent a byte.
    let mut silent = Raw::connect(&server).await;
    let (used, silent) = tokio::join!(
        used.closed_within(Duration::from_secs(5)),
        silent.closed_within(Duration::from_secs(5))
    );
    for (what, closed) in [("after an answer", used), ("silent", silent)] {
        let closed = closed.unwrap_or_else(|| panic!("{what}: still open after 5 s"));
        assert!(
            closed >= Duration::from_millis(700) && closed < Duration::from_millis(3500),
            "{what}: closed after {closed:?}; the idle timeout is 1 s"
        );
    }
    normal
        .await
        .expect("the other clients were answered meanwhile");
}

// ---------------------------------------------------------------------------------------
// 4. The connection limit.

#[tokio::test]
async fn at_the_connection_limit_idle_connections_make_room_and_busy_ones_are_left_alone() {
    const MAX: usize = 8;
    let mut server = TestServer::spawn_with(|config| config.limits.max_connections = MAX).await;
    let app = server.app("crowd").await;
    // Drop the helper's pooled connections: only this test's count.
    server.http = unpooled();

    // One connection with a request in flight: its body half sent.
    let body = br#"{"kf_account":"busy@crowd","nickname":"busy"}"#;
    let full = request(
        "POST",
        &format!("/customservice/kfaccount/add?access_token={}", app.token),
        &[],
        body,
    );
    let (first, rest) = full.split_at(full.len() - body.len() / 2);
    let mut busy = Raw::connect(&server).await;
    busy.send(first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The rest of the room: idle keep-alive connections, each answered once (so each was
    // let in; they are accepted in order, after the busy one).
    let mut idle = Vec::new();
    for _ in 1..MAX {
        let mut conn = Raw::connect(&server).await;
        conn.send(&probe()).await.unwrap();
        conn.answer().await.assert_envelope(40002);
        idle.push(conn);
    }

    // The limit is reached: a new client waits in the listen queue while the idle
    // connections are closed, then is answered.
    let started = Instant::now();
    let mut newcomer = Raw::connect(&server).await;
    newcomer.send(&probe()).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(6), newcomer.answer())
        .await
        .expect("a new client is answered within 6 s at the limit");
    answer.assert_envelope(40002);
    let waited = started.elapsed();

    let mut closed = 0;
    for conn in &mut idle {
        if conn
            .closed_within(Duration::from_millis(500))
            .await
            .is_some()
        {
            closed += 1;
        }
    }
    assert!(
        closed >= 1,
        "the newcomer (after {waited:?}) got in without an idle connection closed"
    );
    // The busy connection was not closed: its request completes.
    busy.send(rest).await.expect("the busy connection is open");
    let answer = busy.answer().await;
    assert_eq!(answer.json(), json!({"errcode": 0, "errmsg": "ok"}));
    assert_eq!(server.list(&app.token).await.len(), 1);
}

// ---------------------------------------------------------------------------------------
// 5. The request log's bounds under a flood.

/// Sends `n` failing `/cgi-bin/token` calls with a `pad` of `pad` bytes, 50 at a time.
async fn flood(server: &TestServer, n: usize, pad: usize) -> String {
    let query = format!("grant_type=x&pad={}", "p".repeat(pad));
    let url = server.url(&format!("/cgi-bin/token?{query}"));
    let mut sent = 0;
    while sent < n {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..50.min(n - sent) {
            let (client, url) = (server.http.clone(), url.clone());
            set.spawn(async move {
                let answer: Value = client.get(url).send().await.unwrap().json().await.unwrap();
                assert_eq!(answer["errcode"], 40002, "{answer}");
            });
            sent += 1;
        }
        while let Some(done) = set.join_next().await {
            done.unwrap();
        }
    }
    query
}

async fn summary(server: &TestServer) -> Value {
    admin_get(server, "/kefu/v1/requests/summary?hours=24").await
}

fn count_of(summary: &Value, path: &str, errcode: i64) -> u64 {
    summary["counts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["path"] == path && c["errcode"] == errcode)
        .map(|c| c["count"].as_u64().unwrap())
        .sum()
}

#[tokio::test]
async fn a_flood_of_failing_calls_is_counted_whole_and_stored_within_the_log_bounds() {
    const N: u64 = 1000;
    const ROWS: u64 = 200;
    const PER_SECOND: u64 = 50;
    let server = TestServer::spawn_with(|config| {
        config.log_limits = LogLimits {
            disk_rows: ROWS,
            disk_bytes: 64 << 20,
            memory_bytes: 16 << 20,
            per_second: PER_SECOND as usize,
        };
    })
    .await;
    let started = Instant::now();
    let mut query = String::new();
    for _ in 0..10 {
        query = flood(&server, 100, 16 * 1024).await;
        // Housekeeping now (as each second): the waiting calls are written.
        server.advance_over_http(0).await;
    }
    server.advance_over_http(0).await;
    let elapsed = started.elapsed().as_secs();

    let summary = summary(&server).await;
    let log = &summary["log"];
    // Every call is counted, kept or not.
    assert_eq!(count_of(&summary, "/cgi-bin/token", 40002), N, "{summary}");
    assert_eq!(summary["total"], N, "{summary}");
    assert_eq!(summary["failed"], N, "{summary}");
    // The bounds shown are the ones configured.
    assert_eq!(log["max_stored_calls"], ROWS);
    assert_eq!(log["max_memory_bytes"], 16 << 20);
    let stored = log["stored_calls"].as_u64().unwrap();
    let dropped_from_store = log["dropped_from_store"].as_u64().unwrap();
    let dropped_in_memory = log["dropped_in_memory"].as_u64().unwrap();
    // Written: at most PER_SECOND per housekeeping round (11 here, and one a second).
    let rounds = 11 + elapsed + 2;
    let written = stored + dropped_from_store;
    assert!(
        written <= PER_SECOND * rounds,
        "{written} written in at most {rounds} rounds: {log}"
    );
    assert!(
        dropped_in_memory >= N.saturating_sub(PER_SECOND * rounds),
        "over {PER_SECOND} a second are only counted: {log}"
    );
    assert!(
        written + dropped_in_memory >= N,
        "every call written or dropped: {log}"
    );
    // More than ROWS were written: the oldest went, the store holds exactly ROWS.
    assert!(written > ROWS, "{log}");
    assert_eq!(stored, ROWS, "{log}");
    assert!(dropped_from_store > 0, "{log}");
    assert!(log["stored_bytes"].as_u64().unwrap() <= log["max_stored_bytes"].as_u64().unwrap());
    assert!(log["memory_bytes"].as_u64().unwrap() <= log["max_memory_bytes"].as_u64().unwrap());

    // What the log shows of a 16 KiB query: its first KiB (masked), and its length.
    let entries = admin_get(&server, "/kefu/v1/requests?limit=1000").await;
    let entries = entries.as_array().unwrap();
    assert!(!entries.is_empty());
    let suffix = format!("…({} bytes)", query.len());
    for entry in entries {
        let url = entry["request_url"].as_str().unwrap();
        assert!(
            url.starts_with("/cgi-bin/token?grant_type=x&pad=ppp"),
            "{url}"
        );
        assert!(
            url.ends_with(&suffix),
            "{}",
            &url[url.len().saturating_sub(40)..]
        );
        assert!(
            url.len() <= "/cgi-bin/token?".len() + 1024 + suffix.len(),
            "{}",
            url.len()
        );
    }
}

#[tokio::test]
async fn the_request_log_stays_within_its_memory_and_disk_byte_bounds() {
    const MEMORY: u64 = 64 * 1024;
    const DISK: u64 = 32 * 1024;
    let server = TestServer::spawn_with(|config| {
        config.log_limits = LogLimits {
            disk_rows: 100_000,
            disk_bytes: DISK,
            memory_bytes: MEMORY as usize,
            per_second: 5000,
        };
    })
    .await;
    for _ in 0..4 {
        flood(&server, 100, 8 * 1024).await;
        // Before the waiting calls are written, and after.
        let before = summary(&server).await;
        assert!(
            before["log"]["memory_bytes"].as_u64().unwrap() <= MEMORY,
            "{before}"
        );
        server.advance_over_http(0).await;
    }
    let summary = summary(&server).await;
    let log = &summary["log"];
    assert_eq!(
        count_of(&summary, "/cgi-bin/token", 40002),
        400,
        "{summary}"
    );
    assert_eq!(log["max_memory_bytes"], MEMORY);
    assert_eq!(log["max_stored_bytes"], DISK);
    assert!(log["memory_bytes"].as_u64().unwrap() <= MEMORY, "{log}");
    assert!(log["memory_calls"].as_u64().unwrap() < 400, "{log}");
    assert!(log["dropped_in_memory"].as_u64().unwrap() > 0, "{log}");
    let stored_bytes = log["stored_bytes"].as_u64().unwrap();
    assert!(stored_bytes <= DISK, "{log}");
    assert!(log["stored_calls"].as_u64().unwrap() > 0, "{log}");
    assert!(log["dropped_from_store"].as_u64().unwrap() > 0, "{log}");
}

// ---------------------------------------------------------------------------------------
// 6. Secrets, however their keys are spelled.

const SECRET: &str = "M4sk3dS3cr3t0123456789Zq";

#[tokio::test]
async fn a_secret_under_any_spelling_of_its_key_reaches_neither_the_log_nor_rid_get_nor_the_database()
 {
    let server = TestServer::spawn().await;
    let app = server
        .app_with(json!({"wechat_id": "masked", "secret": SECRET}))
        .await;
    let appid = app.appid.clone();
    let token_url =
        |pair: &str| format!("/cgi-bin/token?grant_type=client_credential&appid={appid}&{pair}");
    let stable = |key: &str| {
        format!(r#"{{"grant_type":"client_credential","appid":"{appid}","{key}":"{SECRET}"}}"#)
    };
    let kf_body = format!(
        r#"{{"kf_account":"nobody@masked","nickname":"n","\u0073ecret":"{SECRET}",
            "extra":{{"list":[{{"Pass\u0077ord":"{SECRET}"}}],"app_secret":["{SECRET}"],
            "deep":{{"aes\u004bey":{{"k":"{SECRET}"}},"Ticket":{SECRET:?}}}}}}}"#
    );

    // The server understands these spellings: they succeed.
    let stable_answer = server
        .post("/cgi-bin/stable_token", stable(r"secr\u0065t"))
        .await;
    let stable_token = stable_answer.json["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", stable_answer.raw))
        .to_owned();
    let second = server.get(&token_url(&format!("secr%65t={SECRET}"))).await;
    let second_token = second.json["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", second.raw))
        .to_owned();
    // These it does not (the name is `secret`): 41004, written to the database.
    let mut failed = Vec::new();
    for pair in [
        format!("SECRET={SECRET}"),
        format!("SeCrEt={SECRET}"),
        format!("%53%45%43%52%45%54={SECRET}"),
        format!("secret+={SECRET}"),
    ] {
        let answer = server.get(&token_url(&pair)).await;
        answer.assert_code(41004);
        failed.push(rid_of(answer.errmsg()));
    }
    let answer = server.post("/cgi-bin/stable_token", stable("SECRET")).await;
    answer.assert_code(41004);
    failed.push(rid_of(answer.errmsg()));
    // A kf call (the app's own) with the secret nested and under escaped keys.
    let kf = server
        .post(
            &format!("/customservice/kfaccount/update?access_token={}", app.token),
            kf_body.clone(),
        )
        .await;
    kf.assert_code(65401);
    let kf_rid = rid_of(kf.errmsg());
    failed.push(kf_rid.clone());

    // Calls of the app's own that fail after the secret was checked: banned.
    let (status, _) = server
        .admin_json(
            Method::PATCH,
            &format!("/kefu/v1/apps/{appid}"),
            Some(json!({"banned_apis": ["/cgi-bin/token", "/cgi-bin/stable_token"]})),
        )
        .await;
    assert_eq!(status, 200);
    let banned_query = server.get(&token_url(&format!("secr%65t={SECRET}"))).await;
    banned_query.assert_code(48004);
    let banned_body = server
        .post(
            "/cgi-bin/stable_token",
            stable(r"\u0073\u0065\u0063\u0072\u0065\u0074"),
        )
        .await;
    banned_body.assert_code(48004);
    let owned = [
        rid_of(banned_query.errmsg()),
        rid_of(banned_body.errmsg()),
        kf_rid,
    ];
    failed.extend(owned.iter().cloned());

    // rid/get shows the app its own failed calls, with the secret hidden.
    for rid in &owned {
        let answer = server
            .call(
                "/cgi-bin/openapi/rid/get",
                &app.token,
                json!({ "rid": rid }),
            )
            .await;
        assert_eq!(answer.json["errcode"], 0, "{}", answer.raw);
        assert!(
            !answer.raw.contains(SECRET),
            "rid/get {rid}: {}",
            answer.raw
        );
        assert!(
            !answer.raw.contains(&app.token),
            "rid/get {rid}: {}",
            answer.raw
        );
        let request = &answer.json["request"];
        let shown = format!("{}{}", request["request_url"], request["request_body"]);
        assert!(shown.contains("***"), "{shown}");
    }
    let kf_shown = server
        .call(
            "/cgi-bin/openapi/rid/get",
            &app.token,
            json!({ "rid": &owned[2] }),
        )
        .await;
    let body: Value =
        serde_json::from_str(kf_shown.json["request"]["request_body"].as_str().unwrap())
            .expect("the kf body is shown as JSON");
    assert_eq!(
        body["kf_account"], "nobody@masked",
        "the rest is shown: {body}"
    );
    assert_eq!(body["secret"], "***");
    assert_eq!(body["extra"]["list"][0]["Password"], "***");
    assert_eq!(body["extra"]["app_secret"], "***");
    assert_eq!(body["extra"]["deep"]["aesKey"], "***");
    assert_eq!(body["extra"]["deep"]["Ticket"], "***");

    // The admin log: every call, nothing secret, no whole token.
    let log = admin_get(&server, "/kefu/v1/requests?limit=1000").await;
    let text = log.to_string();
    assert!(log.as_array().unwrap().len() >= 12, "{text}");
    for leak in [SECRET, &app.token, &stable_token, &second_token] {
        assert!(!text.contains(leak), "{leak} is in the request log: {text}");
    }
    for rid in &failed {
        assert!(text.contains(rid.as_str()), "{rid} is missing from the log");
    }

    // The database: the failed calls were written, the secret and the tokens were not.
    let dir = server.stop().await;
    let db_path = dir.as_ref().unwrap().path().join("kefu.db");
    let mut bytes = std::fs::read(&db_path).unwrap();
    bytes.extend(std::fs::read(db_path.with_extension("db-wal")).unwrap_or_default());
    let haystack = String::from_utf8_lossy(&bytes);
    for rid in &failed {
        assert!(haystack.contains(rid.as_str()), "{rid} was not written");
    }
    for leak in [SECRET, &app.token, &second_token] {
        assert!(!haystack.contains(leak), "{leak} is in the database file");
    }
}

// ---------------------------------------------------------------------------------------
// 7. Import refuses a bad document whole.

#[tokio::test]
async fn an_import_with_a_bad_value_is_refused_whole_naming_its_place() {
    // A real document: two apps, with accounts.
    let source = TestServer::spawn().await;
    let first = source
        .app_with(json!({"wechat_id": "imp", "secret": "ImportSecret0123456789"}))
        .await;
    let second = source.app("imp2").await;
    for (app, prefix, nick) in [
        (&first, "a", "first"),
        (&first, "b", "second"),
        (&second, "c", "third"),
    ] {
        source
            .add(&app.token, &app.account(prefix), nick)
            .await
            .assert_code(0);
    }
    let document = admin_get(&source, "/kefu/v1/export").await;
    let expected_list = source.list(&first.token).await;
    assert_eq!(document["apps"].as_array().unwrap().len(), 2, "{document}");

    let target = TestServer::spawn().await;
    let import = |doc: Value| {
        let target = &target;
        async move {
            target
                .admin_json(Method::POST, "/kefu/v1/import", Some(doc))
                .await
        }
    };
    let index_of = |appid: &str| {
        document["apps"]
            .as_array()
            .unwrap()
            .iter()
            .position(|a| a["appid"] == appid)
            .unwrap()
    };
    let (i, j) = (index_of(&first.appid), index_of(&second.appid));
    let mutations: Vec<(String, Value, String)> = vec![
        (
            format!("/apps/{i}/appid"),
            json!("not-an-appid"),
            format!("apps[{i}].appid"),
        ),
        (
            format!("/apps/{i}/kf_accounts/0/kf_account"),
            json!("noatsign"),
            format!("apps[{i}].kf_accounts[0].kf_account"),
        ),
        (
            format!("/apps/{i}/kf_accounts/1/nickname"),
            json!("a\u{0}b"),
            format!("apps[{i}].kf_accounts[1].nickname"),
        ),
        (
            format!("/apps/{i}/kf_accounts/0/online_status"),
            json!(99),
            format!("apps[{i}].kf_accounts[0].online_status"),
        ),
        // The other app is good: still nothing of it is imported.
        (
            format!("/apps/{j}/kf_accounts/0/nickname"),
            json!(""),
            format!("apps[{j}].kf_accounts[0].nickname"),
        ),
    ];
    for (pointer, value, place) in mutations {
        let mut doc = document.clone();
        *doc.pointer_mut(&pointer)
            .unwrap_or_else(|| panic!("{pointer} in {document}")) = value.clone();
        let (status, answer) = import(doc).await;
        assert_eq!(status, 400, "{pointer} = {value}: {answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(&format!("{place}: ")),
            "{pointer} = {value}: {message:?} should name {place}"
        );
        assert_eq!(
            admin_get(&target, "/kefu/v1/apps").await,
            json!([]),
            "{pointer} = {value}: nothing imported"
        );
    }
    // The store is still empty: the good document loads (409 otherwise), and serves.
    let (status, answer) = import(document.clone()).await;
    assert_eq!(status, 204, "{answer}");
    let token = target.token(&first.appid, "ImportSecret0123456789").await;
    assert_eq!(target.list(&token).await, expected_list);
    assert_eq!(admin_get(&target, "/kefu/v1/export").await, document);
}

// ---------------------------------------------------------------------------------------
// 8. CONNECT.

#[tokio::test]
async fn connect_is_answered_405_with_the_40066_envelope_and_the_connection_closed() {
    let server = TestServer::spawn().await;
    for target in ["api.weixin.qq.com:443", "127.0.0.1:80"] {
        let mut conn = Raw::connect(&server).await;
        conn.send(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let answer = conn.answer().await;
        assert_eq!(answer.status, 405, "{answer:?} {}", answer.text());
        answer.assert_envelope_body(40066);
        assert!(
            answer.json()["errmsg"]
                .as_str()
                .unwrap()
                .starts_with("invalid url rid: ")
        );
        assert!(answer.closes(), "{:?}", answer.headers);
        assert!(
            conn.closed_within(Duration::from_secs(3)).await.is_some(),
            "no tunnel: the connection ends"
        );
    }
    // The server is unharmed.
    let mut conn = Raw::connect(&server).await;
    conn.send(&probe()).await.unwrap();
    conn.answer().await.assert_envelope(40002);
}

// ---------------------------------------------------------------------------------------
// 9. rid/get's request_url.

#[tokio::test]
async fn rid_get_request_url_is_a_query_string_with_the_token_shortened() {
    let server = TestServer::spawn().await;
    let app = server.app("ridurl").await;
    let failed = server
        .post_json(
            &format!(
                "/customservice/kfaccount/update?access_token={}&note=a%26b%3Dc%20d&Client_Secret={SECRET}",
                app.token
            ),
            &json!({"kf_account": "nosuch@ridurl", "nickname": "x"}),
        )
        .await;
    failed.assert_code(65401);
    let rid = rid_of(failed.errmsg());
    let answer = server
        .call(
            "/cgi-bin/openapi/rid/get",
            &app.token,
            json!({ "rid": rid }),
        )
        .await;
    assert_eq!(answer.json["errcode"], 0, "{}", answer.raw);
    let url = answer.json["request"]["request_url"].as_str().unwrap();
    assert!(
        !url.starts_with('/') && !url.contains('?'),
        "no path: {url}"
    );
    let pairs: Vec<(String, String)> = form_urlencoded::parse(url.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("access_token".to_owned(), format!("{}***", &app.token[..6])),
            ("note".to_owned(), "a&b=c d".to_owned()),
            ("Client_Secret".to_owned(), "***".to_owned()),
        ],
        "{url}"
    );
    // kefu's own log shows the path too.
    let log = admin_get(&server, &format!("/kefu/v1/requests?appid={}", app.appid)).await;
    let entry = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["rid"] == rid.as_str())
        .expect("the call is in the log");
    assert_eq!(
        entry["request_url"],
        format!("/customservice/kfaccount/update?{url}")
    );
}

// ---------------------------------------------------------------------------------------
// 10. uploadheadimg checks the account before the image.

#[tokio::test]
async fn an_upload_to_an_account_that_is_not_there_is_65401_whatever_the_file() {
    let server = TestServer::spawn().await;
    let app = server.app("order").await;
    let other = server.app("order2").await;
    server
        .add(&app.token, &app.account("a"), "a")
        .await
        .assert_code(0);
    server
        .add(&other.token, &other.account("b"), "b")
        .await
        .assert_code(0);
    let png = b"\x89PNG\r\n\x1a\n0000000000000000".to_vec();
    let oversized = jpeg(5 * 1024 * 1024 + 1);
    let upload = |query: &str, bytes: &[u8]| {
        let form = reqwest::multipart::Form::new().part(
            "media",
            reqwest::multipart::Part::bytes(bytes.to_vec()).file_name("head.jpg"),
        );
        server
            .http
            .post(server.url(&format!(
                "/customservice/kfaccount/uploadheadimg?access_token={}{query}",
                app.token
            )))
            .multipart(form)
    };
    for query in [
        "&kf_account=nosuch%40order",
        "&kf_account=b%40order2",
        "&kf_account=noatsign",
        "",
    ] {
        for (what, bytes) in [("a PNG", &png), ("a JPEG over 5 MiB", &oversized)] {
            let answer = server.send(upload(query, bytes)).await;
            assert_eq!(
                answer.errcode(),
                65401,
                "{what} to {query:?}: {}",
                answer.raw
            );
            answer.assert_code(65401);
        }
    }
    // For the account that is there, the image is judged.
    server
        .send(upload("&kf_account=a%40order", &png))
        .await
        .assert_code(40005);
    server
        .send(upload("&kf_account=a%40order", &oversized))
        .await
        .assert_code(40009);
    assert_eq!(server.list(&app.token).await[0]["kf_headimgurl"], "");
}

// ---------------------------------------------------------------------------------------
// 11. The open-file limit.

fn open_file_limits(limits: &str) -> (String, String) {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .expect("a Max open files line");
    let mut fields = line["Max open files".len()..].split_whitespace();
    (
        fields.next().unwrap().to_owned(),
        fields.next().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn the_server_raises_its_soft_open_file_limit_to_the_hard_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let Some(hard) = limit.maximum.filter(|&hard| hard > 1024) else {
        eprintln!("SKIPPED: the hard open-file limit is {:?}", limit.maximum);
        return;
    };
    // Start as a shell's default would.
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(1024),
            maximum: Some(hard),
        },
    )
    .expect("lower the soft limit");
    let server = TestServer::spawn().await;
    server
        .get("/cgi-bin/token?grant_type=x")
        .await
        .assert_code(40002);
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let (soft, hard_shown) = open_file_limits(&limits);
    assert_eq!(hard_shown, hard.to_string(), "{limits}");
    assert_eq!(soft, hard_shown, "the soft limit is the hard one: {limits}");
}

/// A connection is watched from when it is accepted: the first client after a quiet
/// spell longer than the idle timeout is answered, not closed at once.
#[tokio::test]
async fn the_first_client_after_a_quiet_spell_is_answered() {
    let server = TestServer::spawn_with(|config| {
        config.limits.header_timeout = Duration::from_secs(1);
        config.limits.idle_timeout = Duration::from_secs(1);
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut stream = TcpStream::connect(address(&server)).await.unwrap();
    stream
        .write_all(b"GET /cgi-bin/token HTTP/1.1\r\nHost: kefu\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0_u8; 1024];
    while find(&answer, b"\"errcode\"").is_none() {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        assert!(n > 0, "closed without an answer");
        answer.extend_from_slice(&chunk[..n]);
    }
    assert!(
        find(&answer, b"40002").is_some(),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}
