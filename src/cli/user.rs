//! `trove user add|list|set-role`: account administration straight on the configured storage
//! (the data directory or the bucket), without a running server — how the first admin is made.

use std::sync::Arc;

use anyhow::Context as _;
use clap::Subcommand;

use crate::app::{build_auth, build_storage};
use crate::auth::service::AccountChange;
use crate::config::Settings;
use crate::permissions::Role;
use crate::telemetry::Metrics;

/// `trove user ...` sub-commands.
#[derive(Debug, Clone, Subcommand)]
pub enum UserCommand {
    /// Create an account; the password is read from stdin (one line).
    Add {
        /// Username.
        name: String,
        /// Role: admin, reviewer, maintainer, developer or guest.
        #[arg(long, default_value = "maintainer")]
        role: String,
    },
    /// List the accounts.
    List,
    /// Change an account's role (the last admin can't be demoted).
    SetRole {
        /// Username.
        name: String,
        /// New role.
        role: String,
    },
}

/// Runs a `trove user` command with `settings`, reading a password from `input`.
pub async fn run_user(
    settings: &Settings,
    command: &UserCommand,
    input: &mut dyn std::io::BufRead,
    output: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    let (storage, _) = build_storage(settings, Arc::new(Metrics::new())).await?;
    // No bootstrap from the CLI: it acts only as told.
    let mut settings = settings.clone();
    settings.auth.bootstrap_admin = None;
    let auth = build_auth(&settings, storage).await?;
    match command {
        UserCommand::Add { name, role } => {
            let role: Role = role.parse().map_err(|error| anyhow::anyhow!("{error}"))?;
            let mut password = String::new();
            input
                .read_line(&mut password)
                .context("cannot read the password from stdin")?;
            let password = password.trim_end_matches(['\n', '\r']);
            auth.create_account(name, password, role, None)
                .await
                .map_err(|error| anyhow::anyhow!("cannot add user {name}: {error}"))?;
            writeln!(output, "user {name} added with role {role}")?;
        }
        UserCommand::List => {
            let accounts = auth
                .list_accounts()
                .await
                .map_err(|error| anyhow::anyhow!("cannot list users: {error}"))?;
            for account in accounts {
                writeln!(
                    output,
                    "{}\t{}{}",
                    account.username,
                    account.role,
                    if account.disabled { "\tdisabled" } else { "" }
                )?;
            }
        }
        UserCommand::SetRole { name, role } => {
            let role: Role = role.parse().map_err(|error| anyhow::anyhow!("{error}"))?;
            auth.update_account(
                name,
                &AccountChange {
                    role: Some(role),
                    disabled: None,
                },
            )
            .await
            .map_err(|error| anyhow::anyhow!("cannot change the role of {name}: {error}"))?;
            writeln!(output, "user {name} now has role {role}")?;
        }
    }
    output.flush()?;
    Ok(())
}

/// Runs a `trove user` command on stdin and stdout.
pub async fn run_user_stdio(settings: &Settings, command: &UserCommand) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    run_user(settings, command, &mut input, &mut std::io::stdout()).await
}
