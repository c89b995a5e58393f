//! `kefu-soak`: the soak and abuse suite, run by `scripts/soak.sh` against a running
//! `kefu serve`.
//!
//! Four phases; each reports its requests, violations and time, and the program exits
//! non-zero on any violation:
//!
//! 1. **fuzz**: every WeChat path ([`kefu_server::wechat_paths`]) gets `--per-path`
//!    generated requests (methods, content types, framings, queries and bodies mutated
//!    from a valid call of that endpoint) over a fixed pool of keep-alive connections.
//!    Every answer must be HTTP 200, `application/json`, a JSON object carrying an
//!    integer `errcode` and a string `errmsg` (or the endpoint's success shape), never
//!    `-1`, within `--latency-ms`; a connection may only end after an answer that said
//!    `Connection: close`.
//! 2. **slow**: slowloris and idle connections must be closed by the server after its
//!    header and idle timeouts (not before, not much after), while a normal client gets
//!    every answer; then, after a lull with no new connection, a new one must be served.
//! 3. **flood**: failing calls as fast as possible; the server's RSS and its store stay
//!    within the request log's bounds, and `GET /kefu/v1/requests/summary` counts them.
//! 4. **secrets**: the app's secret, sent under every spelling of its key, appears
//!    nowhere in `GET /kefu/v1/requests`, in `rid/get`, in the store or the server's log.
//!
//! The admin token is read from `KEFU_ADMIN_TOKEN` and the app's secret from
//! `SOAK_SECRET` (flags would show in `ps`); `kefu-soak --help` lists the flags.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use kefu_api::Endpoint as _;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const USAGE: &str = "\
kefu-soak: the soak and abuse suite (scripts/soak.sh runs it)

usage: kefu-soak --addr HOST:PORT --pid PID --appid APPID --token TOKEN --kf-account A@B
                 [--sqlite FILE | --postgres-url URL --pg-schema SCHEMA] [options]
environment: KEFU_ADMIN_TOKEN (the admin token), SOAK_SECRET (the app's AppSecret)

  --seed N                 PRNG seed (default: from the clock; printed)
  --phases LIST            fuzz,slow,flood,secrets (default: all, in this order)
  --per-path N             fuzz requests per WeChat path (default 300)
  --paths TEXT             fuzz only the paths containing TEXT
  --conns N                fuzz connections (default 16)
  --latency-ms N           the most an answer may take (default 2000)
  --no-framing             no malformed chunked bodies in the fuzz
  --http-level             also send what hyper refuses before kefu sees it: raw \" < >
                           in the request target (400), targets over 64 KiB (414)
  --header-timeout S       the server's --header-timeout (default 2)
  --idle-timeout S         the server's --idle-timeout (default 3)
  --slowloris N            slowloris connections (default 200)
  --idle N                 idle connections (default 500)
  --lull-probes N          new connections after a lull (default 2)
  --flood-secs S           flood duration (default 10)
  --flood-conns N          flood connections (default 64)
  --flood-latency-ms N     the most a flood answer may take (default 5000)
  --log-memory-mb N        the server's --request-log-memory-mb (default 16)
  --log-disk-mb N          the server's --request-log-disk-mb (default 64)
  --rss-slack-mb N         RSS allowed beyond the memory bound (default 64)
  --disk-slack-mb N        disk allowed beyond the disk bound, for the WAL (default 64)
  --server-log FILE        the server's output, searched for the secret
  --show N                 violations printed per phase (default 5)
";

// ------------------------------------------------------------------------------------
// Arguments

#[derive(Debug, Clone)]
enum StoreKind {
    Sqlite(PathBuf),
    Postgres { url: String, schema: String },
}

#[derive(Debug, Clone)]
struct Args {
    addr: SocketAddr,
    pid: u32,
    admin_token: String,
    appid: String,
    secret: String,
    token: String,
    kf_account: String,
    store: Option<StoreKind>,
    seed: u64,
    phases: Vec<String>,
    per_path: usize,
    paths: Option<String>,
    conns: usize,
    latency: Duration,
    framing: bool,
    http_level: bool,
    header_timeout: Duration,
    idle_timeout: Duration,
    slowloris: usize,
    idle: usize,
    lull_probes: usize,
    flood_secs: u64,
    flood_conns: usize,
    flood_latency: Duration,
    log_memory_mb: u64,
    log_disk_mb: u64,
    rss_slack_mb: u64,
    disk_slack_mb: u64,
    server_log: Option<PathBuf>,
    show: usize,
}

const FLAGS: &[&str] = &[
    "addr",
    "pid",
    "appid",
    "token",
    "kf-account",
    "sqlite",
    "postgres-url",
    "pg-schema",
    "seed",
    "phases",
    "per-path",
    "paths",
    "conns",
    "latency-ms",
    "header-timeout",
    "idle-timeout",
    "slowloris",
    "idle",
    "lull-probes",
    "flood-secs",
    "flood-conns",
    "flood-latency-ms",
    "log-memory-mb",
    "log-disk-mb",
    "rss-slack-mb",
    "disk-slack-mb",
    "server-log",
    "show",
];
const SWITCHES: &[&str] = &["no-framing", "http-level"];

fn parse_args() -> Result<Option<Args>, String> {
    let mut flags: BTreeMap<String, String> = BTreeMap::new();
    let mut switches: Vec<String> = Vec::new();
    let mut raw = std::env::args().skip(1);
    while let Some(arg) = raw.next() {
        if arg == "--help" || arg == "-h" {
            return Ok(None);
        }
        let Some(name) = arg.strip_prefix("--") else {
            return Err(format!("unexpected argument {arg:?}"));
        };
        if SWITCHES.contains(&name) {
            switches.push(name.to_owned());
            continue;
        }
        let (name, value) = match name.split_once('=') {
            Some((name, value)) => (name.to_owned(), value.to_owned()),
            None => {
                let value = raw
                    .next()
                    .ok_or_else(|| format!("--{name} needs a value"))?;
                (name.to_owned(), value)
            }
        };
        if !FLAGS.contains(&name.as_str()) {
            return Err(format!("unknown flag --{name}"));
        }
        flags.insert(name, value);
    }
    fn get<T: std::str::FromStr>(
        flags: &BTreeMap<String, String>,
        name: &str,
        default: Option<T>,
    ) -> Result<T, String> {
        match flags.get(name) {
            Some(value) => value
                .parse()
                .map_err(|_| format!("--{name}: cannot read {value:?}")),
            None => default.ok_or_else(|| format!("--{name} is required")),
        }
    }
    let store = match (flags.get("sqlite"), flags.get("postgres-url")) {
        (Some(path), None) => Some(StoreKind::Sqlite(path.into())),
        (None, Some(url)) => Some(StoreKind::Postgres {
            url: url.clone(),
            schema: get(&flags, "pg-schema", None)?,
        }),
        (None, None) => None,
        (Some(_), Some(_)) => return Err("--sqlite and --postgres-url exclude each other".into()),
    };
    let env = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
    let clock_seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id());
    let phases: String = get(&flags, "phases", Some("fuzz,slow,flood,secrets".into()))?;
    let phases: Vec<String> = phases.split(',').map(|p| p.trim().to_owned()).collect();
    if let Some(bad) = phases
        .iter()
        .find(|p| !["fuzz", "slow", "flood", "secrets"].contains(&p.as_str()))
    {
        return Err(format!("--phases: unknown phase {bad:?}"));
    }
    let ms = |n: u64| Duration::from_millis(n);
    Ok(Some(Args {
        addr: get(&flags, "addr", None)?,
        pid: get(&flags, "pid", None)?,
        admin_token: env("KEFU_ADMIN_TOKEN")?,
        appid: get(&flags, "appid", None)?,
        secret: env("SOAK_SECRET")?,
        token: get(&flags, "token", None)?,
        kf_account: get(&flags, "kf-account", None)?,
        store,
        seed: get(&flags, "seed", Some(clock_seed))?,
        phases,
        per_path: get(&flags, "per-path", Some(300))?,
        paths: flags.get("paths").cloned(),
        conns: get::<usize>(&flags, "conns", Some(16))?.max(1),
        latency: ms(get(&flags, "latency-ms", Some(2000))?),
        framing: !switches.iter().any(|s| s == "no-framing"),
        http_level: switches.iter().any(|s| s == "http-level"),
        header_timeout: Duration::from_secs(get(&flags, "header-timeout", Some(2))?),
        idle_timeout: Duration::from_secs(get(&flags, "idle-timeout", Some(3))?),
        slowloris: get(&flags, "slowloris", Some(200))?,
        idle: get(&flags, "idle", Some(500))?,
        lull_probes: get(&flags, "lull-probes", Some(2))?,
        flood_secs: get(&flags, "flood-secs", Some(10))?,
        flood_conns: get::<usize>(&flags, "flood-conns", Some(64))?.max(1),
        flood_latency: ms(get(&flags, "flood-latency-ms", Some(5000))?),
        log_memory_mb: get(&flags, "log-memory-mb", Some(16))?,
        log_disk_mb: get(&flags, "log-disk-mb", Some(64))?,
        rss_slack_mb: get(&flags, "rss-slack-mb", Some(64))?,
        disk_slack_mb: get(&flags, "disk-slack-mb", Some(64))?,
        server_log: flags.get("server-log").map(PathBuf::from),
        show: get(&flags, "show", Some(5))?,
    }))
}

// ------------------------------------------------------------------------------------
// A small PRNG (xorshift64*), seeded through splitmix64

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(splitmix(seed) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// 0..n (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// lo..=hi.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1_u64 << 53) as f64) < p
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn pick_ref<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn alnum(&mut self, n: usize) -> String {
        const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..n).map(|_| self.pick(CHARS) as char).collect()
    }

    /// Long text, cheaply: a random piece repeated.
    fn filler(&mut self, n: usize) -> String {
        let piece = self.alnum(n.min(97));
        let mut text = piece.repeat(n / piece.len().max(1) + 1);
        text.truncate(n);
        text
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

// ------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client on raw TCP: it sends exactly the bytes it is given and
// sees exactly how the server ends a connection.

/// One request, as the bytes sent.
#[derive(Debug, Clone, Default)]
struct Req {
    head: Vec<u8>,
    body: Vec<u8>,
    /// `Expect: 100-continue`: the body waits for `100 Continue` (or a second).
    expect_continue: bool,
    /// The client asked for the connection to end (`Connection: close`, HTTP/1.0).
    closes: bool,
    head_method: bool,
    /// A malformed chunked body.
    broken_framing: bool,
    /// `CONNECT`: the one method answered 405 (with the envelope, and the connection
    /// closed), as a 2xx would open a tunnel.
    connect: bool,
    /// What it is, for reports.
    label: String,
}

impl Req {
    fn simple(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Req {
        let mut head = format!("{method} {target} HTTP/1.1\r\nHost: soak\r\n");
        for (name, value) in headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        if !body.is_empty() || method == "POST" {
            let _ = write!(head, "Content-Length: {}\r\n", body.len());
        }
        head.push_str("\r\n");
        Req {
            head: head.into_bytes(),
            body: body.to_vec(),
            head_method: method == "HEAD",
            label: format!("{method} {}", cut(target, 120)),
            ..Req::default()
        }
    }

    fn describe(&self) -> String {
        format!(
            "{}\n        sent head: {}\n        sent body ({} bytes): {}",
            self.label,
            escape(&self.head, 900),
            self.body.len(),
            escape(&self.body, 300)
        )
    }
}

fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…({} bytes)", &text[..end], text.len())
}

/// Bytes as printable ASCII, the rest escaped.
fn escape(bytes: &[u8], max: usize) -> String {
    let mut out = String::new();
    for &b in bytes.iter().take(max) {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    if bytes.len() > max {
        let _ = write!(out, "…(+{} bytes)", bytes.len() - max);
    }
    out
}

#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The server said the connection ends (or it was close-delimited).
    close: bool,
    /// A final answer came before `100 Continue`, so the body was not sent and the
    /// connection is not reused.
    before_continue: bool,
    elapsed: Duration,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    fn describe(&self) -> String {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(n, v)| format!("{n}: {v}"))
            .collect();
        format!(
            "HTTP {} after {} ms [{}] body: {}",
            self.status,
            self.elapsed.as_millis(),
            headers.join("; "),
            escape(&self.body, 400)
        )
    }
}

/// How a request went wrong on the wire.
#[derive(Debug, Clone)]
enum Fail {
    /// The connection ended before any byte of an answer.
    ClosedBeforeAnswer,
    /// The connection ended in the middle of an answer (bytes of it received).
    Truncated(usize),
    /// Writing the request failed.
    WriteFailed(String),
    /// Reading failed (bytes of the answer received).
    ReadFailed(String, usize),
    /// No whole answer in time (bytes of it received).
    TimedOut(usize),
    /// Not HTTP.
    Malformed(String),
}

impl Fail {
    fn describe(&self) -> String {
        match self {
            Fail::ClosedBeforeAnswer => "the connection was closed before any answer".into(),
            Fail::Truncated(n) => {
                format!("the connection was closed in the middle of an answer ({n} bytes received)")
            }
            Fail::WriteFailed(e) => format!("sending the request failed: {e}"),
            Fail::ReadFailed(e, n) => format!("reading the answer failed after {n} bytes: {e}"),
            Fail::TimedOut(n) => format!("no whole answer in time ({n} bytes received)"),
            Fail::Malformed(e) => format!("the answer is not HTTP: {e}"),
        }
    }

    /// The connection went away without a word (closed or reset before an answer).
    fn dropped(&self) -> bool {
        matches!(
            self,
            Fail::ClosedBeforeAnswer | Fail::WriteFailed(_) | Fail::ReadFailed(_, 0)
        )
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    let last_start = haystack.len() - needle.len();
    let mut at = 0;
    while at <= last_start {
        match haystack[at..=last_start].iter().position(|&b| b == first) {
            None => return None,
            Some(offset) => {
                let start = at + offset;
                if &haystack[start..start + needle.len()] == needle {
                    return Some(start);
                }
                at = start + 1;
            }
        }
    }
    None
}

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Bytes of the current answer received so far.
    progress: usize,
    last: Instant,
    answers: u64,
}

type Deadline = tokio::time::Instant;

impl Conn {
    async fn open(addr: SocketAddr) -> Result<Conn, String> {
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .map_err(|_| "connect timed out".to_owned())?
            .map_err(|e| format!("connect failed: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("set_nodelay: {e}"))?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(16 * 1024),
            progress: 0,
            last: Instant::now(),
            answers: 0,
        })
    }

