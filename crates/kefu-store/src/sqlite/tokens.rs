//! The SQLite store's tokens: minting, supersession and lookups ([`TokenStore`]).

use super::*;
use crate::roles::*;

#[async_trait]
impl TokenStore for SqliteStore {
    async fn issue_token(&self, mint: Mint) -> StoreResult<()> {
        self.insert_token(mint, None, None).await
    }

    async fn token(&self, hash: &Digest) -> StoreResult<Option<TokenRecord>> {
        Ok(self.read(|cache| cache.tokens.get(hash).cloned()))
    }

    async fn current_token(
        &self,
        owner: &str,
        channel: TokenChannel,
    ) -> StoreResult<Option<CurrentToken>> {
        Ok(self.read(|cache| {
            let hash = *cache
                .current_tokens
                .get(&(Arc::from(owner), channel, None))?;
            let record = cache.tokens.get(&hash)?.clone();
            // A token superseded by hand is no family's current one.
            record.superseded_at.is_none().then(|| CurrentToken {
                hash,
                value: cache.token_values.get(&hash).cloned(),
                record,
            })
        }))
    }

    async fn issue_stable_token(&self, mint: StableMint) -> StoreResult<()> {
        self.insert_token(mint.mint, Some(mint.value), Some(mint.replaces))
            .await
    }

    async fn set_token_times(
        &self,
        hash: &Digest,
        superseded_at: Option<i64>,
        expires_at: Option<i64>,
    ) -> StoreResult<()> {
        let hash = *hash;
        self.write(move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE tokens SET superseded_at = COALESCE(?2, superseded_at), \
                     expires_at = COALESCE(?3, expires_at) WHERE hash = ?1",
                )
                .and_then(|mut stmt| stmt.execute(params![hash, superseded_at, expires_at]))
                .map_err(internal)?;
            if changed == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(((), move |cache: &mut Cache| {
                if let Some(record) = cache.tokens.get_mut(&hash) {
                    record.superseded_at = superseded_at.or(record.superseded_at);
                    record.expires_at = expires_at.unwrap_or(record.expires_at);
                }
            }))
        })
        .await
    }

    async fn owner_tokens(
        &self,
        owner: &str,
        limit: usize,
    ) -> StoreResult<Vec<(Digest, TokenRecord)>> {
        Ok(self.read(|cache| {
            let mut owned: Vec<(Digest, TokenRecord)> = cache
                .tokens
                .iter()
                .filter(|(_, record)| &*record.appid == owner)
                .map(|(hash, record)| (*hash, record.clone()))
                .collect();
            owned.sort_by(|a, b| b.1.issued_at.cmp(&a.1.issued_at).then(a.0.cmp(&b.0)));
            owned.truncate(limit);
            owned
        }))
    }
}

impl SqliteStore {
    /// Records a token (with its value for stable tokens); the family's current token
    /// is superseded at `now + grace_secs`.
    #[allow(
        clippy::option_option,
        reason = "None: mint whatever is current; Some(expected): only over that one (None for none)"
    )]
    async fn insert_token(
        &self,
        mint: Mint,
        value: Option<String>,
        replaces: Option<Option<Digest>>,
    ) -> StoreResult<()> {
        let Mint {
            token,
            hash,
            now,
            grace_secs,
        } = mint;
        let superseded_at = rules::superseded_at(now, grace_secs);
        self.write(move |conn| {
            let owner_exists = match token.channel {
                TokenChannel::Component => component_exists(conn, &token.appid)?,
                _ => app_exists(conn, &token.appid)?,
            };
            // An authorizer token's platform must exist as well.
            let platform_exists = match token.component.as_deref() {
                Some(platform) => component_exists(conn, platform)?,
                None => true,
            };
            if !owner_exists || !platform_exists {
                return Err(StoreError::NotFound);
            }
            let component = token.component.as_deref();
            if let Some(expected) = replaces {
                let current: Option<Digest> = conn
                    .prepare_cached(
                        "SELECT hash FROM tokens WHERE appid = ?1 AND channel = ?2 AND \
                            component IS ?3 \
                         AND superseded_at IS NULL",
                    )
                    .and_then(|mut stmt| {
                        stmt.query_row(
                            params![&*token.appid, token.channel.as_str(), component],
                            |row| row.get(0),
                        )
                        .optional()
                    })
                    .map_err(internal)?;
                rules::may_replace(current, expected)?;
            }
            conn.prepare_cached(
                "UPDATE tokens SET superseded_at = ?3, value = NULL \
                 WHERE appid = ?1 AND channel = ?2 AND component IS ?4 AND superseded_at IS NULL",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    &*token.appid,
                    token.channel.as_str(),
                    superseded_at,
                    component
                ])
            })
            .map_err(internal)?;
            conn.prepare_cached(
                "INSERT INTO tokens (hash, appid, channel, component, issued_at, expires_at, \
                    value) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    hash,
                    &*token.appid,
                    token.channel.as_str(),
                    component,
                    token.issued_at,
                    token.expires_at,
                    value
                ])
            })
            .map_err(internal)?;
            Ok(((), move |cache: &mut Cache| {
                cache.insert_token(hash, token, value, Some(superseded_at));
            }))
        })
        .await
    }
}
