//! Where tokens are cached, and how a refresh is kept to one at a time.
//!
//! A [`TokenStore`] holds the current token of each credential and a refresh lock.
//! [`MemoryTokenStore`] serves one process; `RedisTokenStore` (feature `redis`)
//! lets several processes (or servers) share one token and refresh it once between
//! them, instead of each refreshing and killing the others' tokens — the commonest
//! cause of 40001 in production.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use crate::error::Result;

/// A cached token, when it expires, and when to refresh it.
#[derive(Clone, PartialEq, Eq)]
pub struct CachedToken {
    /// The token.
    pub token: String,
    /// Unix seconds (the client's clock).
    pub expires_at: i64,
    /// From this time (Unix seconds) on, the token is refreshed before use.
    pub refresh_at: i64,
}

impl fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Now, in Unix seconds.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Storage for tokens, shared by every client that uses the same key.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// The cached token of `key`.
    async fn get(&self, key: &str) -> Result<Option<CachedToken>>;
    /// Caches a token.
    async fn put(&self, key: &str, token: &CachedToken) -> Result<()>;
    /// Forgets the token of `key` only if it is still `token` (compare-and-invalidate),
    /// so that a client holding a stale token cannot throw away a fresh one.
    async fn invalidate(&self, key: &str, token: &str) -> Result<bool>;
    /// Takes the refresh lock of `key` for at most `ttl`; answers the lock's id, or
    /// `None` when another holder has it.
    async fn try_lock(&self, key: &str, ttl: Duration) -> Result<Option<String>>;
    /// Releases the lock if `id` still holds it.
    async fn unlock(&self, key: &str, id: &str) -> Result<()>;
}

/// Tokens in this process's memory (the default).
#[derive(Debug, Default)]
pub struct MemoryTokenStore {
    tokens: Mutex<HashMap<String, CachedToken>>,
    locks: Mutex<HashMap<String, (String, std::time::Instant)>>,
}

impl MemoryTokenStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> MemoryTokenStore {
        MemoryTokenStore::default()
    }
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[async_trait]
impl TokenStore for MemoryTokenStore {
    async fn get(&self, key: &str) -> Result<Option<CachedToken>> {
        Ok(locked(&self.tokens).get(key).cloned())
    }

    async fn put(&self, key: &str, token: &CachedToken) -> Result<()> {
        locked(&self.tokens).insert(key.to_owned(), token.clone());
        Ok(())
    }

    async fn invalidate(&self, key: &str, token: &str) -> Result<bool> {
        let mut tokens = locked(&self.tokens);
        if tokens.get(key).is_some_and(|cached| cached.token == token) {
            tokens.remove(key);
            return Ok(true);
        }
        Ok(false)
    }

    async fn try_lock(&self, key: &str, ttl: Duration) -> Result<Option<String>> {
        let mut locks = locked(&self.locks);
        let now = std::time::Instant::now();
        if locks.get(key).is_some_and(|(_, until)| *until > now) {
            return Ok(None);
        }
        let id = format!("{:016x}", rand::random::<u64>());
        locks.insert(key.to_owned(), (id.clone(), now + ttl));
        Ok(Some(id))
    }

    async fn unlock(&self, key: &str, id: &str) -> Result<()> {
        let mut locks = locked(&self.locks);
        if locks.get(key).is_some_and(|(holder, _)| holder == id) {
            locks.remove(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn compare_and_invalidate() {
        let store = MemoryTokenStore::new();
        let fresh = CachedToken {
            token: "new".to_owned(),
            expires_at: 10,
            refresh_at: 5,
        };
        store.put("k", &fresh).await.unwrap();
        assert!(
            !store.invalidate("k", "old").await.unwrap(),
            "a stale token cannot evict a fresh one"
        );
        assert_eq!(store.get("k").await.unwrap(), Some(fresh));
        assert!(store.invalidate("k", "new").await.unwrap());
        assert_eq!(store.get("k").await.unwrap(), None);
    }

    #[tokio::test]
    async fn one_lock_holder_at_a_time() {
        let store = MemoryTokenStore::new();
        let id = store
            .try_lock("k", Duration::from_secs(10))
            .await
            .unwrap()
            .unwrap();
        assert!(
            store
                .try_lock("k", Duration::from_secs(10))
                .await
                .unwrap()
                .is_none()
        );
        store.unlock("k", "someone-else").await.unwrap();
        assert!(
            store
                .try_lock("k", Duration::from_secs(10))
                .await
                .unwrap()
                .is_none()
        );
        store.unlock("k", &id).await.unwrap();
        assert!(
            store
                .try_lock("k", Duration::from_secs(10))
                .await
                .unwrap()
                .is_some()
        );
    }
}
