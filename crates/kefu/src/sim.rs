//! `kefu sim …`, `kefu component …` and `kefu requests`: the simulation controls,
//! third-party platforms and the request log of a running server.

use clap::{Args, Subcommand, ValueEnum};
use kefu_api::admin::{
    self, ClockAdvance, InvitationAction, InvitationRequest, KfOnlineBody, KfOnlineSet,
    NewAuthorization, NewAuthorizationBody, NewComponent, NewComponentBody, NewFault, NewFaultBody,
    RequestLogEntry, TokenAction, TokenVerdict,
};
use kefu_server::Secret;
use reqwest::Method;

use crate::admin_client::{Admin, ServerArgs, refused, to_json};

/// `kefu sim …`.
#[derive(Debug, Args)]
pub(crate) struct SimArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: SimCommand,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Answer {
    Accept,
    Reject,
    Expire,
}

#[derive(Debug, Subcommand)]
enum SimCommand {
    /// Show the server clock, or move it forward.
    Clock {
        /// Seconds to advance (e.g. 7201 to expire every token).
        #[arg(long)]
        advance: Option<u64>,
    },
    /// Answer a pending invitation as the invitee would.
    Invite {
        /// The app.
        appid: String,
        /// The account.
        kf_account: String,
        /// What the invitee does.
        #[arg(value_enum)]
        answer: Answer,
    },
    /// Put an account online (or offline) with N sessions.
    Online {
        /// The app.
        appid: String,
        /// The account.
        kf_account: String,
        /// 1 online, 0 offline.
        #[arg(long, default_value_t = 1)]
        status: i64,
        /// Make it serve this many sessions (with simulated fans); unchanged when absent.
        #[arg(long)]
        accepted_case: Option<i64>,
    },
    /// Make a token answer 40001 (invalidate) or 42001 (expire) from now on.
    Token {
        /// `invalidate` or `expire`.
        #[arg(value_enum)]
        action: TokenArg,
        /// The token (or set KEFU_TARGET_TOKEN).
        #[arg(env = "KEFU_TARGET_TOKEN", hide_env_values = true)]
        token: Secret,
    },
    /// Fault injection rules.
    #[command(subcommand)]
    Fault(FaultCommand),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TokenArg {
    Invalidate,
    Expire,
}

#[derive(Debug, Subcommand)]
enum FaultCommand {
    /// List the rules in force.
    List,
    /// Add a rule: PATH answers ERRCODE (the next N times, or with probability P).
    Add {
        /// The WeChat path, e.g. /customservice/kfaccount/update.
        path: String,
        /// Only for this app.
        #[arg(long)]
        appid: Option<String>,
        /// The errcode to answer (-1 by default; 0 with --latency-ms only delays).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        errcode: i64,
        /// Fire the next N times only.
        #[arg(long)]
        times: Option<u64>,
        /// Fire with this probability (0-1).
        #[arg(long)]
        probability: Option<f64>,
        /// Wait this long first.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// Perform the call, then answer the errcode anyway ("-1 but applied").
        #[arg(long)]
        applied: bool,
    },
    /// Remove a rule.
    Rm {
        /// Its id.
        id: u64,
    },
}

/// `kefu component …`.
#[derive(Debug, Args)]
pub(crate) struct ComponentArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: ComponentCommand,
}

#[derive(Debug, Subcommand)]
enum ComponentCommand {
    /// List third-party platforms with their authorizations.
    List,
    /// Register a platform; prints its secret (shown only this once).
    Add {
        /// A chosen component_appid; generated when absent.
        #[arg(long)]
        component_appid: Option<String>,
        /// IPs allowed to fetch component tokens (comma-separated).
        #[arg(long, value_delimiter = ',')]
        ip_whitelist: Vec<String>,
    },
    /// Delete a platform.
    Rm {
        /// Its appid.
        component_appid: String,
    },
    /// Issue a component_verify_ticket (valid 12 hours).
    Ticket {
        /// The platform.
        component_appid: String,
    },
    /// Authorize the platform for an app with permission sets; prints the refresh token.
    Authorize {
        /// The platform.
        component_appid: String,
        /// The app.
        appid: String,
        /// Permission set ids, comma-separated (e.g. 1,6 or 19).
        #[arg(long, value_delimiter = ',', required = true)]
        funcscopes: Vec<u32>,
    },
}

