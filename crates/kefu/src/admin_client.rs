//! The admin surface of a running server, over HTTP: shared by `kefu app`,
//! `kefu component`, `kefu sim` and `kefu requests`.

use clap::Args;
use kefu_api::admin::AdminError;
use kefu_server::Secret;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

/// Where the server is and how to authenticate.
#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// Base URL of the kefu server.
    #[arg(
        long,
        global = true,
        env = "KEFU_BASE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    base_url: String,
    /// The admin token (printed by `kefu serve`).
    #[arg(long, global = true, env = "KEFU_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<Secret>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// A client of the admin surface.
pub(crate) struct Admin {
    http: reqwest::Client,
    base: String,
    token: Secret,
}

impl Admin {
    /// A client for the server the arguments name.
    pub(crate) fn connect(args: &ServerArgs) -> Result<Admin, String> {
        let token = args
            .admin_token
            .clone()
            .ok_or("the admin token is needed: --admin-token or KEFU_ADMIN_TOKEN")?;
        Ok(Admin {
            http: reqwest::Client::new(),
            base: args.base_url.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// Calls an admin endpoint; `None` for 204. A failure carries the server's reason.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Option<T>, String> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .request(method, &url)
            .bearer_auth(self.token.expose());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
        let status = response.status();
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let bytes = response.bytes().await.map_err(|e| format!("{url}: {e}"))?;
        if status.is_success() {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{url}: unexpected answer: {e}"))
        } else {
            Err(match serde_json::from_slice::<AdminError>(&bytes) {
                Ok(error) => format!("{} ({}): {}", status.as_u16(), error.error, error.message),
                Err(_) => format!("{url}: HTTP {status}"),
            })
        }
    }

    /// Opens a long-lived `GET` (the request log's stream): the response, to be read
    /// as it comes.
    pub(crate) async fn open(&self, path: &str) -> Result<reqwest::Response, String> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .get(&url)
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(format!("{url}: HTTP {}", response.status()))
        }
    }

    /// Calls an endpoint and prints its JSON answer (or `done` for 204).
    pub(crate) async fn show(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(), String> {
        match self.call::<serde_json::Value>(method, path, body).await? {
            Some(value) => print_json(&value),
            None => println!("done"),
        }
        Ok(())
    }
}

/// Serialises a request body.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, String> {
    serde_json::to_value(value).map_err(|e| e.to_string())
}

/// Prints a value as pretty JSON.
pub(crate) fn print_json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(error) => eprintln!("kefu: {error}"),
    }
}

/// A value the contract's rules refuse, said as the server would say it; nothing is
/// sent.
pub(crate) fn refused(invalid: kefu_api::admin::Invalid) -> String {
    format!(
        "{} ({}): {}",
        invalid.code.as_str(),
        invalid.code.status(),
        invalid.message
    )
}
