//! Prometheus metrics (README, "Metrics"): served at `GET /kefu/v1/metrics` behind the
//! admin token, or without one on the address of `--metrics-listen`.
//!
//! What a WeChat call costs them is paid once, when the routing table is built: each
//! path gets its own handles (`PathMetrics`), so that a call adds to its path's
//! counter and histogram without looking anything up (a failure looks up its errcode's
//! counter). What the store and the request log hold is read when someone scrapes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use kefu_store::{CommitObserver, LogUsage, TokenChannel};
use prometheus_client::collector::Collector;
use std::fmt::Write as _;

use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::state::AppState;

/// The most (path, errcode) pairs counted apart in each family (calls, faults); the
/// errcodes of pairs past it are counted under `errcode="other"`. kefu's own errcodes are a fixed set,
/// but a fault rule may answer any number.
const MAX_ERRCODE_SERIES: usize = 1024;

/// How long a scrape waits for the store's figures before it goes without them.
const STORE_FIGURES_WITHIN: Duration = Duration::from_secs(5);

/// The bounds of the latency buckets, in seconds: 100 µs to 10 s, 1–2.5–5 a decade.
const LATENCY_BUCKETS: [f64; 16] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// An errcode as a label: the number, or `other` past [`MAX_ERRCODE_SERIES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Errcode {
    Code(i64),
    Other,
}

impl EncodeLabelValue for Errcode {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        match self {
            Errcode::Code(code) => write!(encoder, "{code}"),
            Errcode::Other => encoder.write_str("other"),
        }
    }
}

/// A WeChat path and the errcode answered.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PathErrcode {
    path: &'static str,
    errcode: Errcode,
}

/// A WeChat path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PathLabel {
    path: &'static str,
}

/// The family of tokens minted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// Counters by WeChat path and errcode, at most [`MAX_ERRCODE_SERIES`] pairs apart.
#[derive(Debug, Clone, Default)]
struct ByErrcode {
    family: Family<PathErrcode, Counter>,
    /// The pairs counted apart so far.
    series: Arc<AtomicUsize>,
}

impl ByErrcode {
    /// The counter of `path` answering `errcode`: its own while there is room, else the
    /// one of the path's other errcodes.
    fn counter(&self, path: &'static str, errcode: i64) -> Counter {
        let labels = PathErrcode {
            path,
            errcode: Errcode::Code(errcode),
        };
        if let Some(counter) = self.family.get(&labels) {
            return counter.clone();
        }
        let labels = if self.series.fetch_add(1, Ordering::Relaxed) < MAX_ERRCODE_SERIES {
            labels
        } else {
            PathErrcode {
                path,
                errcode: Errcode::Other,
            }
        };
        self.family.get_or_create(&labels).clone()
    }

    /// Counts `path` answering `errcode`.
    fn count(&self, path: &'static str, errcode: i64) {
        self.counter(path, errcode).inc();
    }
}

