//! The web console in a real browser: headless Chromium driven through ChromeDriver
//! (WebDriver) against `kefu serve` on port 0, each step waiting for what the page
//! shows. `KEFU_SCREENSHOTS=1` writes the screenshots into `docs/console/` (the
//! README's); otherwise they go to a temporary directory.

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use thirtyfour::prelude::*;

use crate::common::{free_port, http, temp_dir};

const ADMIN: &str = "console-admin-token-0123";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long any one condition may take to come true before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `check` answers something (polling), or fails naming `what`.
async fn until<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll(check)
        .await
        .unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

/// Like [`until`], showing the page on failure.
async fn on_page<T, F, Fut>(driver: &WebDriver, what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    if let Some(value) = poll(check).await {
        return value;
    }
    let url = driver.current_url().await.map(|u| u.to_string());
    let source = driver.source().await.unwrap_or_default();
    panic!("timed out waiting for {what} at {url:?}; the page:\n{source}");
}

async fn poll<T, F, Fut>(mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn testid(id: &str) -> By {
    By::Css(format!("[data-testid=\"{id}\"]"))
}

/// The text of the element `id`, once it exists.
async fn text(driver: &WebDriver, id: &str) -> String {
    on_page(driver, id, || async {
        let element = driver.find(testid(id)).await.ok()?;
        element.text().await.ok()
    })
    .await
}

/// Waits until the element `id` shows text containing `wanted`; answers the text.
async fn shows(driver: &WebDriver, id: &str, wanted: &str) -> String {
    on_page(driver, &format!("{id} to show {wanted:?}"), || async {
        let element = driver.find(testid(id)).await.ok()?;
        let shown = element.text().await.ok()?;
        shown.contains(wanted).then_some(shown)
    })
    .await
}

async fn element(driver: &WebDriver, id: &str) -> WebElement {
    on_page(driver, id, || async { driver.find(testid(id)).await.ok() }).await
}

async fn page_ready(driver: &WebDriver) {
    on_page(driver, "the page to be rendered", || async {
        let main = driver.find(By::Id("main")).await.ok()?;
        (main.attr("data-ready").await.ok()?? == "yes").then_some(())
    })
    .await;
}

async fn type_into(driver: &WebDriver, id: &str, value: &str) {
    let input = element(driver, id).await;
    input.clear().await.unwrap();
    input.send_keys(value).await.unwrap();
}

/// Opens the debugger on `api` for `appid`, its page rendered.
async fn open_debugger(driver: &WebDriver, console: &str, appid: &str, api: &str) {
    driver
        .goto(format!("{console}debugger?app={appid}&api={api}"))
        .await
        .unwrap();
    page_ready(driver).await;
}

/// In the open debugger: types `body`, waits for the contract's check to say `verdict`
/// (when given), sends, and waits for the answer's errcode to show `errcode`; answers
/// the errcode as shown (with its meaning).
async fn send_in_debugger(
    driver: &WebDriver,
    body: &str,
    verdict: Option<&str>,
    errcode: &str,
) -> String {
    type_into(driver, "raw-body", body).await;
    if let Some(verdict) = verdict {
        shows(driver, "check-verdict", verdict).await;
    }
    element(driver, "send").await.click().await.unwrap();
    shows(driver, "response-errcode", errcode).await
}

/// Screenshots at laptop and phone width.
struct Shots(PathBuf);

impl Shots {
    fn new() -> Shots {
        if std::env::var_os("KEFU_SCREENSHOTS").is_some() {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/console");
            std::fs::create_dir_all(&dir).unwrap();
            Shots(dir)
        } else {
            Shots(temp_dir("console-shots"))
        }
    }

    async fn take(&self, driver: &WebDriver, name: &str) {
        for (width, height, kind) in [(1280, 860, "laptop"), (390, 844, "phone")] {
            driver.set_window_rect(0, 0, width, height).await.unwrap();
            let path = self.0.join(format!("{name}-{kind}.png"));
            driver.screenshot(&path).await.unwrap();
            assert!(std::fs::metadata(&path).unwrap().len() > 1000);
        }
        driver.set_window_rect(0, 0, 1280, 860).await.unwrap();
    }
}

/// `kefu serve` on port 0 with the demo app; answers the process, the console URL the
/// banner printed, and the demo appid.
fn serve(dir: &std::path::Path) -> (Killed, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(["serve", "--admin-token", ADMIN, "--listen", "127.0.0.1:0"])
        .args(["--database-url", dir.join("kefu.db").to_str().unwrap()])
        .env_remove("KEFU_NO_DEMO")
        .env_remove("KEFU_NO_CONSOLE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kefu serve");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    // The banner is read on a thread that then drains the rest, so that the server
    // never writes into a closed pipe.
    let (found, banner) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut console, mut appid) = (None, None);
        let mut sent = false;
        for line in stdout.lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.trim().strip_prefix("console: ") {
                console = Some(url.trim().to_owned());
            }
            if let Some(id) = line.trim().strip_prefix("appid:") {
                appid = Some(id.trim().to_owned());
            }
            if !sent && console.is_some() && appid.is_some() {
                let _ = found.send((console.clone(), appid.clone()));
                sent = true;
            }
        }
        if !sent {
            let _ = found.send((console, appid));
        }
    });
    let (console, appid) = banner.recv_timeout(PATIENCE).expect("the banner");
    let console = console.expect("the banner prints the console's URL");
    assert!(console.ends_with("/kefu/console/"), "{console}");
    (Killed(child), console, appid.expect("the demo app"))
}