    async fn more(&mut self, deadline: Deadline) -> Result<(), Fail> {
        self.buf.reserve(16 * 1024);
        match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
            Err(_) => Err(Fail::TimedOut(self.progress)),
            Ok(Ok(0)) if self.progress == 0 => Err(Fail::ClosedBeforeAnswer),
            Ok(Ok(0)) => Err(Fail::Truncated(self.progress)),
            Ok(Ok(n)) => {
                self.progress += n;
                Ok(())
            }
            Ok(Err(e)) => Err(Fail::ReadFailed(e.to_string(), self.progress)),
        }
    }

    async fn write(&mut self, bytes: &[u8], deadline: Deadline) -> Result<(), Fail> {
        match tokio::time::timeout_at(deadline, self.stream.write_all(bytes)).await {
            Err(_) => Err(Fail::WriteFailed("timed out".into())),
            Ok(Err(e)) => Err(Fail::WriteFailed(e.to_string())),
            Ok(Ok(())) => Ok(()),
        }
    }

    async fn line(&mut self, deadline: Deadline) -> Result<String, Fail> {
        loop {
            if let Some(at) = find(&self.buf, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..at]).into_owned();
                self.buf.drain(..at + 2);
                return Ok(line);
            }
            if self.buf.len() > 64 * 1024 {
                return Err(Fail::Malformed("a chunk line over 64 KiB".into()));
            }
            self.more(deadline).await?;
        }
    }

    async fn chunked(&mut self, deadline: Deadline) -> Result<Vec<u8>, Fail> {
        let mut body = Vec::new();
        loop {
            let line = self.line(deadline).await?;
            let size = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| Fail::Malformed(format!("chunk size {line:?}")))?;
            if size == 0 {
                while !self.line(deadline).await?.is_empty() {}
                return Ok(body);
            }
            while self.buf.len() < size + 2 {
                self.more(deadline).await?;
            }
            body.extend_from_slice(&self.buf[..size]);
            self.buf.drain(..size + 2);
        }
    }

    /// Reads one answer; with `interim`, a `1xx` is answered as it is.
    async fn read_answer(
        &mut self,
        head_method: bool,
        deadline: Deadline,
        interim: bool,
    ) -> Result<Answer, Fail> {
        self.progress = self.buf.len();
        loop {
            let end = loop {
                if let Some(at) = find(&self.buf, b"\r\n\r\n") {
                    break at + 4;
                }
                if self.buf.len() > 1 << 20 {
                    return Err(Fail::Malformed("an answer head over 1 MiB".into()));
                }
                self.more(deadline).await?;
            };
            let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
            self.buf.drain(..end);
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap_or_default();
            let mut parts = status_line.splitn(3, ' ');
            let version = parts.next().unwrap_or_default().to_owned();
            let status: u16 = parts
                .next()
                .and_then(|s| s.parse().ok())
                .filter(|_| version.starts_with("HTTP/1."))
                .ok_or_else(|| Fail::Malformed(format!("status line {status_line:?}")))?;
            let headers: Vec<(String, String)> = lines
                .filter_map(|line| line.split_once(':'))
                .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
                .collect();
            if (100..200).contains(&status) {
                if interim {
                    return Ok(Answer {
                        status,
                        headers,
                        body: Vec::new(),
                        close: false,
                        before_continue: false,
                        elapsed: Duration::ZERO,
                    });
                }
                continue;
            }
            let value = |name: &str| {
                headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.to_ascii_lowercase())
            };
            let connection = value("connection").unwrap_or_default();
            let mut close = connection.split(',').any(|t| t.trim() == "close")
                || (version == "HTTP/1.0" && !connection.contains("keep-alive"));
            let chunked = value("transfer-encoding").is_some_and(|v| v.contains("chunked"));
            let length = value("content-length");
            let body = if head_method || status == 204 || status == 304 {
                Vec::new()
            } else if chunked {
                self.chunked(deadline).await?
            } else if let Some(length) = length {
                let length: usize = length
                    .parse()
                    .map_err(|_| Fail::Malformed(format!("content-length {length:?}")))?;
                if length > 64 << 20 {
                    return Err(Fail::Malformed(format!("content-length {length}")));
                }
                while self.buf.len() < length {
                    self.more(deadline).await?;
                }
                self.buf.drain(..length).collect()
            } else {
                close = true;
                loop {
                    match self.more(deadline).await {
                        Ok(()) => {}
                        Err(Fail::Truncated(_) | Fail::ClosedBeforeAnswer) => break,
                        Err(e) => return Err(e),
                    }
                }
                std::mem::take(&mut self.buf)
            };
            self.answers += 1;
            self.last = Instant::now();
            return Ok(Answer {
                status,
                headers,
                body,
                close,
                before_continue: false,
                elapsed: Duration::ZERO,
            });
        }
    }

    /// Sends a request and reads its answer, within `hard` in all.
    async fn send(&mut self, req: &Req, hard: Duration) -> Result<Answer, Fail> {
        let started = Instant::now();
        let deadline = Deadline::now() + hard;
        if !self.buf.is_empty() {
            return Err(Fail::Malformed(format!(
                "{} bytes arrived unasked on an idle connection: {}",
                self.buf.len(),
                escape(&self.buf, 200)
            )));
        }
        let result = if req.expect_continue {
            self.write(&req.head, deadline).await?;
            let wait = deadline.min(Deadline::now() + Duration::from_secs(1));
            match self.read_answer(req.head_method, wait, true).await {
                Ok(answer) if answer.status == 100 => {
                    self.write(&req.body, deadline).await?;
                    self.read_answer(req.head_method, deadline, false).await
                }
                // A final answer without the body asked for: the connection cannot
                // tell whether it comes later, so it is not reused.
                Ok(mut answer) => {
                    answer.close = true;
                    answer.before_continue = true;
                    Ok(answer)
                }
                Err(Fail::TimedOut(0)) => {
                    self.write(&req.body, deadline).await?;
                    self.read_answer(req.head_method, deadline, false).await
                }
                Err(e) => Err(e),
            }
        } else {
            let mut written = self.write(&req.head, deadline).await;
            if written.is_ok() && !req.body.is_empty() {
                written = self.write(&req.body, deadline).await;
            }
            match written {
                Ok(()) => self.read_answer(req.head_method, deadline, false).await,
                Err(write_error) => {
                    // An answer may have come before the server stopped reading.
                    let quick = deadline.min(Deadline::now() + Duration::from_millis(500));
                    match self.read_answer(req.head_method, quick, false).await {
                        Ok(answer) => Ok(answer),
                        Err(_) => Err(write_error),
                    }
                }
            }
        };
        result.map(|mut answer| {
            answer.elapsed = started.elapsed();
            answer
        })
    }
}

/// One request on a connection of its own; a connection dropped before the answer is
/// retried once on a new one (and counted: see the lull check of the slow phase).
async fn once(addr: SocketAddr, req: &Req) -> Result<Answer, String> {
    for attempt in 0..2 {
        let mut conn = Conn::open(addr).await?;
        match conn.send(req, Duration::from_secs(30)).await {
            Ok(answer) => return Ok(answer),
            Err(fail) if fail.dropped() && attempt == 0 => {
                HELPER_RETRIES.fetch_add(1, Ordering::Relaxed);
            }
            Err(fail) => return Err(format!("{}: {}", req.label, fail.describe())),
        }
    }
    Err(format!("{}: dropped twice", req.label))
}

/// Connections of the harness's own calls (setup, admin) that the server dropped
/// before their first answer, and were retried.
static HELPER_RETRIES: AtomicU64 = AtomicU64::new(0);

/// The harness's own calls: WeChat calls it needs, and the admin API.
#[derive(Debug, Clone)]
struct Client {
    addr: SocketAddr,
    admin: String,
}

impl Client {
    async fn call(
        &self,
        method: &str,
        target: &str,
        admin: bool,
        body: Option<&str>,
    ) -> Result<(u16, Value), String> {
        let bearer = format!("Bearer {}", self.admin);
        let mut headers = vec![("Content-Type", "application/json")];
        if admin {
            headers.push(("Authorization", bearer.as_str()));
        }
        let req = Req::simple(method, target, &headers, body.unwrap_or("").as_bytes());
        let answer = once(self.addr, &req).await?;
        let json = answer.json().unwrap_or(Value::Null);
        Ok((answer.status, json))
    }

    /// A call that must succeed (2xx, and no non-zero errcode).
    async fn must(
        &self,
        method: &str,
        target: &str,
        admin: bool,
        body: Option<&str>,
    ) -> Result<Value, String> {
        let (status, json) = self.call(method, target, admin, body).await?;
        let errcode = json.get("errcode").and_then(Value::as_i64).unwrap_or(0);
        if !(200..300).contains(&status) || errcode != 0 {
            return Err(format!(
                "{method} {}: HTTP {status}: {json}",
                cut(target, 100)
            ));
        }
        Ok(json)
    }
}

