//! `kefu fan …`: the simulated fans of a running server's apps, over its admin API.

use clap::{Args, Subcommand};
use kefu_api::KfAccount;
use kefu_api::admin::{
    self, FanActed, FanAction, FanActionBody, FanView, NewFan, NewFanBody, QueueRequest,
    SessionView,
};
use reqwest::Method;

use crate::admin_client::{Admin, ServerArgs, print_json, refused, to_json};

/// `kefu fan …`.
#[derive(Debug, Args)]
pub(crate) struct FanArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: FanCommand,
}

#[derive(Debug, Subcommand)]
enum FanCommand {
    /// Make a follower of an app; prints its openid.
    Create {
        /// The app.
        appid: String,
        /// A chosen openid (1-64 letters, digits, '_', '-'); WeChat's shape when absent.
        #[arg(long)]
        openid: Option<String>,
        /// A name for people reading the console.
        #[arg(long)]
        nickname: Option<String>,
    },
    /// List an app's fans.
    List {
        /// The app.
        appid: String,
    },
    /// Show a fan: its windows, session and latest records.
    Show {
        /// The app.
        appid: String,
        /// The fan.
        openid: String,
    },
    /// The fan sends a text (opens the 48-hour window of 5 messages).
    Say {
        /// The app.
        appid: String,
        /// The fan.
        openid: String,
        /// The text.
        text: String,
    },
    /// The fan does something else: image, voice, video, click, follow, unfollow, scan,
    /// pay.
    Do {
        /// The app.
        appid: String,
        /// The fan.
        openid: String,
        /// What it does.
        action: String,
        /// The menu item's key (click) or the QR code's scene (scan).
        #[arg(long)]
        key: Option<String>,
    },
    /// Put the fan in the waiting queue (or with an account that can take it).
    Queue {
        /// The app.
        appid: String,
        /// The fan.
        openid: String,
        /// The account to serve it at once.
        #[arg(long)]
        kf_account: Option<String>,
    },
    /// Forget a fan and its records.
    Rm {
        /// The app.
        appid: String,
        /// The fan.
        openid: String,
    },
}

fn fan_path(appid: &str, openid: &str) -> String {
    admin::path(admin::FAN, &[appid, openid])
}

fn session(view: &FanView) -> String {
    match &view.session {
        SessionView::None => "-".to_owned(),
        SessionView::Waiting { .. } => "waiting".to_owned(),
        SessionView::Served { kf_account, .. } => kf_account.clone(),
    }
}

fn print_fans(fans: &[FanView]) {
    println!(
        "{:<30} {:<16} {:<9} {:<8} {:<20}",
        "OPENID", "NICKNAME", "FOLLOWING", "CAN_SEND", "SESSION"
    );
    for fan in fans {
        println!(
            "{:<30} {:<16} {:<9} {:<8} {:<20}",
            fan.openid,
            fan.nickname,
            fan.following,
            fan.can_send,
            session(fan)
        );
    }
}

fn print_fan(fan: &FanView) {
    print_fans(std::slice::from_ref(fan));
    for window in &fan.windows {
        let left = window
            .left
            .map_or_else(|| "any number".to_owned(), |left| left.to_string());
        println!(
            "window {:<8} open until {}, {} left",
            window.kind.as_str(),
            window.expires_at,
            left
        );
    }
    for entry in &fan.timeline {
        println!(
            "{:>10} {} {:>4} {:<14} {}",
            entry.msgid, entry.time, entry.opercode, entry.worker, entry.text
        );
    }
}

pub(crate) async fn run(args: FanArgs) -> Result<(), String> {
    let admin = Admin::connect(&args.server)?;
    let json = args.server.json;
    let show = |fan: &FanView| {
        if json {
            print_json(fan);
        } else {
            print_fan(fan);
        }
    };
    match args.command {
        FanCommand::Create {
            appid,
            openid,
            nickname,
        } => {
            let new = NewFan::try_from(NewFanBody { openid, nickname }).map_err(refused)?;
            let fan: Option<FanView> = admin
                .call(
                    Method::POST,
                    &admin::path(admin::FANS, &[&appid]),
                    Some(to_json(&new)?),
                )
                .await?;
            match (json, fan) {
                (true, fan) => print_json(&fan),
                (false, Some(fan)) => println!("{}", fan.openid),
                (false, None) => {}
            }
        }
        FanCommand::List { appid } => {
            let fans: Vec<FanView> = admin
                .call(Method::GET, &admin::path(admin::FANS, &[&appid]), None)
                .await?
                .unwrap_or_default();
            if json {
                print_json(&fans);
            } else {
                print_fans(&fans);
            }
        }
        FanCommand::Show { appid, openid } => {
            let fan: Option<FanView> = admin
                .call(Method::GET, &fan_path(&appid, &openid), None)
                .await?;
            if let Some(fan) = fan {
                show(&fan);
            }
        }
        FanCommand::Say {
            appid,
            openid,
            text,
        } => {
            let action = FanActionBody {
                kind: "text".to_owned(),
                content: Some(text),
                key: None,
            };
            act(&admin, &appid, &openid, action, show).await?;
        }
        FanCommand::Do {
            appid,
            openid,
            action,
            key,
        } => {
            let action = FanActionBody {
                kind: action,
                content: None,
                key,
            };
            act(&admin, &appid, &openid, action, show).await?;
        }
        FanCommand::Queue {
            appid,
            openid,
            kf_account,
        } => {
            let kf_account = kf_account
                .map(|account| KfAccount::parse(&account).map_err(|code| code.to_string()))
                .transpose()?;
            let fan: Option<FanView> = admin
                .call(
                    Method::POST,
                    &admin::path(admin::FAN_QUEUE, &[&appid, &openid]),
                    Some(to_json(&QueueRequest { kf_account })?),
                )
                .await?;
            if let Some(fan) = fan {
                show(&fan);
            }
        }
        FanCommand::Rm { appid, openid } => {
            admin
                .call::<serde_json::Value>(Method::DELETE, &fan_path(&appid, &openid), None)
                .await?;
            if !json {
                println!("forgot {openid}");
            }
        }
    }
    Ok(())
}

/// The fan does `action`, checked with the server's rules first.
async fn act(
    admin: &Admin,
    appid: &str,
    openid: &str,
    action: FanActionBody,
    show: impl Fn(&FanView),
) -> Result<(), String> {
    let action = FanAction::try_from(action).map_err(refused)?;
    let acted: Option<FanActed> = admin
        .call(
            Method::POST,
            &admin::path(admin::FAN_ACTIONS, &[appid, openid]),
            Some(to_json(&action)?),
        )
        .await?;
    if let Some(acted) = acted {
        show(&acted.fan);
        if acted.pushed {
            eprintln!("pushed to the app's callback");
        }
    }
    Ok(())
}
