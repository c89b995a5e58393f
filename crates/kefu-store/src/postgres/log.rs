//! The PostgreSQL store's request log ([`LogStore`]).

use super::*;
use crate::LogFilter;
use crate::roles::*;

#[async_trait]
impl LogStore for PostgresStore {
    fn log_request(&self, call: Arc<RecordedCall>) {
        self.log.push(call);
    }

    async fn logged_request(&self, rid: &str) -> StoreResult<Option<LoggedRequest>> {
        if let Some(entry) = self.log.find(rid) {
            return Ok(Some(entry));
        }
        self.query_opt(
            &format!("SELECT {LOG_COLUMNS} FROM request_log WHERE rid = $1"),
            &[&rid],
        )
        .await?
        .map(|row| columns::logged(&row))
        .transpose()
        .map_err(pg)
    }

    async fn logged_requests(
        &self,
        filter: LogFilter<'_>,
        limit: usize,
    ) -> StoreResult<Vec<LoggedRequest>> {
        let entries = self.log.newest(filter, limit);
        let sql_limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let written = self
            .query(
                &format!(
                    "SELECT {LOG_COLUMNS} FROM request_log WHERE ($1::text IS NULL OR appid = $1) \
                     AND ($3::text IS NULL OR path = $3) AND ($4::bigint IS NULL OR errcode = $4) \
                     ORDER BY invoke_time DESC, seq DESC LIMIT $2"
                ),
                &[&filter.appid, &sql_limit, &filter.path, &filter.errcode],
            )
            .await?
            .iter()
            .map(columns::logged)
            .collect::<Result<Vec<_>, _>>()
            .map_err(pg)?;
        Ok(logbuf::merge(entries, written, limit))
    }

    async fn call_counts(&self, appid: Option<&str>, since: i64) -> StoreResult<Vec<CallCount>> {
        let since_hour = logbuf::hour_of(since);
        let unwritten = self.log.unwritten_counts(appid, since_hour);
        let rows = self
            .query(
                "SELECT owner, path, errcode, hour, count FROM call_counts \
                 WHERE hour >= $1 AND ($2::text IS NULL OR owner = $2)",
                &[&since_hour, &appid],
            )
            .await?;
        let mut written = Vec::with_capacity(rows.len());
        for row in rows {
            let owner: String = row.try_get(0).map_err(pg)?;
            written.push(CallCount {
                appid: (!owner.is_empty()).then_some(owner),
                path: row.try_get(1).map_err(pg)?,
                errcode: row.try_get(2).map_err(pg)?,
                hour: row.try_get(3).map_err(pg)?,
                count: u64::try_from(row.try_get::<_, i64>(4).map_err(pg)?).unwrap_or(0),
            });
        }
        Ok(logbuf::sum_counts(written.into_iter().chain(unwritten)))
    }

    async fn log_usage(&self) -> StoreResult<LogUsage> {
        let (memory_calls, memory_bytes, dropped_in_memory) = self.log.usage();
        let row = self
            .query_opt(
                "SELECT rows, bytes, dropped FROM log_usage WHERE id = 1",
                &[],
            )
            .await?;
        let count = |i: usize| -> StoreResult<u64> {
            Ok(match &row {
                Some(row) => u64::try_from(row.try_get::<_, i64>(i).map_err(pg)?).unwrap_or(0),
                None => 0,
            })
        };
        Ok(LogUsage {
            rows: count(0)?,
            bytes: count(1)?,
            dropped_from_store: count(2)?,
            dropped_in_memory,
            memory_calls,
            memory_bytes,
        })
    }
}
