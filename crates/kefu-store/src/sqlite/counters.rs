//! The SQLite store's call counters (quotas) ([`CounterStore`]).

use super::*;
use crate::roles::*;

#[async_trait]
impl CounterStore for SqliteStore {
    async fn consume(&self, counters: &[(CounterKey, u64)]) -> StoreResult<Result<(), usize>> {
        let mut map = self.counters();
        if let Some(full) = counters
            .iter()
            .position(|(key, limit)| map.get(key).map_or(0, |c| c.count) >= *limit)
        {
            return Ok(Err(full));
        }
        for (key, _) in counters {
            // Looked up by reference: the key is copied only for a counter's first call.
            match map.get_mut(key) {
                Some(counter) => {
                    counter.count += 1;
                    counter.dirty = true;
                }
                None => {
                    map.insert(
                        key.clone(),
                        Counter {
                            count: 1,
                            dirty: true,
                        },
                    );
                }
            }
        }
        Ok(Ok(()))
    }

    async fn counter(&self, key: &CounterKey) -> StoreResult<u64> {
        Ok(self.counters().get(key).map_or(0, |c| c.count))
    }

    async fn reset_counters(&self, owner: &str, names: &[String]) -> StoreResult<()> {
        {
            let mut map = self.counters();
            for (key, counter) in map.iter_mut() {
                if key.owner == owner && names.contains(&key.name) {
                    counter.count = 0;
                    counter.dirty = true;
                }
            }
        }
        let (owner, names) = (owner.to_owned(), names.to_vec());
        // Durable before the answer, like any acknowledged change.
        self.write(move |conn| {
            for name in &names {
                conn.prepare_cached("UPDATE counters SET count = 0 WHERE owner = ?1 AND name = ?2")
                    .and_then(|mut stmt| stmt.execute(params![owner, name]))
                    .map_err(internal)?;
            }
            Ok(((), |_: &mut Cache| {}))
        })
        .await
    }
}
