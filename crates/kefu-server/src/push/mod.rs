//! Pushes to the developer's server (docs/behaviour.md, "Pushes"): what a fan does, and
//! sessions beginning and ending, POSTed as WeChat's XML to the app's callback URL,
//! signed (and in safe mode encrypted) as WeChat does; the answer read, and a
//! `transfer_customer_service` or a passive reply acted on.
//!
//! A push is queued without waiting and delivered by tasks of its own, at most
//! [`MAX_DELIVERING`] at a time, so that a request never waits for one and a dead
//! callback costs only its own retries. The queue is bounded ([`QUEUE_LEN`]): past it,
//! a push is dropped (and the drop logged). Every attempt is recorded in the request
//! log, with what the developer's server answered and why it counts as it does.

mod crypto;
mod xml;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use kefu_api::admin::{CallbackSettings, FanAction, MessageMode};
use kefu_api::{KfAccount, Secret};
use kefu_store::{App, FanChange, LoggedRequest, RecordedCall};
use tokio::sync::{Semaphore, mpsc, watch};

use self::crypto::{Cipher, signature};
use self::xml::{Body, Reply};
use crate::state::AppState;
use crate::wechat::reply::new_rid;

/// Pushes waiting to be delivered, at most.
pub const QUEUE_LEN: usize = 10_000;
/// The most of a developer's answer read (64 KiB).
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// One app's pushes being delivered at once, at most.
pub const MAX_DELIVERING_PER_APP: usize = 8;
/// Pushes being delivered at once, at most.
pub const MAX_DELIVERING: usize = 32;

/// How pushes are delivered: WeChat waits 5 seconds for an answer and tries again
/// three times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushSettings {
    /// How long an attempt waits for the developer's answer.
    pub timeout: Duration,
    /// How many times a failed attempt is tried again.
    pub retries: u32,
}

impl Default for PushSettings {
    fn default() -> PushSettings {
        PushSettings {
            timeout: Duration::from_secs(5),
            retries: 3,
        }
    }
}

/// What a push tells the developer's server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Told {
    /// The fan did something.
    Fan(FanAction),
    /// A fan who did not follow scanned a code (`subscribe` with `qrscene_` and the
    /// code's scene).
    ScanSubscribe(String),
    /// A session began with the account.
    Began(String),
    /// A session ended with the account.
    Ended(String),
}

/// One push to deliver.
#[derive(Debug, Clone)]
pub(crate) struct Push {
    appid: String,
    openid: String,
    told: Told,
    /// When it happened (server clock).
    at: i64,
}

/// The queue of pushes: cheap to share.
#[derive(Debug)]
pub struct Pushes {
    queue: mpsc::Sender<Push>,
    /// Pushes dropped because the queue was full.
    dropped: AtomicU64,
    client: reqwest::Client,
    settings: PushSettings,
}

/// The receiving end of the queue, for [`run`].
#[derive(Debug)]
pub struct PushQueue(mpsc::Receiver<Push>);

impl Pushes {
    /// A queue and its receiving end.
    pub fn new(settings: PushSettings) -> Result<(Pushes, PushQueue), String> {
        let tls = kefu_client::tls_config().map_err(|e| e.to_string())?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("Mozilla/4.0")
            .build()
            .map_err(|e| e.to_string())?;
        let (queue, receiver) = mpsc::channel(QUEUE_LEN);
        Ok((
            Pushes {
                queue,
                dropped: AtomicU64::new(0),
                client,
                settings,
            },
            PushQueue(receiver),
        ))
    }

    /// Queues a push; never waits. `false` when it was dropped (the queue is full).
    pub(crate) fn queue(&self, appid: &str, openid: &str, told: Told, at: i64) -> bool {
        let push = Push {
            appid: appid.to_owned(),
            openid: openid.to_owned(),
            told,
            at,
        };
        match self.queue.try_send(push) {
            Ok(()) => true,
            Err(_) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(dropped, "the push queue is full: pushes are dropped");
                }
                false
            }
        }
    }

    /// Queues the pushes a change of a fan's session causes.
    pub(crate) fn sessions(&self, appid: &str, change: &FanChange, at: i64) {
        if let Some(kf_account) = &change.ended {
            self.queue(
                appid,
                &change.fan.openid,
                Told::Ended(kf_account.clone()),
                at,
            );
        }
        if let Some(kf_account) = &change.began {
            self.queue(
                appid,
                &change.fan.openid,
                Told::Began(kf_account.clone()),
                at,
            );
        }
    }

    /// Pushes dropped so far.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Each app's share of the deliveries: how many of its pushes are delivered at once.