/// Every metric of one server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    calls: ByErrcode,
    latency: Family<PathLabel, Histogram, fn() -> Histogram>,
    unknown_paths: Counter,
    faults: ByErrcode,
    minted: Family<KindLabel, Counter>,
    connections: Gauge,
    commits: Arc<Commits>,
    scraped: Arc<Scraped>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric at zero, registered.
    #[must_use]
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("kefu");
        let calls = ByErrcode::default();
        registry.register(
            "wechat_requests",
            "Calls to WeChat's paths, by path and the errcode answered",
            calls.family.clone(),
        );
        let latency: Family<PathLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS));
        registry.register_with_unit(
            "wechat_request_duration",
            "How long a call to a WeChat path took, from its request head to its answer (reading \
             its body included)",
            Unit::Seconds,
            latency.clone(),
        );
        let unknown_paths = Counter::default();
        registry.register(
            "wechat_unknown_path_requests",
            "Calls to paths WeChat does not have (answered 40066)",
            unknown_paths.clone(),
        );
        let faults = ByErrcode::default();
        registry.register(
            "faults_fired",
            "Calls a fault rule fired on, by path and the rule's errcode (0: a rule that only \
             delays)",
            faults.family.clone(),
        );
        let minted = Family::<KindLabel, Counter>::default();
        registry.register(
            "tokens_minted",
            "Tokens minted, by family (token, stable, component, authorizer, console)",
            minted.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "open_connections",
            "Client connections open now (on every listener, the metrics listener's included)",
            connections.clone(),
        );
        let commits = Arc::new(Commits::default());
        registry.register(
            "store_write_batch_size",
            "Writes committed together in one batch (SQLite: every write; PostgreSQL: \
             quota counts, nickname changes and token mints)",
            commits.sizes.clone(),
        );
        registry.register_with_unit(
            "store_commit_duration",
            "How long a batch of writes took to commit",
            Unit::Seconds,
            commits.durations.clone(),
        );
        let scraped = Arc::new(Scraped::default());
        registry.register_collector(Box::new(Arc::clone(&scraped)));
        Metrics {
            registry,
            calls,
            latency,
            unknown_paths,
            faults,
            minted,
            connections,
            commits,
            scraped,
        }
    }

    /// The handles of one WeChat path, made once (when the routing table is built).
    pub(crate) fn path(&self, path: &'static str) -> PathMetrics {
        PathMetrics {
            path,
            ok: self.calls.counter(path, 0),
            latency: self.latency.get_or_create(&PathLabel { path }).clone(),
            calls: self.calls.clone(),
        }
    }

    /// A call to a path WeChat does not have.
    pub(crate) fn unknown_path(&self) {
        self.unknown_paths.inc();
    }

    /// A fault rule answered a call to `path` with `errcode`.
    pub(crate) fn fault_fired(&self, path: &'static str, errcode: i64) {
        self.faults.count(path, errcode);
    }

    /// A token of `channel` was minted.
    pub(crate) fn token_minted(&self, channel: TokenChannel) {
        self.minted
            .get_or_create(&KindLabel {
                kind: channel.as_str(),
            })
            .inc();
    }

    /// The open connections' gauge: one more until the guard is dropped.
    pub(crate) fn connection(&self) -> OpenConnection {
        self.connections.inc();
        OpenConnection(self.connections.clone())
    }

    /// What the store tells of its commits.
    #[must_use]
    pub fn commit_observer(&self) -> Arc<dyn CommitObserver> {
        Arc::clone(&self.commits) as Arc<dyn CommitObserver>
    }

    /// The metrics as text: Prometheus's format (0.0.4), or OpenMetrics when asked
    /// for; with the store's figures when they came.
    fn encode(&self, figures: Option<Figures>, openmetrics: bool) -> String {
        // One scrape at a time, so that each shows its own figures.
        let _scrape = self.scraped.lock();
        *self
            .scraped
            .figures
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = figures;
        let mut text = String::with_capacity(16 * 1024);
        let encoded = if openmetrics {
            prometheus_client::encoding::text::encode(&mut text, &self.registry)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
        };
        // Writing to a String fails only on a metric's own error, which these have none of.
        if let Err(error) = encoded {
            tracing::error!(%error, "metrics could not be encoded");
        }
        text
    }
}

/// The handles of one WeChat path.
#[derive(Debug)]
pub(crate) struct PathMetrics {
    path: &'static str,
    ok: Counter,
    latency: Histogram,
    calls: ByErrcode,
}

impl PathMetrics {
    /// A call answered `errcode`, `took` after its request head was read.
    pub(crate) fn answered(&self, errcode: i64, took: Duration) {
        if errcode == 0 {
            self.ok.inc();
        } else {
            self.calls.count(self.path, errcode);
        }
        self.latency.observe(took.as_secs_f64());
    }
}

/// One open connection, counted until dropped.
#[derive(Debug)]
pub(crate) struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The store's batches of writes.
#[derive(Debug)]
struct Commits {
    sizes: Histogram,
    durations: Histogram,
}

impl Default for Commits {
    fn default() -> Commits {
        Commits {
            // 1 to 512 (the most a batch holds).
            sizes: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            durations: Histogram::new(LATENCY_BUCKETS),
        }
    }
}

impl CommitObserver for Commits {
    fn committed(&self, writes: usize, took: Duration) {
        #[allow(clippy::cast_precision_loss)] // at most 512
        self.sizes.observe(writes as f64);
        self.durations.observe(took.as_secs_f64());
    }
}

/// What is read when someone scrapes.
#[derive(Debug, Clone, Copy)]
struct Figures {
    log: Option<LogUsage>,
    clock_offset_secs: i64,
}

/// The figures of the scrape under way, encoded with the rest.
#[derive(Debug, Default)]
struct Scraped {
    figures: Mutex<Option<Figures>>,
    /// Held by a scrape from setting its figures to encoding them.
    scraping: Mutex<()>,
}

impl Scraped {
    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.scraping.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Collector for Scraped {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(figures) = *self.figures.lock().unwrap_or_else(PoisonError::into_inner) else {
            return Ok(());
        };
        let gauge = |encoder: &mut DescriptorEncoder<'_>, name, help, value: u64| {
            let metric = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
        };
        gauge(
            &mut encoder,
            "clock_offset_seconds",
            "How far the test clock is ahead of real time.",
            figures.clock_offset_secs.max(0).unsigned_abs(),
        )?;
        let Some(log) = figures.log else {
            return Ok(());
        };
        gauge(
            &mut encoder,
            "request_log_backlog_calls",
            "Calls the request log holds in memory (the newest, and the failed ones not yet \
             written to the store).",
            log.memory_calls,
        )?;
        gauge(
            &mut encoder,
            "request_log_backlog_bytes",
            "The bytes of the calls the request log holds in memory.",
            log.memory_bytes,
        )?;
        gauge(
            &mut encoder,
            "request_log_stored_calls",
            "Failed calls the request log holds in the store.",
            log.rows,
        )?;
        let dropped = ConstCounter::new(0_u64);
        let mut family = encoder.encode_descriptor(
            "request_log_dropped",
            "Failed calls the request log let go: never written (over its rate or memory \
             bound, this instance) or deleted from the store to stay within its bounds.",
            None,
            dropped.metric_type(),
        )?;
        for (place, value) in [
            ("memory", log.dropped_in_memory),
            ("store", log.dropped_from_store),
        ] {
            let labels = [("where", place)];
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Whether the scraper asked for OpenMetrics.
fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.contains("application/openmetrics-text"))
}

