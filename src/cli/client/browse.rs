//! Browsing what you may read: `trove ls` (projects, paged through `next`), `trove ls P`
//! (versions with state, stable mark and latest), `trove ls P@V` (files with size and
//! checksums), `trove show ID` (one metadata document, pretty-printed) and `trove members P`
//! (who can access a project and through which grant; owners and admins only).
//!
//! Every one prints aligned columns, or JSON with `--json`.

use anyhow::Context as _;
use clap::Args;
use serde_json::{Value, json};

use super::http::ApiClient;
use super::push::parse_project_id;
use super::{ServerArgs, connect, human_bytes, out};
use crate::model::id::ArtifactId;

/// Projects asked for per page.
const PAGE_SIZE: &str = "500";
/// Most pages followed (a loop guard).
const MAX_PAGES: usize = 1000;

/// What `trove ls` lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LsTarget {
    /// A project's versions.
    Project(String),
    /// A version's files.
    Version(String, String),
}

/// clap parser of `PROJECT` or `PROJECT@VERSION`.
///
/// # Errors
/// When a part breaks the naming rules.
pub fn parse_ls_target(value: &str) -> Result<LsTarget, String> {
    if value.contains('@') {
        let (project, version) = super::parse_project_version(value)?;
        return Ok(LsTarget::Version(project, version));
    }
    parse_project_id(value).map(LsTarget::Project)
}

