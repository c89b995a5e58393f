//! A token store on Redis: several processes share one token and refresh it once.

use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;

use crate::error::{Error, Result};
use crate::token::{CachedToken, TokenStore, unix_now};

/// Compare-and-delete of a lock, atomically.
const DELETE_IF_EQUAL: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0";

/// Compare-and-delete of a cached token (by its `token` field), atomically.
const DELETE_IF_TOKEN: &str = r"
local raw = redis.call('GET', KEYS[1])
if raw and cjson.decode(raw)['token'] == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0";

/// Tokens kept in Redis under `{prefix}{key}` (a JSON value expiring with the token),
/// with a `SET NX PX` refresh lock under `{prefix}{key}:lock`.
#[derive(Clone)]
pub struct RedisTokenStore {
    connection: MultiplexedConnection,
    prefix: String,
}

impl std::fmt::Debug for RedisTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTokenStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn redis_error(error: redis::RedisError) -> Error {
    Error::store(format!("redis: {error}"))
}

impl RedisTokenStore {
    /// Connects to `url` (`redis://127.0.0.1:6379`); keys start with `prefix`
    /// (e.g. `"myapp:wechat:"`).
    pub async fn connect(url: &str, prefix: impl Into<String>) -> Result<RedisTokenStore> {
        let client = redis::Client::open(url).map_err(redis_error)?;
        let connection = client
            .get_multiplexed_async_connection()
            .await
            .map_err(redis_error)?;
        Ok(RedisTokenStore {
            connection,
            prefix: prefix.into(),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn lock_key(&self, key: &str) -> String {
        format!("{}{key}:lock", self.prefix)
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    token: String,
    expires_at: i64,
    refresh_at: i64,
}

#[async_trait]
impl TokenStore for RedisTokenStore {
    async fn get(&self, key: &str) -> Result<Option<CachedToken>> {
        let raw: Option<String> = self
            .connection
            .clone()
            .get(self.key(key))
            .await
            .map_err(redis_error)?;
        Ok(raw
            .and_then(|raw| serde_json::from_str::<Stored>(&raw).ok())
            .map(|stored| CachedToken {
                token: stored.token,
                expires_at: stored.expires_at,
                refresh_at: stored.refresh_at,
            }))
    }

    async fn put(&self, key: &str, token: &CachedToken) -> Result<()> {
        let stored = Stored {
            token: token.token.clone(),
            expires_at: token.expires_at,
            refresh_at: token.refresh_at,
        };
        let value = serde_json::to_string(&stored).map_err(|e| Error::store(e.to_string()))?;
        let ttl = u64::try_from((token.expires_at - unix_now()).max(1)).unwrap_or(1);
        let _: () = self
            .connection
            .clone()
            .set_ex(self.key(key), value, ttl)
            .await
            .map_err(redis_error)?;
        Ok(())
    }

    async fn invalidate(&self, key: &str, token: &str) -> Result<bool> {
        // One script: a token stored meanwhile by another process is never deleted.
        let deleted: i64 = redis::Script::new(DELETE_IF_TOKEN)
            .key(self.key(key))
            .arg(token)
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(redis_error)?;
        Ok(deleted == 1)
    }

    async fn try_lock(&self, key: &str, ttl: Duration) -> Result<Option<String>> {
        let id = format!("{:016x}", rand::random::<u64>());
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let taken: Option<String> = redis::cmd("SET")
            .arg(self.lock_key(key))
            .arg(&id)
            .arg("NX")
            .arg("PX")
            .arg(millis)
            .query_async(&mut self.connection.clone())
            .await
            .map_err(redis_error)?;
        Ok(taken.map(|_| id))
    }

    async fn unlock(&self, key: &str, id: &str) -> Result<()> {
        let _: i64 = redis::Script::new(DELETE_IF_EQUAL)
            .key(self.lock_key(key))
            .arg(id)
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(redis_error)?;
        Ok(())
    }
}