/// The metrics as a scraper reads them, with the store's figures read now; 404 when
/// the server runs without metrics.
pub(crate) async fn scrape(state: &AppState, headers: &HeaderMap) -> Response {
    let Some(metrics) = &state.metrics else {
        return crate::admin::Failure::new(
            kefu_api::admin::AdminErrorCode::NotFound,
            "metrics are off (--no-metrics)",
        )
        .into_response();
    };
    let log = match tokio::time::timeout(STORE_FIGURES_WITHIN, state.store.log_usage()).await {
        Ok(Ok(usage)) => Some(usage),
        Ok(Err(error)) => {
            tracing::warn!(%error, "metrics: the request log's figures could not be read");
            None
        }
        Err(_) => {
            tracing::warn!("metrics: the store did not give the request log's figures in time");
            None
        }
    };
    let figures = Figures {
        log,
        clock_offset_secs: state.clock.offset(),
    };
    let openmetrics = wants_openmetrics(headers);
    let text = metrics.encode(Some(figures), openmetrics);
    let content_type = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        prometheus_client::encoding::prometheus_text::CONTENT_TYPE
    };
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_counts_its_calls_by_errcode_and_times_them() {
        let metrics = Metrics::new();
        let update = metrics.path("/customservice/kfaccount/update");
        update.answered(0, Duration::from_micros(300));
        update.answered(0, Duration::from_micros(300));
        update.answered(65_400, Duration::from_millis(2));
        let text = metrics.encode(None, false);
        assert!(
            text.contains(
                "kefu_wechat_requests_total{path=\"/customservice/kfaccount/update\",errcode=\"0\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "kefu_wechat_requests_total{path=\"/customservice/kfaccount/update\",errcode=\"65400\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "kefu_wechat_request_duration_seconds_count{path=\"/customservice/kfaccount/update\"} 3"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "kefu_wechat_request_duration_seconds_bucket{path=\"/customservice/kfaccount/update\",le=\"0.0005\"} 2"
            ),
            "{text}"
        );
    }

    #[test]
    fn errcodes_past_the_bound_are_counted_together() {
        let metrics = Metrics::new();
        let path = metrics.path("/cgi-bin/token");
        for errcode in 1..=i64::try_from(MAX_ERRCODE_SERIES).unwrap() + 10 {
            path.answered(errcode, Duration::ZERO);
        }
        path.answered(1, Duration::ZERO);
        let text = metrics.encode(None, false);
        assert!(
            text.contains("kefu_wechat_requests_total{path=\"/cgi-bin/token\",errcode=\"1\"} 2"),
            "a pair counted before the bound keeps counting"
        );
        assert!(
            text.contains("kefu_wechat_requests_total{path=\"/cgi-bin/token\",errcode=\"other\"} "),
            "{text}"
        );
    }

    #[test]
    fn the_store_figures_and_the_gauges_are_shown() {
        let metrics = Metrics::new();
        metrics
            .commit_observer()
            .committed(3, Duration::from_millis(1));
        metrics.token_minted(TokenChannel::Stable);
        let connection = metrics.connection();
        let figures = Figures {
            log: Some(LogUsage {
                rows: 5,
                dropped_in_memory: 7,
                dropped_from_store: 11,
                memory_calls: 13,
                ..LogUsage::default()
            }),
            clock_offset_secs: 7200,
        };
        let text = metrics.encode(Some(figures), false);
        for line in [
            "kefu_store_write_batch_size_count 1",
            "kefu_store_write_batch_size_sum 3.0",
            "kefu_tokens_minted_total{kind=\"stable\"} 1",
            "kefu_open_connections 1",
            "kefu_clock_offset_seconds 7200",
            "kefu_request_log_backlog_calls 13",
            "kefu_request_log_stored_calls 5",
            "kefu_request_log_dropped_total{where=\"memory\"} 7",
            "kefu_request_log_dropped_total{where=\"store\"} 11",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        drop(connection);
        assert!(
            metrics
                .encode(None, false)
                .contains("kefu_open_connections 0")
        );
        let open = metrics.encode(None, true);
        assert!(
            open.ends_with("# EOF\n"),
            "OpenMetrics ends with EOF: {open}"
        );
    }
}
