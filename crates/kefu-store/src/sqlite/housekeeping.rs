//! The SQLite store's housekeeping: counters persisted, the request log written and
//! trimmed, expired tokens and tickets purged (the rules in `rules.rs`).

use super::*;

#[async_trait]
impl Store for SqliteStore {
    async fn ready(&self) -> Result<(), String> {
        // Through the writer: a stopped writer, or a file changed under it, shows here.
        let version = self
            .write(|conn| {
                let version: i64 = conn
                    .pragma_query_value(None, "user_version", |row| row.get(0))
                    .map_err(internal)?;
                Ok((version, |_: &mut Cache| {}))
            })
            .await
            .map_err(|e| format!("the SQLite store does not answer: {e}"))?;
        rules::schema_verdict(version, schema::LATEST)
    }

    async fn maintain(&self, now: i64, log_before: i64) -> StoreResult<()> {
        let _one_at_a_time = self.maintaining.lock().await;
        let dirty: Vec<(CounterKey, u64)> = {
            let mut map = self.counters();
            map.retain(|key, counter| counter.dirty || !rules::counter_is_stale(key.window, now));
            map.iter_mut()
                .filter(|(_, counter)| counter.dirty)
                .map(|(key, counter)| {
                    counter.dirty = false;
                    (key.clone(), counter.count)
                })
                .collect()
        };
        let mut flush = self.log.flush(log_before);
        let log = std::mem::take(&mut flush.entries);
        let counts = std::mem::take(&mut flush.counts);
        let limits = self.log.limits();
        let purge = self.purge.due(now);
        let [oldest_minute, oldest_day, oldest_month] = rules::oldest_counter_windows(now);
        let result = self
            .write(move |conn| {
                for entry in &log {
                    conn.prepare_cached(&format!(
                        "INSERT INTO request_log ({LOG_COLUMNS}, bytes) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON \
                             CONFLICT (rid) DO NOTHING"
                    ))
                    .and_then(|mut stmt| {
                        stmt.execute(params![
                            entry.rid,
                            entry.appid,
                            entry.method,
                            entry.path,
                            entry.errcode,
                            entry.invoke_time,
                            entry.cost_ms,
                            entry.request_url,
                            entry.request_body,
                            entry.response_body,
                            entry.client_ip,
                            entry.reason,
                            i64::try_from(entry.row_bytes()).unwrap_or(i64::MAX),
                        ])
                    })
                    .map_err(internal)?;
                }
                for count in &counts {
                    conn.prepare_cached(
                        "INSERT INTO call_counts (owner, path, errcode, hour, count) VALUES \
                            (?1, ?2, ?3, ?4, ?5) \
                         ON CONFLICT (owner, path, errcode, hour) DO UPDATE SET count = count \
                             + excluded.count",
                    )
                    .and_then(|mut stmt| {
                        stmt.execute(params![
                            count.appid.as_deref().unwrap_or(""),
                            count.path,
                            count.errcode,
                            count.hour,
                            i64::try_from(count.count).unwrap_or(i64::MAX),
                        ])
                    })
                    .map_err(internal)?;
                }
                for (key, count) in &dirty {
                    conn.prepare_cached(
                        "INSERT INTO counters (owner, name, kind, window, count, updated_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                         ON CONFLICT (owner, name, kind, window) DO UPDATE SET count = \
                             excluded.count, \
                         updated_at = excluded.updated_at",
                    )
                    .and_then(|mut stmt| {
                        stmt.execute(params![
                            key.owner,
                            key.name,
                            key.window.kind(),
                            key.window.number(),
                            i64::try_from(*count).unwrap_or(i64::MAX),
                            now
                        ])
                    })
                    .map_err(internal)?;
                }
                conn.prepare_cached(
                    "DELETE FROM counters WHERE (kind = 'minute' AND window < ?1) \
                     OR (kind = 'day' AND window < ?2) OR (kind = 'month' AND window < ?3)",
                )
                .and_then(|mut stmt| {
                    stmt.execute([
                        oldest_minute.number(),
                        oldest_day.number(),
                        oldest_month.number(),
                    ])
                })
                .map_err(internal)?;
                conn.prepare_cached("DELETE FROM request_log WHERE invoke_time < ?1")
                    .and_then(|mut stmt| stmt.execute([log_before]))
                    .map_err(internal)?;
                conn.prepare_cached("DELETE FROM call_counts WHERE hour < ?1")
                    .and_then(|mut stmt| stmt.execute([logbuf::hour_of(log_before)]))
                    .map_err(internal)?;
                trim_log(conn, &limits)?;
                if let Some(purge) = purge {
                    conn.prepare_cached("DELETE FROM component_tickets WHERE expires_at < ?1")
                        .and_then(|mut stmt| stmt.execute([purge.tickets]))
                        .map_err(internal)?;
                    conn.prepare_cached("DELETE FROM tokens WHERE expires_at < ?1")
                        .and_then(|mut stmt| stmt.execute([purge.tokens]))
                        .map_err(internal)?;
                    // Two statements, each on an index: by age, then past the cap.
                    conn.prepare_cached("DELETE FROM messages WHERE time < ?1")
                        .and_then(|mut stmt| stmt.execute([purge.history]))
                        .map_err(internal)?;
                    conn.prepare_cached(
                        "DELETE FROM messages WHERE msgid <= (SELECT max(msgid) FROM messages) - ?1",
                    )
                    .and_then(|mut stmt| stmt.execute([rules::MAX_HISTORY_RECORDS]))
                    .map_err(internal)?;
                }
                Ok(((), move |cache: &mut Cache| {
                    if let Some(purge) = purge {
                        cache
                            .tickets
                            .retain(|_, (_, expires_at)| *expires_at >= purge.tickets);
                        cache.purge_tokens(purge.tokens);
                    }
                }))
            })
            .await;
        if result.is_ok() {
            self.log.written(&flush);
        }
        if result.is_err() {
            if purge.is_some() {
                self.purge.missed();
            }
            // Not persisted: keep the counts dirty for the next round.
            let mut map = self.counters();
            for counter in map.values_mut() {
                counter.dirty = true;
            }
        }
        result
    }
}

/// Deletes the oldest recorded calls until the log is within its bounds on disk,
/// counting what went.
pub(super) fn trim_log(conn: &Connection, limits: &LogLimits) -> StoreResult<()> {
    loop {
        let (rows, bytes) = stored_log(conn)?;
        let n = rules::calls_to_trim(rows, bytes, limits);
        if n == 0 {
            return Ok(());
        }
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        conn.prepare_cached(
            "DELETE FROM request_log WHERE rowid IN (SELECT rowid FROM request_log ORDER BY \
                rowid LIMIT ?1)",
        )
        .and_then(|mut stmt| stmt.execute([n]))
        .map_err(internal)?;
        conn.prepare_cached("UPDATE log_usage SET dropped = dropped + ?1 WHERE id = 1")
            .and_then(|mut stmt| stmt.execute([n]))
            .map_err(internal)?;
    }
}