#[derive(Debug, Default)]
struct Shares(Mutex<HashMap<String, Arc<Semaphore>>>);

impl Shares {
    /// The app's share.
    fn of(&self, appid: &str) -> Arc<Semaphore> {
        let mut shares = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            shares
                .entry(appid.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(MAX_DELIVERING_PER_APP))),
        )
    }

    /// Forgets an app's share that no push holds any more.
    fn release(&self, appid: &str, share: Arc<Semaphore>) {
        drop(share);
        let mut shares = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if shares
            .get(appid)
            .is_some_and(|share| Arc::strong_count(share) == 1)
        {
            shares.remove(appid);
        }
    }
}

/// Delivers queued pushes until `stop`: at most [`MAX_DELIVERING`] at a time, of which
/// at most [`MAX_DELIVERING_PER_APP`] for one app, so that an app whose callback never
/// answers delays only its own pushes. Pushes taken from the queue wait for their turn
/// in tasks, at most [`QUEUE_LEN`] of them.
pub async fn run(state: AppState, mut queue: PushQueue, mut stop: watch::Receiver<bool>) {
    let waiting = Arc::new(Semaphore::new(QUEUE_LEN));
    let slots = Arc::new(Semaphore::new(MAX_DELIVERING));
    let shares = Arc::new(Shares::default());
    loop {
        let push = tokio::select! {
            push = queue.0.recv() => match push {
                Some(push) => push,
                None => return,
            },
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        let Ok(turn) = Arc::clone(&waiting).acquire_owned().await else {
            return;
        };
        let (state, slots, shares) = (state.clone(), Arc::clone(&slots), Arc::clone(&shares));
        tokio::spawn(async move {
            let share = shares.of(&push.appid);
            if let Ok(own) = Arc::clone(&share).acquire_owned().await
                && let Ok(slot) = slots.acquire_owned().await
            {
                let appid = push.appid.clone();
                deliver(&state, push).await;
                drop((slot, own));
                shares.release(&appid, share);
            }
            drop(turn);
        });
    }
}

/// What one push carries once made: its XML, and the signed query.
struct Made {
    body: String,
    query: Vec<(&'static str, String)>,
}

/// Makes the request of a push for an app's callback.
fn make(app: &App, callback: &CallbackSettings, push: &Push, plain: &str) -> Result<Made, String> {
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .to_string();
    let nonce = rand::random::<u32>().to_string();
    let token = callback.token.expose();
    let mut query = vec![
        ("signature", signature(&[token, &timestamp, &nonce])),
        ("timestamp", timestamp.clone()),
        ("nonce", nonce.clone()),
        ("openid", push.openid.clone()),
    ];
    let body = match callback.mode {
        MessageMode::Plain => plain.to_owned(),
        mode => {
            let key = callback
                .encoding_aes_key
                .as_ref()
                .map(Secret::expose)
                .and_then(Cipher::new)
                .ok_or("the callback's encoding_aes_key is not a key")?;
            let sealed = key.encrypt(plain, &app.appid);
            query.push(("encrypt_type", "aes".to_owned()));
            query.push((
                "msg_signature",
                signature(&[token, &timestamp, &nonce, &sealed]),
            ));
            if mode == MessageMode::Safe {
                xml::encrypted(&app.original_id, &sealed)
            } else {
                xml::compatible(plain, &sealed)
            }
        }
    };
    Ok(Made { body, query })
}

/// The XML body of what a push tells.
fn body_of(told: &Told) -> Body {
    let msg_id = rand::random::<u64>() >> 1;
    let media_id = || format!("kefu_{:016x}", rand::random::<u64>());
    match told {
        Told::Fan(FanAction::Text { content }) => Body::Text {
            content: content.clone(),
            msg_id,
        },
        Told::Fan(FanAction::Image) => Body::Media {
            kind: "image",
            media_id: media_id(),
            msg_id,
        },
        Told::Fan(FanAction::Voice) => Body::Media {
            kind: "voice",
            media_id: media_id(),
            msg_id,
        },
        Told::Fan(FanAction::Video) => Body::Media {
            kind: "video",
            media_id: media_id(),
            msg_id,
        },
        Told::Fan(FanAction::Click { key }) => Body::Event {
            event: "CLICK",
            key: Some(key.clone()),
            ticket: None,
        },
        Told::Fan(FanAction::Follow) => Body::Event {
            event: "subscribe",
            key: None,
            ticket: None,
        },
        Told::Fan(FanAction::Unfollow) => Body::Event {
            event: "unsubscribe",
            key: None,
            ticket: None,
        },
        Told::Fan(FanAction::Scan { key }) => Body::Event {
            event: "SCAN",
            key: Some(key.clone()),
            ticket: Some(format!("gQkefu{key}")),
        },
        // A payment is told to the merchant's payment URL, not the message callback;
        // [`push_for`] never queues one.
        Told::Fan(FanAction::Pay) => Body::Event {
            event: "pay",
            key: None,
            ticket: None,
        },
        Told::ScanSubscribe(key) => Body::Event {
            event: "subscribe",
            key: Some(format!("qrscene_{key}")),
            ticket: Some(format!("gQkefu{key}")),
        },
        Told::Began(kf_account) => Body::Session {
            event: "kf_create_session",
            kf_account: kf_account.clone(),
        },
        Told::Ended(kf_account) => Body::Session {
            event: "kf_close_session",
            kf_account: kf_account.clone(),
        },
    }
}

/// Whether a fan's action is pushed: events always (but a payment, which WeChat tells
/// the merchant's payment URL), messages only while no account serves the fan (they
/// go to the account then). A scan by a fan who did not follow is its `subscribe`.
pub(crate) fn push_for(action: &FanAction, followed_before: bool, served: bool) -> Option<Told> {
    match action {
        FanAction::Pay => None,
        message if message.is_message() && served => None,
        FanAction::Scan { key } if !followed_before => Some(Told::ScanSubscribe(key.clone())),
        other => Some(Told::Fan(other.clone())),
    }
}

/// Delivers one push: tries, and tries again up to the retries, until the developer's
/// server answers HTTP 200 in time; then acts on the answer.
async fn deliver(state: &AppState, push: Push) {
    let app = match state.store.app(&push.appid).await {
        Ok(Some(app)) => app,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(%error, appid = push.appid, "a push could not read its app");
            return;
        }
    };
    let Some(callback) = app.settings.callback.clone() else {
        return;
    };
    let plain = xml::push(
        &app.original_id,
        &push.openid,
        push.at,
        &body_of(&push.told),
    );
    let made = match make(&app, &callback, &push, &plain) {
        Ok(made) => made,
        Err(why) => {
            tracing::warn!(appid = push.appid, why, "a push could not be made");
            return;
        }
    };
    let pushes = &state.pushes;
    let attempts = pushes.settings.retries.saturating_add(1);
    for attempt in 1..=attempts {
        let started = Instant::now();
        let sent = pushes
            .client
            .post(&callback.url)
            .query(&made.query)
            .header(reqwest::header::CONTENT_TYPE, "text/xml")
            .body(made.body.clone())
            .send()
            .await;
        let answer = match sent {
            Ok(response) if response.status().is_success() => read_answer(response).await,
            Ok(response) => Err(format!("the callback answered HTTP {}", response.status())),
            Err(error) if error.is_timeout() => Err(format!(
                "no answer within {} s",
                pushes.settings.timeout.as_secs_f64()
            )),
            Err(error) => Err(format!("the callback could not be reached: {error}")),
        };
        let cost = started.elapsed();
        let what = told_name(&push.told);
        let (errcode, reason, response_body) = match &answer {
            Ok(text) => {
                let outcome = act_on(state, &app, &callback, &push, text).await;
                (
                    0,
                    format!("{what} pushed (attempt {attempt} of {attempts}): {outcome}"),
                    text.clone(),
                )
            }
            Err(why) => {
                let next = if attempt < attempts {
                    "; it is tried again"
                } else {
                    "; no more attempts"
                };
                (
                    -1,
                    format!("{what} pushed (attempt {attempt} of {attempts}): {why}{next}"),
                    String::new(),
                )
            }
        };
        record(
            state,
            &app,
            &callback,
            &made,
            errcode,
            reason,
            response_body,
            cost,
        );
        if answer.is_ok() {
            return;
        }
    }
}

/// Reads the developer's answer, at most [`MAX_ANSWER_BYTES`] of it: a longer one is
/// taken as answered and read as empty (nothing to act on), as no reply is that long.
async fn read_answer(mut response: reqwest::Response) -> Result<String, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("the answer broke off: {e}"))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Ok(String::new());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The push's name, as the request log says it.
fn told_name(told: &Told) -> String {
    match told {
        Told::Fan(action) => format!("the fan's {}", action_name(action)),
        Told::ScanSubscribe(_) => "the fan's scan (and follow)".to_owned(),
        Told::Began(kf) => format!("kf_create_session ({kf})"),
        Told::Ended(kf) => format!("kf_close_session ({kf})"),
    }
}

