//! The PostgreSQL store's shared test clock ([`ClockStore`]).

use super::*;
use crate::roles::*;

#[async_trait]
impl ClockStore for PostgresStore {
    async fn clock_offset(&self) -> StoreResult<i64> {
        match self
            .query_opt("SELECT offset_secs FROM clock WHERE id = 1", &[])
            .await?
        {
            Some(row) => row.try_get(0).map_err(pg),
            None => Ok(0),
        }
    }

    async fn advance_clock_offset(&self, by: i64, at_least: i64, at_most: i64) -> StoreResult<i64> {
        self.query_opt(
            "INSERT INTO clock AS c (id, offset_secs) \
             VALUES (1, LEAST(GREATEST($1::int8, $2::int8), $3::int8)) \
             ON CONFLICT (id) DO UPDATE SET offset_secs = \
             GREATEST(c.offset_secs, LEAST(GREATEST(c.offset_secs + $1::int8, $2::int8), \
                 $3::int8)) \
             RETURNING offset_secs",
            &[&by, &at_least, &at_most],
        )
        .await?
        .ok_or_else(|| StoreError::Internal("the clock row is missing".to_owned()))?
        .try_get(0)
        .map_err(pg)
    }
}
