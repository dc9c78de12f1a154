//! `trove search QUERY [--size N] [--json]`: `GET /search`, printing one hit per line (its
//! `_extra.id`, the ArtifactDB id `project:path@version`) or the server's JSON answer with `--json`.

use anyhow::Context as _;
use clap::Args;
use reqwest::Method;

use super::http::read_json;
use super::{ServerArgs, connect, out};

/// `trove search` arguments.
#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    /// Query in tantivy syntax (`title:bert`, `_extra.project_id:p`, `AND`/`OR`/`NOT`, `*`).
    pub query: String,
    /// Number of hits (1 to 500).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=500))]
    pub size: u16,
    /// Server and credentials.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Runs `trove search`.
///
/// # Errors
/// When the server refuses the query or cannot be reached.
pub async fn run_search(args: &SearchArgs) -> anyhow::Result<()> {
    let client = connect(&args.server)?;
    let mut url = client.url(&["search"]);
    url.query_pairs_mut()
        .append_pair("q", &args.query)
        .append_pair("size", &args.size.to_string());
    let response = client
        .send(client.request(Method::GET, url))
        .await
        .context("search failed")?;
    let answer = read_json(response).await?;
    if out::json_mode() {
        return out::json(&answer);
    }
    let results = answer["results"].as_array().cloned().unwrap_or_default();
    for hit in &results {
        if let Some(id) = hit["_extra"]["id"].as_str() {
            out::line(id)?;
        }
    }
    if let Some(total) = answer["total"].as_u64()
        && total > results.len() as u64
    {
        out::note(&format!(
            "showing {} of {total} hits (--size N for more, --json for the next cursor)",
            results.len()
        ));
    }
    Ok(())
}