/// `trove ls` arguments.
#[derive(Debug, Clone, Args)]
pub struct LsArgs {
    /// Nothing (projects), `PROJECT` (its versions) or `PROJECT@VERSION` (its files;
    /// `latest` allowed).
    #[arg(value_name = "PROJECT[@VERSION]", value_parser = parse_ls_target)]
    pub target: Option<LsTarget>,
    /// Server and credentials.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `trove show` arguments.
#[derive(Debug, Clone, Args)]
pub struct ShowArgs {
    /// ArtifactDB id `project:path@version` (`@latest` works).
    #[arg(value_name = "ID", value_parser = parse_id)]
    pub id: String,
    /// Follow a link to the document it points to.
    #[arg(long)]
    pub follow_link: bool,
    /// Server and credentials.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `trove members` arguments.
#[derive(Debug, Clone, Args)]
pub struct MembersArgs {
    /// Project id.
    #[arg(value_parser = parse_project_id)]
    pub project: String,
    /// Server and credentials.
    #[command(flatten)]
    pub server: ServerArgs,
}

fn parse_id(value: &str) -> Result<String, String> {
    ArtifactId::parse(value)
        .map(|_| value.to_owned())
        .map_err(|error| error.to_string())
}

/// Prints rows as columns padded to the widest cell (the last column is not padded).
fn table(rows: &[Vec<String>]) -> anyhow::Result<()> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            rows.iter()
                .filter_map(|row| row.get(column))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate() {
            if column + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                let pad = widths[column] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out::line(line.trim_end())?;
    }
    Ok(())
}

/// Runs `trove ls`.
///
/// # Errors
/// When the server refuses or cannot be reached.
pub async fn run_ls(args: &LsArgs) -> anyhow::Result<()> {
    let client = connect(&args.server)?;
    match &args.target {
        None => list_projects(&client).await,
        Some(LsTarget::Project(project)) => list_versions(&client, project).await,
        Some(LsTarget::Version(project, version)) => list_files(&client, project, version).await,
    }
}

async fn list_projects(client: &ApiClient) -> anyhow::Result<()> {
    let mut url = client.url(&["projects"]);
    url.query_pairs_mut().append_pair("size", PAGE_SIZE);
    let mut projects = Vec::new();
    let mut total = None;
    for _ in 0..MAX_PAGES {
        let response = client
            .send(client.request(reqwest::Method::GET, url.clone()))
            .await
            .context("cannot list the projects")?;
        let page = super::http::read_json(response).await?;
        total = page["total"].as_u64().or(total);
        projects.extend(page["results"].as_array().cloned().unwrap_or_default());
        // `next` is a path under the server (`/scroll/{cursor}`).
        match page["next"].as_str() {
            Some(next) => {
                let segments: Vec<&str> = next.trim_start_matches('/').split('/').collect();
                url = client.url(&segments);
            }
            None => break,
        }
    }
    if let Some(total) = total
        && total > projects.len() as u64
    {
        out::note(&format!(
            "showing {} of {total} projects (the server gave no next page)",
            projects.len()
        ));
    }
    if out::json_mode() {
        return out::json(&Value::Array(projects));
    }
    let mut rows = vec![vec![
        "PROJECT".to_owned(),
        "TYPE".to_owned(),
        "VERSIONS".to_owned(),
        "LATEST".to_owned(),
        "TITLE".to_owned(),
    ]];
    for project in &projects {
        rows.push(vec![
            text(&project["project_id"]),
            text(&project["type"]),
            project["aggs"].as_array().map_or(0, Vec::len).to_string(),
            text(&project["latest"]["_extra.version"]),
            text(&project["title"]),
        ]);
    }
    if projects.is_empty() {
        out::note("no project you can read");
        return Ok(());
    }
    table(&rows)
}

async fn list_versions(client: &ApiClient, project: &str) -> anyhow::Result<()> {
    let listing = client
        .get_json(&["projects", project, "versions"])
        .await
        .with_context(|| format!("cannot list the versions of {project}"))?;
    let latest = listing["latest"]["_extra.version"]
        .as_str()
        .map(str::to_owned);
    let names: Vec<String> = listing["aggs"]
        .as_array()
        .map(|versions| {
            versions
                .iter()
                .filter_map(|entry| entry["_extra.version"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut versions = Vec::with_capacity(names.len());
    for name in &names {
        // A version may vanish between the two requests: it is left out.
        if let Ok(record) = client
            .get_json(&["projects", project, "version", name])
            .await
        {
            versions.push(json!({
                "version": name,
                "status": record["status"],
                "state": record["state"],
                "stable": record["stable"].as_bool().unwrap_or(false),
                "latest": latest.as_deref() == Some(name.as_str()),
                "revision": record["revision"],
                "created_at": record["created_at"],
            }));
        }
    }
    if out::json_mode() {
        return out::json(&json!({
            "project_id": project,
            "latest": latest,
            "versions": versions,
        }));
    }
    if versions.is_empty() {
        out::note(&format!("{project} has no version you can read"));
        return Ok(());
    }
    let mut rows = vec![vec![
        "VERSION".to_owned(),
        "STATUS".to_owned(),
        "STATE".to_owned(),
        "REVISION".to_owned(),
        "MARKS".to_owned(),
    ]];
    for version in &versions {
        let mut marks = Vec::new();
        if version["stable"] == true {
            marks.push("stable");
        }
        if version["latest"] == true {
            marks.push("latest");
        }
        rows.push(vec![
            text(&version["version"]),
            text(&version["status"]),
            text(&version["state"]),
            text(&version["revision"]),
            marks.join(","),
        ]);
    }
    table(&rows)
}

async fn list_files(client: &ApiClient, project: &str, version: &str) -> anyhow::Result<()> {
    let listing = client
        .get_json(&["projects", project, "version", version, "files"])
        .await
        .with_context(|| format!("cannot list the files of {project}@{version}"))?;
    if out::json_mode() {
        return out::json(&listing);
    }
    let files = listing["files"].as_array().cloned().unwrap_or_default();
    if files.is_empty() {
        out::note(&format!("{project}@{version} holds no files"));
        return Ok(());
    }
    let mut rows = vec![vec![
        "PATH".to_owned(),
        "SIZE".to_owned(),
        "MD5".to_owned(),
        "SHA256".to_owned(),
    ]];
    for file in &files {
        rows.push(vec![
            text(&file["path"]),
            file["size"]
                .as_u64()
                .map_or_else(|| "-".to_owned(), human_bytes),
            text(&file["md5sum"]),
            text(&file["sha256"]),
        ]);
    }
    table(&rows)
}

/// Runs `trove show`.
///
/// # Errors
/// When the server refuses or cannot be reached.
pub async fn run_show(args: &ShowArgs) -> anyhow::Result<()> {
    let client = connect(&args.server)?;
    let mut url = client.url(&["files", &args.id, "metadata"]);
    if args.follow_link {
        url.query_pairs_mut().append_pair("follow_link", "true");
    }
    let response = client
        .send(client.request(reqwest::Method::GET, url))
        .await
        .with_context(|| format!("cannot read the metadata of {}", args.id))?;
    let document = super::http::read_json(response).await?;
    out::json(&document)
}

/// Runs `trove members`.
///
/// # Errors
/// When the server refuses (owners and admins only: others get exit 3) or cannot be reached.
pub async fn run_members(args: &MembersArgs) -> anyhow::Result<()> {
    let client = connect(&args.server)?;
    let project = args.project.as_str();
    let list = client
        .get_json(&["projects", project, "members"])
        .await
        .with_context(|| {
            format!("cannot list the members of {project} (owners and admins only)")
        })?;
    if out::json_mode() {
        return out::json(&list);
    }
    let mut rows = vec![vec![
        "PRINCIPAL".to_owned(),
        "LEVEL".to_owned(),
        "THROUGH".to_owned(),
    ]];
    for member in list["members"].as_array().cloned().unwrap_or_default() {
        let grants = member["grants"]
            .as_array()
            .map(|grants| {
                grants
                    .iter()
                    .map(|grant| {
                        let until = grant["expires_at"]
                            .as_str()
                            .map_or_else(String::new, |at| format!(" until {at}"));
                        format!(
                            "{} ({}){until}",
                            text(&grant["source"]),
                            text(&grant["level"])
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        rows.push(vec![
            text(&member["principal"]),
            text(&member["level"]),
            grants,
        ]);
    }
    table(&rows)?;
    let access = &list["access"];
    out::human(&format!(
        "read: {}, download: {}, write: {}",
        text(&access["read_access"]),
        text(&access["download_access"]),
        text(&access["write_access"])
    ))
}

/// A JSON value as a cell: strings bare, null as `-`.
fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_targets_are_a_project_or_a_version() {
        assert_eq!(
            parse_ls_target("bert").unwrap(),
            LsTarget::Project("bert".to_owned())
        );
        assert_eq!(
            parse_ls_target("bert@latest").unwrap(),
            LsTarget::Version("bert".to_owned(), "latest".to_owned())
        );
        assert!(parse_ls_target("../x").is_err());
        assert!(parse_ls_target("bert@").is_err());
    }
}
