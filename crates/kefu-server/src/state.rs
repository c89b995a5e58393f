//! The state every handler shares: cheap to clone.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use kefu_store::{Digest, Store};

use crate::clock::Clock;
use crate::faults::Faults;

/// Shared by every request: one `Arc`, so that handing it to a handler (every request
/// gets its own copy) costs one count.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// Wraps what the requests share.
    #[must_use]
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }

    /// Every WeChat call counted by app, path, errcode and hour from `since` (a Unix
    /// time) on, exactly. A housekeeping round moves counts from memory to the store,
    /// and while it writes them they are in neither place, so the counts are read
    /// between two rounds.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn call_counts(
        &self,
        appid: Option<&str>,
        since: i64,
    ) -> kefu_store::StoreResult<Vec<kefu_store::CallCount>> {
        let _between_rounds = self.housekeeping.lock().await;
        self.store.call_counts(appid, since).await
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("clock", &self.clock)
            .field("request_log", &self.request_log)
            .finish_non_exhaustive()
    }
}

/// What every request shares.
pub struct Shared {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The one clock.
    pub clock: Arc<Clock>,
    /// SHA-256 of the admin bearer token.
    pub admin_token: Arc<Digest>,
    /// The base of URLs the server hands out, when configured.
    pub public_url: Option<Arc<str>>,
    /// Fault injection rules.
    pub faults: Arc<Faults>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<[IpAddr]>,
    /// Whether WeChat calls are recorded (for `rid/get` and the admin request log).
    pub request_log: bool,
    /// One stable-token decision at a time per app (read the current token, then mint).
    pub stable_locks: Arc<KeyedLocks>,
    /// `getkflist` answers already made, by app.
    pub lists: Arc<ListCache>,
    /// Timeouts and bounds of connections and requests.
    pub limits: crate::config::Limits,
    /// What the request log may hold.
    pub log_limits: kefu_store::LogLimits,
    /// The pushes to the developers' callbacks.
    pub pushes: Arc<crate::push::Pushes>,
    /// The declared state a reset goes back to.
    pub fixtures: Arc<crate::fixtures::Prepared>,
    /// Held shared by every request, exclusively by a reset to the fixtures.
    pub reset_lock: Arc<tokio::sync::RwLock<()>>,
    /// One housekeeping round or reset at a time: a round that took the request log's
    /// calls out of memory before a reset writes none of them after it. Counts are read
    /// under it too ([`AppState::call_counts`]), never halfway through a round.
    pub housekeeping: Arc<tokio::sync::Mutex<()>>,
    /// Whether the web console is served.
    pub console: bool,
    /// The console's sessions (this instance's own).
    pub sessions: Arc<crate::console::Sessions>,
    /// The readers of the live request log.
    pub live: Arc<crate::admin::stream::Live>,
    /// The metrics, unless the server runs without them.
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Shared {
    /// Counts a token of `channel` minted, in the metrics when the server keeps them.
    pub(crate) fn minted(&self, channel: kefu_store::TokenChannel) {
        if let Some(metrics) = &self.metrics {
            metrics.token_minted(channel);
        }
    }
}

/// A `getkflist` answer kept for reuse: valid while the store vouches for the same
/// list (its version), for the same URL base, and until the first waiting invitation
/// in it lapses (its status would change).
#[derive(Debug, Clone)]
struct CachedList {
    version: u64,
    base: String,
    valid_until: i64,
    body: bytes::Bytes,
    /// The body as the request log shows it (made once for all the calls it answers).
    logged: Option<Arc<str>>,
}

/// The most apps whose answers are kept; past it the cache starts afresh.
const MAX_CACHED_LISTS: usize = 1024;

/// Made `getkflist` answers, by app.
#[derive(Debug, Default)]
pub struct ListCache(std::sync::Mutex<HashMap<String, CachedList>>);

impl ListCache {
    /// Forgets every answer (the store was replaced).
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CachedList>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The answer made for `appid`'s list at `version` with `base`, if still valid at
    /// `now`.
    pub fn get(
        &self,
        appid: &str,
        version: u64,
        base: &str,
        now: i64,
    ) -> Option<(bytes::Bytes, Option<Arc<str>>)> {
        self.lock()
            .get(appid)
            .filter(|c| c.version == version && c.base == base && now < c.valid_until)
            .map(|c| (c.body.clone(), c.logged.clone()))
    }

    /// Keeps an answer, with its text for the request log.
    pub fn put(
        &self,
        appid: &str,
        version: u64,
        base: &str,
        valid_until: i64,
        body: bytes::Bytes,
        logged: Option<Arc<str>>,
    ) {
        let mut lists = self.lock();
        if lists.len() >= MAX_CACHED_LISTS && !lists.contains_key(appid) {
            lists.clear();
        }
        lists.insert(
            appid.to_owned(),
            CachedList {
                version,
                base: base.to_owned(),
                valid_until,
                body,
                logged,
            },
        );
    }
}

/// Async mutexes by key, made on first use.
#[derive(Debug, Default)]
pub struct KeyedLocks(std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl KeyedLocks {
    /// The lock of `key`.
    pub fn of(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(locks.entry(key.to_owned()).or_default())
    }
}
