//! `trove audit verify`: walks every writer's chain of audit events straight on the
//! configured storage (the data directory or the bucket), without a running server, and
//! reports the first broken or missing link of each chain, and each chain that does not match
//! its last signed checkpoint (a deleted tail, a rewritten and re-hashed chain, a forged or
//! deleted checkpoint). The checkpoint key is `TROVE_AUDIT_CHECKPOINT_SECRET[_FILE]` or the
//! data directory's `secrets/audit-checkpoint.key`.

use std::sync::Arc;

use clap::Subcommand;

use crate::app::{audit_checkpoint_key, build_storage};
use crate::audit::verify::verify_anchored;
use crate::config::Settings;
use crate::telemetry::Metrics;

/// `trove audit ...` sub-commands.
#[derive(Debug, Clone, Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chains of the stored audit events against their signed checkpoints;
    /// exits non-zero when one is broken, truncated or rewritten.
    Verify {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `trove audit` command, writing the report to `output`; an error when a chain is
/// broken.
pub async fn run_audit(
    settings: &Settings,
    command: &AuditCommand,
    output: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    let (storage, _) = build_storage(settings, Arc::new(Metrics::new())).await?;
    match command {
        AuditCommand::Verify { json } => {
            let key = audit_checkpoint_key(settings, false)?;
            let report = verify_anchored(storage.as_ref(), &key).await?;
            if *json {
                writeln!(output, "{}", serde_json::to_string_pretty(&report)?)?;
            } else {
                writeln!(
                    output,
                    "{} events in {} chains, {} checkpoints",
                    report.events, report.writers, report.checkpoints
                )?;
                for problem in &report.problems {
                    writeln!(
                        output,
                        "{:?} at {} (writer {}, seq {}): {}",
                        problem.kind, problem.key, problem.writer, problem.seq, problem.message
                    )?;
                }
                if report.is_ok() {
                    writeln!(output, "audit log intact")?;
                }
            }
            output.flush()?;
            anyhow::ensure!(
                report.is_ok(),
                "audit log verification failed: {} broken chain(s)",
                report.problems.len()
            );
        }
    }
    Ok(())
}
