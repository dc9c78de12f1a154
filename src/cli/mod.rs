//! The `trove` command line: `serve`, `check-config`, the administration commands working on
//! storage directly (`index`, `user`, `audit`), and the client commands talking to a running
//! server over HTTP (`login`, `whoami`, `logout`, `ls`, `show`, `members`, `push`, `pull`,
//! `search`, `perms`, `share`; see [`client`]), and `completions` for shells.

pub mod audit;
pub mod client;
pub mod index;
pub mod user;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::app::App;
use crate::config::{Overrides, ProcessEnv, Settings};

/// Trove: a secure, search-indexed registry for ML and research artifacts.
#[derive(Debug, Parser)]
#[command(name = "trove", version, about)]
pub struct Cli {
    /// Configuration file (default: ./trove.toml when present).
    #[arg(long, global = true, env = "TROVE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print data as JSON (client commands).
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only data and errors: no progress, notes or confirmations (client commands).
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags shared by the commands that load the service configuration.
#[derive(Debug, Clone, Args, Default)]
pub struct ServiceFlags {
    /// Address to listen on (overrides TROVE_LISTEN).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Data directory (overrides TROVE_DATA_DIR).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// The sub-commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (embedded default: local storage and index under ./data).
    Serve(ServiceFlags),
    /// Validate the configuration and print it, secrets masked.
    CheckConfig(ServiceFlags),
    /// Rebuild or check the index against storage (run with the server stopped).
    Index {
        /// Service flags.
        #[command(flatten)]
        flags: ServiceFlags,
        /// What to do.
        #[command(subcommand)]
        command: index::IndexCommand,
    },
    /// Administer accounts directly in the configured storage.
    User {
        /// Service flags.
        #[command(flatten)]
        flags: ServiceFlags,
        /// What to do.
        #[command(subcommand)]
        command: user::UserCommand,
    },
    /// Audit log tools working directly on the configured storage.
    Audit {
        /// Service flags.
        #[command(flatten)]
        flags: ServiceFlags,
        /// What to do.
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Log in to a Trove server and store the access token (password prompted for on a
    /// terminal, else from --password-stdin or TROVE_PASSWORD).
    Login(client::login::LoginArgs),
    /// Show who you are logged in as: user, role, groups, server, token expiry.
    Whoami(client::login::SessionArgs),
    /// Revoke the stored token on its server and delete it.
    Logout(client::login::SessionArgs),
    /// List projects you can read, a project's versions (P) or a version's files (P@V).
    Ls(client::browse::LsArgs),
    /// Print one metadata document (project:path@version), pretty-printed.
    Show(client::browse::ShowArgs),
    /// Who can access a project, and through which grant (owners and admins).
    Members(client::browse::MembersArgs),
    /// Upload a directory as a new version of a project.
    Push(client::push::PushArgs),
    /// Download one file (project:path@version) or every file of a version (project@version).
    Pull(client::pull::PullArgs),
    /// Search what you may read; prints one id per line.
    Search(client::search::SearchArgs),
    /// Show or change a project's or version's permission profile.
    Perms {
        /// What to do.
        #[command(subcommand)]
        command: client::perms::PermsCommand,
    },
    /// Share a project read-only with a principal, or revoke the share.
    Share(client::share::ShareArgs),
    /// Print a shell completion script (e.g. `trove completions bash > /etc/bash_completion.d/trove`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

impl ServiceFlags {
    fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
        }
    }
}

fn load_settings(cli: &Cli, flags: &ServiceFlags) -> anyhow::Result<Settings> {
    Ok(Settings::load(
        cli.config.as_deref(),
        &ProcessEnv,
        &flags.overrides(),
    )?)
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    client::out::configure(cli.json, cli.quiet);
    match &cli.command {
        Command::Serve(flags) => serve(load_settings(&cli, flags)?).await,
        Command::CheckConfig(flags) => {
            let settings = load_settings(&cli, flags)?;
            client::out::line(settings.to_masked_toml().trim_end())?;
            client::out::line("# configuration is valid")
        }
        Command::Index { flags, command } => {
            index::run_index(load_settings(&cli, flags)?, command).await
        }
        Command::User { flags, command } => {
            let settings = load_settings(&cli, flags)?;
            user::run_user_stdio(&settings, command).await
        }
        Command::Audit { flags, command } => {
            let settings = load_settings(&cli, flags)?;
            audit::run_audit(&settings, command, &mut std::io::stdout()).await
        }
        Command::Login(args) => client::login::run_login(args).await,
        Command::Whoami(args) => client::login::run_whoami(args).await,
        Command::Logout(args) => client::login::run_logout(args).await,
        Command::Ls(args) => client::browse::run_ls(args).await,
        Command::Show(args) => client::browse::run_show(args).await,
        Command::Members(args) => client::browse::run_members(args).await,
        Command::Completions { shell } => completions(*shell),
        Command::Push(args) => client::push::run_push(args).await,
        Command::Pull(args) => client::pull::run_pull(args).await,
        Command::Search(args) => client::search::run_search(args).await,
        Command::Perms { command } => client::perms::run_perms(command).await,
        Command::Share(args) => client::share::run_share(args).await,
    }
}

/// Prints the completion script of `shell`, generated from the command definitions.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    use clap::CommandFactory as _;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "trove", &mut script);
    client::out::line(String::from_utf8_lossy(&script).trim_end())
}

/// Starts the service and serves until Ctrl-C / SIGTERM.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    crate::telemetry::init_tracing(&settings);
    let listen = settings.listen;
    let state = App::build(settings).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (TROVE_LISTEN)"))?;
    tracing::info!(
        address = %listener.local_addr()?,
        storage = %state.storage.kind(),
        data_dir = %state.settings.data_dir.display(),
        "trove is listening"
    );
    if let Err(error) = state.check_storage().await {
        tracing::warn!(%error, "storage is not reachable yet; requests needing it answer 503 until it is");
    }
    let metrics_server = match state.settings.metrics_listen {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} (TROVE_METRICS_LISTEN)"))?;
            tracing::info!(address = %listener.local_addr()?, "metrics are served on their own listener");
            let state = state.clone();
            Some(tokio::spawn(async move {
                if let Err(error) = crate::api::system::serve_metrics(listener, state).await {
                    tracing::error!(%error, "the metrics listener stopped");
                }
            }))
        }
        None => None,
    };
    let follower = crate::jobs::follow::start(&state).await;
    state.reconcile_in_background();
    let scheduler = crate::jobs::schedule::start(state.clone()).await?;
    let expiries = crate::jobs::schedule::spawn_expiry_reindexer(state.clone());
    crate::api::serve(listener, state.clone(), crate::api::shutdown_signal()).await?;
    if let Some(metrics_server) = metrics_server {
        // Nothing to drain there: scrapes are read-only.
        metrics_server.abort();
    }
    // The background loops stop before the index closes; a re-index one of them drops
    // unfinished marks the index as possibly incomplete (see `App::close`).
    if let Some(mut scheduler) = scheduler
        && let Err(error) = scheduler.shutdown().await
    {
        tracing::warn!(%error, "scheduler not stopped cleanly");
    }
    for task in [follower, Some(expiries)].into_iter().flatten() {
        task.abort();
        let _ = task.await;
    }
    if state.close().await.is_ok() {
        tracing::info!("index closed cleanly: the next start replays the change feed before reads");
    }
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_definitions_are_consistent() {
        use clap::CommandFactory as _;
        super::Cli::command().debug_assert();
    }
}
