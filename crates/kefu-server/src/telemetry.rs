//! Logging setup: `tracing` to stderr, filtered by `KEFU_LOG` (else `RUST_LOG`, else
//! the default given), as text — in colour only on a terminal (a file or a collector
//! gets plain text) — or as one JSON object a line.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The variable naming what is logged (`info`, `debug`, `kefu_server=debug,warn` …);
/// `RUST_LOG` is read when it is not set.
pub const LOG_VAR: &str = "KEFU_LOG";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// For people: `2026-01-01T00:00:00Z  INFO kefu_server: message key=value`.
    #[default]
    Text,
    /// For machines: one JSON object a line, with `timestamp`, `level`, `target` and
    /// `fields`.
    Json,
}

/// Installs the global subscriber, as text; later calls are no-ops.
pub fn init(default_filter: &str) {
    init_as(default_filter, LogFormat::Text);
}

/// Installs the global subscriber in the given format; later calls are no-ops.
pub fn init_as(default_filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_env(LOG_VAR)
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}
