//! kefu's server: WeChat's customer service account API on an embedded store.
//!
//! [`startup::Application`] builds the server from a [`config::Config`]; the
//! `wechat` module holds WeChat's surface (always HTTP 200 with WeChat's envelope),
//! the admin module kefu's own surface under `/kefu/v1`.

pub mod admin;
pub mod clock;
pub mod config;
mod conn;
pub mod console;
pub mod faults;
pub mod fixtures;
pub mod metrics;
pub mod openapi;
pub mod push;
pub mod secrets;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod tls;
pub(crate) mod wechat;

pub use clock::Clock;

/// Every WeChat path kefu serves (aliases included), with the methods it takes: the
/// routing table, for tests and tools that must cover each one.
#[must_use]
pub fn wechat_paths() -> Vec<(&'static str, kefu_api::Method)> {
    let mut paths: Vec<_> = wechat::Routes::new(None).paths().collect();
    paths.sort_by_key(|(path, _)| *path);
    paths
}
pub use config::{Config, Database, Secret};
pub use startup::{Application, StartupError};
