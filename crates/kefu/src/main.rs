//! `kefu`: run the WeChat-compatible server, or manage its apps.

mod admin_client;
mod apps;
mod completions;
mod config_file;
mod fans;
mod health;
mod portability;
mod serve;
mod sim;
mod wechat;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// jemalloc for the whole process, SQLite's C code included. glibc's allocator hands
/// memory back to the kernel as SQLite frees a savepoint's buffers, once per write
/// transaction, and each hand-back costs a cross-CPU TLB flush: under write load that
/// was a fifth of the server's time (see BENCHMARKS.md).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// kefu: a WeChat-compatible customer service account server, and a command line over it.
#[derive(Debug, Parser)]
#[command(name = "kefu", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (SQLite at ./kefu.db, listening on 127.0.0.1:8080 by default).
    Serve(serve::ServeArgs),
    /// Exit 0 when the server the configuration names is ready, 1 otherwise.
    Healthcheck(health::HealthcheckArgs),
    /// Print the completion script of a shell: `kefu completions bash > /etc/bash_completion.d/kefu`.
    Completions(completions::CompletionsArgs),
    /// Manage the apps (official accounts) of a running server.
    App(apps::AppArgs),
    /// Manage the third-party platforms of a running server.
    Component(sim::ComponentArgs),
    /// Simulation controls: the clock, invitations, online accounts, tokens, faults.
    Sim(sim::SimArgs),
    /// Put a running server back to its fixtures (tokens, counters, calls and changes go).
    Reset(sim::ResetArgs),
    /// The newest WeChat calls the server recorded.
    Requests(sim::RequestsArgs),
    /// Customer service accounts, through WeChat's API (of kefu or WeChat itself).
    Kf(wechat::KfArgs),
    /// Simulated fans of a running server's apps: make them, and make them act.
    Fan(fans::FanArgs),
    /// Sessions and the chat history, through WeChat's API.
    Session(wechat::SessionArgs),
    /// Customer service messages and typing, through WeChat's API.
    Msg(wechat::MsgArgs),
    /// Fetch an access_token (prints it).
    Token(wechat::TokenArgs),
    /// Write all apps, accounts and settings as one JSON document.
    Export(portability::ExportArgs),
    /// Load a document `kefu export` wrote into an empty store.
    Import(portability::ImportArgs),
    /// Print the OpenAPI 3.1 document of kefu's API and WeChat's (as `docs/openapi.json`).
    Openapi,
}

fn main() -> std::process::ExitCode {
    // One TLS crypto provider for the whole process (the HTTP client needs one chosen).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("kefu: cannot start the runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Healthcheck(args) => health::run(args).await,
            Command::Completions(args) => completions::run(&args),
            Command::App(args) => apps::run(args).await,
            Command::Component(args) => sim::run_component(args).await,
            Command::Sim(args) => sim::run_sim(args).await,
            Command::Reset(args) => sim::run_reset(args).await,
            Command::Requests(args) => sim::run_requests(args).await,
            Command::Kf(args) => wechat::run_kf(args).await,
            Command::Fan(args) => fans::run(args).await,
            Command::Session(args) => wechat::run_session(args).await,
            Command::Msg(args) => wechat::run_msg(args).await,
            Command::Token(args) => wechat::run_token(args).await,
            Command::Export(args) => portability::run_export(args).await,
            Command::Import(args) => portability::run_import(args).await,
            Command::Openapi => print_openapi(),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kefu: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `kefu openapi`: prints the document the server serves at `/kefu/v1/openapi.json`.
fn print_openapi() -> Result<(), String> {
    use std::io::Write as _;
    std::io::stdout()
        .write_all(kefu_server::openapi::document_text().as_bytes())
        .map_err(|e| format!("cannot write the document: {e}"))
}

/// The command line, with the configuration file's settings for `serve` and
/// `healthcheck` (`--config` / `KEFU_CONFIG`) filled in where neither a flag nor a
/// `KEFU_*` variable gave them, and for `serve` its fixtures read. A mistake in the
/// file stops here, with exit code 2.
fn parse() -> Result<Cli, std::process::ExitCode> {
    let mut argv: Vec<OsString> = std::env::args_os().collect();
    let command = Cli::command();
    let mut matches = command.clone().get_matches_from(&argv);
    if let Some((name, sub)) = matches.subcommand()
        && matches!(name, "serve" | "healthcheck")
        && let Some(path) = sub.get_one::<PathBuf>("config")
    {
        let (Some(this), Some(serve)) = (
            command.find_subcommand(name),
            command.find_subcommand("serve"),
        ) else {
            return Err(std::process::ExitCode::FAILURE);
        };
        match config_file::layer(path, this, serve, sub) {
            Ok(added) => {
                argv.extend(added);
                matches = command.clone().get_matches_from(&argv);
            }
            Err(error) => {
                eprintln!("kefu: {error}");
                return Err(std::process::ExitCode::from(2));
            }
        }
    }
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    if let Command::Serve(args) = &mut cli.command
        && let Err(error) = args.load_fixtures()
    {
        eprintln!("kefu: {error}");
        return Err(std::process::ExitCode::from(2));
    }
    Ok(cli)
}