/// `kefu requests`.
#[derive(Debug, Args)]
pub(crate) struct RequestsArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Only this app's calls.
    #[arg(long)]
    appid: Option<String>,
    /// How many, newest first.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Only calls to this WeChat path (`/customservice/kfaccount/add`).
    #[arg(long)]
    path: Option<String>,
    /// Only calls that answered this errcode.
    #[arg(long, allow_hyphen_values = true)]
    errcode: Option<i64>,
    /// The call with this rid; a whole errmsg ending in `rid: …` also works.
    #[arg(long)]
    rid: Option<String>,
    /// After the newest calls, print each new call as it is made (until interrupted
    /// or the server stops).
    #[arg(long, short)]
    follow: bool,
}

pub(crate) async fn run_sim(args: SimArgs) -> Result<(), String> {
    let admin = Admin::connect(&args.server)?;
    match args.command {
        SimCommand::Clock { advance: None } => admin.show(Method::GET, admin::CLOCK, None).await,
        SimCommand::Clock {
            advance: Some(advance_secs),
        } => {
            admin
                .show(
                    Method::POST,
                    admin::CLOCK,
                    Some(to_json(&ClockAdvance { advance_secs })?),
                )
                .await
        }
        SimCommand::Invite {
            appid,
            kf_account,
            answer,
        } => {
            let action = match answer {
                Answer::Accept => InvitationAction::Accept,
                Answer::Reject => InvitationAction::Reject,
                Answer::Expire => InvitationAction::Expire,
            };
            let body = to_json(&InvitationRequest { action })?;
            admin
                .show(
                    Method::POST,
                    &admin::path(admin::KF_INVITATION, &[&appid, &kf_account]),
                    Some(body),
                )
                .await
        }
        SimCommand::Online {
            appid,
            kf_account,
            status,
            accepted_case,
        } => {
            let online = KfOnlineSet::try_from(KfOnlineBody {
                status,
                accepted_case,
            })
            .map_err(refused)?;
            let body = to_json(&online)?;
            admin
                .show(
                    Method::POST,
                    &admin::path(admin::KF_ONLINE, &[&appid, &kf_account]),
                    Some(body),
                )
                .await
        }
        SimCommand::Token { action, token } => {
            let action = match action {
                TokenArg::Invalidate => TokenVerdict::Invalidate,
                TokenArg::Expire => TokenVerdict::Expire,
            };
            let body = to_json(&TokenAction {
                access_token: token,
                action,
            })?;
            admin.show(Method::POST, admin::TOKENS, Some(body)).await
        }
        SimCommand::Fault(FaultCommand::List) => admin.show(Method::GET, admin::FAULTS, None).await,
        SimCommand::Fault(FaultCommand::Add {
            path,
            appid,
            errcode,
            times,
            probability,
            latency_ms,
            applied,
        }) => {
            let rule = NewFault::try_from(NewFaultBody {
                appid,
                path,
                errcode,
                times,
                probability,
                latency_ms,
                applied,
            })
            .map_err(refused)?;
            admin
                .show(Method::POST, admin::FAULTS, Some(to_json(&rule)?))
                .await
        }
        SimCommand::Fault(FaultCommand::Rm { id }) => {
            admin
                .show(
                    Method::DELETE,
                    &admin::path(admin::FAULT, &[&id.to_string()]),
                    None,
                )
                .await
        }
    }
}

pub(crate) async fn run_component(args: ComponentArgs) -> Result<(), String> {
    let admin = Admin::connect(&args.server)?;
    match args.command {
        ComponentCommand::List => admin.show(Method::GET, admin::COMPONENTS, None).await,
        ComponentCommand::Add {
            component_appid,
            ip_whitelist,
        } => {
            let new = NewComponent::try_from(NewComponentBody {
                component_appid,
                secret: None,
                ip_whitelist,
            })
            .map_err(refused)?;
            admin
                .show(Method::POST, admin::COMPONENTS, Some(to_json(&new)?))
                .await
        }
        ComponentCommand::Rm { component_appid } => {
            admin
                .show(
                    Method::DELETE,
                    &admin::path(admin::COMPONENT, &[&component_appid]),
                    None,
                )
                .await
        }
        ComponentCommand::Ticket { component_appid } => {
            admin
                .show(
                    Method::POST,
                    &admin::path(admin::COMPONENT_TICKET, &[&component_appid]),
                    None,
                )
                .await
        }
        ComponentCommand::Authorize {
            component_appid,
            appid,
            funcscopes,
        } => {
            let authorization =
                NewAuthorization::try_from(NewAuthorizationBody { appid, funcscopes })
                    .map_err(refused)?;
            let body = to_json(&authorization)?;
            admin
                .show(
                    Method::POST,
                    &admin::path(admin::COMPONENT_AUTHORIZATIONS, &[&component_appid]),
                    Some(body),
                )
                .await
        }
    }
}

