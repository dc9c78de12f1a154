//! `trove user add|list|set-role|free`: account administration straight on the configured
//! storage (the data directory or the bucket), without a running server — how the first admin
//! is made. Every change is written to the audit log like the API's mutations (a `pending`
//! event before, its completion after), with the actor `cli` of kind `system`.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::json;

use crate::app::{build_auth, build_storage};
use crate::audit::event::redact;
use crate::audit::sink::AuditSink;
use crate::audit::{ActorKind, AuditEvent, Outcome};
use crate::auth::service::AccountChange;
use crate::auth::store::TombstoneKind;
use crate::config::Settings;
use crate::permissions::{ProfileLoader, Role};
use crate::storage::ObjectStore;
use crate::telemetry::Metrics;

/// The actor of the events this command writes.
pub const CLI_ACTOR: &str = "cli";

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
    /// Free the name of a deleted account (or group, with --group): remove it from every
    /// profile and group, then allow it to be created again. Running servers re-index what
    /// changed at their next sync check.
    Free {
        /// The retired name.
        name: String,
        /// The name is a group's, not an account's.
        #[arg(long)]
        group: bool,
    },
}

/// Writes the audit events of the command's changes straight to storage.
struct CliAudit {
    sink: AuditSink,
}

impl CliAudit {
    /// An event of `action` on `resource` by the `cli` actor, with the operating-system user
    /// who ran the command when known.
    fn event(action: &str, resource: String) -> AuditEvent {
        let mut event = AuditEvent::new(action)
            .actor(CLI_ACTOR, ActorKind::System)
            .resource(resource);
        if let Ok(user) = std::env::var("USER") {
            event = event.detail("os_user", user);
        }
        event
    }

    /// Stores `event` as pending, runs `work` only if that succeeded, then stores the
    /// completion (ok, or error with its message).
    async fn mutation<T>(
        &self,
        mut event: AuditEvent,
        work: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        event.outcome = Outcome::Pending;
        event.status = None;
        redact(&mut event.details);
        let (mut stored, failed) = self.sink.append(vec![event]).await;
        if let Some((error, _)) = failed {
            anyhow::bail!("cannot write the audit event, nothing was changed: {error}");
        }
        let pending = stored.pop().context("the audit event was not stored")?;
        let result = work.await;
        let mut completion = AuditEvent::new(pending.action.clone())
            .actor(pending.actor.clone(), pending.actor_kind)
            .resource(pending.resource.clone());
        completion.completes = Some(pending.id.clone());
        match &result {
            Ok(_) => completion.outcome = Outcome::Ok,
            Err(error) => {
                completion.outcome = Outcome::Error;
                completion.details = json!({"error": format!("{error:#}")});
            }
        }
        completion.status = None;
        redact(&mut completion.details);
        if let (_, Some((error, _))) = self.sink.append(vec![completion]).await {
            // The change happened: say so, the event stays pending.
            eprintln!("warning: the audit completion could not be stored: {error}");
        }
        result
    }
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
    let auth = build_auth(&settings, storage.clone()).await?;
    let audit = CliAudit {
        sink: AuditSink::new(
            storage.clone(),
            crate::app::audit_checkpoint_key(&settings, true)?,
        ),
    };
    match command {
        UserCommand::Add { name, role } => {
            let role: Role = role.parse().map_err(|error| anyhow::anyhow!("{error}"))?;
            let mut password = String::new();
            input
                .read_line(&mut password)
                .context("cannot read the password from stdin")?;
            let password = password.trim_end_matches(['\n', '\r']);
            let event = CliAudit::event("user.create", format!("user:{name}"))
                .detail("role", role.to_string());
            audit
                .mutation(event, async {
                    auth.create_account(name, password, role, None)
                        .await
                        .map_err(|error| anyhow::anyhow!("cannot add user {name}: {error}"))
                })
                .await?;
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
            let event = CliAudit::event("user.role_change", format!("user:{name}"))
                .detail("role", role.to_string());
            audit
                .mutation(event, async {
                    auth.update_account(
                        name,
                        &AccountChange {
                            role: Some(role),
                            disabled: None,
                        },
                    )
                    .await
                    .map_err(|error| anyhow::anyhow!("cannot change the role of {name}: {error}"))
                })
                .await?;
            writeln!(output, "user {name} now has role {role}")?;
        }
        UserCommand::Free { name, group } => {
            let kind = if *group {
                TombstoneKind::Group
            } else {
                TombstoneKind::User
            };
            let event = CliAudit::event(
                &format!("{}.free", kind.as_str()),
                format!("{}:{name}", kind.as_str()),
            );
            let freed = audit
                .mutation(event, free(&auth, storage, kind, name))
                .await?;
            for location in &freed.profiles {
                writeln!(output, "removed from {}", location.key())?;
            }
            for group in &freed.groups {
                writeln!(output, "removed from group {group}")?;
            }
            writeln!(
                output,
                "{} {name} is free; running servers re-index what changed at their next sync check",
                kind.as_str()
            )?;
        }
    }
    output.flush()?;
    Ok(())
}

/// The body of `trove user free`.
async fn free(
    auth: &crate::auth::AuthService,
    storage: Arc<dyn ObjectStore>,
    kind: TombstoneKind,
    name: &str,
) -> anyhow::Result<crate::auth::service::FreedName> {
    auth.free_name(kind, name, &ProfileLoader::new(storage))
        .await
        .map_err(|error| anyhow::anyhow!("cannot free {} {name}: {error}", kind.as_str()))
}

/// Runs a `trove user` command on stdin and stdout.
pub async fn run_user_stdio(settings: &Settings, command: &UserCommand) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    run_user(settings, command, &mut input, &mut std::io::stdout()).await
}
