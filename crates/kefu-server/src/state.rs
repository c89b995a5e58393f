//! The state every handler shares: cheap to clone.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use kefu_store::{Digest, Store};

use crate::clock::Clock;
use crate::faults::Faults;

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
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
