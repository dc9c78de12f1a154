//! `trove push DIR --project P --version V`: uploads a directory as a new version.
//!
//! Steps: list DIR recursively (relative `/` paths; symlinks are followed while they stay
//! inside DIR, those leaving it are skipped) and check every path against the naming rules
//! before any request; create the project when `--create-project` asks for it and it is
//! absent (`POST /projects`); create the version (`POST /projects/{p}/versions`); for each
//! file, hash it once (md5 and sha256, on the blocking pool) then stream it from disk with
//! `PUT /projects/{p}/version/{v}/files/{path}` and `Content-MD5` / `X-Checksum-Sha256`, so the
//! server rejects a file that changed in between; finally `PUT .../complete` and poll the
//! indexing job to its end.

use std::collections::HashSet;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use base64::Engine as _;
use clap::Args;
use futures::TryStreamExt as _;
use md5::Digest as _;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use super::http::{ApiClient, ApiFailure, read_json};
use super::progress::Meter;
use super::{ServerArgs, connect, human_bytes};
use crate::model::names;
use crate::model::records::ProjectType;

/// Size of the read buffer when hashing and of the chunks streamed.
const CHUNK: usize = 256 * 1024;

/// `trove push` arguments.
#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    /// Directory whose files (recursively) become the version's files.
    pub dir: PathBuf,
    /// Project id.
    #[arg(long, value_parser = parse_project_id)]
    pub project: String,
    /// Version to create (it must not exist yet).
    #[arg(long, value_parser = parse_version)]
    pub version: String,
    /// Create the project first when it does not exist (private; you become its owner).
    #[arg(long)]
    pub create_project: bool,
    /// Title of a project created by --create-project (default: the project id).
    #[arg(long)]
    pub title: Option<String>,
    /// Type of a project created by --create-project: MODEL, DATASET, EMBEDDING, RUN, PAPER
    /// or OTHER.
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_project_type)]
    pub project_type: Option<ProjectType>,
    /// Changelog of the new version.
    #[arg(long)]
    pub changelog: Option<String>,
    /// Server and credentials.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// clap parser of a project id (naming rules of SPEC §1).
///
/// # Errors
/// The naming rule broken.
pub fn parse_project_id(value: &str) -> Result<String, String> {
    names::validate_project_id(value).map_err(|error| error.to_string())?;
    Ok(value.to_owned())
}

/// clap parser of a version name (`latest` is not a name).
///
/// # Errors
/// The naming rule broken.
pub fn parse_version(value: &str) -> Result<String, String> {
    names::validate_version(value).map_err(|error| error.to_string())?;
    Ok(value.to_owned())
}

/// clap parser of a project type, any case.
///
/// # Errors
/// When it is not one of the types.
pub fn parse_project_type(value: &str) -> Result<ProjectType, String> {
    serde_json::from_value(Value::String(value.to_ascii_uppercase())).map_err(|_| {
        format!("unknown type {value:?}: one of MODEL, DATASET, EMBEDDING, RUN, PAPER, OTHER")
    })
}

/// A file found under the pushed directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    /// Path inside the version (`/`-separated, relative).
    pub relative: String,
    /// Where to read it.
    pub absolute: PathBuf,
}

