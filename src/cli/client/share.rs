//! `trove share P PRINCIPAL [--expires-at RFC3339]` (`POST /projects/{p}/share`: a read-only
//! grant — metadata and downloads — optionally expiring) and `trove share P PRINCIPAL
//! --revoke` (`DELETE /projects/{p}/share/{principal}`).

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::Args;
use reqwest::Method;
use serde_json::json;

use super::push::parse_project_id;
use super::{ServerArgs, connect, out};

/// `trove share` arguments.
#[derive(Debug, Clone, Args)]
pub struct ShareArgs {
    /// Project id.
    #[arg(value_parser = parse_project_id)]
    pub project: String,
    /// Who to share with: a username, `group:<name>`, `machine:<name>` or a `CN=...` group.
    pub principal: String,
    /// When the share ends (RFC 3339, e.g. 2026-12-31T00:00:00Z); never when absent.
    #[arg(long, value_parser = parse_time, conflicts_with = "revoke")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Remove the share instead.
    #[arg(long)]
    pub revoke: bool,
    /// Server and credentials.
    #[command(flatten)]
    pub server: ServerArgs,
}

fn parse_time(value: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(value)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|error| format!("not an RFC 3339 time ({error}), e.g. 2026-12-31T00:00:00Z"))
}

/// Runs `trove share`.
///
/// # Errors
/// When the server refuses or cannot be reached.
pub async fn run_share(args: &ShareArgs) -> anyhow::Result<()> {
    let client = connect(&args.server)?;
    let (project, principal) = (args.project.as_str(), args.principal.as_str());
    if args.revoke {
        client
            .json(
                Method::DELETE,
                &["projects", project, "share", principal],
                None,
            )
            .await
            .with_context(|| format!("cannot revoke the share of {project} with {principal}"))?;
        if out::json_mode() {
            return out::json(
                &json!({"project_id": project, "principal": principal, "revoked": true}),
            );
        }
        return out::human(&format!("revoked the share of {project} with {principal}"));
    }
    let mut body = json!({"principal": principal});
    if let Some(at) = args.expires_at {
        body["expires_at"] = json!(at.to_rfc3339());
    }
    let answer = client
        .json(Method::POST, &["projects", project, "share"], Some(&body))
        .await
        .with_context(|| format!("cannot share {project} with {principal}"))?;
    let until = answer["expires_at"]
        .as_str()
        .map_or_else(String::new, |at| format!(" until {at}"));
    if out::json_mode() {
        return out::json(&answer);
    }
    out::human(&format!(
        "shared {project} read-only with {}{until}",
        answer["principal"].as_str().unwrap_or(principal)
    ))
}