pub(crate) async fn run_requests(args: RequestsArgs) -> Result<(), String> {
    let admin = Admin::connect(&args.server)?;
    let mut query = reqwest::Url::parse("http://kefu/").map_err(|e| e.to_string())?;
    {
        let mut pairs = query.query_pairs_mut();
        pairs.append_pair("limit", &args.limit.to_string());
        for (name, value) in [
            ("appid", args.appid.clone()),
            ("path", args.path.clone()),
            ("errcode", args.errcode.map(|c| c.to_string())),
            ("rid", args.rid.clone()),
        ] {
            if let Some(value) = value {
                pairs.append_pair(name, &value);
            }
        }
    }
    let path = format!("{}?{}", admin::REQUESTS, query.query().unwrap_or_default());
    if !args.follow {
        return admin.show(Method::GET, &path, None).await;
    }
    // The stream first, so that no call falls between the list and the stream.
    let mut stream = admin.open(admin::REQUESTS_STREAM).await?;
    let mut newest: Vec<RequestLogEntry> = admin
        .call(Method::GET, &path, None)
        .await?
        .unwrap_or_default();
    newest.reverse();
    let shown: std::collections::HashSet<String> = newest.iter().map(|e| e.rid.clone()).collect();
    for entry in &newest {
        print_call(entry, args.server.json);
    }
    let wanted = |entry: &RequestLogEntry| {
        args.appid
            .as_deref()
            .is_none_or(|a| entry.appid.as_deref() == Some(a))
            && args
                .path
                .as_deref()
                .is_none_or(|p| entry.request.request_url.split('?').next() == Some(p))
            && args.errcode.is_none_or(|c| entry.errcode == c)
            && !shown.contains(&entry.rid)
    };
    // Bytes until an event is whole: a character may be split between two chunks.
    let mut pending: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.chunk().await.map_err(|e| e.to_string())? {
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.windows(2).position(|pair| pair == b"\n\n") {
            let bytes: Vec<u8> = pending.drain(..end + 2).collect();
            let event = String::from_utf8_lossy(&bytes);
            let (mut kind, mut data) = ("message", String::new());
            for line in event.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    kind = name;
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data.push_str(value);
                }
            }
            match kind {
                "call" => {
                    let entry: RequestLogEntry =
                        serde_json::from_str(&data).map_err(|e| e.to_string())?;
                    if wanted(&entry) {
                        print_call(&entry, args.server.json);
                    }
                }
                "dropped" => eprintln!("(missed calls: {data})"),
                _ => {}
            }
        }
    }
    Ok(())
}

/// One call on one line: time, app, method, path, errcode, milliseconds, rid and
/// reason; or its JSON.
fn print_call(entry: &RequestLogEntry, json: bool) {
    if json {
        println!("{}", serde_json::to_string(entry).unwrap_or_default());
        return;
    }
    println!(
        "{}  {}  {} {}  {}  {}ms  {}{}",
        kefu_server::clock::utc(entry.request.invoke_time),
        entry.appid.as_deref().unwrap_or("-"),
        entry.method,
        entry
            .request
            .request_url
            .split('?')
            .next()
            .unwrap_or_default(),
        entry.errcode,
        entry.request.cost_in_ms,
        entry.rid,
        if entry.reason.is_empty() {
            String::new()
        } else {
            format!("  {}", entry.reason)
        }
    );
}

/// Flags of `kefu reset`.
#[derive(Debug, Args)]
pub(crate) struct ResetArgs {
    #[command(flatten)]
    server: ServerArgs,
}

/// `kefu reset`: the running server goes back to its fixtures.
pub(crate) async fn run_reset(args: ResetArgs) -> Result<(), String> {
    Admin::connect(&args.server)?
        .show(Method::POST, admin::RESET, None)
        .await
}
