//! `kefu export` and `kefu import`: all apps, accounts and settings as one JSON
//! document, straight from a store (`--database-url`) or through a running server's
//! admin API.

use std::path::PathBuf;

use clap::Args;
use kefu_server::config::Durability;
use kefu_server::startup::open_store;
use kefu_server::{Config, Database, Secret};
use kefu_store::Snapshot;
use reqwest::Method;

use crate::admin_client::{Admin, ServerArgs};

/// Flags of `kefu export`.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// Read this store directly (an SQLite file or a postgres:// URL) instead of asking a
    /// running server; an SQLite file must not be in use by a server.
    #[arg(long)]
    database_url: Option<String>,
    /// Write the document here instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
    #[command(flatten)]
    server: ServerArgs,
}

/// Flags of `kefu import`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The document `kefu export` wrote.
    file: PathBuf,
    /// Load into this store directly (created and migrated if needed) instead of a
    /// running server. The store must hold no app or platform.
    #[arg(long)]
    database_url: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

async fn store_at(url: &str) -> Result<std::sync::Arc<dyn kefu_store::Store>, String> {
    let database = Database::parse(url)?;
    let config = Config {
        durability: Durability::Full,
        ..Config::new(database, Secret::new(""))
    };
    open_store(&config).await.map_err(|e| e.to_string())
}

pub(crate) async fn run_export(args: ExportArgs) -> Result<(), String> {
    let snapshot: Snapshot = match &args.database_url {
        Some(url) => store_at(url)
            .await?
            .snapshot()
            .await
            .map_err(|e| e.to_string())?,
        None => Admin::connect(&args.server)?
            .call(Method::GET, "/kefu/v1/export", None)
            .await?
            .ok_or("the server answered no document")?,
    };
    let text = serde_json::to_string_pretty(&snapshot).map_err(|e| e.to_string())?;
    let accounts: usize = snapshot.apps.iter().map(|a| a.kf_accounts.len()).sum();
    match &args.output {
        Some(path) => {
            std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
            eprintln!(
                "exported {} apps, {accounts} kf accounts, {} platforms to {}",
                snapshot.apps.len(),
                snapshot.components.len(),
                path.display()
            );
        }
        None => println!("{text}"),
    }
    Ok(())
}

pub(crate) async fn run_import(args: ImportArgs) -> Result<(), String> {
    let text =
        std::fs::read_to_string(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let snapshot: Snapshot = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a kefu export: {e}", args.file.display()))?;
    let (apps, components) = (snapshot.apps.len(), snapshot.components.len());
    let accounts: usize = snapshot.apps.iter().map(|a| a.kf_accounts.len()).sum();
    match &args.database_url {
        Some(url) => store_at(url)
            .await?
            .restore(snapshot)
            .await
            .map_err(|e| e.to_string())?,
        None => {
            let body = serde_json::to_value(&snapshot).map_err(|e| e.to_string())?;
            Admin::connect(&args.server)?
                .call::<serde_json::Value>(Method::POST, "/kefu/v1/import", Some(body))
                .await?;
        }
    }
    eprintln!("imported {apps} apps, {accounts} kf accounts, {components} platforms");
    Ok(())
}
