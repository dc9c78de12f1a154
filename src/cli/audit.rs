//! `trove audit verify`: walks every writer's chain of audit events straight on the
//! configured storage (the data directory or the bucket), without a running server, and
//! reports the first broken or missing link of each chain.

use std::sync::Arc;

use clap::Subcommand;

use crate::app::build_storage;
use crate::audit::verify::verify;
use crate::config::Settings;
use crate::telemetry::Metrics;

/// `trove audit ...` sub-commands.
#[derive(Debug, Clone, Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chains of the stored audit events; exits non-zero when one is broken.
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
            let report = verify(storage.as_ref()).await?;
            if *json {
                writeln!(output, "{}", serde_json::to_string_pretty(&report)?)?;
            } else {
                writeln!(
                    output,
                    "{} events in {} chains",
                    report.events, report.writers
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
