//! `kefu app …`: the admin surface of a running server, over HTTP.

use clap::{Args, Subcommand};
use kefu_api::Secret;
use kefu_api::admin::{
    self, AccountType, AppPatch, AppPatchBody, AppSettings, AppView, CallbackSettings, CreatedApp,
    DeliveryWindows, MessageMode, NewApp, NewAppBody, QuotaLimit, WindowRule,
};
use kefu_api::endpoints::message::WindowKind;
use reqwest::Method;

use crate::admin_client::{Admin, ServerArgs, print_json, refused, to_json};

/// `kefu app …`.
#[derive(Debug, Args)]
pub(crate) struct AppArgs {
    #[command(flatten)]
    server: ServerArgs,
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
        #[command(flatten)]
        rules: RuleArgs,
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
        #[command(flatten)]
        rules: RuleArgs,
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

/// Platform rules of an app (each flag replaces the whole list when given).
#[derive(Debug, Args)]
struct RuleArgs {
    /// IPs allowed on the AppSecret endpoints (comma-separated; "" clears).
    #[arg(long, value_delimiter = ',')]
    ip_whitelist: Option<Vec<String>>,
    /// Quota overrides, `PATH=DAILY` or `PATH=DAILY/PER_MINUTE` (repeatable).
    #[arg(long = "quota", value_parser = parse_quota)]
    quotas: Vec<(String, QuotaLimit)>,
    /// API paths banned for the app, 48004 (comma-separated; "" clears).
    #[arg(long, value_delimiter = ',')]
    banned_apis: Option<Vec<String>>,
    /// A delivery window, `KIND=SECS` or `KIND=SECS/LIMIT` (KIND message, event or
    /// payment; repeatable; the others keep theirs).
    #[arg(long = "window", value_parser = parse_window)]
    windows: Vec<(WindowKind, WindowRule)>,
    /// The developer's server that receives pushes (with --callback-token).
    #[arg(long, requires = "callback_token")]
    callback_url: Option<String>,
    /// The callback's Token (3-32 letters and digits).
    #[arg(
        long,
        requires = "callback_url",
        env = "KEFU_CALLBACK_TOKEN",
        hide_env_values = true
    )]
    callback_token: Option<Secret>,
    /// The callback's EncodingAESKey (43 letters and digits).
    #[arg(long, env = "KEFU_CALLBACK_AES_KEY", hide_env_values = true)]
    callback_aes_key: Option<Secret>,
    /// The callback's message mode: plain, compatible or safe.
    #[arg(long, value_parser = parse_mode, default_value = "plain")]
    callback_mode: MessageMode,
    /// Remove the callback.
    #[arg(long, conflicts_with = "callback_url")]
    no_callback: bool,
}

impl RuleArgs {
    fn non_empty(list: Option<Vec<String>>) -> Option<Vec<String>> {
        list.map(|l| l.into_iter().filter(|s| !s.is_empty()).collect())
    }

    fn quotas(&self) -> Option<std::collections::BTreeMap<String, QuotaLimit>> {
        (!self.quotas.is_empty()).then(|| self.quotas.iter().cloned().collect())
    }

    /// `windows` with the given kinds changed; `None` when none was given.
    fn windows(&self, mut windows: DeliveryWindows) -> Option<DeliveryWindows> {
        for (kind, rule) in &self.windows {
            match kind {
                WindowKind::Message => windows.message = *rule,
                WindowKind::Event => windows.event = *rule,
                WindowKind::Payment => windows.payment = *rule,
            }
        }
        (!self.windows.is_empty()).then_some(windows)
    }

    /// The callback given: `Some(None)` removes it.
    #[allow(clippy::option_option, reason = "unchanged, removed or a value")]
    fn callback(&self) -> Option<Option<CallbackSettings>> {
        if self.no_callback {
            return Some(None);
        }
        let (url, token) = (self.callback_url.clone()?, self.callback_token.clone()?);
        Some(Some(CallbackSettings {
            url,
            token,
            encoding_aes_key: self.callback_aes_key.clone(),
            mode: self.callback_mode,
        }))
    }
}

