//! The PostgreSQL store's call counters (quotas) ([`CounterStore`]).

use super::*;
use crate::roles::*;

#[async_trait]
impl CounterStore for PostgresStore {
    async fn consume(&self, counters: &[(CounterKey, u64)]) -> StoreResult<Result<(), usize>> {
        // Batched with the concurrent counts: one call of `kefu_consume_batch`.
        self.batches.consume(counters.to_vec()).await
    }

    async fn counter(&self, key: &CounterKey) -> StoreResult<u64> {
        let row = self
            .query_opt(
                "SELECT count FROM counters WHERE owner = $1 AND name = $2 AND kind = $3 AND \
                    win = $4",
                &[
                    &key.owner,
                    &key.name,
                    &key.window.kind(),
                    &key.window.number(),
                ],
            )
            .await?;
        let count: i64 = match row {
            Some(row) => row.try_get(0).map_err(pg)?,
            None => 0,
        };
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn reset_counters(&self, owner: &str, names: &[String]) -> StoreResult<()> {
        self.execute(
            "UPDATE counters SET count = 0 WHERE owner = $1 AND name = ANY($2)",
            &[&owner, &names],
        )
        .await
        .map(drop)
    }
}
