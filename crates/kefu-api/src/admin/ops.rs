//! The operations surface (README, "Running kefu in CI"): health for container runtimes
//! and CI jobs.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `GET` answers `{"status":"live"}` while the process answers at all; needs no token.
pub const LIVEZ: &str = "/kefu/v1/livez";
/// `GET` answers 200 [`Readiness`] when the server can serve WeChat's API (its store
/// answers and is migrated), 503 with the reason otherwise; needs no token.
pub const READYZ: &str = "/kefu/v1/readyz";

/// `GET` answers the server's metrics in Prometheus's text format (OpenMetrics when the
/// `Accept` header asks for it); needs the admin token. 404 when metrics are off.
pub const METRICS: &str = "/kefu/v1/metrics";

/// `POST` puts the server back to its fixtures (needs the admin token): 204.
pub const RESET: &str = "/kefu/v1/reset";

/// The answer of [`LIVEZ`] and [`READYZ`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Readiness {
    /// `live`, `ready` or `unavailable`.
    pub status: String,
    /// Why the server is unavailable; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Readiness {
    /// The answer of [`LIVEZ`].
    #[must_use]
    pub fn live() -> Readiness {
        Readiness {
            status: "live".to_owned(),
            reason: None,
        }
    }

    /// The answer of [`READYZ`] when the server can serve.
    #[must_use]
    pub fn ready() -> Readiness {
        Readiness {
            status: "ready".to_owned(),
            reason: None,
        }
    }

    /// The answer of [`READYZ`] when it cannot, and why.
    #[must_use]
    pub fn unavailable(reason: impl Into<String>) -> Readiness {
        Readiness {
            status: "unavailable".to_owned(),
            reason: Some(reason.into()),
        }
    }

    /// Whether this says the server is ready (or live).
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.reason.is_none()
    }
}