fn parse_window(raw: &str) -> Result<(WindowKind, WindowRule), String> {
    let (kind, rule) = raw
        .split_once('=')
        .ok_or("expected KIND=SECS or KIND=SECS/LIMIT")?;
    let kind = match kind {
        "message" => WindowKind::Message,
        "event" => WindowKind::Event,
        "payment" => WindowKind::Payment,
        other => return Err(format!("{other:?} is not message, event or payment")),
    };
    let (secs, limit) = rule
        .split_once('/')
        .map_or((rule, None), |(s, l)| (s, Some(l)));
    let secs = secs.trim().parse().map_err(|e| format!("{secs:?}: {e}"))?;
    let limit = limit
        .map(|l| l.trim().parse().map_err(|e| format!("{l:?}: {e}")))
        .transpose()?;
    Ok((kind, WindowRule { secs, limit }))
}

fn parse_mode(raw: &str) -> Result<MessageMode, String> {
    match raw {
        "plain" => Ok(MessageMode::Plain),
        "compatible" => Ok(MessageMode::Compatible),
        "safe" => Ok(MessageMode::Safe),
        _ => Err("expected plain, compatible or safe".to_owned()),
    }
}

fn parse_quota(raw: &str) -> Result<(String, QuotaLimit), String> {
    let (path, limits) = raw
        .split_once('=')
        .ok_or("expected PATH=DAILY or PATH=DAILY/PER_MINUTE")?;
    let (daily, per_minute) = limits
        .split_once('/')
        .map_or((limits, None), |(d, m)| (d, Some(m)));
    let number = |v: &str| v.trim().parse::<u64>().map_err(|e| format!("{v:?}: {e}"));
    let daily = if daily.is_empty() {
        None
    } else {
        Some(number(daily)?)
    };
    let per_minute = per_minute.map(number).transpose()?;
    Ok((path.to_owned(), QuotaLimit { daily, per_minute }))
}

fn parse_type(raw: &str) -> Result<AccountType, String> {
    AccountType::parse(raw)
        .ok_or_else(|| "expected service, subscription, miniprogram or sandbox".to_owned())
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

pub(crate) async fn run(args: AppArgs) -> Result<(), String> {
    let admin = Admin::connect(&args.server)?;
    let json = args.server.json;
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
            rules,
        } => {
            // Checked here with the server's own rules, so a bad value sends nothing.
            let new = NewApp::try_from(NewAppBody {
                wechat_id,
                original_id,
                account_type,
                verified,
                new_kf_enabled,
                appid,
                secret,
                settings: AppSettings {
                    quotas: rules.quotas().unwrap_or_default(),
                    windows: rules
                        .windows(DeliveryWindows::default())
                        .unwrap_or_default(),
                    callback: rules.callback().flatten(),
                    ip_whitelist: RuleArgs::non_empty(rules.ip_whitelist).unwrap_or_default(),
                    banned_apis: RuleArgs::non_empty(rules.banned_apis).unwrap_or_default(),
                },
            })
            .map_err(refused)?;
            let created: Option<CreatedApp> = admin
                .call(Method::POST, admin::APPS, Some(to_json(&new)?))
                .await?;
            print_json(&created);
        }
        AppCommand::Get { appid } => {
            let app: Option<AppView> = admin
                .call(Method::GET, &admin::path(admin::APP, &[&appid]), None)
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
            rules,
        } => {
            // A window given changes that kind only: the others are read first.
            let windows = if rules.windows.is_empty() {
                None
            } else {
                let current: Option<AppView> = admin
                    .call(Method::GET, &admin::path(admin::APP, &[&appid]), None)
                    .await?;
                let current = current.map(|app| app.settings.windows).unwrap_or_default();
                rules.windows(current)
            };
            let patch = AppPatch::try_from(AppPatchBody {
                wechat_id,
                original_id: None,
                account_type,
                verified,
                new_kf_enabled,
                quotas: rules.quotas(),
                windows,
                callback: rules.callback(),
                ip_whitelist: RuleArgs::non_empty(rules.ip_whitelist),
                banned_apis: RuleArgs::non_empty(rules.banned_apis),
            })
            .map_err(refused)?;
            let app: Option<AppView> = admin
                .call(
                    Method::PATCH,
                    &admin::path(admin::APP, &[&appid]),
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
                .call(
                    Method::POST,
                    &admin::path(admin::APP_SECRET, &[&appid]),
                    None,
                )
                .await?;
            print_json(&created);
        }
        AppCommand::Delete { appid } => {
            admin
                .call::<serde_json::Value>(
                    Method::DELETE,
                    &admin::path(admin::APP, &[&appid]),
                    None,
                )
                .await?;
            if !json {
                println!("deleted {appid}");
            }
        }
    }
    Ok(())
}
