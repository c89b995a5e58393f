//! `kefu kf …` and `kefu token`: WeChat's customer service API through the SDK, against
//! a kefu server or WeChat itself.

use clap::{Args, Subcommand};
use kefu_client::{Client, Credentials};
use kefu_server::Secret;

use crate::admin_client::print_json;

/// Where the API is and whose credentials to use.
#[derive(Debug, Args)]
pub(crate) struct WechatArgs {
    /// The API's base URL (a kefu server, or <https://api.weixin.qq.com>).
    #[arg(
        long,
        global = true,
        env = "KEFU_BASE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    base_url: String,
    /// The app's appid.
    #[arg(long, global = true, env = "KEFU_APPID")]
    appid: Option<String>,
    /// The app's AppSecret (prefer KEFU_SECRET: flags show in `ps`).
    #[arg(long, global = true, env = "KEFU_SECRET", hide_env_values = true)]
    secret: Option<Secret>,
    /// Use this access_token instead of fetching one.
    #[arg(
        long,
        global = true,
        env = "KEFU_ACCESS_TOKEN",
        hide_env_values = true,
        conflicts_with = "secret"
    )]
    access_token: Option<Secret>,
    /// Fetch tokens from /cgi-bin/stable_token.
    #[arg(long, global = true)]
    stable: bool,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

impl WechatArgs {
    fn client(&self) -> Result<Client, String> {
        let credentials = match (&self.access_token, &self.appid, &self.secret) {
            (Some(token), _, _) => Credentials::Token(token.expose().to_owned().into()),
            (None, Some(appid), Some(secret)) => Credentials::App {
                appid: appid.clone(),
                secret: secret.expose().to_owned().into(),
            },
            _ => {
                return Err("credentials needed: --appid and --secret (KEFU_APPID, \
                KEFU_SECRET), or --access-token"
                    .to_owned());
            }
        };
        Client::builder()
            .base_url(&self.base_url)
            .credentials(credentials)
            .stable_token(self.stable)
            .build()
            .map_err(|e| e.to_string())
    }
}

/// `kefu kf …`.
#[derive(Debug, Args)]
pub(crate) struct KfArgs {
    #[command(flatten)]
    wechat: WechatArgs,
    #[command(subcommand)]
    command: KfCommand,
}

#[derive(Debug, Subcommand)]
enum KfCommand {
    /// List the customer service accounts.
    List,
    /// List the accounts online now.
    Online,
    /// Add an account.
    Add {
        /// `prefix@wechat_id`.
        kf_account: String,
        /// Its nickname (1-16 characters).
        nickname: String,
    },
    /// Change an account's nickname.
    Update {
        /// `prefix@wechat_id`.
        kf_account: String,
        /// The new nickname.
        nickname: String,
    },
    /// Delete an account.
    Del {
        /// `prefix@wechat_id`.
        kf_account: String,
    },
    /// Invite a WeChat user to bind an account.
    Invite {
        /// `prefix@wechat_id`.
        kf_account: String,
        /// The invitee's WeChat ID.
        invite_wx: String,
    },
    /// Upload an account's head image (a JPEG file, at most 5 MiB).
    Avatar {
        /// `prefix@wechat_id`.
        kf_account: String,
        /// The JPEG file.
        file: std::path::PathBuf,
    },
}

/// `kefu token`.
#[derive(Debug, Args)]
pub(crate) struct TokenArgs {
    #[command(flatten)]
    wechat: WechatArgs,
    /// With --stable: invalidate the current stable token and mint a new one.
    #[arg(long, requires = "stable")]
    force_refresh: bool,
}

fn failure(error: &kefu_client::Error) -> String {
    error.to_string()
}

fn done(json: bool) {
    if json {
        print_json(&kefu_api::Status {
            errcode: kefu_api::ErrCode::Ok,
            errmsg: "ok".to_owned(),
        });
    } else {
        println!("ok");
    }
}

