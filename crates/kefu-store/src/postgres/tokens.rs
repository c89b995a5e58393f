//! The PostgreSQL store's tokens: minting, supersession and lookups ([`TokenStore`]).

use super::*;
use crate::roles::*;

#[async_trait]
impl TokenStore for PostgresStore {
    async fn issue_token(&self, mint: Mint) -> StoreResult<()> {
        self.batches
            .mint((mint.token, mint.hash, mint.now, mint.grace_secs))
            .await
    }

    async fn token(&self, hash: &Digest) -> StoreResult<Option<TokenRecord>> {
        let row = self
            .query_opt(
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = $1"),
                &[&&hash[..]],
            )
            .await?;
        match row {
            Some(row) => columns::token(&row, 0).map_err(pg),
            None => Ok(None),
        }
    }

    async fn token_and_app(
        &self,
        hash: &Digest,
    ) -> StoreResult<Option<(TokenRecord, Option<Arc<App>>)>> {
        // Batched with the concurrent checks: the token left-joined with its app (a
        // platform's token has none).
        self.batches.token_and_app(*hash).await
    }

    async fn current_token(
        &self,
        owner: &str,
        channel: TokenChannel,
    ) -> StoreResult<Option<CurrentToken>> {
        let Some(row) = self
            .query_opt(
                &format!(
                    "SELECT {TOKEN_COLUMNS}, hash, value FROM tokens WHERE appid = $1 AND \
                        channel = $2 \
                     AND component IS NULL AND superseded_at IS NULL"
                ),
                &[&owner, &channel.as_str()],
            )
            .await?
        else {
            return Ok(None);
        };
        let Some(record) = columns::token(&row, 0).map_err(pg)? else {
            return Ok(None);
        };
        Ok(Some(CurrentToken {
            hash: digest(row.try_get(6).map_err(pg)?),
            value: row.try_get(7).map_err(pg)?,
            record,
        }))
    }

    async fn issue_stable_token(&self, mint: StableMint) -> StoreResult<()> {
        self.insert_stable_token(mint).await
    }

    async fn owner_tokens(
        &self,
        owner: &str,
        limit: usize,
    ) -> StoreResult<Vec<(Digest, TokenRecord)>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .query(
                &format!(
                    "SELECT {TOKEN_COLUMNS}, hash FROM tokens WHERE appid = $1 \
                     ORDER BY issued_at DESC, hash LIMIT $2"
                ),
                &[&owner, &limit],
            )
            .await?;
        let mut owned = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(record) = columns::token(&row, 0).map_err(pg)? {
                owned.push((digest(row.try_get(6).map_err(pg)?), record));
            }
        }
        Ok(owned)
    }

    async fn set_token_times(
        &self,
        hash: &Digest,
        superseded_at: Option<i64>,
        expires_at: Option<i64>,
    ) -> StoreResult<()> {
        let changed = self
            .execute(
                "UPDATE tokens SET superseded_at = COALESCE($2, superseded_at), \
                 expires_at = COALESCE($3, expires_at) WHERE hash = $1",
                &[&&hash[..], &superseded_at, &expires_at],
            )
            .await?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}

impl PostgresStore {
    /// Records a stable token with its value, provided the family's current token is
    /// still `replaces`; that one is superseded at `now + grace_secs`. One family at a
    /// time, across instances. (Other tokens are minted in batches: `batch::mints`.)
    async fn insert_stable_token(&self, mint: StableMint) -> StoreResult<()> {
        let StableMint {
            mint:
                Mint {
                    token,
                    hash,
                    now,
                    grace_secs,
                },
            value,
            replaces,
        } = mint;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let channel = token.channel.as_str();
        let component = token.component.as_deref();
        lock(&tx, &family_key(&token)).await?;
        // The owner (and an authorizer token's platform) must exist, and stays until the
        // commit: a concurrent delete waits, then deletes this token too.
        let owner_sql = match token.channel {
            TokenChannel::Component => {
                "SELECT 1 FROM components WHERE component_appid = $1 FOR KEY SHARE"
            }
            _ => "SELECT 1 FROM apps WHERE appid = $1 FOR KEY SHARE",
        };
        if tx
            .query_opt(owner_sql, &[&&*token.appid])
            .await
            .map_err(pg)?
            .is_none()
        {
            return Err(StoreError::NotFound);
        }
        if let Some(platform) = component
            && tx
                .query_opt(
                    "SELECT 1 FROM components WHERE component_appid = $1 FOR KEY SHARE",
                    &[&platform],
                )
                .await
                .map_err(pg)?
                .is_none()
        {
            return Err(StoreError::NotFound);
        }
        let current = tx
            .query_opt(
                "SELECT hash FROM tokens WHERE appid = $1 AND channel = $2 \
                 AND component IS NOT DISTINCT FROM $3 AND superseded_at IS NULL",
                &[&&*token.appid, &channel, &component],
            )
            .await
            .map_err(pg)?
            .map(|row| row.try_get::<_, Vec<u8>>(0).map(|h| digest(&h)))
            .transpose()
            .map_err(pg)?;
        rules::may_replace(current, replaces)?;
        let superseded_at = rules::superseded_at(now, grace_secs);
        tx.execute(
            "UPDATE tokens SET superseded_at = $4, value = NULL WHERE appid = $1 AND channel = $2 \
             AND component IS NOT DISTINCT FROM $3 AND superseded_at IS NULL",
            &[&&*token.appid, &channel, &component, &superseded_at],
        )
        .await
        .map_err(pg)?;
        tx.execute(
            "INSERT INTO tokens (hash, appid, channel, component, issued_at, expires_at, value) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &&hash[..],
                &&*token.appid,
                &channel,
                &component,
                &token.issued_at,
                &token.expires_at,
                &value,
            ],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)
    }
}
