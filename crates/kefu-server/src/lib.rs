//! kefu's server: WeChat's customer service account API on an embedded store.
//!
//! [`startup::Application`] builds the server from a [`config::Config`]; the
//! [`wechat`] module holds WeChat's surface (always HTTP 200 with WeChat's envelope),
//! the admin module kefu's own surface under `/kefu/v1`.

pub mod admin;
pub mod clock;
pub mod config;
pub mod faults;
pub mod secrets;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod wechat;

pub use clock::Clock;
pub use config::{Config, Database, Secret};
pub use startup::{Application, StartupError};
