//! The PostgreSQL store's housekeeping: counters of past windows deleted, the request
//! log written, trimmed and vacuumed, expired tokens and tickets purged (the rules in
//! `rules.rs`).

use super::*;

#[async_trait]
impl Store for PostgresStore {
    async fn ready(&self) -> Result<(), String> {
        let row = self
            .query_opt("SELECT coalesce(max(version), 0) FROM kefu_migrations", &[])
            .await
            .map_err(|e| format!("PostgreSQL does not answer: {e}"))?
            .ok_or_else(|| "PostgreSQL answered no row".to_owned())?;
        let version: i32 = row
            .try_get(0)
            .map_err(|e| format!("PostgreSQL answered: {e}"))?;
        rules::schema_verdict(i64::from(version), schema::LATEST)
    }

    async fn maintain(&self, now: i64, log_before: i64) -> StoreResult<()> {
        let purge = self.purge.due(now);
        let result = self.housekeep(now, log_before, purge).await;
        if result.is_err() && purge.is_some() {
            self.purge.missed();
        }
        result
    }
}

/// Deletes the oldest recorded calls until the log is within its bounds on disk,
/// counting what went, and answers how many calls and bytes it deleted. The usage row
/// is locked first, so that instances trimming at once take turns.
pub(super) async fn trim_log(
    client: &impl GenericClient,
    limits: &LogLimits,
) -> StoreResult<(u64, u64)> {
    let mut deleted = (0, 0);
    loop {
        let row = client
            .query_one(
                "SELECT rows, bytes FROM log_usage WHERE id = 1 FOR UPDATE",
                &[],
            )
            .await
            .map_err(pg)?;
        let count = |i: usize| -> StoreResult<u64> {
            Ok(u64::try_from(row.try_get::<_, i64>(i).map_err(pg)?).unwrap_or(0))
        };
        let n = rules::calls_to_trim(count(0)?, count(1)?, limits);
        if n == 0 {
            return Ok(deleted);
        }
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let gone = client
            .query_one(
                "WITH gone AS (DELETE FROM request_log WHERE seq IN \
                 (SELECT seq FROM request_log ORDER BY seq LIMIT $1) RETURNING bytes) \
                 SELECT count(*), coalesce(sum(bytes), 0)::int8 FROM gone",
                &[&n],
            )
            .await
            .map_err(pg)?;
        let rows: i64 = gone.try_get(0).map_err(pg)?;
        let bytes: i64 = gone.try_get(1).map_err(pg)?;
        deleted.0 += u64::try_from(rows).unwrap_or(0);
        deleted.1 += u64::try_from(bytes).unwrap_or(0);
        client
            .execute(
                "UPDATE log_usage SET dropped = dropped + $1 WHERE id = 1",
                &[&rows],
            )
            .await
            .map_err(pg)?;
        if rows == 0 {
            return Ok(deleted);
        }
    }
}

/// Most recorded calls written by one statement.
pub(super) const LOG_ROWS_PER_STATEMENT: usize = 256;

/// What the request log has deleted since its table was last vacuumed, and whether a
/// vacuum is running. PostgreSQL keeps a deleted row's space until a vacuum frees it,
/// and autovacuum looks at a table at most once a minute: a flood of failing calls
/// trims thousands of rows a second, and the table would grow far past the log's bound
/// on disk between its visits.
#[derive(Default)]
pub(super) struct Vacuum {
    deleted: Mutex<(u64, u64)>,
    running: AtomicBool,
}