/// Lists the files under `root` (sorted by relative path). Symlinks are followed when their
/// target lies inside `root` and skipped (with a note on stderr) when it does not; a
/// directory reached twice through symlinks is listed once; sockets, FIFOs and devices are
/// skipped with a note.
///
/// # Errors
/// When `root` is not a readable directory, or a name is not UTF-8.
pub fn collect_files(root: &Path) -> anyhow::Result<Vec<LocalFile>> {
    let root_canonical = std::fs::canonicalize(root)
        .with_context(|| format!("cannot open the directory {}", root.display()))?;
    anyhow::ensure!(
        root_canonical.is_dir(),
        "{} is not a directory",
        root.display()
    );
    let mut files = Vec::new();
    let mut visited = HashSet::from([root_canonical.clone()]);
    // (directory to read, its relative path)
    let mut pending = vec![(root.to_path_buf(), String::new())];
    while let Some((directory, prefix)) = pending.pop() {
        let entries = std::fs::read_dir(&directory)
            .with_context(|| format!("cannot list {}", directory.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {}", directory.display()))?;
            let name = entry.file_name();
            let name = name.to_str().with_context(|| {
                format!("{} has a name that is not UTF-8", entry.path().display())
            })?;
            let relative = if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}/{name}")
            };
            let path = entry.path();
            let file_type = entry
                .file_type()
                .with_context(|| format!("cannot inspect {}", path.display()))?;
            let metadata = if file_type.is_symlink() {
                let Ok(target) = std::fs::canonicalize(&path) else {
                    eprintln!("trove: skipping {relative}: dangling symlink");
                    continue;
                };
                if !target.starts_with(&root_canonical) {
                    eprintln!("trove: skipping {relative}: symlink leading outside the directory");
                    continue;
                }
                std::fs::metadata(&target)
                    .with_context(|| format!("cannot inspect {}", path.display()))?
            } else {
                entry
                    .metadata()
                    .with_context(|| format!("cannot inspect {}", path.display()))?
            };
            if metadata.is_dir() {
                let canonical = std::fs::canonicalize(&path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                if visited.insert(canonical) {
                    pending.push((path, relative));
                } else {
                    eprintln!(
                        "trove: skipping {relative}: directory already pushed (symlink loop)"
                    );
                }
            } else if metadata.is_file() {
                files.push(LocalFile {
                    relative,
                    absolute: path,
                });
            } else {
                eprintln!("trove: skipping {relative}: not a regular file");
            }
        }
    }
    files.sort_by(|left, right| left.relative.cmp(&right.relative));
    Ok(files)
}

/// Digests of a local file, read once.
struct Digests {
    size: u64,
    md5: [u8; 16],
    sha256_hex: String,
}

fn hash_file(path: &Path) -> std::io::Result<Digests> {
    let mut file = std::fs::File::open(path)?;
    let mut md5 = md5::Md5::new();
    let mut sha256 = sha2::Sha256::new();
    let mut size = 0_u64;
    let mut buffer = vec![0_u8; CHUNK];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        md5.update(&buffer[..read]);
        sha256.update(&buffer[..read]);
        size += read as u64;
    }
    Ok(Digests {
        size,
        md5: md5.finalize().into(),
        sha256_hex: hex::encode(sha256.finalize()),
    })
}

/// Runs `trove push`.
///
/// # Errors
/// When the directory cannot be read, a path is invalid, or the server refuses a step.
pub async fn run_push(args: &PushArgs) -> anyhow::Result<()> {
    let files = collect_files(&args.dir)?;
    anyhow::ensure!(
        !files.is_empty(),
        "{} holds no files to push",
        args.dir.display()
    );
    for file in &files {
        names::validate_path(&file.relative)
            .map_err(|error| anyhow::anyhow!("cannot push {}: {error}", file.absolute.display()))?;
    }
    let client = connect(&args.server)?;
    let (project, version) = (args.project.as_str(), args.version.as_str());
    if args.create_project {
        ensure_project(&client, args).await?;
    }
    let mut body = json!({"version": version});
    if let Some(changelog) = &args.changelog {
        body["changelog"] = json!(changelog);
    }
    client
        .json(
            Method::POST,
            &["projects", project, "versions"],
            Some(&body),
        )
        .await
        .with_context(|| format!("cannot create version {project}@{version}"))?;

    let count = files.len();
    let mut total = 0_u64;
    for (index, file) in files.iter().enumerate() {
        let label = format!("[{}/{count}] {}", index + 1, file.relative);
        total += upload_file(&client, project, version, file, label)
            .await
            .with_context(|| {
                format!(
                    "cannot upload {}; version {project}@{version} stays open (run the push again \
                     under another version, or delete this one)",
                    file.relative
                )
            })?;
    }

    let accepted = client
        .json(
            Method::PUT,
            &["projects", project, "version", version, "complete"],
            None,
        )
        .await
        .with_context(|| format!("cannot complete version {project}@{version}"))?;
    client
        .wait_for_job(&accepted)
        .await
        .with_context(|| format!("version {project}@{version} was completed but not indexed"))?;
    let record = client
        .get_json(&["projects", project, "version", version])
        .await
        .ok();
    let revision = record
        .as_ref()
        .and_then(|record| record["revision"].as_str())
        .map_or_else(String::new, |revision| format!(", revision {revision}"));
    println!(
        "pushed {count} file{} ({}) to {project}@{version}{revision}",
        if count == 1 { "" } else { "s" },
        human_bytes(total)
    );
    Ok(())
}

