//! `kefu app …`: the admin surface of a running server, over HTTP.

use clap::{Args, Subcommand};
use kefu_api::admin::{self, AccountType, AdminError, AppPatch, AppView, CreatedApp, NewApp};
use kefu_server::Secret;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

/// Where the server is and how to authenticate.
#[derive(Debug, Args)]
pub struct AppArgs {
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
    json: bool,
    #[command(subcommand)]
    command: AppCommand,
}

#[derive(Debug, Subcommand)]
enum AppCommand {
    /// List apps.
    List,
    /// Create an app; prints its secret (shown only this once).
    Create {
        /// The app's WeChat ID (the suffix of its kf accounts).
        #[arg(long)]
        wechat_id: String,
        /// `service`, `subscription`, `miniprogram` or `sandbox`.
        #[arg(long, value_parser = parse_type)]
        account_type: Option<AccountType>,
        /// Original id (`gh_` + 12 hex); generated when absent.
        #[arg(long)]
        original_id: Option<String>,
        /// Whether the account is verified (default true).
        #[arg(long)]
        verified: Option<bool>,
        /// Whether the new kf feature is on (default true).
        #[arg(long)]
        new_kf_enabled: Option<bool>,
        /// A chosen appid (`wx` + 16 hex); generated when absent.
        #[arg(long)]
        appid: Option<String>,
        /// A chosen AppSecret (16-64 letters and digits); generated when absent.
        #[arg(long, env = "KEFU_NEW_APP_SECRET", hide_env_values = true)]
        secret: Option<Secret>,
    },
    /// Show one app.
    Get {
        /// The appid.
        appid: String,
    },
    /// Change an app's settings.
    Update {
        /// The appid.
        appid: String,
        /// New WeChat ID.
        #[arg(long)]
        wechat_id: Option<String>,
        /// New account type.
        #[arg(long, value_parser = parse_type)]
        account_type: Option<AccountType>,
        /// New verification state.
        #[arg(long)]
        verified: Option<bool>,
        /// New state of the new-kf switch.
        #[arg(long)]
        new_kf_enabled: Option<bool>,
    },
    /// Replace an app's secret; prints the new one.
    Secret {
        /// The appid.
        appid: String,
    },
    /// Delete an app with its accounts and tokens.
    Delete {
        /// The appid.
        appid: String,
    },
}

fn parse_type(raw: &str) -> Result<AccountType, String> {
    AccountType::parse(raw)
        .ok_or_else(|| "expected service, subscription, miniprogram or sandbox".to_owned())
}

struct Admin {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Admin {
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Option<T>, String> {
        let url = format!("{}{path}", self.base.trim_end_matches('/'));
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
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
}

fn print_apps(apps: &[AppView]) {
    println!(
        "{:<20} {:<16} {:<17} {:<13} {:<8} {:<6} {:>4}",
        "APPID", "WECHAT_ID", "ORIGINAL_ID", "TYPE", "VERIFIED", "NEW_KF", "KF"
    );
    for app in apps {
        println!(
            "{:<20} {:<16} {:<17} {:<13} {:<8} {:<6} {:>4}",
            app.appid,
            app.wechat_id,
            app.original_id,
            app.account_type,
            app.verified,
            app.new_kf_enabled,
            app.kf_count
        );
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, String> {
    serde_json::to_value(value).map_err(|e| e.to_string())
}

pub async fn run(args: AppArgs) -> Result<(), String> {
    let token = args
        .admin_token
        .ok_or("the admin token is needed: --admin-token or KEFU_ADMIN_TOKEN")?;
    let admin = Admin {
        http: reqwest::Client::new(),
        base: args.base_url,
        token: token.expose().to_owned(),
    };
    let json = args.json;
    match args.command {
        AppCommand::List => {
            let apps: Vec<AppView> = admin
                .call(Method::GET, admin::APPS, None)
                .await?
                .unwrap_or_default();
            if json {
                print_json(&apps)
            } else {
                print_apps(&apps)
            }
        }
        AppCommand::Create {
            wechat_id,
            account_type,
            original_id,
            verified,
            new_kf_enabled,
            appid,
            secret,
        } => {
            let new = NewApp {
                wechat_id,
                original_id,
                account_type,
                verified,
                new_kf_enabled,
                appid,
                secret: secret.map(|s| s.expose().to_owned()),
            };
            let created: Option<CreatedApp> = admin
                .call(Method::POST, admin::APPS, Some(to_json(&new)?))
                .await?;
            print_json(&created);
        }
        AppCommand::Get { appid } => {
            let app: Option<AppView> = admin
                .call(Method::GET, &admin::app_path(&appid), None)
                .await?;
            if json {
                print_json(&app)
            } else {
                print_apps(app.as_slice())
            }
        }
        AppCommand::Update {
            appid,
            wechat_id,
            account_type,
            verified,
            new_kf_enabled,
        } => {
            let patch = AppPatch {
                wechat_id,
                original_id: None,
                account_type,
                verified,
                new_kf_enabled,
            };
            let app: Option<AppView> = admin
                .call(
                    Method::PATCH,
                    &admin::app_path(&appid),
                    Some(to_json(&patch)?),
                )
                .await?;
            if json {
                print_json(&app)
            } else {
                print_apps(app.as_slice())
            }
        }
        AppCommand::Secret { appid } => {
            let created: Option<CreatedApp> = admin
                .call(Method::POST, &admin::secret_path(&appid), None)
                .await?;
            print_json(&created);
        }
        AppCommand::Delete { appid } => {
            admin
                .call::<serde_json::Value>(Method::DELETE, &admin::app_path(&appid), None)
                .await?;
            if !json {
                println!("deleted {appid}");
            }
        }
    }
    Ok(())
}

/// Prints a value as pretty JSON.
fn print_json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(error) => eprintln!("kefu: {error}"),
    }
}