/// ChromeDriver on a free port, once it is ready.
async fn chromedriver(http: &reqwest::Client) -> (Killed, String) {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn chromedriver");
    let url = format!("http://127.0.0.1:{port}");
    until("chromedriver to be ready", || async {
        let status: Value = http
            .get(format!("{url}/status"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        status["value"]["ready"].as_bool().filter(|r| *r)
    })
    .await;
    (Killed(child), url)
}

async fn browser(driver_url: &str, profile: &std::path::Path) -> WebDriver {
    let mut caps = DesiredCapabilities::chrome();
    caps.set_binary(CHROMIUM).unwrap();
    for arg in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--window-size=1280,860",
        "--lang=en-US",
    ] {
        caps.add_arg(arg).unwrap();
    }
    caps.add_arg(&format!("--user-data-dir={}", profile.display()))
        .unwrap();
    WebDriver::new(driver_url, caps)
        .await
        .expect("a browser session")
}

fn browser_available() -> bool {
    let found =
        if std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists() {
            Ok(())
        } else {
            Err(format!("{CHROMIUM} or {CHROMEDRIVER} is missing"))
        };
    kefu_store::test_support::service_or_skip(
        "Chromium",
        found,
        "apt-get install chromium chromium-driver fonts-wqy-microhei",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    if !browser_available() {
        return;
    }
    let http = http();
    let dir = temp_dir("console");
    let (_kefu, console, demo) = serve(&dir);
    let base = console.trim_end_matches("/kefu/console/").to_owned();
    let (_driver_process, driver_url) = chromedriver(&http).await;
    let driver = browser(&driver_url, &dir.join("profile")).await;
    let shots = Shots::new();

    // Sign-in: the console sends a stranger to it; a wrong token is refused.
    driver.goto(&console).await.unwrap();
    until("the sign-in page", || async {
        let url = driver.current_url().await.ok()?;
        url.path().ends_with("/kefu/console/signin").then_some(())
    })
    .await;
    shots.take(&driver, "signin").await;
    type_into(&driver, "signin-token", "wrong-token-wrong-token").await;
    element(&driver, "signin-submit")
        .await
        .click()
        .await
        .unwrap();
    shows(
        &driver,
        "signin-error",
        "That is not this server's admin token.",
    )
    .await;
    type_into(&driver, "signin-token", ADMIN).await;
    element(&driver, "signin-submit")
        .await
        .click()
        .await
        .unwrap();
    page_ready(&driver).await;
    shows(&driver, "apps-list", &demo).await;
    assert!(!driver.source().await.unwrap().contains(ADMIN));

    // An app is made; its secret is shown once.
    type_into(&driver, "new-app-wechat-id", "shop").await;
    element(&driver, "new-app-submit")
        .await
        .click()
        .await
        .unwrap();
    let appid = text(&driver, "created-appid").await;
    let secret = text(&driver, "created-secret").await;
    assert_eq!(secret.len(), 32, "{secret}");
    shows(&driver, "apps-list", &appid).await;
    shots.take(&driver, "apps").await;
    driver.refresh().await.unwrap();
    page_ready(&driver).await;
    shows(&driver, "apps-list", &appid).await;
    assert!(driver.find(testid("secret-once")).await.is_err());
    assert!(!driver.source().await.unwrap().contains(&secret));

    // Accounts: add one and rename it, through the app's own token.
    driver
        .goto(format!("{console}accounts?app={appid}"))
        .await
        .unwrap();
    page_ready(&driver).await;
    type_into(&driver, "new-kf-name", "alice").await;
    type_into(&driver, "new-kf-nickname", "Alice").await;
    element(&driver, "new-kf-submit")
        .await
        .click()
        .await
        .unwrap();
    shows(&driver, "nick-shown-alice@shop", "Alice").await;
    type_into(&driver, "nick-alice@shop", "Alice Two").await;
    element(&driver, "rename-alice@shop")
        .await
        .click()
        .await
        .unwrap();
    shows(&driver, "nick-shown-alice@shop", "Alice Two").await;
    // A worker is invited and accepts (the simulation's answer): the account is bound.
    type_into(&driver, "invite-wx-alice@shop", "worker_1").await;
    element(&driver, "invite-alice@shop")
        .await
        .click()
        .await
        .unwrap();
    shows(&driver, "invitation-alice@shop", "waiting").await;
    element(&driver, "accept-alice@shop")
        .await
        .click()
        .await
        .unwrap();
    shows(&driver, "invitation-alice@shop", "bound to worker_1").await;
    shots.take(&driver, "accounts").await;
    // Another account is added, then deleted after the confirmation.
    type_into(&driver, "new-kf-name", "bob").await;
    type_into(&driver, "new-kf-nickname", "Bob").await;
    element(&driver, "new-kf-submit")
        .await
        .click()
        .await
        .unwrap();
    shows(&driver, "nick-shown-bob@shop", "Bob").await;
    element(&driver, "delete-bob@shop")
        .await
        .click()
        .await
        .unwrap();
    on_page(&driver, "the confirmation", || async {
        driver.accept_alert().await.ok()
    })
    .await;
    on_page(&driver, "bob@shop to be gone", || async {
        let list = driver.find(testid("accounts-list")).await.ok()?;
        let shown = list.text().await.ok()?;
        (shown.contains("alice@shop") && !shown.contains("bob@shop")).then_some(())
    })
    .await;
    // An avatar by the file picker: the account shows its new head image.
    let head = dir.join("head.jpg");
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0];
    jpeg.resize(2046, 0x42);
    jpeg.extend_from_slice(&[0xFF, 0xD9]);
    std::fs::write(&head, jpeg).unwrap();
    element(&driver, "avatar-file-alice@shop")
        .await
        .send_keys(head.to_str().unwrap())
        .await
        .unwrap();
    let first = on_page(&driver, "the uploaded avatar", || async {
        let image = driver.find(testid("avatar-alice@shop")).await.ok()?;
        let src = image.attr("src").await.ok()??;
        src.contains("/kefu/v1/headimg/").then_some(src)
    })
    .await;
    // And by drag and drop: a file dropped on the avatar replaces it (a new version).
    driver
        .execute(
            r#"
            const bytes = new Uint8Array(2048).fill(0x42);
            bytes.set([0xFF, 0xD8, 0xFF, 0xE0]);
            bytes.set([0xFF, 0xD9], 2046);
            const files = new DataTransfer();
            files.items.add(new File([bytes], 'dropped.jpg', { type: 'image/jpeg' }));
            const zone = document.querySelector('[data-testid="avatar-drop-alice@shop"]');
            zone.dispatchEvent(new DragEvent('drop', { dataTransfer: files, bubbles: true, cancelable: true }));
            "#,
            Vec::new(),
        )
        .await
        .unwrap();
    on_page(&driver, "the dropped avatar", || async {
        let image = driver.find(testid("avatar-alice@shop")).await.ok()?;
        let src = image.attr("src").await.ok()??;
        (src.contains("/kefu/v1/headimg/") && src != first).then_some(())
    })
    .await;

    // A fan of the app sends a message, the app replies, and the fan's timeline shows
    // both, with the message window and what is left of it.
    driver
        .goto(format!("{console}fans?app={appid}"))
        .await
        .unwrap();
    page_ready(&driver).await;
    type_into(&driver, "new-fan-nickname", "Mei").await;
    element(&driver, "new-fan-submit")
        .await
        .click()
        .await
        .unwrap();
    element(&driver, "fan-Mei").await.click().await.unwrap();
    page_ready(&driver).await;
    type_into(&driver, "act-content", "你好, is anyone there?").await;
    element(&driver, "act-submit").await.click().await.unwrap();
    shows(&driver, "fan-timeline", "你好, is anyone there?").await;
    shows(&driver, "fan-windows", "message").await;
    shows(&driver, "fan-can-send", "yes").await;
    type_into(&driver, "reply-text", "Hello Mei, how can we help?").await;
    element(&driver, "reply-submit")
        .await
        .click()
        .await
        .unwrap();
    shows(&driver, "fan-timeline", "Hello Mei, how can we help?").await;
    shows(&driver, "fan-timeline", "sent to the fan").await;
    shows(&driver, "fan-windows", "1 sent").await;
    shots.take(&driver, "fan").await;

    // The debugger: a malformed body on purpose shows 47001, its meaning and the
    // server's reason; a good one answers 0.
    open_debugger(&driver, &console, &appid, "kf_update").await;
    element(&driver, "get-token").await.click().await.unwrap();
    until("the token to be fetched", || async {
        let shown = driver
            .find(testid("token-shown"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        shown.contains('…').then_some(())
    })
    .await;
    let errcode = send_in_debugger(
        &driver,
        r#"{"kf_account": "alice@shop", "#,
        Some("47001"),
        "47001",
    )
    .await;
    assert!(
        errcode.len() > "47001 — ".len() + 5,
        "no meaning: {errcode}"
    );
    let reason = text(&driver, "response-reason").await;
    assert!(reason.starts_with("Why: ") && reason.len() > 10, "{reason}");
    shots.take(&driver, "debugger").await;
    // A 17-character nickname: the contract's check says 65403 before sending, and the
    // server answers it with its reason.
    send_in_debugger(
        &driver,
        r#"{"kf_account":"alice@shop","nickname":"12345678901234567"}"#,
        Some("65403"),
        "65403",
    )
    .await;
    let reason = text(&driver, "response-reason").await;
    assert!(reason.contains("nickname"), "{reason}");
    send_in_debugger(
        &driver,
        r#"{"kf_account":"alice@shop","nickname":"Alice Three"}"#,
        Some("nothing wrong"),
        "0 — ",
    )
    .await;
    // A message's fields inside objects have inputs too: `text.content` edits the body.
    open_debugger(&driver, &console, &appid, "message_send").await;
    type_into(&driver, "field-text.content", "From the form").await;
    on_page(&driver, "the body to carry the nested field", || async {
        let raw = driver.find(testid("raw-body")).await.ok()?;
        let value: String = raw.prop("value").await.ok()??;
        let body: Value = serde_json::from_str(&value).ok()?;
        (body["text"]["content"] == "From the form" && body["msgtype"] == "text").then_some(())
    })
    .await;
    shows(&driver, "check-verdict", "nothing wrong").await;

    // The live log shows a new call without a reload, and the rid box opens it from a
    // whole pasted errmsg.
    driver.goto(format!("{console}requests")).await.unwrap();
    page_ready(&driver).await;
    until("the live stream to open", || async {
        let status = driver.find(testid("stream-status")).await.ok()?;
        (status.attr("data-live").await.ok()?? == "yes").then_some(())
    })
    .await;
    let answer: Value = http
        .post(format!(
            "{base}/customservice/kfaccount/update?access_token=not-a-token"
        ))
        .body(r#"{"kf_account":"alice@shop","nickname":"x"}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let errmsg = answer["errmsg"].as_str().unwrap().to_owned();
    let rid = kefu_api::Rid::from_errmsg(&errmsg).unwrap().to_string();
    shows(&driver, &format!("log-{rid}"), "40001").await;
    shots.take(&driver, "requests").await;
    type_into(&driver, "rid-box", &errmsg).await;
    element(&driver, "rid-open").await.click().await.unwrap();
    shows(&driver, "call-rid", &rid).await;
    let why = text(&driver, "call-reason").await;
    assert!(why.contains("no such token"), "{why}");
    // "Send again" opens the debugger with the call's body.
    element(&driver, "send-again").await.click().await.unwrap();
    page_ready(&driver).await;
    on_page(&driver, "the call's body in the debugger", || async {
        let raw = driver.find(testid("raw-body")).await.ok()?;
        let value = raw.prop("value").await.ok()??;
        (value.contains("alice@shop") && value.contains(r#""x""#)).then_some(())
    })
    .await;

    // The clock: +1 h shows in the page's clock.
    driver.goto(format!("{console}clock")).await.unwrap();
    page_ready(&driver).await;
    element(&driver, "advance-3600")
        .await
        .click()
        .await
        .unwrap();
    shows(&driver, "clock-now", "offset 1 h").await;
    // The console token replaced by the debugger's ended its grace within that hour.
    shows(&driver, "lapsed", "a console token of").await;
    let clock: Value = http
        .get(format!("{base}/kefu/v1/clock"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(clock["offset_secs"].as_i64().unwrap() >= 3600);

    // A fault rule, added on the same page, fires in the debugger.
    element(&driver, "fault-path").await;
    driver
        .find(By::Css(
            "[data-testid=\"fault-path\"] option[value=\"/customservice/kfaccount/update\"]",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    type_into(&driver, "fault-errcode", "45009").await;
    element(&driver, "fault-submit")
        .await
        .click()
        .await
        .unwrap();
    shows(&driver, "faults-list", "/customservice/kfaccount/update").await;
    shots.take(&driver, "clock").await;
    open_debugger(&driver, &console, &appid, "kf_update").await;
    send_in_debugger(
        &driver,
        r#"{"kf_account":"alice@shop","nickname":"Alice Four"}"#,
        None,
        "45009",
    )
    .await;
    let why = text(&driver, "response-reason").await;
    assert!(why.contains("fault"), "{why}");

    // Two hours after it was fetched, the debugger's token answers 42001, and says why.
    driver.goto(format!("{console}clock")).await.unwrap();
    page_ready(&driver).await;
    element(&driver, "advance-3600")
        .await
        .click()
        .await
        .unwrap();
    shows(&driver, "clock-now", "offset 2 h").await;
    open_debugger(&driver, &console, &appid, "kf_update").await;
    send_in_debugger(
        &driver,
        r#"{"kf_account":"alice@shop","nickname":"Alice Five"}"#,
        None,
        "42001",
    )
    .await;
    let why = text(&driver, "response-reason").await;
    assert!(why.contains("expired"), "{why}");

    // The app's tokens, on the test clock: the console's own is expired by hand (after
    // the confirmation) and shows so.
    driver
        .goto(format!("{console}tokens?app={appid}"))
        .await
        .unwrap();
    page_ready(&driver).await;
    shows(&driver, "tokens-list", "console").await;
    element(&driver, "mint-console-token")
        .await
        .click()
        .await
        .unwrap();
    on_page(&driver, "a live console token", || async {
        let state = driver
            .find(By::Css(
                "tr[data-kind=\"console\"] [data-testid=\"token-state\"]",
            ))
            .await
            .ok()?;
        (state.text().await.ok()? == "live").then_some(())
    })
    .await;
    driver
        .find(By::Css(
            "tr[data-kind=\"console\"] button[data-testid^=\"expire-\"]",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    on_page(&driver, "the confirmation", || async {
        driver.accept_alert().await.ok()
    })
    .await;
    on_page(&driver, "the console token to show expired", || async {
        let row = driver
            .find(By::Css(
                "tr[data-kind=\"console\"] [data-testid=\"token-state\"]",
            ))
            .await
            .ok()?;
        row.text().await.ok()?.contains("expired").then_some(())
    })
    .await;
    shots.take(&driver, "tokens").await;

    // The errcode summary counts the app's calls and their error ratio.
    driver
        .goto(format!("{console}summary?app={appid}"))
        .await
        .unwrap();
    page_ready(&driver).await;
    shows(&driver, "summary-ratio", "failed (error ratio").await;
    shows(&driver, "summary-table", "45009").await;
    shots.take(&driver, "summary").await;

    // An app's settings: verified off, saved through PATCH.
    driver
        .goto(format!("{console}app?app={appid}"))
        .await
        .unwrap();
    page_ready(&driver).await;
    element(&driver, "setting-verified")
        .await
        .click()
        .await
        .unwrap();
    element(&driver, "settings-save")
        .await
        .click()
        .await
        .unwrap();
    shows(&driver, "settings-message", "Saved.").await;
    let shown: Value = http
        .get(format!("{base}/kefu/v1/apps/{appid}"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["verified"], false, "{shown}");

    // A third-party platform is made, its secret shown once.
    driver.goto(format!("{console}platforms")).await.unwrap();
    page_ready(&driver).await;
    element(&driver, "new-platform")
        .await
        .click()
        .await
        .unwrap();
    let made = text(&driver, "secret-once").await;
    assert!(made.contains("component_appid"), "{made}");
    on_page(&driver, "the platform listed", || async {
        let list = driver.find(testid("platforms-list")).await.ok()?;
        list.text().await.ok()?.contains("wx").then_some(())
    })
    .await;

    // Signing out ends the session: the console is the sign-in page again.
    element(&driver, "signout").await.click().await.unwrap();
    until("the sign-in page after sign-out", || async {
        let url = driver.current_url().await.ok()?;
        url.path().ends_with("/kefu/console/signin").then_some(())
    })
    .await;
    driver.goto(&console).await.unwrap();
    element(&driver, "signin-form").await;

    driver.quit().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
