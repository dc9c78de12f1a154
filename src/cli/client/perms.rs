//! `trove perms show P [--version V]` and `trove perms set P [--version V] JSON`: read a
//! project's or version's permission profile, or merge a partial profile into it (`PUT`,
//! ArtifactDB's partial update; the server answers `202` with the re-indexing job, printed,
//! and waited for with `--wait`).

use std::io::Read as _;

use anyhow::Context as _;
use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

use super::push::{parse_project_id, parse_version};
use super::{ServerArgs, connect, out, usage_error};

/// `trove perms ...` sub-commands.
#[derive(Debug, Clone, Subcommand)]
pub enum PermsCommand {
    /// Print the profile (the stored one with defaults filled in, else the resolved one).
    Show {
        /// Project id.
        #[arg(value_parser = parse_project_id)]
        project: String,
        /// A version of the project, for the version's profile.
        #[arg(long, value_parser = parse_version)]
        version: Option<String>,
        /// Server and credentials.
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Merge a partial profile (a JSON object, or `-` to read it from stdin) into the
    /// stored one, e.g. '{"viewers": ["bob", "group:ml"], "read_access": "viewers"}'.
    Set {
        /// Project id.
        #[arg(value_parser = parse_project_id)]
        project: String,
        /// A version of the project, for the version's profile.
        #[arg(long, value_parser = parse_version)]
        version: Option<String>,
        /// The partial profile (JSON object), or `-` for stdin.
        profile: String,
        /// Wait until the re-indexing job has finished.
        #[arg(long)]
        wait: bool,
        /// Server and credentials.
        #[command(flatten)]
        server: ServerArgs,
    },
}

fn segments<'a>(project: &'a str, version: Option<&'a str>) -> Vec<&'a str> {
    match version {
        Some(version) => vec!["projects", project, "version", version, "permissions"],
        None => vec!["projects", project, "permissions"],
    }
}

fn target(project: &str, version: Option<&str>) -> String {
    version.map_or_else(
        || format!("project {project}"),
        |version| format!("version {project}@{version}"),
    )
}

/// Runs `trove perms`.
///
/// # Errors
/// When the server refuses or cannot be reached.
pub async fn run_perms(command: &PermsCommand) -> anyhow::Result<()> {
    match command {
        PermsCommand::Show {
            project,
            version,
            server,
        } => {
            let client = connect(server)?;
            let profile = client
                .get_json(&segments(project, version.as_deref()))
                .await
                .with_context(|| {
                    format!(
                        "cannot read the permissions of {}",
                        target(project, version.as_deref())
                    )
                })?;
            out::json(&profile)
        }
        PermsCommand::Set {
            project,
            version,
            profile,
            wait,
            server,
        } => {
            let profile = parse_profile(profile)?;
            let client = connect(server)?;
            let what = target(project, version.as_deref());
            let job = client
                .json(
                    Method::PUT,
                    &segments(project, version.as_deref()),
                    Some(&profile),
                )
                .await
                .with_context(|| format!("cannot change the permissions of {what}"))?;
            let job = if *wait {
                client.wait_for_job(&job).await.with_context(|| {
                    format!("the permissions of {what} changed but were not re-indexed")
                })?
            } else {
                job
            };
            out::json(&job)
        }
    }
}

/// The profile argument as a JSON object (`-` reads stdin); a usage error otherwise.
fn parse_profile(argument: &str) -> anyhow::Result<Value> {
    let text = if argument == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the profile from stdin")?;
        text
    } else {
        argument.to_owned()
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(object)) => Ok(Value::Object(object)),
        Ok(_) => usage_error("the profile must be a JSON object, e.g. '{\"viewers\": [\"bob\"]}'"),
        Err(error) => usage_error(&format!("the profile is not valid JSON: {error}")),
    }
}