fn action_name(action: &FanAction) -> &'static str {
    match action {
        FanAction::Text { .. } => "text",
        FanAction::Image => "image",
        FanAction::Voice => "voice",
        FanAction::Video => "video",
        FanAction::Click { .. } => "menu click",
        FanAction::Follow => "follow",
        FanAction::Unfollow => "unfollow",
        FanAction::Scan { .. } => "scan",
        FanAction::Pay => "payment",
    }
}

/// Acts on what the developer's server answered, and says what was made of it.
async fn act_on(
    state: &AppState,
    app: &App,
    callback: &CallbackSettings,
    push: &Push,
    answer: &str,
) -> String {
    let trimmed = answer.trim();
    if trimmed.is_empty() || trimmed == "success" {
        return format!("answered {trimmed:?}: nothing more to do");
    }
    let reply = match read_reply(app, callback, trimmed) {
        Ok(reply) => reply,
        Err(why) => return format!("the answer was ignored ({why}), as WeChat ignores it"),
    };
    let now = state.clock.now();
    match reply {
        Reply::Transfer { kf_account } => {
            let to = kf_account
                .as_deref()
                .and_then(|account| KfAccount::parse(account).ok());
            match state
                .store
                .enqueue(&app.appid, &push.openid, to.as_ref(), now)
                .await
            {
                Ok(change) => {
                    state.pushes.sessions(&app.appid, &change, now);
                    match (&change.began, kf_account) {
                        (Some(kf), _) => format!("transfer_customer_service: {kf} serves the fan"),
                        (None, Some(kf)) => format!(
                            "transfer_customer_service to {kf}, which cannot take the fan now \
                             (not an account of the app, not bound or not online): the fan waits"
                        ),
                        (None, None) => "transfer_customer_service: the fan waits".to_owned(),
                    }
                }
                Err(error) => format!("transfer_customer_service could not be done: {error}"),
            }
        }
        Reply::Message { msgtype, text } => {
            match state
                .store
                .record_reply(&app.appid, &push.openid, text, now)
                .await
            {
                Ok(change) => {
                    state.pushes.sessions(&app.appid, &change, now);
                    format!("a passive {msgtype} reply, recorded as sent to the fan")
                }
                Err(error) => format!("a passive {msgtype} reply, not recorded: {error}"),
            }
        }
    }
}