pub(crate) async fn run_kf(args: KfArgs) -> Result<(), String> {
    let client = args.wechat.client()?;
    let json = args.wechat.json;
    match args.command {
        KfCommand::List => {
            let list = client.kf_list().await.map_err(|e| failure(&e))?;
            if json {
                print_json(&kefu_api::endpoints::kf_list::KfList { kf_list: list });
            } else {
                println!(
                    "{:<6} {:<24} {:<18} {:<22} HEADIMG",
                    "KF_ID", "KF_ACCOUNT", "NICKNAME", "WECHAT"
                );
                for kf in list {
                    let wechat = match (&kf.kf_wx, &kf.invite_wx, &kf.invite_status) {
                        (Some(wx), _, _) => wx.clone(),
                        (None, Some(wx), Some(status)) => format!("{wx} ({})", status.as_str()),
                        _ => String::new(),
                    };
                    println!(
                        "{:<6} {:<24} {:<18} {:<22} {}",
                        kf.kf_id, kf.kf_account, kf.kf_nick, wechat, kf.kf_headimgurl
                    );
                }
            }
        }
        KfCommand::Online => {
            let list = client.kf_online_list().await.map_err(|e| failure(&e))?;
            if json {
                print_json(&kefu_api::endpoints::kf_online::KfOnlineList {
                    kf_online_list: list,
                });
            } else {
                println!(
                    "{:<6} {:<24} {:<7} ACCEPTED_CASE",
                    "KF_ID", "KF_ACCOUNT", "STATUS"
                );
                for kf in list {
                    println!(
                        "{:<6} {:<24} {:<7} {}",
                        kf.kf_id, kf.kf_account, kf.status, kf.accepted_case
                    );
                }
            }
        }
        KfCommand::Add {
            kf_account,
            nickname,
        } => {
            client
                .kf_add(&kf_account, &nickname)
                .await
                .map_err(|e| failure(&e))?;
            done(json);
        }
        KfCommand::Update {
            kf_account,
            nickname,
        } => {
            client
                .kf_update(&kf_account, &nickname)
                .await
                .map_err(|e| failure(&e))?;
            done(json);
        }
        KfCommand::Del { kf_account } => {
            client
                .kf_delete(&kf_account)
                .await
                .map_err(|e| failure(&e))?;
            done(json);
        }
        KfCommand::Invite {
            kf_account,
            invite_wx,
        } => {
            client
                .kf_invite(&kf_account, &invite_wx)
                .await
                .map_err(|e| failure(&e))?;
            done(json);
        }
        KfCommand::Avatar { kf_account, file } => {
            let jpeg = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            client
                .kf_upload_headimg(&kf_account, jpeg)
                .await
                .map_err(|e| failure(&e))?;
            done(json);
        }
    }
    Ok(())
}

pub(crate) async fn run_token(args: TokenArgs) -> Result<(), String> {
    let client = args.wechat.client()?;
    let token = if args.wechat.stable {
        client.fetch_stable_token(args.force_refresh).await
    } else {
        client.fetch_token().await
    }
    .map_err(|e| failure(&e))?;
    if args.wechat.json {
        // The token is printed because it was asked for.
        print_json(&token);
    } else {
        println!("{}", token.access_token.expose());
    }
    Ok(())
}

/// `kefu session …`.
#[derive(Debug, Args)]
pub(crate) struct SessionArgs {
    #[command(flatten)]
    wechat: WechatArgs,
    #[command(subcommand)]
    command: SessionCommand,
}

