//! `trove search QUERY [--kind all|project|file] [--size N] [--all] [--json]`: `GET /search`,
//! printing one hit per line — its kind, its id (the project id, or the ArtifactDB id
//! `project:path@version` of a file) and its title, tab-separated — or the server's JSON
//! answer with `--json`. `--all` follows the cursor through every page.

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
    /// Number of hits per page (1 to 500).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=500))]
    pub size: u16,
    /// What to find: projects, files or both.
    #[arg(long, default_value = "all", value_parser = ["all", "project", "file"])]
    pub kind: String,
    /// Complete the last word (as a search box does).
    #[arg(long)]
    pub prefix: bool,
    /// Every page, following the cursor (otherwise the first page).
    #[arg(long)]
    pub all: bool,
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
        .append_pair("size", &args.size.to_string())
        .append_pair("kind", &args.kind)
        .append_pair("prefix", if args.prefix { "true" } else { "false" });
    let mut shown = 0_u64;
    loop {
        let response = client
            .send(client.request(Method::GET, url.clone()))
            .await
            .context("search failed")?;
        let answer = read_json(response).await?;
        if out::json_mode() {
            out::json(&answer)?;
        } else {
            let results = answer["results"].as_array().cloned().unwrap_or_default();
            for hit in &results {
                out::line(&hit_line(hit))?;
            }
            shown += results.len() as u64;
        }
        let next = answer["next"]
            .as_str()
            .filter(|_| args.all)
            .and_then(|next| next.strip_prefix("/scroll/"));
        match next {
            Some(token) => url = client.url(&["scroll", token]),
            None => {
                if let Some(total) = answer["total"].as_u64()
                    && total > shown
                    && !out::json_mode()
                {
                    out::note(&format!(
                        "showing {shown} of {total} hits (--all for every page, --json for the cursor)"
                    ));
                }
                return Ok(());
            }
        }
    }
}

/// `kind<TAB>id<TAB>title` of one hit (a file's title is its document's `title`, else its
/// path).
fn hit_line(hit: &serde_json::Value) -> String {
    let extra = &hit["_extra"];
    let kind = extra["kind"].as_str().unwrap_or("file");
    let id = extra["id"].as_str().unwrap_or_default();
    let title = hit["title"]
        .as_str()
        .or_else(|| extra["path"].as_str())
        .unwrap_or_default();
    // One hit, one line, whatever the metadata holds.
    let clean = |text: &str| text.replace(['\t', '\n', '\r'], " ");
    format!("{kind}\t{}\t{}", clean(id), clean(title))
}