/// Reads a reply, decrypting it first when it is encrypted (its signature checked).
fn read_reply(app: &App, callback: &CallbackSettings, answer: &str) -> Result<Reply, String> {
    let fields = xml::fields(answer)?;
    let Some(sealed) = fields.get("Encrypt") else {
        return xml::reply(&fields);
    };
    let key = callback
        .encoding_aes_key
        .as_ref()
        .map(Secret::expose)
        .and_then(Cipher::new)
        .ok_or("an encrypted reply, but the app has no encoding_aes_key")?;
    let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or_default();
    let expected = signature(&[
        callback.token.expose(),
        field("TimeStamp"),
        field("Nonce"),
        sealed,
    ]);
    if field("MsgSignature") != expected {
        return Err("the encrypted reply's MsgSignature is wrong".to_owned());
    }
    let (plain, appid) = key.decrypt(sealed)?;
    if appid != app.appid {
        return Err(format!("the encrypted reply names appid {appid:?}"));
    }
    xml::reply(&xml::fields(&plain)?)
}

/// Records one attempt in the request log.
#[allow(clippy::too_many_arguments)]
fn record(
    state: &AppState,
    app: &App,
    callback: &CallbackSettings,
    made: &Made,
    errcode: i64,
    reason: String,
    response_body: String,
    cost: Duration,
) {
    if !state.request_log {
        return;
    }
    let now = state.clock.now();
    let rid = new_rid(now);
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(made.query.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let logged = LoggedRequest {
        rid: rid.to_string(),
        appid: Some(app.appid.clone()),
        method: "PUSH".to_owned(),
        path: callback_path(&callback.url),
        errcode,
        invoke_time: now,
        cost_ms: i64::try_from(cost.as_millis()).unwrap_or(i64::MAX),
        request_url: query,
        request_body: crate::wechat::log_text(&made.body),
        response_body: crate::wechat::log_text(&response_body),
        client_ip: String::new(),
        reason,
    };
    state
        .store
        .log_request(Arc::new(RecordedCall::from(logged)));
}

/// A callback URL as the request log's path: scheme, host and path, without a query.
fn callback_path(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or(url).to_owned()
}
