//! `kefu healthcheck`: asks the server the configuration names whether it is ready,
//! for a container's health check or a CI job waiting for the server.

use std::time::Duration;

use clap::Args;
use kefu_api::admin::{READYZ, Readiness};

use crate::serve::{ServeArgs, callable};

/// Flags of `kefu healthcheck`: those of `kefu serve` (from the same flags and
/// `KEFU_*` variables), of which it uses the listen address.
#[derive(Debug, Args)]
pub(crate) struct HealthcheckArgs {
    #[command(flatten)]
    serve: ServeArgs,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    wait: u64,
}

/// Exits 0 when `GET /kefu/v1/readyz` answers 200, 1 otherwise (with the reason).
pub(crate) async fn run(args: HealthcheckArgs) -> Result<(), String> {
    let url = format!("http://{}{READYZ}", callable(args.serve.listen()));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.wait))
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("not ready: {url}: {e}"))?;
    let status = response.status();
    let readiness: Option<Readiness> = response.json().await.ok();
    match readiness {
        Some(readiness) if status.is_success() && readiness.is_ok() => {
            println!("ready");
            Ok(())
        }
        Some(Readiness {
            reason: Some(reason),
            ..
        }) => Err(format!("not ready: {reason}")),
        _ => Err(format!("not ready: {url} answered {status}")),
    }
}
