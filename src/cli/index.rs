//! `trove index rebuild|sync [--repair]`: the index maintenance commands, run against the
//! configured storage and the local index directly (stop the server first: the index has a
//! single writer).

use anyhow::Context as _;
use clap::Subcommand;

use crate::app::App;
use crate::config::Settings;

/// Index maintenance.
#[derive(Debug, Clone, Subcommand)]
pub enum IndexCommand {
    /// Re-index every project from storage.
    Rebuild,
    /// Compare storage and index; with `--repair`, re-index what drifted.
    Sync {
        /// Re-index whatever drifted.
        #[arg(long)]
        repair: bool,
    },
}

/// Runs an index command, printing a JSON report.
pub async fn run_index(settings: Settings, command: &IndexCommand) -> anyhow::Result<()> {
    let app = App::build(settings)
        .await
        .context("cannot open storage and index (is a server running on this data directory?)")?;
    let report = match command {
        IndexCommand::Rebuild => {
            let report = app
                .indexer
                .index_projects(None, |_, _| {})
                .await
                .context("re-indexing failed")?;
            serde_json::to_value(report)?
        }
        IndexCommand::Sync { repair } => {
            let report = crate::index::sync::check_all(&app.indexer, &app.index, *repair)
                .await
                .context("sync check failed")?;
            serde_json::to_value(report)?
        }
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    let index = app.index.clone();
    tokio::task::spawn_blocking(move || index.close()).await?;
    Ok(())
}