impl PostgresStore {
    /// One housekeeping round (`Store::maintain`), with the purge due in it.
    async fn housekeep(
        &self,
        now: i64,
        log_before: i64,
        purge: Option<rules::Purge>,
    ) -> StoreResult<()> {
        let flush = self.log.flush(log_before);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        // Diagnostics and housekeeping: no need to wait for the disk.
        tx.batch_execute("SET LOCAL synchronous_commit TO OFF")
            .await
            .map_err(pg)?;
        // Counters first: deleting an app locks its counters before the request log's
        // usage row, and so does this, so neither waits for the other in a circle.
        let [minute, day, month] = rules::oldest_counter_windows(now);
        tx.execute(
            "DELETE FROM counters WHERE (kind = 'minute' AND win < $1) \
             OR (kind = 'day' AND win < $2) OR (kind = 'month' AND win < $3)",
            &[&minute.number(), &day.number(), &month.number()],
        )
        .await
        .map_err(pg)?;
        // A few hundred calls a statement: what the client encodes at once stays small
        // (a second's calls may be thousands of kilobytes-long bodies).
        for entries in flush.entries.chunks(LOG_ROWS_PER_STATEMENT) {
            let column = |f: fn(&LoggedRequest) -> &str| -> Vec<Cow<'_, str>> {
                entries.iter().map(|e| as_text(f(e))).collect()
            };
            let numbers =
                |f: fn(&LoggedRequest) -> i64| -> Vec<i64> { entries.iter().map(f).collect() };
            let appids: Vec<Option<&str>> = entries.iter().map(|e| e.appid.as_deref()).collect();
            tx.execute(
                &format!(
                    "INSERT INTO request_log ({LOG_COLUMNS}, bytes) SELECT * FROM \
                        unnest($1::text[], \
                     $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::int8[], \
                     $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], \
                         $13::int8[]) ON CONFLICT (rid) DO NOTHING"
                ),
                &[
                    &column(|e| &e.rid),
                    &appids,
                    &column(|e| &e.method),
                    &column(|e| &e.path),
                    &numbers(|e| e.errcode),
                    &numbers(|e| e.invoke_time),
                    &numbers(|e| e.cost_ms),
                    &column(|e| &e.request_url),
                    &column(|e| &e.request_body),
                    &column(|e| &e.response_body),
                    &column(|e| &e.client_ip),
                    &column(|e| &e.reason),
                    &numbers(|e| i64::try_from(e.row_bytes()).unwrap_or(i64::MAX)),
                ],
            )
            .await
            .map_err(pg)?;
        }
        if !flush.counts.is_empty() {
            let owners: Vec<&str> = flush
                .counts
                .iter()
                .map(|c| c.appid.as_deref().unwrap_or(""))
                .collect();
            let paths: Vec<&str> = flush.counts.iter().map(|c| c.path.as_str()).collect();
            let codes: Vec<i64> = flush.counts.iter().map(|c| c.errcode).collect();
            let hours: Vec<i64> = flush.counts.iter().map(|c| c.hour).collect();
            let counts: Vec<i64> = flush
                .counts
                .iter()
                .map(|c| i64::try_from(c.count).unwrap_or(i64::MAX))
                .collect();
            tx.execute(
                "INSERT INTO call_counts (owner, path, errcode, hour, count) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[]) \
                 ON CONFLICT (owner, path, errcode, hour) DO UPDATE SET count = \
                     call_counts.count + excluded.count",
                &[&owners, &paths, &codes, &hours, &counts],
            )
            .await
            .map_err(pg)?;
        }
        let expired = tx
            .query_one(
                "WITH gone AS (DELETE FROM request_log WHERE invoke_time < $1 RETURNING bytes) \
                 SELECT count(*), coalesce(sum(bytes), 0)::int8 FROM gone",
                &[&log_before],
            )
            .await
            .map_err(pg)?;
        tx.execute(
            "DELETE FROM call_counts WHERE hour < $1",
            &[&logbuf::hour_of(log_before)],
        )
        .await
        .map_err(pg)?;
        let trimmed = trim_log(&tx, &self.log.limits()).await?;
        if let Some(purge) = purge {
            tx.execute(
                "DELETE FROM component_tickets WHERE expires_at < $1",
                &[&purge.tickets],
            )
            .await
            .map_err(pg)?;
            tx.execute("DELETE FROM tokens WHERE expires_at < $1", &[&purge.tokens])
                .await
                .map_err(pg)?;
            // Two statements, each on an index: by age, then past the cap.
            tx.execute("DELETE FROM messages WHERE time < $1", &[&purge.history])
                .await
                .map_err(pg)?;
            tx.execute(
                "DELETE FROM messages WHERE msgid <= (SELECT max(msgid) FROM messages) - $1",
                &[&rules::MAX_HISTORY_RECORDS],
            )
            .await
            .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        self.log.written(&flush);
        let expired = (
            u64::try_from(expired.try_get::<_, i64>(0).map_err(pg)?).unwrap_or(0),
            u64::try_from(expired.try_get::<_, i64>(1).map_err(pg)?).unwrap_or(0),
        );
        self.vacuum_log_after(
            trimmed.0 + expired.0,
            trimmed.1 + expired.1,
            &self.log.limits(),
        );
        Ok(())
    }
}

impl PostgresStore {
    /// Counts calls deleted from the request log, and once they add up to a good part
    /// of its bounds (`rules::log_needs_vacuum`), vacuums its table in the background,
    /// so that the space they held is used again rather than the table growing. One
    /// vacuum at a time per instance; one that finds another instance's (or
    /// autovacuum's) at work skips its turn.
    fn vacuum_log_after(&self, rows: u64, bytes: u64, limits: &LogLimits) {
        let due = {
            let mut deleted = self
                .vacuum
                .deleted
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            deleted.0 += rows;
            deleted.1 += bytes;
            let due = rules::log_needs_vacuum(deleted.0, deleted.1, limits)
                && !self.vacuum.running.swap(true, Ordering::AcqRel);
            if due {
                *deleted = (0, 0);
            }
            due
        };
        if !due {
            return;
        }
        let pool = self.pool.clone();
        let vacuum = Arc::clone(&self.vacuum);
        tokio::spawn(async move {
            // A failed vacuum costs only space, which the next one frees; it is told,
            // so that an operator whose role cannot vacuum the table learns why it grows.
            let result = match pool.get().await {
                Ok(client) => client
                    .batch_execute("VACUUM (SKIP_LOCKED) request_log")
                    .await
                    .map_err(|e| pg(e).to_string()),
                Err(error) => Err(error.to_string()),
            };
            if let Err(error) = result {
                tracing::warn!(%error, "the request log's table could not be vacuumed");
            }
            vacuum.running.store(false, Ordering::Release);
        });
    }
}
