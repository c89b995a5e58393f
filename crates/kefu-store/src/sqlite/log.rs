//! The SQLite store's request log ([`LogStore`]).

use super::*;
use crate::LogFilter;
use crate::roles::*;

#[async_trait]
impl LogStore for SqliteStore {
    fn log_request(&self, call: Arc<RecordedCall>) {
        self.log.push(call);
    }

    async fn logged_request(&self, rid: &str) -> StoreResult<Option<LoggedRequest>> {
        if let Some(entry) = self.log.find(rid) {
            return Ok(Some(entry));
        }
        // Written entries leave the waiting list only after their commit, so one of the
        // two places has it.
        let (reader, rid) = (Arc::clone(&self.images), rid.to_owned());
        tokio::task::spawn_blocking(move || {
            let conn = reader
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            conn.prepare_cached(&format!(
                "SELECT {LOG_COLUMNS} FROM request_log WHERE rid = ?1"
            ))
            .and_then(|mut stmt| {
                stmt.query_row([&rid], |row| columns::logged(row))
                    .optional()
            })
            .map_err(internal)
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?
    }

    async fn logged_requests(
        &self,
        filter: LogFilter<'_>,
        limit: usize,
    ) -> StoreResult<Vec<LoggedRequest>> {
        let entries = self.log.newest(filter, limit);
        let (reader, owner) = (Arc::clone(&self.images), filter.appid.map(str::to_owned));
        let (path, errcode) = (filter.path.map(str::to_owned), filter.errcode);
        let sql_limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let written = tokio::task::spawn_blocking(move || {
            let conn = reader
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            conn.prepare_cached(&format!(
                "SELECT {LOG_COLUMNS} FROM request_log WHERE (?1 IS NULL OR appid = ?1) \
                 AND (?3 IS NULL OR path = ?3) AND (?4 IS NULL OR errcode = ?4) \
                 ORDER BY invoke_time DESC, rowid DESC LIMIT ?2"
            ))
            .and_then(|mut stmt| {
                stmt.query_map(params![owner, sql_limit, path, errcode], |row| {
                    columns::logged(row)
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(internal)
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))??;
        Ok(logbuf::merge(entries, written, limit))
    }

    async fn call_counts(&self, appid: Option<&str>, since: i64) -> StoreResult<Vec<CallCount>> {
        let since_hour = logbuf::hour_of(since);
        let unwritten = self.log.unwritten_counts(appid, since_hour);
        let (reader, owner) = (Arc::clone(&self.images), appid.map(str::to_owned));
        let written = tokio::task::spawn_blocking(move || {
            let conn = reader
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            conn.prepare_cached(
                "SELECT owner, path, errcode, hour, count FROM call_counts \
                 WHERE hour >= ?1 AND (?2 IS NULL OR owner = ?2)",
            )
            .and_then(|mut stmt| {
                stmt.query_map(params![since_hour, owner], |row| {
                    let owner: String = row.get(0)?;
                    Ok(CallCount {
                        appid: (!owner.is_empty()).then_some(owner),
                        path: row.get(1)?,
                        errcode: row.get(2)?,
                        hour: row.get(3)?,
                        count: u64::try_from(row.get::<_, i64>(4)?).unwrap_or(0),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(internal)
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))??;
        Ok(logbuf::sum_counts(written.into_iter().chain(unwritten)))
    }

    async fn log_usage(&self) -> StoreResult<LogUsage> {
        let (memory_calls, memory_bytes, dropped_in_memory) = self.log.usage();
        let reader = Arc::clone(&self.images);
        let (rows, bytes, dropped) = tokio::task::spawn_blocking(move || {
            let conn = reader
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            conn.prepare_cached("SELECT rows, bytes, dropped FROM log_usage WHERE id = 1")
                .and_then(|mut stmt| {
                    stmt.query_row([], |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, i64>(1)?,
                            row.get::<_, i64>(2)?,
                        ))
                    })
                })
                .map_err(internal)
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))??;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(LogUsage {
            rows: count(rows),
            bytes: count(bytes),
            dropped_from_store: count(dropped),
            dropped_in_memory,
            memory_calls,
            memory_bytes,
        })
    }
}