fn text(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Percent-encodes every byte that is not unreserved.
fn enc(text: &str) -> String {
    let mut out = String::new();
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Percent-encodes every byte.
fn enc_all(text: &str, upper: bool) -> String {
    text.bytes()
        .map(|b| {
            if upper {
                format!("%{b:02X}")
            } else {
                format!("%{b:02x}")
            }
        })
        .collect()
}

/// Every character as a JSON `\u` escape.
fn json_escape_all(text: &str, upper: bool) -> String {
    text.encode_utf16()
        .map(|u| {
            if upper {
                format!("\\u{u:04X}")
            } else {
                format!("\\u{u:04x}")
            }
        })
        .collect()
}

fn json_str(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

// ------------------------------------------------------------------------------------
// Figures: tallies, and the server's memory and store

#[derive(Debug, Default)]
struct Tally {
    show: usize,
    requests: AtomicU64,
    violations: AtomicU64,
    details: Mutex<Vec<String>>,
    counts: Mutex<BTreeMap<String, u64>>,
    latencies_us: Mutex<Vec<u64>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Tally {
    fn new(show: usize) -> Tally {
        Tally {
            show,
            ..Tally::default()
        }
    }

    fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    fn violation(&self, text: String) {
        let n = self.violations.fetch_add(1, Ordering::Relaxed);
        if (n as usize) < self.show {
            eprintln!("  VIOLATION: {text}");
            lock(&self.details).push(text);
        }
    }

    fn count(&self, key: impl Into<String>) {
        *lock(&self.counts).entry(key.into()).or_default() += 1;
    }

    fn latency(&self, elapsed: Duration) {
        lock(&self.latencies_us).push(elapsed.as_micros() as u64);
    }

    fn violations(&self) -> u64 {
        self.violations.load(Ordering::Relaxed)
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn latency_line(&self) -> String {
        let mut all = lock(&self.latencies_us).clone();
        if all.is_empty() {
            return "no answers".into();
        }
        all.sort_unstable();
        let at = |q: f64| all[((all.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
        format!(
            "latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            at(0.5),
            at(0.99),
            at(1.0)
        )
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    rss: u64,
    disk: u64,
}

/// The server's resident memory and the size of its store, sampled.
#[derive(Debug)]
struct Meter {
    pid: u32,
    store: Option<StoreKind>,
    rss_peak: AtomicU64,
    disk_peak: AtomicU64,
    last_disk: AtomicU64,
    /// The largest store seen in the whole run, and each SQLite file's largest size.
    disk_max: AtomicU64,
    file_max: Mutex<Vec<u64>>,
    dead: AtomicBool,
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / f64::from(1 << 20))
}

fn psql(url: &str, sql: &str) -> Result<String, String> {
    let output = std::process::Command::new("psql")
        .args([url, "-Atqc", sql])
        .output()
        .map_err(|e| format!("psql: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "psql: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn sqlite_files(path: &Path) -> Vec<PathBuf> {
    let mut files = vec![path.to_path_buf()];
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        files.push(PathBuf::from(name));
    }
    files
}

impl Meter {
    fn proc_status(&self, key: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let line = status.lines().find(|line| line.starts_with(key))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    fn rss(&self) -> u64 {
        match self.proc_status("VmRSS:") {
            Some(rss) => {
                self.rss_peak.fetch_max(rss, Ordering::Relaxed);
                rss
            }
            None => {
                self.dead.store(true, Ordering::Relaxed);
                0
            }
        }
    }

    fn disk(&self) -> u64 {
        let size = match &self.store {
            None => 0,
            Some(StoreKind::Sqlite(path)) => {
                let sizes: Vec<u64> = sqlite_files(path)
                    .iter()
                    .map(|file| std::fs::metadata(file).map_or(0, |meta| meta.len()))
                    .collect();
                let mut file_max = lock(&self.file_max);
                file_max.resize(sizes.len(), 0);
                for (max, size) in file_max.iter_mut().zip(&sizes) {
                    *max = (*max).max(*size);
                }
                sizes.iter().sum()
            }
            Some(StoreKind::Postgres { url, schema }) => psql(
                url,
                &format!(
                    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = '{schema}' AND c.relkind IN ('r', 'p', 'm')"
                ),
            )
            .ok()
            .and_then(|out| out.parse().ok())
            .unwrap_or_else(|| self.last_disk.load(Ordering::Relaxed)),
        };
        self.last_disk.store(size, Ordering::Relaxed);
        self.disk_peak.fetch_max(size, Ordering::Relaxed);
        self.disk_max.fetch_max(size, Ordering::Relaxed);
        size
    }

    /// The largest size each SQLite file reached.
    fn file_maxima(&self) -> String {
        let file_max = lock(&self.file_max);
        if file_max.len() < 3 {
            return String::new();
        }
        format!(
            " (largest files: db {}, -wal {}, -shm {} MiB)",
            mib(file_max[0]),
            mib(file_max[1]),
            mib(file_max[2])
        )
    }

    async fn sample(self: &Arc<Self>) -> Sample {
        let meter = Arc::clone(self);
        tokio::task::spawn_blocking(move || Sample {
            rss: meter.rss(),
            disk: meter.disk(),
        })
        .await
        .unwrap_or_default()
    }

    fn reset_peaks(&self, sample: Sample) {
        self.rss_peak.store(sample.rss, Ordering::Relaxed);
        self.disk_peak.store(sample.disk, Ordering::Relaxed);
    }

    fn peaks(&self) -> Sample {
        Sample {
            rss: self.rss_peak.load(Ordering::Relaxed),
            disk: self.disk_peak.load(Ordering::Relaxed),
        }
    }

    /// Samples memory every 100 ms and the store every 500 ms, for ever.
    fn start(self: &Arc<Self>) {
        let meter = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = 0_u64;
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                tick += 1;
                let meter = Arc::clone(&meter);
                let _ = tokio::task::spawn_blocking(move || {
                    meter.rss();
                    if tick.is_multiple_of(5) {
                        meter.disk();
                    }
                })
                .await;
            }
        });
    }
}

/// What a phase reports.
#[derive(Debug, Default)]
struct Report {
    name: &'static str,
    requests: u64,
    violations: u64,
    elapsed: Duration,
    before: Sample,
    peak: Sample,
    after: Sample,
    notes: Vec<String>,
}

/// Runs a phase between two samples, and prints what it found.
async fn measured<F>(name: &'static str, meter: &Arc<Meter>, tally: Arc<Tally>, phase: F) -> Report
where
    F: Future<Output = Vec<String>>,
{
    println!("\n== {name} ==");
    let before = meter.sample().await;
    meter.reset_peaks(before);
    let started = Instant::now();
    let notes = phase.await;
    let elapsed = started.elapsed();
    let after = meter.sample().await;
    if meter.dead.load(Ordering::Relaxed) {
        tally.violation(format!(
            "the server (pid {}) is gone: /proc/{}/status cannot be read",
            meter.pid, meter.pid
        ));
    }
    let report = Report {
        name,
        requests: tally.requests(),
        violations: tally.violations(),
        elapsed,
        before,
        peak: meter.peaks(),
        after,
        notes,
    };
    for note in &report.notes {
        println!("  {note}");
    }
    println!(
        "  {name}: {} requests, {} violations, {:.1} s; RSS {} → peak {} → {} MiB; store {} → \
            {} MiB",
        report.requests,
        report.violations,
        elapsed.as_secs_f64(),
        mib(before.rss),
        mib(report.peak.rss),
        mib(after.rss),
        mib(before.disk),
        mib(after.disk)
    );
    report
}

// ------------------------------------------------------------------------------------
// What every WeChat answer must be

/// The endpoint's success shape, for the answers that carry no errcode: the contract's
/// own answer type for the path (or one of its aliases), from the catalog.
fn success_shape(path: &str, json: &Value) -> bool {
    static CATALOG: std::sync::OnceLock<Vec<kefu_api::catalog::Entry>> = std::sync::OnceLock::new();
    CATALOG
        .get_or_init(kefu_api::catalog::entries)
        .iter()
        .find(|entry| entry.path == path || entry.aliases.contains(&path))
        .is_some_and(|entry| entry.is_answer(json))
}

/// An answer that passed the checks.
#[derive(Debug, Default)]
struct Verdict {
    /// The errcode, 0 for a payload; `None` for HEAD.
    errcode: Option<i64>,
    rid: Option<String>,
    json: Option<Value>,
}

/// Checks a WeChat answer: HTTP 200, JSON, the envelope (or the success shape), no -1.
fn check_envelope(path: &str, head_method: bool, answer: &Answer) -> Result<Verdict, String> {
    if answer.status != 200 {
        return Err(format!(
            "HTTP status {} (WeChat answers 200)",
            answer.status
        ));
    }
    let content_type = answer.header("content-type").unwrap_or_default();
    if !content_type.starts_with("application/json") {
        return Err(format!("content-type {content_type:?}"));
    }
    if head_method {
        return if answer.body.is_empty() {
            Ok(Verdict::default())
        } else {
            Err("a HEAD answer with a body".into())
        };
    }
    let Some(json) = answer.json() else {
        return Err("the body is not JSON".into());
    };
    let Some(object) = json.as_object() else {
        return Err("the body is not a JSON object".into());
    };
    let mut verdict = Verdict::default();
    match object.get("errcode") {
        Some(errcode) => {
            let errcode = errcode
                .as_i64()
                .ok_or_else(|| format!("errcode {errcode} is not an integer"))?;
            let errmsg = object
                .get("errmsg")
                .and_then(Value::as_str)
                .ok_or("no string errmsg")?;
            if errcode == -1 {
                return Err("errcode -1 (system error) for a request".into());
            }
            if errcode != 0 {
                let rid = errmsg
                    .rsplit_once(" rid: ")
                    .map(|(_, rid)| rid.to_owned())
                    .ok_or("an error without `rid: …` in errmsg")?;
                verdict.rid = Some(rid);
            }
            verdict.errcode = Some(errcode);
        }
        None if success_shape(path, &json) => verdict.errcode = Some(0),
        None => return Err("no errcode, and not the endpoint's success shape".into()),
    }
    verdict.json = Some(json);
    Ok(verdict)
}

/// `CONNECT` is answered 405 with `40066` in the envelope, and the connection closed.
fn check_connect(answer: &Answer) -> Result<Verdict, String> {
    if answer.status != 405 || !answer.close {
        return Err(format!(
            "CONNECT answered HTTP {}{} (405 and `Connection: close` are due)",
            answer.status,
            if answer.close {
                ""
            } else {
                " without `Connection: close`"
            }
        ));
    }
    let mut ok = answer.clone();
    ok.status = 200;
    let verdict = check_envelope("", false, &ok)?;
    match verdict.errcode {
        Some(40066) => Ok(verdict),
        other => Err(format!("CONNECT answered errcode {other:?} (40066 is due)")),
    }
}

// ------------------------------------------------------------------------------------
// Phase 1: fuzz

/// The fuzz app, made by the harness so that the fuzz may use its secret freely (the
/// script's app keeps its secret for the secrets phase).
#[derive(Debug, Default)]
struct FuzzApp {
    appid: String,
    secret: String,
    wechat_id: String,
    openids: Vec<String>,
    component_appid: String,
    component_secret: String,
    ticket: String,
    /// The script's app's token: another app's.
    other_token: String,
}

/// What the fuzz learns as it goes: tokens minted, refresh tokens rotated, rids seen.
#[derive(Debug, Default)]
struct Learned {
    tokens: Mutex<VecDeque<String>>,
    refresh: Mutex<String>,
    component_token: Mutex<String>,
    rids: Mutex<VecDeque<String>>,
}

impl Learned {
    fn token(&self, rng: &mut Rng) -> String {
        let tokens = lock(&self.tokens);
        if tokens.is_empty() {
            return "none".into();
        }
        // Mostly the newest.
        let at = if rng.chance(0.7) {
            tokens.len() - 1
        } else {
            rng.below(tokens.len())
        };
        tokens[at].clone()
    }

    fn add_token(&self, token: &str) {
        let mut tokens = lock(&self.tokens);
        if !tokens.iter().any(|t| t == token) {
            tokens.push_back(token.to_owned());
            if tokens.len() > 6 {
                tokens.pop_front();
            }
        }
    }

    fn rid(&self, rng: &mut Rng) -> String {
        let rids = lock(&self.rids);
        if rids.is_empty() {
            return "6b0fb88e-26005319-56ee7c56".into();
        }
        rids[rng.below(rids.len())].clone()
    }

    fn learn(&self, verdict: &Verdict) {
        if let Some(rid) = &verdict.rid {
            let mut rids = lock(&self.rids);
            rids.push_back(rid.clone());
            if rids.len() > 256 {
                rids.pop_front();
            }
        }
        let Some(json) = &verdict.json else { return };
        if let Some(token) = json.get("access_token").and_then(Value::as_str) {
            self.add_token(token);
        }
        if let Some(token) = json.get("authorizer_access_token").and_then(Value::as_str) {
            self.add_token(token);
        }
        if let Some(refresh) = json.get("authorizer_refresh_token").and_then(Value::as_str) {
            *lock(&self.refresh) = refresh.to_owned();
        }
        if let Some(token) = json.get("component_access_token").and_then(Value::as_str) {
            *lock(&self.component_token) = token.to_owned();
        }
    }
}

/// Makes the fuzz app, its accounts, a platform that it authorized, and tokens.
async fn fuzz_setup(
    client: &Client,
    args: &Args,
    paths: &[(&str, kefu_api::Method)],
) -> Result<(FuzzApp, Learned), String> {
    let quotas: serde_json::Map<String, Value> = paths
        .iter()
        .map(|(path, _)| {
            (
                (*path).to_owned(),
                serde_json::json!({"daily": 1_000_000_000_u64, "per_minute": 1_000_000_000_u64}),
            )
        })
        .collect();
    let wechat_id = "soakfuzz".to_owned();
    let created = client
        .must(
            "POST",
            kefu_api::admin::APPS,
            true,
            Some(&serde_json::json!({"wechat_id": wechat_id, "quotas": quotas}).to_string()),
        )
        .await?;
    let mut app = FuzzApp {
        appid: text(&created, "appid"),
        secret: text(&created, "secret"),
        wechat_id,
        other_token: args.token.clone(),
        ..FuzzApp::default()
    };
    let learned = Learned::default();
    let stable = client
        .must(
            "POST",
            kefu_api::endpoints::stable_token::GetStableToken::PATH,
            false,
            Some(
                &serde_json::json!({"grant_type": "client_credential", "appid": app.appid, "secret": app.secret})
                    .to_string(),
            ),
        )
        .await?;
    learned.add_token(&text(&stable, "access_token"));
    let token = client
        .must(
            "GET",
            &format!(
                "/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
                app.appid, app.secret
            ),
            false,
            None,
        )
        .await?;
    learned.add_token(&text(&token, "access_token"));
    let token = text(&token, "access_token");
    for n in 0..5 {
        client
            .must(
                "POST",
                &format!("/customservice/kfaccount/add?access_token={token}"),
                false,
                Some(&format!(
                    r#"{{"kf_account":"k{n}@{}","nickname":"客服{n}"}}"#,
                    app.wechat_id
                )),
            )
            .await?;
    }
    let kf = client
        .must(
            "GET",
            &kefu_api::admin::path(kefu_api::admin::APP_KFS, &[&app.appid]),
            true,
            None,
        )
        .await?;
    app.openids = kf
        .as_array()
        .map(|list| list.iter().map(|k| text(k, "kf_openid")).collect())
        .unwrap_or_default();
    // A platform, for the component endpoints (the fuzz covers them less without).
    let platform = async {
        let component = client
            .must("POST", kefu_api::admin::COMPONENTS, true, Some("{}"))
            .await?;
        let component_appid = text(&component, "component_appid");
        let component_secret = text(&component, "secret");
        let ticket = client
            .must(
                "POST",
                &kefu_api::admin::path(kefu_api::admin::COMPONENT_TICKET, &[&component_appid]),
                true,
                Some("{}"),
            )
            .await?;
        let ticket = text(&ticket, "component_verify_ticket");
        let authorized = client
            .must(
                "POST",
                &kefu_api::admin::path(
                    kefu_api::admin::COMPONENT_AUTHORIZATIONS,
                    &[&component_appid],
                ),
                true,
                Some(&serde_json::json!({"appid": app.appid, "funcscopes": [1, 6]}).to_string()),
            )
            .await?;
        let refresh = text(&authorized, "authorizer_refresh_token");
        let component_token = client
            .must(
                "POST",
                "/cgi-bin/component/api_component_token",
                false,
                Some(
                    &serde_json::json!({"component_appid": component_appid,
                        "component_appsecret": component_secret,
                        "component_verify_ticket": ticket})
                    .to_string(),
                ),
            )
            .await?;
        let component_token = text(&component_token, "component_access_token");
        let authorizer = client
            .must(
                "POST",
                &format!(
                    "/cgi-bin/component/api_authorizer_token?component_access_token={component_token}"
                ),
                false,
                Some(
                    &serde_json::json!({"component_appid": component_appid,
                        "authorizer_appid": app.appid,
                        "authorizer_refresh_token": refresh})
                    .to_string(),
                ),
            )
            .await?;
        Ok::<_, String>((
            component_appid,
            component_secret,
            ticket,
            component_token,
            authorizer,
        ))
    };
    match platform.await {
        Ok((component_appid, component_secret, ticket, component_token, authorizer)) => {
            app.component_appid = component_appid;
            app.component_secret = component_secret;
            app.ticket = ticket;
            *lock(&learned.component_token) = component_token;
            *lock(&learned.refresh) = text(&authorizer, "authorizer_refresh_token");
            learned.add_token(&text(&authorizer, "authorizer_access_token"));
            // The /cgi-bin/token token last: the newest is used most.
            learned.add_token(&token);
        }
        Err(error) => println!("  (no platform for the component endpoints: {error})"),
    }
    Ok((app, learned))
}

/// A small JPEG by its signature (the server checks only that).
fn jpeg(rng: &mut Rng) -> Vec<u8> {
    let mut bytes = vec![
        0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00, 0x01, 0x01, 0x00, 0x00,
        0x01, 0x00, 0x01, 0x00, 0x00,
    ];
    let n = rng.range(16, 600);
    bytes.extend(rng.bytes(n));
    bytes.extend([0xFF, 0xD9]);
    bytes
}

/// A valid call of one path, before mutation.
#[derive(Debug, Default)]
struct Valid {
    /// Query pairs, encoded.
    query: Vec<(String, String)>,
    /// JSON body fields: key and value as JSON text.
    json: Option<Vec<(Vec<u8>, Vec<u8>)>>,
    multipart: bool,
}

fn field(key: &str, value: &str) -> (Vec<u8>, Vec<u8>) {
    (json_str(key).into_bytes(), value.as_bytes().to_vec())
}

fn sfield(key: &str, value: &str) -> (Vec<u8>, Vec<u8>) {
    field(key, &json_str(value))
}

const NICKNAMES: &[&str] = &[
    "客服1",
    "n",
    "Nick Name",
    "😀😀😀",
    "\u{202e}evil",
    "zero\u{200b}width",
    "1234567890123456",
    "12345678901234567",
    " ",
    "",
    "a\tb",
    "e\u{301}\u{301}\u{301}",
    "\u{FEFF}bom",
    "\u{10FFFF}",
];

fn kf_name(app: &FuzzApp, rng: &mut Rng) -> String {
    match rng.below(10) {
        0 => format!("k{}@other", rng.below(5)),
        1 => format!("{}@{}", rng.alnum(11), app.wechat_id),
        2 => "no-at-sign".into(),
        3 => format!("K{}@{}", rng.below(5), app.wechat_id.to_uppercase()),
        _ => format!("k{}@{}", rng.below(120), app.wechat_id),
    }
}

fn valid_call(app: &FuzzApp, learned: &Learned, path: &str, rng: &mut Rng) -> Valid {
    let token = learned.token(rng);
    let with_token = |query: Vec<(String, String)>| {
        let mut all = vec![("access_token".to_owned(), token.clone())];
        all.extend(query);
        all
    };
    let mut valid = Valid::default();
    match path {
        "/cgi-bin/token" => {
            valid.query = vec![
                ("grant_type".into(), "client_credential".into()),
                ("appid".into(), app.appid.clone()),
                ("secret".into(), app.secret.clone()),
            ];
        }
        "/cgi-bin/stable_token" => {
            valid.json = Some(vec![
                sfield("grant_type", "client_credential"),
                sfield("appid", &app.appid),
                sfield("secret", &app.secret),
                field(
                    "force_refresh",
                    if rng.chance(0.05) { "true" } else { "false" },
                ),
            ]);
        }
        "/cgi-bin/openapi/quota/get" | "/cgi-bin/openapi/quota/clear" => {
            valid.query = with_token(vec![]);
            let cgi = rng.pick(&[
                "/cgi-bin/token",
                "/customservice/kfaccount/add",
                "/cgi-bin/stable_token",
                "/nope",
                "",
            ]);
            valid.json = Some(vec![sfield("cgi_path", cgi)]);
        }
        "/cgi-bin/clear_quota" => {
            valid.query = with_token(vec![]);
            valid.json = Some(vec![sfield("appid", &app.appid)]);
        }
        "/cgi-bin/clear_quota/v2" => {
            valid.json = Some(vec![
                sfield("appid", &app.appid),
                sfield("appsecret", &app.secret),
            ]);
        }
        "/cgi-bin/openapi/rid/get" => {
            valid.query = with_token(vec![]);
            valid.json = Some(vec![sfield("rid", &learned.rid(rng))]);
        }
        "/cgi-bin/component/api_component_token" => {
            valid.json = Some(vec![
                sfield("component_appid", &app.component_appid),
                sfield("component_appsecret", &app.component_secret),
                sfield("component_verify_ticket", &app.ticket),
            ]);
        }
        "/cgi-bin/component/api_authorizer_token" => {
            let key = if rng.chance(0.8) {
                "component_access_token"
            } else {
                "access_token"
            };
            valid.query = vec![(key.into(), lock(&learned.component_token).clone())];
            valid.json = Some(vec![
                sfield("component_appid", &app.component_appid),
                sfield("authorizer_appid", &app.appid),
                sfield("authorizer_refresh_token", &lock(&learned.refresh).clone()),
            ]);
        }
        "/customservice/kfaccount/add" | "/customservice/kfaccount/update" => {
            valid.query = with_token(vec![]);
            valid.json = Some(vec![
                sfield("kf_account", &kf_name(app, rng)),
                sfield("nickname", rng.pick(NICKNAMES)),
            ]);
        }
        "/customservice/kfaccount/del" => match rng.below(4) {
            0 => valid.query = with_token(vec![("kf_account".into(), enc(&kf_name(app, rng)))]),
            1 => {
                let openid = if app.openids.is_empty() {
                    "o".into()
                } else {
                    rng.pick_ref(&app.openids).clone()
                };
                valid.query = with_token(vec![("kf_openid".into(), openid)]);
            }
            2 => {
                valid.query = with_token(vec![("kf_account".into(), enc(&kf_name(app, rng)))]);
                valid.json = Some(vec![]);
            }
            _ => {
                valid.query = with_token(vec![]);
                valid.json = Some(vec![sfield("kf_account", &kf_name(app, rng))]);
            }
        },
        "/customservice/kfaccount/uploadheadimg" => {
            valid.query = with_token(vec![("kf_account".into(), enc(&kf_name(app, rng)))]);
            valid.multipart = true;
        }
        "/customservice/kfaccount/inviteworker" => {
            valid.query = with_token(vec![]);
            let wx = if rng.chance(0.7) {
                format!("worker_{}", rng.alnum(6))
            } else {
                rng.pick(&["1abc", "ab", "w", "worker-ok", "x".repeat(30).as_str()])
                    .to_owned()
            };
            valid.json = Some(vec![
                sfield("kf_account", &kf_name(app, rng)),
                sfield("invite_wx", &wx),
            ]);
        }
        _ => {
            // The lists, and any path added later.
            valid.query = with_token(vec![]);
        }
    }
    valid
}

fn mutate_token(
    query: &mut Vec<(String, String)>,
    app: &FuzzApp,
    learned: &Learned,
    rng: &mut Rng,
    tags: &mut Vec<&'static str>,
) {
    let at = query
        .iter()
        .position(|(k, _)| k == "access_token" || k == "component_access_token");
    let key = at.map_or("access_token".to_owned(), |at| query[at].0.clone());
    let valid = at.map_or_else(|| learned.token(rng), |at| query[at].1.clone());
    let bad = format!("99_{}", rng.alnum(132));
    let roll = rng.below(100);
    let replacement: Vec<(String, String)> = match roll {
        0..=39 => return,
        40..=51 => {
            tags.push("token-missing");
            vec![]
        }
        52..=61 => {
            tags.push("token-invalid");
            vec![(key, bad.clone())]
        }
        62..=66 => {
            tags.push("token-empty");
            vec![(key, String::new())]
        }
        67..=76 => {
            tags.push("token-repeated");
            match rng.below(4) {
                0 => vec![(key.clone(), bad.clone()), (key, valid)],
                1 => vec![(key.clone(), valid), (key, bad.clone())],
                2 => vec![(key.clone(), String::new()), (key, valid)],
                _ => vec![(key.clone(), valid.clone()), (key, valid)],
            }
        }
        77..=79 => {
            tags.push("token-long");
            let n = rng.range(4 * 1024, 60 * 1024);
            vec![(key, rng.filler(n))]
        }
        80..=84 => {
            tags.push("token-broken-percent");
            let broken = rng
                .pick_ref(&[
                    format!("%zz{valid}"),
                    format!("{valid}%"),
                    "%".to_owned(),
                    "%%".to_owned(),
                    format!("%e4%b8{valid}"),
                    format!("{}%2", &valid[..valid.len().min(10)]),
                ])
                .clone();
            vec![(key, broken)]
        }
        85..=89 => {
            tags.push("token-percent-encoded");
            vec![(key, enc_all(&valid, rng.chance(0.5)))]
        }
        90..=92 => {
            tags.push("token-non-utf8");
            vec![(key, format!("%FF%FE{valid}%C0%AF"))]
        }
        93..=96 => {
            tags.push("token-other-app");
            vec![(key, app.other_token.clone())]
        }
        _ => {
            tags.push("token-key-spelling");
            let spelled = rng
                .pick(&[
                    "ACCESS_TOKEN",
                    "access%5Ftoken",
                    "access_token+",
                    "%61ccess_token",
                    "access_token%00",
                ])
                .to_owned();
            vec![(spelled, valid)]
        }
    };
    match at {
        Some(at) => {
            query.remove(at);
            for (offset, pair) in replacement.into_iter().enumerate() {
                query.insert(at + offset, pair);
            }
        }
        None => query.extend(replacement),
    }
}

fn mutate_query(query: &mut Vec<(String, String)>, rng: &mut Rng, tags: &mut Vec<&'static str>) {
    for _ in 0..rng.range(1, 2) {
        match rng.below(9) {
            0 => {
                tags.push("query-junk");
                let junk = rng
                    .pick(&[
                        ("%zz", "%zz"),
                        ("a", "b=c"),
                        ("", "x"),
                        ("x", ""),
                        ("%00", "%00"),
                        ("kf_account", "%E5%AE%A2%FF"),
                        ("grant_type", "x"),
                        ("appid", "wx0000000000000000"),
                        ("%", "%"),
                        ("+", "+"),
                        ("客", "服"),
                    ])
                    .to_owned();
                query.push((junk.0.to_owned(), junk.1.to_owned()));
            }
            1 => {
                tags.push("query-long-value");
                let n = rng.range(1024, 60 * 1024);
                let key = if query.is_empty() || rng.chance(0.3) {
                    "pad".to_owned()
                } else {
                    query[rng.below(query.len())].0.clone()
                };
                query.push((key, rng.filler(n)));
            }
            2 => {
                tags.push("query-long-key");
                let n = rng.range(512, 8 * 1024);
                query.push((rng.filler(n), "v".into()));
            }
            3 => {
                tags.push("query-many-pairs");
                for i in 0..rng.range(50, 400) {
                    query.push((format!("p{i}"), "v".into()));
                }
            }
            4 if !query.is_empty() => {
                tags.push("query-duplicate");
                let pair = query[rng.below(query.len())].clone();
                query.push(pair);
            }
            5 if !query.is_empty() => {
                tags.push("query-drop");
                query.remove(rng.below(query.len()));
            }
            6 if !query.is_empty() => {
                tags.push("query-broken-value");
                let at = rng.below(query.len());
                query[at].1 = rng
                    .pick(&["%zz", "%", "%4", "%%41", "%FF%FE", "", "+%20+", "%E5%AE"])
                    .to_owned();
            }
            7 if query.len() > 1 => {
                tags.push("query-reversed");
                query.reverse();
            }
            _ => {
                tags.push("query-empty-pairs");
                query.push((String::new(), String::new()));
            }
        }
    }
}

fn render_query(query: &[(String, String)], rng: &mut Rng) -> String {
    query
        .iter()
        .map(|(k, v)| {
            if v.is_empty() && rng.chance(0.3) {
                k.clone()
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

const WRONG_VALUES: &[&str] = &[
    "1",
    "-1.5",
    "0",
    "-0",
    "true",
    "false",
    "null",
    "[]",
    "{}",
    "[\"x\"]",
    "{\"a\":\"b\"}",
    "1e400",
    "-1e400",
    "1e-400",
    "99999999999999999999999",
    "-99999999999999999999999",
    "123456789012345678901234567890.5e10",
    "\"1\"",
    "\"true\"",
    "\"null\"",
];

fn deep(open: &str, depth: usize, close: Option<&str>, inner: &str) -> Vec<u8> {
    let mut out = open.repeat(depth);
    out.push_str(inner);
    if let Some(close) = close {
        out.push_str(&close.repeat(depth));
    }
    out.into_bytes()
}

fn escape_key(key: &[u8], rng: &mut Rng) -> Vec<u8> {
    // `key` is a JSON string text: escape some of its plain characters.
    let mut out = Vec::new();
    for (i, &b) in key.iter().enumerate() {
        let inner = i > 0 && i + 1 < key.len();
        if inner && b.is_ascii_alphanumeric() | (b == b'_') && rng.chance(0.3) {
            out.extend(format!("\\u{b:04x}").into_bytes());
        } else {
            out.push(b);
        }
    }
    if out == key {
        // At least one.
        let mut forced = key.to_vec();
        if key.len() > 2 {
            let b = key[1];
            forced.splice(1..2, format!("\\u{b:04X}").into_bytes());
        }
        return forced;
    }
    out
}

fn field_mutation(
    fields: &mut Vec<(Vec<u8>, Vec<u8>)>,
    rng: &mut Rng,
    tags: &mut Vec<&'static str>,
) {
    if fields.is_empty() {
        fields.push(sfield("kf_account", "k0@soakfuzz"));
    }
    let at = rng.below(fields.len());
    match rng.below(19) {
        0 => {
            tags.push("wrong-type");
            fields[at].1 = rng.pick(WRONG_VALUES).as_bytes().to_vec();
        }
        1 => {
            tags.push("deep-array-value");
            let depth = rng.pick(&[64, 127, 128, 129, 1000, 10_000]);
            let close = rng.chance(0.5).then_some("]");
            fields[at].1 = deep("[", depth, close, "1");
        }
        2 => {
            tags.push("deep-object-value");
            let depth = rng.pick(&[127, 128, 1000, 10_000]);
            fields[at].1 = deep("{\"a\":", depth, Some("}"), "1");
        }
        3 => {
            tags.push("lone-surrogate");
            fields[at].1 = rng
                .pick(&[
                    "\"\\ud800\"",
                    "\"\\udc00\"",
                    "\"a\\ud800b\"",
                    "\"\\ud800\\ud800\"",
                    "\"\\udbff\\udfff\"",
                    "\"\\ud800\\u0041\"",
                    "\"\\uDFFF\"",
                ])
                .as_bytes()
                .to_vec();
        }
        4 => {
            tags.push("invalid-utf8-string");
            let bad: &[u8] = rng.pick(&[
                &[0xFF][..],
                &[0xC3, 0x28],
                &[0xE2, 0x82],
                &[0xC0, 0xAF],
                &[0xED, 0xA0, 0x80],
                &[0xF4, 0x90, 0x80, 0x80],
            ]);
            let mut value = b"\"k".to_vec();
            value.extend_from_slice(bad);
            value.extend_from_slice(b"1@soakfuzz\"");
            fields[at].1 = value;
        }
        5 => {
            tags.push("nul-in-string");
            fields[at].1 = rng
                .pick(&[
                    &b"\"a\x00b\""[..],
                    b"\"\\u0000\"",
                    b"\"k0@soakfuzz\\u0000\"",
                    b"\"\x00\"",
                ])
                .to_vec();
        }
        6 => {
            tags.push("long-string");
            let n = rng.range(8 * 1024, 200 * 1024);
            fields[at].1 = json_str(&rng.filler(n)).into_bytes();
        }
        7 => {
            tags.push("unicode-value");
            fields[at].1 = json_str(rng.pick(NICKNAMES)).into_bytes();
        }
        8 => {
            tags.push("escaped-key");
            fields[at].0 = escape_key(&fields[at].0.clone(), rng);
        }
        9 => {
            tags.push("key-case");
            let upper = fields[at].0.to_ascii_uppercase();
            fields[at].0 = upper;
        }
        10 => {
            tags.push("duplicate-key");
            let mut pair = fields[at].clone();
            if rng.chance(0.5) {
                pair.1 = json_str("other@soakfuzz").into_bytes();
            }
            fields.push(pair);
        }
        11 => {
            tags.push("duplicate-key-escaped");
            let mut pair = fields[at].clone();
            pair.0 = escape_key(&pair.0, rng);
            fields.push(pair);
        }
        12 => {
            tags.push("field-removed");
            fields.remove(at);
        }
        13 => {
            tags.push("extra-fields");
            fields.push(sfield("password", "pw"));
            fields.push(field("__proto__", "{}"));
            fields.push(sfield("", ""));
            fields.push(field("business_id", "1"));
        }
        14 => {
            tags.push("many-keys");
            for i in 0..rng.range(1000, 10_000) {
                fields.push(field(&format!("k{i}"), "1"));
            }
        }
        15 => {
            tags.push("huge-number");
            fields[at].1 = rng
                .pick(&[
                    "1e400",
                    "99999999999999999999999",
                    "-1e400",
                    "1e-400",
                    "1E+99999",
                ])
                .as_bytes()
                .to_vec();
        }
        16 => {
            tags.push("odd-key");
            let mut key = fields[at].0.clone();
            let insert: &[u8] = rng.pick(&[&b"\\u0000"[..], b" ", b"\\t", b"\\n"]);
            let end = key.len().saturating_sub(1);
            key.splice(end..end, insert.iter().copied());
            fields[at].0 = key;
        }
        17 => {
            tags.push("escaped-value");
            // The same text, every character escaped: a valid alternative spelling.
            let value: Option<String> = serde_json::from_slice(&fields[at].1).ok();
            if let Some(value) = value {
                fields[at].1 =
                    format!("\"{}\"", json_escape_all(&value, rng.chance(0.5))).into_bytes();
            }
        }
        _ => {
            tags.push("odd-value");
            let long_account = format!("{}@soakfuzz", "a".repeat(200));
            fields[at].1 = json_str(rng.pick(&[
                "null",
                "%6B0%40soakfuzz",
                long_account.as_str(),
                "k0@soakfuzz ",
                " k0@soakfuzz",
                "k0@@soakfuzz",
                "@",
            ]))
            .into_bytes();
        }
    }
}

fn render_json(fields: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = b"{".to_vec();
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(key);
        out.push(b':');
        out.extend_from_slice(value);
    }
    out.push(b'}');
    out
}

fn body_mutation(body: &mut Vec<u8>, rng: &mut Rng, tags: &mut Vec<&'static str>) {
    match rng.below(20) {
        0 => {
            tags.push("empty-body");
            body.clear();
        }
        1 => {
            tags.push("blank-body");
            *body = rng
                .pick(&[&b"   "[..], b"\r\n\t", b" null ", b"null"])
                .to_vec();
        }
        2 => {
            tags.push("scalar-body");
            let wrapped = [b"[".to_vec(), body.clone(), b"]".to_vec()].concat();
            let scalar: &[u8] = rng.pick(&[
                &b"[]"[..],
                b"\"x\"",
                b"123",
                b"true",
                b"false",
                b"{}",
                b"-0",
                b"1e400",
            ]);
            *body = if rng.chance(0.3) {
                wrapped
            } else {
                scalar.to_vec()
            };
        }
        3 => {
            tags.push("bom");
            let bom: &[u8] = rng.pick(&[
                &b"\xEF\xBB\xBF"[..],
                b"\xEF\xBB\xBF\xEF\xBB\xBF",
                b"\xEF\xBB\xBF  ",
                b"\xEF\xBB",
            ]);
            body.splice(0..0, bom.iter().copied());
        }
        4 => {
            tags.push("utf16");
            let text = String::from_utf8_lossy(body).into_owned();
            let mut out = vec![0xFF, 0xFE];
            for unit in text.encode_utf16() {
                out.extend(unit.to_le_bytes());
            }
            *body = out;
        }
        5 => {
            tags.push("deep-body");
            *body = match rng.below(3) {
                0 => deep("[", 10_000, None, ""),
                1 => deep("[", 10_000, Some("]"), ""),
                _ => deep("{\"a\":", 10_000, None, ""),
            };
        }
        6 if !body.is_empty() => {
            tags.push("truncated");
            let at = rng.below(body.len());
            body.truncate(at);
        }
        7 => {
            tags.push("nul-bytes");
            for _ in 0..rng.range(1, 5) {
                let at = rng.below(body.len() + 1);
                body.insert(at, 0);
            }
        }
        8 => {
            tags.push("invalid-utf8");
            for _ in 0..rng.range(1, 3) {
                let at = rng.below(body.len() + 1);
                let bad: &[u8] =
                    rng.pick(&[&[0xFF][..], &[0xC0, 0xAF], &[0xED, 0xA0, 0x80], &[0x80]]);
                body.splice(at..at, bad.iter().copied());
            }
        }
        9 => {
            tags.push("trailing-garbage");
            let tail: &[u8] =
                rng.pick(&[&b"xyz"[..], b"}", b"{}", b"\x00", b",", b"\n\n{\"a\":1}"]);
            body.extend_from_slice(tail);
        }
        10 if body.ends_with(b"}") => {
            tags.push("trailing-comma");
            body.insert(body.len() - 1, b',');
        }
        11 if body.starts_with(b"{") => {
            tags.push("comment");
            body.splice(1..1, b"/* c */".iter().copied());
        }
        12 => {
            tags.push("single-quotes");
            for b in body.iter_mut() {
                if *b == b'"' {
                    *b = b'\'';
                }
            }
        }
        13 if !body.is_empty() => {
            tags.push("byte-flips");
            for _ in 0..rng.range(1, 8) {
                let at = rng.below(body.len());
                body[at] ^= 1 << rng.below(8);
            }
        }
        14 => {
            tags.push("random-bytes");
            let n = rng.range(1, 4096);
            *body = rng.bytes(n);
        }
        15 => {
            tags.push("form-body");
            *body = b"kf_account=k0%40soakfuzz&nickname=%E5%AE%A2&appid=x&secret=y".to_vec();
        }
        16 => {
            tags.push("many-escapes");
            let n = rng.range(1000, 100_000);
            let mut out = b"{\"kf_account\":\"".to_vec();
            for _ in 0..n {
                out.extend_from_slice(b"\\u0041");
            }
            out.extend_from_slice(b"\"}");
            *body = out;
        }
        17 => {
            tags.push("whitespace-padding");
            let n = rng.range(1000, 100_000);
            body.splice(0..0, std::iter::repeat_n(b' ', n));
        }
        18 => {
            tags.push("long-number");
            let n = rng.range(1000, 100_000);
            let mut out = b"{\"kf_account\":".to_vec();
            out.extend(std::iter::repeat_n(b'9', n));
            out.push(b'}');
            *body = out;
        }
        _ => {
            tags.push("two-objects");
            let copy = body.clone();
            body.extend_from_slice(&copy);
        }
    }
}

fn multipart(rng: &mut Rng, tags: &mut Vec<&'static str>) -> (Vec<u8>, String) {
    let boundary = format!("soak{}", rng.alnum(16));
    let mut content_type = format!("multipart/form-data; boundary={boundary}");
    let mut media = jpeg(rng);
    let mut name = "media".to_owned();
    let mut filename = "head.jpg".to_owned();
    let mut extra_parts = 0;
    let mut tail = format!("--{boundary}--\r\n");
    let mut newline = "\r\n";
    let mut duplicate = false;
    let mut cut_at: Option<f64> = None;
    if rng.chance(0.6) {
        match rng.below(12) {
            0 => {
                tags.push("mp-no-media");
                name = "file".into();
            }
            1 => {
                tags.push("mp-not-jpeg");
                media = b"\x89PNG\r\n\x1a\n0000".to_vec();
            }
            2 => {
                tags.push("mp-boundary-mismatch");
                content_type = "multipart/form-data; boundary=other".into();
            }
            3 => {
                tags.push("mp-no-boundary");
                content_type = "multipart/form-data".into();
            }
            4 => {
                tags.push("mp-truncated");
                cut_at = Some(0.5);
            }
            5 => {
                tags.push("mp-many-parts");
                extra_parts = rng.range(100, 1000);
            }
            6 => {
                tags.push("mp-odd-filename");
                filename = rng
                    .pick_ref(&[
                        "a\"b.jpg".to_owned(),
                        "客服.jpg".to_owned(),
                        "x".repeat(4096),
                        String::new(),
                        "..\\..\\etc\\passwd".to_owned(),
                    ])
                    .clone();
            }
            7 => {
                tags.push("mp-duplicate-media");
                duplicate = true;
            }
            8 => {
                tags.push("mp-no-final-boundary");
                tail = String::new();
            }
            9 => {
                tags.push("mp-lf-only");
                newline = "\n";
            }
            10 => {
                tags.push("mp-empty-media");
                media = if rng.chance(0.5) {
                    Vec::new()
                } else {
                    vec![0xFF, 0xD8, 0xFF]
                };
            }
            _ => {
                tags.push("mp-quoted-boundary");
                content_type =
                    format!("multipart/form-data; boundary=\"{boundary}\"; charset=utf-8");
            }
        }
    }
    let mut body = Vec::new();
    let nl = newline.as_bytes();
    for i in 0..extra_parts {
        body.extend(
            format!(
                "--{boundary}{newline}Content-Disposition: form-data; \
            name=\"p{i}\"{newline}{newline}v{newline}"
            )
            .into_bytes(),
        );
    }
    for _ in 0..(1 + usize::from(duplicate)) {
        body.extend(
            format!(
                "--{boundary}{newline}Content-Disposition: form-data; name=\"{name}\"; \
                    filename=\"{filename}\"{newline}Content-Type: image/jpeg{newline}{newline}"
            )
            .into_bytes(),
        );
        body.extend_from_slice(&media);
        body.extend_from_slice(nl);
    }
    body.extend(tail.replace("\r\n", newline).into_bytes());
    if let Some(fraction) = cut_at {
        let at = (body.len() as f64 * fraction) as usize;
        body.truncate(at);
    }
    (body, content_type)
}

const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/json; charset=utf-8",
    "application/json; encoding=utf-8",
    "text/plain",
    "text/xml",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=zz",
    "multipart/form-data",
    "multipart/form-data; boundary=\"\"",
    "application/octet-stream",
    ";;;=",
    "application/json, text/plain",
    "APPLICATION/JSON",
    "*/*",
];

/// The longest request target the fuzz sends unless `--http-level`.
const MAX_TARGET: usize = 60 * 1024;

const OTHER_METHODS: &[&str] = &[
    "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "get", "Post", "PROPFIND", "M-SEARCH",
    "X",
];

/// Everything one fuzz request needs.
struct FuzzInput<'a> {
    app: &'a FuzzApp,
    learned: &'a Learned,
    path: &'a str,
    method: kefu_api::Method,
    host: &'a str,
    framing: bool,
    http_level: bool,
    max_body: usize,
}

/// One generated request, and the mutations that made it.
fn generate(input: &FuzzInput<'_>, rng: &mut Rng) -> (Req, Vec<&'static str>) {
    let mut tags: Vec<&'static str> = Vec::new();
    let valid = valid_call(input.app, input.learned, input.path, rng);
    // Method.
    let native = match input.method {
        kefu_api::Method::Get => "GET",
        kefu_api::Method::Post => "POST",
        kefu_api::Method::GetOrPost => rng.pick(&["GET", "POST"]),
    };
    let roll = rng.below(100);
    let method: String = if rng.chance(0.005) {
        tags.push("connect");
        "CONNECT".to_owned()
    } else if roll < 55 {
        native.to_owned()
    } else if roll < 65 {
        tags.push("other-method");
        if native == "GET" { "POST" } else { "GET" }.to_owned()
    } else if roll < 95 {
        tags.push("odd-method");
        rng.pick(OTHER_METHODS).to_owned()
    } else {
        tags.push("random-method");
        let n = rng.range(1, 12);
        rng.alnum(n).to_ascii_uppercase()
    };
    // Path.
    let mut path = input.path.to_owned();
    if rng.chance(0.04) {
        tags.push("path-variant");
        path = match rng.below(7) {
            0 => format!("{path}/"),
            1 => format!("/{path}"),
            2 => path.to_uppercase(),
            3 => format!("/{}", path[1..].replacen('/', "%2F", 1)),
            4 => format!("/cgi-bin/..{path}"),
            5 => format!("{path};jsessionid=x"),
            _ => {
                let last = path.len() - 1;
                format!("{}%{:02X}", &path[..last], path.as_bytes()[last])
            }
        };
    }
    // Query.
    let mut query = valid.query.clone();
    mutate_token(&mut query, input.app, input.learned, rng, &mut tags);
    if rng.chance(0.25) {
        mutate_query(&mut query, rng, &mut tags);
    }
    let mut target = path;
    if !query.is_empty() || rng.chance(0.05) {
        target.push('?');
        target.push_str(&render_query(&query, rng));
    }
    if input.http_level && rng.chance(0.005) {
        tags.push("huge-target");
        let n = rng.range(64 * 1024, 80 * 1024);
        target.push_str("&pad=");
        target.push_str(&rng.filler(n));
    } else if target.len() > MAX_TARGET {
        // Past 64 KiB hyper answers 414 itself (see --http-level).
        let mut end = MAX_TARGET;
        while !target.is_char_boundary(end) {
            end -= 1;
        }
        target.truncate(end);
    }
    if input.http_level && rng.chance(0.01) {
        tags.push("raw-target-chars");
        target.push_str(rng.pick(&["&q=\"x\"", "&q=<a>", "&q={\"a\":1}", "&q=|^`"]));
    }
    if rng.chance(0.03) {
        tags.push("raw-utf8-target");
        target.push_str("&kf_account=客服@soakfuzz");
    }
    // Body.
    // CONNECT is answered before any body is read, and its connection closed.
    let bodied = method != "CONNECT"
        && (!matches!(
            method.as_str(),
            "GET" | "HEAD" | "OPTIONS" | "TRACE" | "get"
        ) || rng.chance(0.15));
    let mut content_type: Option<String> = None;
    let mut body: Vec<u8> = Vec::new();
    if bodied {
        if valid.multipart && rng.chance(0.8) {
            let (bytes, ct) = multipart(rng, &mut tags);
            body = bytes;
            if rng.chance(0.85) {
                content_type = Some(ct);
            }
        } else {
            let fields = valid
                .json
                .clone()
                .unwrap_or_else(|| vec![sfield("kf_account", "k0@soakfuzz")]);
            let mut fields = fields;
            if !rng.chance(0.15) {
                for _ in 0..rng.range(1, 3) {
                    field_mutation(&mut fields, rng, &mut tags);
                }
            }
            body = if valid.json.is_none() && rng.chance(0.5) {
                Vec::new()
            } else {
                render_json(&fields)
            };
            if rng.chance(0.4) {
                for _ in 0..rng.range(1, 2) {
                    body_mutation(&mut body, rng, &mut tags);
                }
            }
        }
        if rng.chance(0.003) {
            tags.push("oversized");
            let over = input.max_body + rng.range(1, 64 * 1024);
            let pad = over.saturating_sub(body.len() + 12);
            let mut big = b"{\"pad\":\"".to_vec();
            big.extend(std::iter::repeat_n(b'x', pad));
            big.extend_from_slice(b"\"}");
            body = big;
        }
    }
    if content_type.is_none() && (bodied || rng.chance(0.2)) {
        content_type = match rng.below(10) {
            0..=4 => Some("application/json".into()),
            5 => None,
            6 => Some("x".repeat(rng.range(1000, 8000))),
            _ => Some(rng.pick(CONTENT_TYPES).to_owned()),
        };
        if content_type.as_deref().is_some_and(|ct| ct.len() > 100) {
            tags.push("long-content-type");
        }
    }
    // Head.
    let http10 = rng.chance(0.02);
    let mut closes = false;
    let mut head = format!(
        "{method} {target} {}\r\n",
        if http10 { "HTTP/1.0" } else { "HTTP/1.1" }
    );
    match rng.below(20) {
        0 => tags.push("no-host"),
        1 => head.push_str("Host: \r\n"),
        2 => head.push_str("Host: api.weixin.qq.com\r\n"),
        _ => {
            let _ = write!(head, "Host: {}\r\n", input.host);
        }
    }
    if let Some(ct) = &content_type {
        let _ = write!(head, "Content-Type: {ct}\r\n");
        if rng.chance(0.03) {
            tags.push("two-content-types");
            head.push_str("Content-Type: text/plain\r\n");
        }
    }
    if rng.chance(0.1) {
        tags.push("odd-headers");
        let header = rng
            .pick_ref(&[
                "X-Forwarded-For: 1.2.3.4, junk, ::1".to_owned(),
                "X-Forwarded-For: ".to_owned(),
                format!("User-Agent: {}", "u".repeat(2048)),
                "Authorization: Bearer junk".to_owned(),
                "Cookie: a=b; c".to_owned(),
                "Content-Encoding: gzip".to_owned(),
                "Accept-Encoding: gzip, br".to_owned(),
                "Accept: text/html".to_owned(),
                "X-Odd: \u{80}\u{ff}".to_owned(),
            ])
            .clone();
        let _ = write!(head, "{header}\r\n");
    }
    if http10 {
        if rng.chance(0.5) {
            head.push_str("Connection: keep-alive\r\n");
        } else {
            closes = true;
        }
    } else if rng.chance(0.02) {
        tags.push("client-close");
        head.push_str("Connection: close\r\n");
        closes = true;
    } else if rng.chance(0.05) {
        head.push_str("Connection: keep-alive\r\n");
    }
    let mut expect_continue = false;
    let mut broken_framing = false;
    let framing = rng.below(100);
    let wire_body = if !http10 && framing < 12 && bodied {
        tags.push("chunked");
        head.push_str("Transfer-Encoding: chunked\r\n");
        chunked(&body, rng)
    } else if !http10 && input.framing && framing < 14 && bodied {
        tags.push("broken-chunked");
        broken_framing = true;
        head.push_str("Transfer-Encoding: chunked\r\n");
        // The last chunk line is malformed: nothing is left unread behind it.
        let mut wire = chunks(&body[..body.len() / 2], rng);
        wire.extend_from_slice(rng.pick(&[
            &b"zz\r\n"[..],
            b"-1\r\n",
            b"fffffffffffffffffffff\r\n",
            b"3\r\nabcXY",
        ]));
        wire
    } else {
        if !body.is_empty() || (bodied && rng.chance(0.5)) {
            let _ = write!(head, "Content-Length: {}\r\n", body.len());
        }
        if !http10 && framing >= 97 && !body.is_empty() {
            tags.push("expect-100");
            head.push_str("Expect: 100-continue\r\n");
            expect_continue = true;
        }
        body
    };
    head.push_str("\r\n");
    let req = Req {
        head: head.into_bytes(),
        body: wire_body,
        expect_continue,
        closes,
        head_method: method == "HEAD",
        broken_framing,
        connect: method == "CONNECT",
        label: String::new(),
    };
    (req, tags)
}

fn chunked(body: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = chunks(body, rng);
    out.extend_from_slice(b"0\r\n");
    if rng.chance(0.05) {
        out.extend_from_slice(b"X-Trailer: 1\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The body in chunks, without the last chunk.
fn chunks(body: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let n = rng.range(1, rest.len().min(64 * 1024));
        let size = if rng.chance(0.5) {
            format!("{n:x}")
        } else {
            format!("{n:X}")
        };
        out.extend(size.into_bytes());
        if rng.chance(0.05) {
            out.extend_from_slice(b";ext=1");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    out
}

/// What the fuzz workers share.
struct Fuzz {
    args: Args,
    app: FuzzApp,
    learned: Learned,
    paths: Vec<(&'static str, kefu_api::Method)>,
    next: AtomicUsize,
    total: usize,
    tally: Arc<Tally>,
    host: String,
    /// Answers that said `Connection: close`, by reason: how many, and the first.
    closes: Mutex<BTreeMap<String, (u64, String)>>,
    /// (path, errcode) → answers.
    codes: Mutex<BTreeMap<(String, i64), u64>>,
    /// Time spent making requests and waiting on the wire.
    generate_us: AtomicU64,
    wire_us: AtomicU64,
}

fn max_body_of(path: &str) -> usize {
    if path == kefu_api::endpoints::kf_uploadheadimg::UploadHeadImg::PATH {
        kefu_api::endpoints::kf_uploadheadimg::UploadHeadImg::MAX_BODY
    } else {
        kefu_api::MAX_JSON_BODY
    }
}

async fn fuzz_worker(fuzz: Arc<Fuzz>) {
    let args = &fuzz.args;
    let tally = &fuzz.tally;
    let mut conn: Option<Conn> = None;
    // The request whose answer the connection last carried.
    let mut previous = String::new();
    loop {
        let k = fuzz.next.fetch_add(1, Ordering::Relaxed);
        if k >= fuzz.total {
            break;
        }
        let (path_index, index) = (k % fuzz.paths.len(), k / fuzz.paths.len());
        let (path, method) = fuzz.paths[path_index];
        let mut rng = Rng::new(args.seed ^ splitmix((path_index as u64) << 32 | index as u64));
        let input = FuzzInput {
            app: &fuzz.app,
            learned: &fuzz.learned,
            path,
            method,
            host: &fuzz.host,
            framing: args.framing,
            http_level: args.http_level,
            max_body: max_body_of(path),
        };
        let generating = Instant::now();
        let (mut req, tags) = generate(&input, &mut rng);
        fuzz.generate_us
            .fetch_add(generating.elapsed().as_micros() as u64, Ordering::Relaxed);
        req.label = format!(
            "fuzz {path} #{index} (seed {}) [{}]",
            args.seed,
            tags.join(",")
        );
        // A connection idle for half the idle timeout is not reused: the server may be
        // closing it, as it should.
        if conn
            .as_ref()
            .is_some_and(|c| c.last.elapsed() > args.idle_timeout / 2)
        {
            conn = None;
            tally.count("reconnects: idle");
        }
        let fresh = conn.is_none();
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match Conn::open(args.addr).await {
                Ok(c) => conn.insert(c),
                Err(error) => {
                    tally.request();
                    tally.violation(format!("cannot connect: {error}"));
                    continue;
                }
            },
        };
        tally.request();
        let hard = args.latency.max(Duration::from_secs(10)) * 3;
        let sending = Instant::now();
        let sent = c.send(&req, hard).await;
        fuzz.wire_us
            .fetch_add(sending.elapsed().as_micros() as u64, Ordering::Relaxed);
        match sent {
            Ok(answer) => {
                tally.latency(answer.elapsed);
                if answer.elapsed > args.latency {
                    tally.violation(format!(
                        "answered after {} ms (bound {} ms)\n      request: {}\n      answer: {}",
                        answer.elapsed.as_millis(),
                        args.latency.as_millis(),
                        req.describe(),
                        answer.describe()
                    ));
                }
                let checked = if req.connect {
                    check_connect(&answer)
                } else {
                    check_envelope(path, req.head_method, &answer)
                };
                match checked {
                    Ok(verdict) => {
                        fuzz.learned.learn(&verdict);
                        if let Some(errcode) = verdict.errcode {
                            *lock(&fuzz.codes)
                                .entry((path.to_owned(), errcode))
                                .or_default() += 1;
                        }
                    }
                    Err(why) => tally.violation(format!(
                        "{why}\n      request: {}\n      answer: {}",
                        req.describe(),
                        answer.describe()
                    )),
                }
                if answer.close || req.closes {
                    conn = None;
                    let reason = if req.closes {
                        "the client asked".to_owned()
                    } else if req.broken_framing {
                        "malformed chunked body".to_owned()
                    } else if req.connect {
                        "CONNECT (405, as documented)".to_owned()
                    } else {
                        let errcode = answer
                            .json()
                            .and_then(|j| j.get("errcode").and_then(Value::as_i64))
                            .map_or("-".to_owned(), |e| e.to_string());
                        if answer.before_continue {
                            format!("errcode {errcode} before 100 Continue (not reused)")
                        } else {
                            format!("errcode {errcode}")
                        }
                    };
                    let mut closes = lock(&fuzz.closes);
                    let entry = closes
                        .entry(reason)
                        .or_insert_with(|| (0, cut(&req.label, 160)));
                    entry.0 += 1;
                } else {
                    previous = req.describe();
                }
            }
            Err(fail) => {
                conn = None;
                let context = if fresh {
                    "on a new connection".to_owned()
                } else {
                    format!(
                        "on a kept-alive connection whose previous answer did not say \
                            `Connection: close`; previous request: {previous}"
                    )
                };
                let why = if fail.dropped() {
                    format!(
                        "connection closed without `Connection: close`: {} ({context})",
                        fail.describe()
                    )
                } else {
                    format!("{} ({context})", fail.describe())
                };
                tally.violation(format!("{why}\n      request: {}", req.describe()));
            }
        }
    }
    // The connection must still be usable after the last answer.
    if let Some(mut c) = conn
        && c.last.elapsed() < args.idle_timeout / 2
    {
        let probe = Req::simple("GET", "/kefu/v1/health", &[], b"");
        tally.request();
        if let Err(fail) = c.send(&probe, Duration::from_secs(10)).await {
            tally.violation(format!(
                "the connection could not carry a request after its last answer: {}; last \
                    request: {previous}",
                fail.describe()
            ));
        }
    }
}

async fn phase_fuzz(client: &Client, args: &Args, tally: Arc<Tally>) -> Vec<String> {
    let mut paths = kefu_server::wechat_paths();
    if let Some(filter) = &args.paths {
        paths.retain(|(path, _)| path.contains(filter.as_str()));
    }
    if paths.is_empty() {
        tally.violation("no WeChat path to fuzz".into());
        return vec![];
    }
    let (app, learned) = match fuzz_setup(client, args, &paths).await {
        Ok(setup) => setup,
        Err(error) => {
            tally.violation(format!("fuzz setup failed: {error}"));
            return vec![];
        }
    };
    println!(
        "  {} paths × {} requests over {} keep-alive connections (seed {})",
        paths.len(),
        args.per_path,
        args.conns,
        args.seed
    );
    let fuzz = Arc::new(Fuzz {
        args: args.clone(),
        app,
        learned,
        total: paths.len() * args.per_path,
        paths,
        next: AtomicUsize::new(0),
        tally: Arc::clone(&tally),
        host: args.addr.to_string(),
        closes: Mutex::new(BTreeMap::new()),
        codes: Mutex::new(BTreeMap::new()),
        generate_us: AtomicU64::new(0),
        wire_us: AtomicU64::new(0),
    });
    let workers: Vec<_> = (0..args.conns)
        .map(|_| tokio::spawn(fuzz_worker(Arc::clone(&fuzz))))
        .collect();
    for worker in workers {
        if let Err(error) = worker.await {
            tally.violation(format!("a fuzz worker panicked: {error}"));
        }
    }
    let mut notes = vec![
        tally.latency_line(),
        format!(
            "harness time over all connections: {:.1} s making requests, {:.1} s sending and \
                waiting",
            fuzz.generate_us.load(Ordering::Relaxed) as f64 / 1e6,
            fuzz.wire_us.load(Ordering::Relaxed) as f64 / 1e6
        ),
    ];
    let closes = lock(&fuzz.closes);
    let total: u64 = closes.values().map(|(n, _)| n).sum();
    notes.push(format!(
        "answers ending their connection (then reconnected): {total}"
    ));
    for (reason, (n, first)) in closes.iter() {
        notes.push(format!("  {reason}: {n} (first: {first})"));
    }
    for (key, count) in lock(&tally.counts).iter() {
        notes.push(format!("{key}: {count}"));
    }
    let codes = lock(&fuzz.codes);
    let mut by_path: BTreeMap<&str, Vec<(i64, u64)>> = BTreeMap::new();
    for ((path, code), count) in codes.iter() {
        by_path.entry(path).or_default().push((*code, *count));
    }
    for (path, mut list) in by_path {
        list.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
        let shown: Vec<String> = list
            .iter()
            .take(8)
            .map(|(code, count)| format!("{code}×{count}"))
            .collect();
        notes.push(format!("{path}: {}", shown.join(" ")));
    }
    notes
}

// ------------------------------------------------------------------------------------
// Phase 2: slow clients

/// How one watched connection ended.
enum Ended {
    /// Closed by the server this long after the clock started.
    Closed(Duration),
    /// A violation.
    Violation(String),
}

async fn slowloris(addr: SocketAddr, header_timeout: Duration, margin: Duration) -> Ended {
    let mut stream = match TcpStream::connect(addr).await {
        Ok(stream) => stream,
        Err(e) => return Ended::Violation(format!("slowloris: cannot connect: {e}")),
    };
    let head = b"GET /cgi-bin/customservice/getkflist?access_token=";
    if let Err(e) = stream.write_all(&head[..1]).await {
        return Ended::Violation(format!("slowloris: the first byte could not be sent: {e}"));
    }
    let started = Instant::now();
    let mut sent = 1;
    let mut buf = [0_u8; 4096];
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return Ended::Closed(started.elapsed()),
                Ok(_) => {}
            },
            () = tokio::time::sleep(Duration::from_millis(250)) => {
                if started.elapsed() > header_timeout + margin {
                    return Ended::Violation(format!(
                        "a slowloris connection is still open {:.1} s after its first byte \
                            (header timeout {} s)",
                        started.elapsed().as_secs_f64(), header_timeout.as_secs()
                    ));
                }
                let byte = head.get(sent).copied().unwrap_or(b'a');
                if stream.write_all(&[byte]).await.is_err() {
                    return Ended::Closed(started.elapsed());
                }
                sent += 1;
            }
        }
    }
}

/// Waits for the server to close an idle connection.
async fn idle_until_closed(mut stream: TcpStream, limit: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    let mut buf = [0_u8; 1024];
    match tokio::time::timeout(limit, stream.read(&mut buf)).await {
        Err(_) => Err(format!(
            "an idle connection is still open after {:.1} s",
            started.elapsed().as_secs_f64()
        )),
        Ok(Ok(0) | Err(_)) => Ok(started.elapsed()),
        Ok(Ok(n)) => Err(format!(
            "an idle connection received {n} bytes unasked: {}",
            escape(&buf[..n], 200)
        )),
    }
}

async fn idle(addr: SocketAddr, limit: Duration) -> Ended {
    match TcpStream::connect(addr).await {
        Err(e) => Ended::Violation(format!("idle: cannot connect: {e}")),
        Ok(stream) => match idle_until_closed(stream, limit).await {
            Ok(after) => Ended::Closed(after),
            Err(why) => Ended::Violation(why),
        },
    }
}

fn list_request(token: &str) -> Req {
    Req::simple(
        "GET",
        &format!("/cgi-bin/customservice/getkflist?access_token={token}"),
        &[],
        b"",
    )
}

fn check_list(answer: &Answer) -> Result<(), String> {
    let verdict = check_envelope("/cgi-bin/customservice/getkflist", false, answer)?;
    match verdict.errcode {
        Some(0) => Ok(()),
        other => Err(format!("getkflist answered errcode {other:?}")),
    }
}

/// One request, then idle until the server closes the connection.
async fn idle_after_request(addr: SocketAddr, token: String, limit: Duration) -> Ended {
    let mut conn = match Conn::open(addr).await {
        Ok(conn) => conn,
        Err(e) => return Ended::Violation(format!("idle-after-request: {e}")),
    };
    let req = list_request(&token);
    match conn.send(&req, Duration::from_secs(10)).await {
        Ok(answer) => {
            if let Err(why) = check_list(&answer) {
                return Ended::Violation(format!(
                    "idle-after-request: {why}: {}",
                    answer.describe()
                ));
            }
        }
        Err(fail) => {
            return Ended::Violation(format!("idle-after-request: {}", fail.describe()));
        }
    }
    match idle_until_closed(conn.stream, limit).await {
        Ok(after) => Ended::Closed(after),
        Err(why) => Ended::Violation(format!("{why} (after one answer)")),
    }
}

/// A client that keeps asking while the slow ones hang on; every answer must come.
async fn normal_client(args: Args, stop: Arc<AtomicBool>, tally: Arc<Tally>) -> u64 {
    let mut conn: Option<Conn> = None;
    let mut answered = 0_u64;
    let mut n = 0_u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let req = if n.is_multiple_of(3) {
            let body = format!(
                r#"{{"kf_account":"{}","nickname":"soak{}"}}"#,
                args.kf_account,
                n % 1000
            );
            Req::simple(
                "POST",
                &format!(
                    "/customservice/kfaccount/update?access_token={}",
                    args.token
                ),
                &[],
                body.as_bytes(),
            )
        } else {
            list_request(&args.token)
        };
        if n.is_multiple_of(5) {
            conn = None;
        }
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match Conn::open(args.addr).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    tally.request();
                    tally.violation(format!("normal client: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        tally.request();
        match c.send(&req, Duration::from_secs(10)).await {
            Ok(answer) => {
                tally.latency(answer.elapsed);
                let path = if n.is_multiple_of(3) {
                    "/customservice/kfaccount/update"
                } else {
                    "/cgi-bin/customservice/getkflist"
                };
                let verdict = check_envelope(path, false, &answer);
                match verdict {
                    Ok(Verdict {
                        errcode: Some(0), ..
                    }) => answered += 1,
                    Ok(_) | Err(_) => tally.violation(format!(
                        "normal client: not a success: {}\n      request: {}",
                        answer.describe(),
                        req.describe()
                    )),
                }
                if answer.elapsed > args.latency {
                    tally.violation(format!(
                        "normal client: answered after {} ms while slow clients hung on",
                        answer.elapsed.as_millis()
                    ));
                }
                if answer.close {
                    conn = None;
                }
            }
            Err(fail) => {
                conn = None;
                tally.violation(format!(
                    "normal client: {}\n      request: {}",
                    fail.describe(),
                    req.describe()
                ));
            }
        }
    }
    answered
}

/// Opens connections in batches (the listen backlog is finite).
async fn spawn_batched<F, Fut>(n: usize, make: F) -> Vec<tokio::task::JoinHandle<Ended>>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Ended> + Send + 'static,
{
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        handles.push(tokio::spawn(make()));
        if i % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    handles
}

fn summarize_ended(what: &str, results: Vec<Ended>, timeout: Duration, tally: &Tally) -> String {
    let mut times: Vec<f64> = Vec::new();
    let early = timeout.saturating_sub(Duration::from_millis(250));
    for result in results {
        tally.request();
        match result {
            Ended::Closed(after) => {
                if after < early {
                    tally.violation(format!(
                        "{what}: closed by the server after only {:.2} s, before its timeout \
                            of {} s",
                        after.as_secs_f64(),
                        timeout.as_secs()
                    ));
                }
                times.push(after.as_secs_f64());
            }
            Ended::Violation(why) => tally.violation(why),
        }
    }
    times.sort_by(f64::total_cmp);
    if times.is_empty() {
        return format!("{what}: none closed");
    }
    format!(
        "{what}: {} closed by the server after {:.2}–{:.2} s (timeout {} s)",
        times.len(),
        times[0],
        times[times.len() - 1],
        timeout.as_secs()
    )
}

async fn phase_slow(args: &Args, tally: Arc<Tally>) -> Vec<String> {
    let margin = Duration::from_millis(2500);
    let stop = Arc::new(AtomicBool::new(false));
    let normal = tokio::spawn(normal_client(
        args.clone(),
        Arc::clone(&stop),
        Arc::clone(&tally),
    ));
    let addr = args.addr;
    let header = args.header_timeout;
    let idle_timeout = args.idle_timeout;
    let slow = spawn_batched(args.slowloris, || slowloris(addr, header, margin)).await;
    let idlers = spawn_batched(args.idle, || idle(addr, idle_timeout + margin)).await;
    let token = args.token.clone();
    let after = spawn_batched(50, || {
        idle_after_request(addr, token.clone(), idle_timeout + margin)
    })
    .await;
    let mut notes = Vec::new();
    for (what, handles, timeout) in [
        ("slowloris", slow, header),
        ("idle", idlers, idle_timeout),
        ("idle after one answer", after, idle_timeout),
    ] {
        let mut results = Vec::new();
        for handle in handles {
            results.push(
                handle
                    .await
                    .unwrap_or_else(|e| Ended::Violation(format!("{what}: task failed: {e}"))),
            );
        }
        notes.push(summarize_ended(what, results, timeout, &tally));
    }
    stop.store(true, Ordering::Relaxed);
    let answered = normal.await.unwrap_or(0);
    notes.push(format!(
        "normal client: {answered} answers, all checked, meanwhile; {}",
        tally.latency_line()
    ));
    // A lull: no new connection for longer than the idle timeout, then one.
    let lull = idle_timeout + Duration::from_millis(1500);
    for probe in 0..args.lull_probes {
        tokio::time::sleep(lull).await;
        tally.request();
        let mut conn = match Conn::open(args.addr).await {
            Ok(conn) => conn,
            Err(e) => {
                tally.violation(format!("lull probe {probe}: {e}"));
                continue;
            }
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let req = list_request(&args.token);
        let first = conn.send(&req, Duration::from_secs(10)).await;
        let outcome = match first {
            Err(fail) => Err(format!("its first request: {}", fail.describe())),
            Ok(answer) if answer.close => Ok(()),
            Ok(answer) => match check_list(&answer) {
                Err(why) => Err(format!("its first answer: {why}")),
                Ok(()) => {
                    tally.request();
                    match conn.send(&req, Duration::from_secs(10)).await {
                        Ok(_) => Ok(()),
                        Err(fail) => Err(format!(
                            "after its first answer (which did not say `Connection: close`), \
                                its second request: {}",
                            fail.describe()
                        )),
                    }
                }
            },
        };
        if let Err(why) = outcome {
            tally.violation(format!(
                "lull probe {probe}: after {:.1} s without a new connection, the first new \
                    one failed — {why}\n      request: {}",
                lull.as_secs_f64(),
                req.describe()
            ));
        }
    }
    if args.lull_probes > 0 {
        notes.push(format!(
            "{} lull probes: a new connection after {:.1} s without any",
            args.lull_probes,
            lull.as_secs_f64()
        ));
    }
    notes
}

// ------------------------------------------------------------------------------------
// Phase 3: flood

async fn summary(client: &Client) -> Result<Value, String> {
    client
        .must(
            "GET",
            &format!("{}?hours=2", kefu_api::admin::REQUESTS_SUMMARY),
            true,
            None,
        )
        .await
}

fn count_of(value: &Value, pointer: &str) -> u64 {
    value.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

struct Flood {
    args: Args,
    tally: Arc<Tally>,
    answered: AtomicU64,
    deadline: Instant,
}

async fn flood_worker(flood: Arc<Flood>, worker: u64) {
    let args = &flood.args;
    let tally = &flood.tally;
    let mut rng = Rng::new(args.seed ^ splitmix(0xF100D ^ worker));
    let pad = rng.alnum(58 * 1024);
    let bad_body = format!(
        r#"{{"kf_account":"k1@soak","nickname":"{}","invite_wx":"worker_x"}}"#,
        rng.alnum(1500)
    );
    let mut conn: Option<Conn> = None;
    let mut previous = String::new();
    while Instant::now() < flood.deadline {
        let bad_token = format!("99_{}", rng.alnum(132));
        let (req, expected) = match rng.below(100) {
            0..=44 => (
                Req::simple(
                    "GET",
                    &format!(
                        "/cgi-bin/token?grant_type=x&pad={}{}",
                        rng.alnum(8),
                        &pad[8..]
                    ),
                    &[],
                    b"",
                ),
                40002,
            ),
            45..=79 => {
                let path = rng.pick(&[
                    "/customservice/kfaccount/add",
                    "/customservice/kfaccount/update",
                    "/customservice/kfaccount/del",
                    "/customservice/kfaccount/inviteworker",
                ]);
                (
                    Req::simple(
                        "POST",
                        &format!("{path}?access_token={bad_token}"),
                        &[("Content-Type", "application/json")],
                        bad_body.as_bytes(),
                    ),
                    40001,
                )
            }
            _ => (list_request(&bad_token), 40001),
        };
        let fresh = conn.is_none();
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match Conn::open(args.addr).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    tally.request();
                    tally.violation(format!("flood: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        tally.request();
        match c
            .send(&req, args.flood_latency.max(Duration::from_secs(10)) * 2)
            .await
        {
            Ok(answer) => {
                flood.answered.fetch_add(1, Ordering::Relaxed);
                tally.latency(answer.elapsed);
                if answer.elapsed > args.flood_latency {
                    tally.violation(format!(
                        "flood: answered after {} ms (bound {} ms): {}",
                        answer.elapsed.as_millis(),
                        args.flood_latency.as_millis(),
                        req.label
                    ));
                }
                let path = req
                    .label
                    .split(['?', ' '])
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                match check_envelope(&path, false, &answer) {
                    Ok(verdict) if verdict.errcode == Some(expected) => {}
                    Ok(verdict) => tally.violation(format!(
                        "flood: errcode {:?} where {expected} was due\n      request: {}\
                         \n      answer: {}",
                        verdict.errcode,
                        req.describe(),
                        answer.describe()
                    )),
                    Err(why) => tally.violation(format!(
                        "flood: {why}\n      request: {}\n      answer: {}",
                        req.describe(),
                        answer.describe()
                    )),
                }
                if answer.close {
                    conn = None;
                    tally.count("answers saying Connection: close");
                } else {
                    previous = req.label.clone();
                }
            }
            Err(fail) => {
                conn = None;
                let context = if fresh {
                    "on a new connection".to_owned()
                } else {
                    format!("on a kept-alive connection; previous request: {previous}")
                };
                tally.violation(format!(
                    "flood: {} ({context})\n      request: {}",
                    fail.describe(),
                    req.describe()
                ));
            }
        }
    }
}

async fn phase_flood(
    client: &Client,
    args: &Args,
    meter: &Arc<Meter>,
    start: Sample,
    tally: Arc<Tally>,
) -> Vec<String> {
    let mut notes = Vec::new();
    let before_summary = match summary(client).await {
        Ok(summary) => summary,
        Err(error) => {
            tally.violation(format!("requests/summary before the flood: {error}"));
            Value::Null
        }
    };
    let total_before = count_of(&before_summary, "/total");
    let before = meter.sample().await;
    meter.reset_peaks(before);
    let flood = Arc::new(Flood {
        args: args.clone(),
        tally: Arc::clone(&tally),
        answered: AtomicU64::new(0),
        deadline: Instant::now() + Duration::from_secs(args.flood_secs),
    });
    println!(
        "  {} connections for {} s: /cgi-bin/token with a 58 KiB pad (40002), kf calls with \
            bad tokens (40001)",
        args.flood_conns, args.flood_secs
    );
    let started = Instant::now();
    let workers: Vec<_> = (0..args.flood_conns)
        .map(|w| tokio::spawn(flood_worker(Arc::clone(&flood), w as u64)))
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    let elapsed = started.elapsed();
    let answered = flood.answered.load(Ordering::Relaxed);
    notes.push(format!(
        "{answered} answers in {:.1} s ({:.0}/s); {}",
        elapsed.as_secs_f64(),
        answered as f64 / elapsed.as_secs_f64(),
        tally.latency_line()
    ));
    // The log writes each second and deletes to stay within its bounds each second:
    // the store is watched until it stops changing (3 s alike, 30 s at most).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let settling = Instant::now();
    let mut after = meter.sample().await;
    let mut alike = 0;
    while alike < 3 && settling.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let next = meter.sample().await;
        alike = if next.disk == after.disk {
            alike + 1
        } else {
            0
        };
        after = next;
    }
    notes.push(format!(
        "the store settled {:.1} s after the flood",
        2.5 + settling.elapsed().as_secs_f64()
    ));
    let peak = meter.peaks();
    let rss_bound = before.rss + (args.log_memory_mb + args.rss_slack_mb) * (1 << 20);
    let disk_bound = start.disk + (args.log_disk_mb + args.disk_slack_mb) * (1 << 20);
    notes.push(format!(
        "RSS {} → peak {} → {} MiB (bound {} MiB: flood start + {} MiB memory log + {} MiB \
            slack; VmHWM {} MiB)",
        mib(before.rss),
        mib(peak.rss),
        mib(after.rss),
        mib(rss_bound),
        args.log_memory_mb,
        args.rss_slack_mb,
        mib(meter.proc_status("VmHWM:").unwrap_or(0))
    ));
    notes.push(format!(
        "store {} → peak {} → {} MiB (bound {} MiB: soak start {} + {} MiB disk log + {} MiB \
            slack){}",
        mib(before.disk),
        mib(peak.disk),
        mib(after.disk),
        mib(disk_bound),
        mib(start.disk),
        args.log_disk_mb,
        args.disk_slack_mb,
        meter.file_maxima()
    ));
    if peak.rss > rss_bound {
        tally.violation(format!(
            "RSS peaked at {} MiB, over its bound of {} MiB",
            mib(peak.rss),
            mib(rss_bound)
        ));
    }
    if peak.disk.max(after.disk) > disk_bound {
        tally.violation(format!(
            "the store reached {} MiB, over its bound of {} MiB",
            mib(peak.disk.max(after.disk)),
            mib(disk_bound)
        ));
    }
    // Every call counted.
    let mut last = Value::Null;
    let wait_until = Instant::now() + Duration::from_secs(6);
    loop {
        match summary(client).await {
            Ok(summary) => last = summary,
            Err(error) => {
                tally.violation(format!("requests/summary after the flood: {error}"));
                break;
            }
        }
        if count_of(&last, "/total").saturating_sub(total_before) >= answered
            || Instant::now() > wait_until
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if !last.is_null() {
        let counted = count_of(&last, "/total").saturating_sub(total_before);
        let log = |key: &str| count_of(&last, &format!("/log/{key}"));
        notes.push(format!(
            "summary: {counted} calls counted during the flood (total {}, failed {}); log: {} \
                stored calls of {} max, {} of {} MiB stored, {} of {} MiB in memory, dropped \
                    {} from the store, {} in memory",
            log_total(&last),
            count_of(&last, "/failed"),
            log("stored_calls"),
            log("max_stored_calls"),
            mib(log("stored_bytes")),
            mib(log("max_stored_bytes")),
            mib(log("memory_bytes")),
            mib(log("max_memory_bytes")),
            log("dropped_from_store"),
            log("dropped_in_memory"),
        ));
        if counted < answered {
            tally.violation(format!(
                "requests/summary counts {counted} calls during the flood, fewer than the \
                    {answered} answered"
            ));
        }
        if log("stored_calls") > log("max_stored_calls") {
            tally.violation(format!(
                "the log stores {} calls, over its bound of {}",
                log("stored_calls"),
                log("max_stored_calls")
            ));
        }
        if log("stored_bytes") > log("max_stored_bytes") {
            tally.violation(format!(
                "the log stores {} bytes, over its bound of {}",
                log("stored_bytes"),
                log("max_stored_bytes")
            ));
        }
        if log("memory_bytes") > log("max_memory_bytes") {
            tally.violation(format!(
                "the log holds {} bytes in memory, over its bound of {}",
                log("memory_bytes"),
                log("max_memory_bytes")
            ));
        }
    }
    for (key, count) in lock(&tally.counts).iter() {
        notes.push(format!("{key}: {count}"));
    }
    notes
}

fn log_total(summary: &Value) -> u64 {
    count_of(summary, "/total")
}

// ------------------------------------------------------------------------------------
// Phase 4: secrets

/// The secret as it could show: plain, percent-encoded, JSON-escaped.
fn needles(secret: &str) -> Vec<String> {
    vec![
        secret.to_owned(),
        enc_all(secret, true),
        enc_all(secret, false),
        json_escape_all(secret, false),
        json_escape_all(secret, true),
    ]
}

fn strings_in(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings_in(v, out)),
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            out.push(k.clone());
            strings_in(v, out);
        }),
        _ => {}
    }
}

/// Where in `value` (its text, or any string in it) a needle shows.
fn leaks(value: &Value, needles: &[String]) -> Vec<String> {
    let mut texts = vec![value.to_string()];
    strings_in(value, &mut texts);
    let mut found = Vec::new();
    for text in &texts {
        for (i, needle) in needles.iter().enumerate() {
            if let Some(at) = text.find(needle.as_str()) {
                let mut start = at.saturating_sub(80);
                while !text.is_char_boundary(start) {
                    start -= 1;
                }
                let mut end = (at + needle.len() + 40).min(text.len());
                while !text.is_char_boundary(end) {
                    end += 1;
                }
                found.push(format!("encoding #{i} in …{}…", &text[start..end]));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

fn secret_calls(args: &Args) -> Vec<Req> {
    let (a, s, t, k) = (&args.appid, &args.secret, &args.token, &args.kf_account);
    let pad = "p".repeat(2000);
    let es = enc_all(s, true);
    let js = json_escape_all(s, false);
    let json = [("Content-Type", "application/json")];
    let mut calls = Vec::new();
    for query in [
        format!("grant_type=client_credential&appid={a}&secret={s}"),
        format!("grant_type=bad&appid={a}&secret={s}"),
        format!("grant_type=bad&appid={a}&secr%65t={s}"),
        format!("grant_type=client_credential&appid={a}&secr%65t={s}"),
        format!("grant_type=bad&appid={a}&SECRET={s}"),
        format!("grant_type=client_credential&appid={a}&Secret={s}"),
        format!("grant_type=bad&appid={a}&SeCrEt={s}"),
        format!("grant_type=bad&appid={a}&%73ecret={s}"),
        format!("grant_type=bad&appid={a}&%53%45%43%52%45%54={s}"),
        format!("grant_type=bad&appid={a}&secret={es}"),
        format!("grant_type=bad&appid={a}&secret={s}&secret={s}"),
        format!("grant_type=bad&appid={a}&+secret+={s}"),
        format!("grant_type=bad&appid={a}&app_secret={s}"),
        format!("grant_type=bad&appid={a}&secret={s}&pad={pad}"),
        format!("pad={pad}&grant_type=bad&appid={a}&secret={s}"),
        format!("grant_type=bad&appid={a}&secret={s}%FF"),
    ] {
        calls.push(Req::simple(
            "GET",
            &format!("/cgi-bin/token?{query}"),
            &[],
            b"",
        ));
    }
    calls.push(Req::simple(
        "POST",
        &format!("/cgi-bin/token?grant_type=client_credential&appid={a}&secret={s}"),
        &json,
        format!(r#"{{"secret":"{s}"}}"#).as_bytes(),
    ));
    let stable = "/cgi-bin/stable_token";
    let bodies: Vec<Vec<u8>> = vec![
        format!(r#"{{"grant_type":"client_credential","appid":"{a}","secret":"{s}"}}"#)
            .into_bytes(),
        format!(r#"{{"grant_type":"bad","appid":"{a}","secret":"{s}"}}"#).into_bytes(),
        format!(r#"{{"grant_type":"bad","appid":"{a}","secr\u0065t":"{s}"}}"#).into_bytes(),
        format!(r#"{{"grant_type":"client_credential","appid":"{a}","secr\u0065t":"{s}"}}"#)
            .into_bytes(),
        format!(r#"{{"grant_type":"bad","appid":"{a}","SECRET":"{s}"}}"#).into_bytes(),
        format!(r#"{{"grant_type":"bad","appid":"{a}","Secret":"{s}"}}"#).into_bytes(),
        format!(r#"{{"grant_type":"bad","appid":"{a}","\u0053\u0045CRET":"{s}"}}"#).into_bytes(),
        format!(r#"{{"grant_type":"bad","appid":"{a}","secret":"{js}"}}"#).into_bytes(),
        format!(r#"{{"grant_type":"bad","appid":"{a}","secret":"{s}","secret":"{s}"}}"#)
            .into_bytes(),
        format!(r#"{{"grant_type":"bad","appid":"{a}","x":{{"secret":"{s}"}}}}"#).into_bytes(),
        format!(r#"[{{"secret":"{s}"}}]"#).into_bytes(),
        format!(r#"{{"appid":"{a}","secret":["{s}"]}}"#).into_bytes(),
        format!(r#"{{"appid":"{a}","secret":"{s}"}}xyz"#).into_bytes(),
        format!("secret={s}&appid={a}").into_bytes(),
        format!(
            r#"{{"grant_type":"bad","appid":"{a}","secret":"{s}","pad":"{}"}}"#,
            "p".repeat(3000)
        )
        .into_bytes(),
        format!(
            r#"{{"pad":"{}","grant_type":"bad","secret":"{s}"}}"#,
            "p".repeat(3000)
        )
        .into_bytes(),
        format!(r#"{{"grant_type":"bad","appid":"{a}"," secret ":"{s}"}}"#).into_bytes(),
        format!(r#"{{"grant_type":"bad","appid":"{a}","secret\u0000":"{s}"}}"#).into_bytes(),
        [
            b"\xEF\xBB\xBF".to_vec(),
            format!(r#"{{"grant_type":"bad","appid":"{a}","secret":"{s}"}}"#).into_bytes(),
        ]
        .concat(),
        format!(r#"{{"grant_type":"bad","appid":"{a}","secret":"{s}""#).into_bytes(),
        [
            format!(r#"{{"grant_type":"bad","appid":"{a}","secret":"{s}","x":""#).into_bytes(),
            vec![0xFF],
            b"\"}".to_vec(),
        ]
        .concat(),
        format!(r#"{{"grant_type":"bad","appid":"{a}","password":"{s}","appsecret":"{s}"}}"#)
            .into_bytes(),
    ];
    for body in bodies {
        calls.push(Req::simple("POST", stable, &json, &body));
    }
    calls.push(Req::simple(
        "POST",
        &format!("{stable}?secret={s}&SeCrEt={s}&secr%65t={s}"),
        &json,
        format!(r#"{{"grant_type":"bad","appid":"{a}"}}"#).as_bytes(),
    ));
    let update = "/customservice/kfaccount/update";
    calls.push(Req::simple(
        "POST",
        &format!("{update}?access_token={t}&secret={s}"),
        &json,
        format!(r#"{{"kf_account":"{k}","nickname":"n1","secret":"{s}","Secret":"{s}","SECR\u0045T":"{s}"}}"#).as_bytes(),
    ));
    calls.push(Req::simple(
        "POST",
        &format!("{update}?access_token=99_bad&secr%65t={s}"),
        &json,
        format!(r#"{{"kf_account":"{k}","nickname":"n1","secr\u0065t":"{s}"}}"#).as_bytes(),
    ));
    calls.push(Req::simple(
        "POST",
        &format!("{update}?access_token={t}"),
        &json,
        format!(r#"{{"kf_account":"{k}","nickname":"","secret":"{s}"}}"#).as_bytes(),
    ));
    calls.push(Req::simple(
        "GET",
        &format!("/cgi-bin/customservice/getkflist?access_token={t}&SeCrEt={s}"),
        &[],
        b"",
    ));
    calls.push(Req::simple(
        "POST",
        &format!("/customservice/kfaccount/add?access_token={t}&Secret={s}"),
        &json,
        format!(r#"{{"kf_account":"bad","nickname":"x","appsecret":"{s}"}}"#).as_bytes(),
    ));
    let boundary = "soaksecret";
    calls.push(Req::simple(
        "POST",
        &format!(
            "/customservice/kfaccount/uploadheadimg?access_token={t}&kf_account={}&secret={s}",
            enc(k)
        ),
        &[(
            "Content-Type",
            &format!("multipart/form-data; boundary={boundary}"),
        )],
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; \
            name=\"secret\"\r\n\r\n{s}\r\n--{boundary}--\r\n"
        )
        .as_bytes(),
    ));
    calls.push(Req::simple(
        "POST",
        "/cgi-bin/clear_quota/v2",
        &json,
        format!(r#"{{"appid":"{a}","appsecr\u0065t":"{s}"}}"#).as_bytes(),
    ));
    calls.push(Req::simple(
        "POST",
        "/cgi-bin/clear_quota/v2",
        &json,
        format!(r#"{{"appid":"wx0000000000000000","appsecret":"{s}"}}"#).as_bytes(),
    ));
    calls.push(Req::simple(
        "POST",
        "/cgi-bin/clear_quota/v2",
        &json,
        format!(r#"{{"appid":"{a}","appsecret":"{s}"}}"#).as_bytes(),
    ));
    calls.push(Req::simple(
        "POST",
        "/cgi-bin/component/api_component_token",
        &json,
        format!(r#"{{"component_appid":"{a}","component_appsecret":"{s}","component_verify_ticket":"{s}"}}"#).as_bytes(),
    ));
    calls
}

fn search_file(path: &Path, needles: &[String]) -> Result<Vec<String>, String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut found = Vec::new();
    for (i, needle) in needles.iter().enumerate() {
        if let Some(at) = find(&bytes, needle.as_bytes()) {
            let start = at.saturating_sub(80);
            let end = (at + needle.len() + 40).min(bytes.len());
            found.push(format!(
                "{} ({} bytes) holds encoding #{i} at byte {at}: …{}…",
                path.display(),
                bytes.len(),
                escape(&bytes[start..end], 200)
            ));
        }
    }
    Ok(found)
}

async fn phase_secrets(client: &Client, args: &Args, tally: Arc<Tally>) -> Vec<String> {
    let mut notes = Vec::new();
    let needles = needles(&args.secret);
    let calls = secret_calls(args);
    let mut rids: Vec<(String, String)> = Vec::new();
    let mut successes = 0;
    for req in &calls {
        tally.request();
        match once(args.addr, req).await {
            Ok(answer) => {
                let path = req
                    .label
                    .split(['?', ' '])
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                match check_envelope(&path, false, &answer) {
                    Ok(verdict) => {
                        if let Some(rid) = verdict.rid {
                            rids.push((rid, req.label.clone()));
                        } else {
                            successes += 1;
                        }
                    }
                    Err(why) => tally.violation(format!(
                        "secrets: {why}\n      request: {}\n      answer: {}",
                        req.describe(),
                        answer.describe()
                    )),
                }
                let leaked = answer
                    .json()
                    .map(|j| leaks(&j, &needles))
                    .unwrap_or_default();
                if !leaked.is_empty() {
                    tally.violation(format!(
                        "secrets: the answer itself shows the secret: {}\n      request: {}",
                        leaked.join("; "),
                        req.describe()
                    ));
                }
            }
            Err(why) => tally.violation(format!("secrets: {why}")),
        }
    }
    notes.push(format!(
        "{} calls carrying the secret: {} failed with a rid, {successes} succeeded",
        calls.len(),
        rids.len()
    ));
    // Failed calls are written each second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // A token of the app for rid/get.
    let token = match client
        .must(
            "POST",
            "/cgi-bin/stable_token",
            false,
            Some(&serde_json::json!({"grant_type": "client_credential", "appid": args.appid, "secret": args.secret}).to_string()),
        )
        .await
    {
        Ok(answer) => text(&answer, "access_token"),
        Err(error) => {
            tally.violation(format!("secrets: no token for rid/get: {error}"));
            String::new()
        }
    };
    let mut seen = 0;
    let mut unseen: BTreeMap<String, u64> = BTreeMap::new();
    let mut unseen_calls: Vec<String> = Vec::new();
    for (rid, label) in &rids {
        let body = serde_json::json!({ "rid": rid }).to_string();
        let mut answer = Value::Null;
        for _ in 0..6 {
            tally.request();
            match client
                .call(
                    "POST",
                    &format!("/cgi-bin/openapi/rid/get?access_token={token}"),
                    false,
                    Some(&body),
                )
                .await
            {
                Ok((_, json)) => answer = json,
                Err(error) => tally.violation(format!("secrets: rid/get: {error}")),
            }
            if answer.get("errcode").and_then(Value::as_i64) != Some(76001) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        match answer.get("errcode").and_then(Value::as_i64) {
            Some(0) => seen += 1,
            code => {
                let code = code.map_or("-".to_owned(), |c| c.to_string());
                *unseen.entry(code).or_default() += 1;
                unseen_calls.push(label.clone());
            }
        }
        let leaked = leaks(&answer, &needles);
        if !leaked.is_empty() {
            tally.violation(format!(
                "secrets: rid/get {rid} shows the secret: {}\n      the call: {label}",
                leaked.join("; ")
            ));
        }
    }
    notes.push(format!(
        "rid/get found {seen} of the {} failed calls (no leak in any){}",
        rids.len(),
        if unseen.is_empty() {
            String::new()
        } else {
            format!(
                "; the others answered {} (e.g. {})",
                unseen
                    .iter()
                    .map(|(code, n)| format!("{code}×{n}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                unseen_calls
                    .iter()
                    .take(2)
                    .map(|l| cut(l, 90))
                    .collect::<Vec<_>>()
                    .join(" | ")
            )
        }
    ));
    // The request log, by app and in all.
    for target in [
        format!("{}?limit=1000", kefu_api::admin::REQUESTS),
        format!(
            "{}?appid={}&limit=1000",
            kefu_api::admin::REQUESTS,
            args.appid
        ),
    ] {
        tally.request();
        match client.must("GET", &target, true, None).await {
            Ok(log) => {
                let entries = log.as_array().map_or(0, Vec::len);
                let recorded_as: BTreeMap<String, Option<String>> = log
                    .as_array()
                    .map(|entries| {
                        entries
                            .iter()
                            .map(|e| {
                                (
                                    text(e, "rid"),
                                    e.get("appid").and_then(Value::as_str).map(str::to_owned),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let recorded = rids
                    .iter()
                    .filter(|(rid, _)| recorded_as.contains_key(rid))
                    .count();
                let without_app = rids
                    .iter()
                    .filter(|(rid, _)| recorded_as.get(rid).is_some_and(Option::is_none))
                    .count();
                notes.push(format!(
                    "GET {target}: {entries} entries, {recorded} of the {} failed calls among \
                        them ({without_app} recorded without an app, which rid/get shows to no \
                            app)",
                    rids.len()
                ));
                if recorded < rids.len()
                    && target.contains("limit=1000")
                    && !target.contains("appid")
                {
                    tally.violation(format!(
                        "secrets: {} of the failed calls are not in GET {target}",
                        rids.len() - recorded
                    ));
                }
                let leaked = leaks(&log, &needles);
                if !leaked.is_empty() {
                    tally.violation(format!(
                        "secrets: GET {target} shows the secret: {}",
                        leaked.into_iter().take(5).collect::<Vec<_>>().join("; ")
                    ));
                }
            }
            Err(error) => tally.violation(format!("secrets: {error}")),
        }
    }
    // The store.
    match &args.store {
        Some(StoreKind::Sqlite(path)) => {
            for file in sqlite_files(path) {
                match search_file(&file, &needles) {
                    Ok(found) => found
                        .into_iter()
                        .for_each(|f| tally.violation(format!("secrets: {f}"))),
                    Err(error) => tally.violation(format!("secrets: {error}")),
                }
            }
            notes.push("the store's files (db, -wal, -shm) searched".into());
        }
        Some(StoreKind::Postgres { url, schema }) => {
            let tables = psql(
                url,
                &format!(
                    "SELECT tablename FROM pg_tables WHERE schemaname = '{schema}' ORDER BY 1"
                ),
            );
            match tables {
                Ok(tables) => {
                    let tables: Vec<&str> = tables.lines().filter(|t| !t.is_empty()).collect();
                    for table in &tables {
                        let condition = needles
                            .iter()
                            .map(|n| {
                                format!(
                                    "strpos(t::text, '{}') > 0",
                                    n.replace('\\', "\\\\").replace('\'', "''")
                                )
                            })
                            .collect::<Vec<_>>()
                            .join(" OR ");
                        match psql(
                            url,
                            &format!(
                                "SELECT count(*) FROM \"{schema}\".\"{table}\" t WHERE {condition}"
                            ),
                        ) {
                            Ok(count) if count == "0" => {}
                            Ok(count) => tally.violation(format!(
                                "secrets: {count} rows of {schema}.{table} hold the secret"
                            )),
                            Err(error) => tally.violation(format!("secrets: {table}: {error}")),
                        }
                    }
                    notes.push(format!(
                        "{} tables of schema {schema} searched",
                        tables.len()
                    ));
                }
                Err(error) => tally.violation(format!("secrets: {error}")),
            }
        }
        None => notes.push("no store given: not searched".into()),
    }
    if let Some(log) = &args.server_log {
        match search_file(log, &needles) {
            Ok(found) => found
                .into_iter()
                .for_each(|f| tally.violation(format!("secrets: the server's output: {f}"))),
            Err(error) => tally.violation(format!("secrets: {error}")),
        }
        notes.push(format!("the server's output ({}) searched", log.display()));
    }
    notes
}

// ------------------------------------------------------------------------------------

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("kefu-soak: {error}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    println!(
        "kefu-soak: seed {} (rerun with --seed {}), server {} (pid {}), phases {}",
        args.seed,
        args.seed,
        args.addr,
        args.pid,
        args.phases.join(",")
    );
    let client = Client {
        addr: args.addr,
        admin: args.admin_token.clone(),
    };
    if let Err(error) = client
        .must("GET", kefu_api::admin::HEALTH, false, None)
        .await
    {
        eprintln!("kefu-soak: the server does not answer: {error}");
        return ExitCode::from(2);
    }
    let meter = Arc::new(Meter {
        pid: args.pid,
        store: args.store.clone(),
        rss_peak: AtomicU64::new(0),
        disk_peak: AtomicU64::new(0),
        last_disk: AtomicU64::new(0),
        disk_max: AtomicU64::new(0),
        file_max: Mutex::new(Vec::new()),
        dead: AtomicBool::new(false),
    });
    let start = meter.sample().await;
    meter.start();
    let mut reports = Vec::new();
    for phase in &args.phases {
        let tally = Arc::new(Tally::new(args.show));
        let report = match phase.as_str() {
            "fuzz" => {
                measured(
                    "fuzz",
                    &meter,
                    Arc::clone(&tally),
                    phase_fuzz(&client, &args, Arc::clone(&tally)),
                )
                .await
            }
            "slow" => {
                measured(
                    "slow",
                    &meter,
                    Arc::clone(&tally),
                    phase_slow(&args, Arc::clone(&tally)),
                )
                .await
            }
            "flood" => {
                measured(
                    "flood",
                    &meter,
                    Arc::clone(&tally),
                    phase_flood(&client, &args, &meter, start, Arc::clone(&tally)),
                )
                .await
            }
            _ => {
                measured(
                    "secrets",
                    &meter,
                    Arc::clone(&tally),
                    phase_secrets(&client, &args, Arc::clone(&tally)),
                )
                .await
            }
        };
        let details = lock(&tally.details).clone();
        if !details.is_empty() {
            println!("  first violations of {phase}:");
            for detail in details {
                println!("    - {detail}");
            }
        }
        reports.push(report);
    }
    let end = meter.sample().await;
    if args.phases.iter().any(|p| p == "flood") {
        // The store's bound holds for the whole run, not only during the flood.
        let bound = start.disk + (args.log_disk_mb + args.disk_slack_mb) * (1 << 20);
        let largest = meter.disk_max.load(Ordering::Relaxed).max(end.disk);
        let tally = Tally::new(args.show);
        println!(
            "\n== bounds ==\n  the store over the whole run: largest {} MiB, at the end {} \
                MiB (bound {} MiB){}",
            mib(largest),
            mib(end.disk),
            mib(bound),
            meter.file_maxima()
        );
        tally.request();
        if largest > bound {
            tally.violation(format!(
                "the store reached {} MiB in the run, over its bound of {} MiB (soak start {} \
                    + {} MiB disk log + {} MiB slack){}",
                mib(largest),
                mib(bound),
                mib(start.disk),
                args.log_disk_mb,
                args.disk_slack_mb,
                meter.file_maxima()
            ));
        }
        reports.push(Report {
            name: "bounds (whole run)",
            requests: 0,
            violations: tally.violations(),
            elapsed: Duration::ZERO,
            before: start,
            peak: Sample {
                rss: meter.proc_status("VmHWM:").unwrap_or(0),
                disk: largest,
            },
            after: end,
            notes: Vec::new(),
        });
    }
    println!("\n== summary (seed {}) ==", args.seed);
    println!(
        "| phase | requests | violations | elapsed s | RSS before MiB | RSS peak MiB | RSS \
            after MiB | store before MiB | store peak MiB | store after MiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut violations = 0;
    for r in &reports {
        violations += r.violations;
        println!(
            "| {} | {} | {} | {:.1} | {} | {} | {} | {} | {} | {} |",
            r.name,
            r.requests,
            r.violations,
            r.elapsed.as_secs_f64(),
            mib(r.before.rss),
            mib(r.peak.rss),
            mib(r.after.rss),
            mib(r.before.disk),
            mib(r.peak.disk),
            mib(r.after.disk)
        );
    }
    println!(
        "start: RSS {} MiB, store {} MiB; end: RSS {} MiB (VmHWM {} MiB), store {} MiB",
        mib(start.rss),
        mib(start.disk),
        mib(end.rss),
        mib(meter.proc_status("VmHWM:").unwrap_or(0)),
        mib(end.disk)
    );
    let retries = HELPER_RETRIES.load(Ordering::Relaxed);
    if retries > 0 {
        println!(
            "note: {retries} of the harness's own calls (setup, admin) had their new \
                connection dropped before any answer, and were retried (see the lull probes)"
        );
    }
    if violations > 0 {
        println!("kefu-soak: {violations} violations");
        ExitCode::FAILURE
    } else {
        println!("kefu-soak: no violations");
        ExitCode::SUCCESS
    }
}