#[derive(Debug, Subcommand)]
enum SessionCommand {
    /// An account starts serving a fan.
    Create {
        /// `prefix@wechat_id`.
        kf_account: String,
        /// The fan's openid.
        openid: String,
    },
    /// End a fan's session.
    Close {
        /// `prefix@wechat_id`.
        kf_account: String,
        /// The fan's openid.
        openid: String,
    },
    /// Who serves a fan.
    Get {
        /// The fan's openid.
        openid: String,
    },
    /// The fans an account serves.
    List {
        /// `prefix@wechat_id`.
        kf_account: String,
    },
    /// The fans waiting for an account.
    Waiting,
    /// The chat history of a time range (at most 24 hours), every page.
    History {
        /// From (Unix seconds).
        #[arg(long)]
        start: i64,
        /// To (Unix seconds).
        #[arg(long)]
        end: i64,
    },
}

pub(crate) async fn run_session(args: SessionArgs) -> Result<(), String> {
    let client = args.wechat.client()?;
    let json = args.wechat.json;
    match args.command {
        SessionCommand::Create { kf_account, openid } => {
            client
                .kf_session_create(&kf_account, &openid)
                .await
                .map_err(|e| failure(&e))?;
            done(json);
        }
        SessionCommand::Close { kf_account, openid } => {
            client
                .kf_session_close(&kf_account, &openid)
                .await
                .map_err(|e| failure(&e))?;
            done(json);
        }
        SessionCommand::Get { openid } => {
            let session = client.kf_session(&openid).await.map_err(|e| failure(&e))?;
            if json {
                print_json(&session);
            } else if session.kf_account.is_empty() {
                println!("no account serves {openid}");
            } else {
                println!("{} since {}", session.kf_account, session.createtime);
            }
        }
        SessionCommand::List { kf_account } => {
            let list = client
                .kf_session_list(&kf_account)
                .await
                .map_err(|e| failure(&e))?;
            if json {
                print_json(&kefu_api::endpoints::kf_session::SessionList { sessionlist: list });
            } else {
                for session in list {
                    println!("{:<30} since {}", session.openid, session.createtime);
                }
            }
        }
        SessionCommand::Waiting => {
            let wait = client.kf_wait_case().await.map_err(|e| failure(&e))?;
            if json {
                print_json(&wait);
            } else {
                println!("{} waiting", wait.count);
                for fan in wait.waitcaselist {
                    println!("{:<30} latest message {}", fan.openid, fan.latest_time);
                }
            }
        }
        SessionCommand::History { start, end } => {
            let records = client
                .msg_records(start, end)
                .await
                .map_err(|e| failure(&e))?;
            if json {
                print_json(&records);
            } else {
                for record in records {
                    println!(
                        "{} {:<30} {:>4} {:<14} {}",
                        record.time, record.openid, record.opercode, record.worker, record.text
                    );
                }
            }
        }
    }
    Ok(())
}

/// `kefu msg …`.
#[derive(Debug, Args)]
pub(crate) struct MsgArgs {
    #[command(flatten)]
    wechat: WechatArgs,
    #[command(subcommand)]
    command: MsgCommand,
}

#[derive(Debug, Subcommand)]
enum MsgCommand {
    /// Send a text to a fan (inside a window the fan opened).
    Send {
        /// The fan's openid.
        openid: String,
        /// The text.
        text: String,
        /// Send as this account (`prefix@wechat_id`).
        #[arg(long = "as")]
        kf_account: Option<String>,
    },
    /// Show the fan "typing…" for 15 seconds (or stop it).
    Typing {
        /// The fan's openid.
        openid: String,
        /// Stop showing it.
        #[arg(long)]
        cancel: bool,
    },
}

pub(crate) async fn run_msg(args: MsgArgs) -> Result<(), String> {
    let client = args.wechat.client()?;
    let json = args.wechat.json;
    match args.command {
        MsgCommand::Send {
            openid,
            text,
            kf_account,
        } => {
            client
                .send_text(&openid, &text, kf_account.as_deref())
                .await
                .map_err(|e| failure(&e))?;
        }
        MsgCommand::Typing { openid, cancel } => {
            client
                .typing(&openid, !cancel)
                .await
                .map_err(|e| failure(&e))?;
        }
    }
    done(json);
    Ok(())
}
