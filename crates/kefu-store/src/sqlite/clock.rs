//! The SQLite store's shared test clock ([`ClockStore`]).

use super::*;
use crate::roles::*;

#[async_trait]
impl ClockStore for SqliteStore {
    async fn clock_offset(&self) -> StoreResult<i64> {
        Ok(self.clock_offset.load(Ordering::Relaxed))
    }

    async fn advance_clock_offset(&self, by: i64, at_least: i64, at_most: i64) -> StoreResult<i64> {
        let stored = Arc::clone(&self.clock_offset);
        self.write(move |conn| {
            let offset: i64 = conn
                .prepare_cached(
                    "INSERT INTO clock (id, offset_secs) VALUES (1, min(max(?1, ?2), ?3)) ON \
                        CONFLICT (id) \
                     DO UPDATE SET offset_secs = max(offset_secs, min(max(offset_secs + ?1, \
                         ?2), ?3)) \
                     RETURNING offset_secs",
                )
                .and_then(|mut stmt| {
                    stmt.query_row(params![by, at_least, at_most], |row| row.get(0))
                })
                .map_err(internal)?;
            Ok((offset, move |_: &mut Cache| {
                stored.fetch_max(offset, Ordering::Relaxed);
            }))
        })
        .await
    }
}