/// Creates the project unless it exists (a concurrent creator winning is fine).
async fn ensure_project(client: &ApiClient, args: &PushArgs) -> anyhow::Result<()> {
    let project = args.project.as_str();
    match client.get_json(&["projects", project]).await {
        Ok(_) => return Ok(()),
        Err(error)
            if error
                .downcast_ref::<ApiFailure>()
                .is_some_and(|failure| failure.status == StatusCode::NOT_FOUND) => {}
        Err(error) => return Err(error.context(format!("cannot look up project {project}"))),
    }
    let body = json!({
        "project_id": project,
        "title": args.title.clone().unwrap_or_else(|| project.to_owned()),
        "type": args.project_type.unwrap_or_default(),
    });
    match client.json(Method::POST, &["projects"], Some(&body)).await {
        Ok(_) => {
            eprintln!("trove: created project {project}");
            Ok(())
        }
        Err(error)
            if error
                .downcast_ref::<ApiFailure>()
                .is_some_and(|failure| failure.status == StatusCode::CONFLICT) =>
        {
            Ok(())
        }
        Err(error) => Err(error.context(format!("cannot create project {project}"))),
    }
}

/// Hashes then streams one file; answers its size.
async fn upload_file(
    client: &ApiClient,
    project: &str,
    version: &str,
    file: &LocalFile,
    label: String,
) -> anyhow::Result<u64> {
    let path = file.absolute.clone();
    let digests = tokio::task::spawn_blocking(move || hash_file(&path))
        .await?
        .with_context(|| format!("cannot read {}", file.absolute.display()))?;
    let reader = tokio::fs::File::open(&file.absolute)
        .await
        .with_context(|| format!("cannot read {}", file.absolute.display()))?;
    let meter = Meter::on_stderr(label, Some(digests.size));
    let counter = meter.clone();
    let stream = tokio_util::io::ReaderStream::with_capacity(reader, CHUNK)
        .inspect_ok(move |chunk| counter.add(chunk.len() as u64));
    let mut segments = vec!["projects", project, "version", version, "files"];
    segments.extend(file.relative.split('/'));
    let mut request = client
        .request(Method::PUT, client.url(&segments))
        .header(header::CONTENT_LENGTH, digests.size)
        .header(
            "content-md5",
            base64::engine::general_purpose::STANDARD.encode(digests.md5),
        )
        .header("x-checksum-sha256", &digests.sha256_hex)
        .body(reqwest::Body::wrap_stream(stream));
    if file.relative.ends_with(".json") {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let outcome = match client.send(request).await {
        Ok(response) => read_json(response).await,
        Err(error) => Err(error),
    };
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(error) => {
            meter.abandon();
            return Err(error);
        }
    };
    anyhow::ensure!(
        outcome["md5sum"].as_str() == Some(hex::encode(digests.md5).as_str()),
        "the server stored a different md5 than the file's"
    );
    meter.finish("uploaded");
    Ok(digests.size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_parse_in_any_case() {
        assert_eq!(parse_project_type("model").unwrap(), ProjectType::Model);
        assert_eq!(parse_project_type("DATASET").unwrap(), ProjectType::Dataset);
        assert!(parse_project_type("spreadsheet").is_err());
    }

    #[test]
    fn names_are_checked_before_any_request() {
        assert!(parse_project_id("bert-base").is_ok());
        assert!(parse_project_id("../etc").is_err());
        assert!(parse_version("v1").is_ok());
        assert!(parse_version("latest").is_err());
    }
}
