//! `trove push DIR --project P --version V`: uploads a directory as a new version, `--jobs`
//! files at once (default 4). `--resume` continues a push that failed (only the files the
//! open version does not hold with the same size and md5 are uploaded, then it is
//! completed); `--abort` ends one (an open version is deleted, an ArtifactDB upload aborted).
//!
//! Steps: list DIR recursively (relative `/` paths; symlinks are followed while they stay
//! inside DIR, those leaving it are skipped) and check every path against the naming rules
//! before any request; create the project when `--create-project` asks for it and it is
//! absent (`POST /projects`); create the version (`POST /projects/{p}/versions`); for each
//! file, hash it once (md5 and sha256, on the blocking pool) then stream it from disk with
//! `PUT /projects/{p}/version/{v}/files/{path}` and `Content-MD5` / `X-Checksum-Sha256`, so the
//! server rejects a file that changed in between; finally `PUT .../complete` and poll the
//! indexing job to its end.

use std::collections::{HashMap, HashSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use base64::Engine as _;
use clap::Args;
use futures::{StreamExt as _, TryStreamExt as _};
use md5::Digest as _;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use super::http::{ApiClient, ApiFailure, read_json};
use super::progress::{Counter, Meter, Transfer};
use super::{ServerArgs, connect, human_bytes, out};
use crate::model::names;
use crate::model::records::ProjectType;

/// Size of the read buffer when hashing and of the chunks streamed.
const CHUNK: usize = 256 * 1024;

/// `trove push` arguments.
#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    /// Directory whose files (recursively) become the version's files.
    #[arg(required_unless_present = "abort")]
    pub dir: Option<PathBuf>,
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
    /// Continue a push that failed: upload only the files the open version does not hold
    /// yet with the same checksum, then complete it.
    #[arg(long, conflicts_with = "abort")]
    pub resume: bool,
    /// End a push that failed: delete the open version (or abort an ArtifactDB upload).
    #[arg(long, conflicts_with_all = ["create_project", "title", "project_type", "changelog"])]
    pub abort: bool,
    /// Files transferred at once.
    #[arg(long, short = 'j', default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
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
                    out::note(&format!("skipping {relative}: dangling symlink"));
                    continue;
                };
                if !target.starts_with(&root_canonical) {
                    out::note(&format!(
                        "skipping {relative}: symlink leading outside the directory"
                    ));
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
                    out::note(&format!(
                        "skipping {relative}: directory already pushed (symlink loop)"
                    ));
                }
            } else if metadata.is_file() {
                files.push(LocalFile {
                    relative,
                    absolute: path,
                });
            } else {
                out::note(&format!("skipping {relative}: not a regular file"));
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

/// What a push did.
struct Pushed {
    uploaded: usize,
    skipped: usize,
    bytes: u64,
}

/// Runs `trove push`.
///
/// # Errors
/// When the directory cannot be read, a path is invalid, or the server refuses a step.
pub async fn run_push(args: &PushArgs) -> anyhow::Result<()> {
    let (project, version) = (args.project.as_str(), args.version.as_str());
    if args.abort {
        let client = connect(&args.server)?;
        return abort_push(&client, project, version).await;
    }
    let Some(dir) = &args.dir else {
        super::usage_error("the directory to push is missing");
    };
    let files = collect_files(dir)?;
    anyhow::ensure!(
        !files.is_empty(),
        "{} holds no files to push",
        dir.display()
    );
    for file in &files {
        names::validate_path(&file.relative)
            .map_err(|error| anyhow::anyhow!("cannot push {}: {error}", file.absolute.display()))?;
    }
    let client = connect(&args.server)?;
    if args.create_project {
        ensure_project(&client, args).await?;
    }
    let stored = if args.resume {
        resumable_files(&client, args).await?
    } else {
        create_version(&client, args).await?;
        HashMap::new()
    };

    let pushed = upload_all(
        &client,
        project,
        version,
        &files,
        &stored,
        usize::from(args.jobs),
    )
    .await
    .with_context(|| {
        format!(
            "version {project}@{version} stays open: run the same push with --resume to \
                 continue it, or `trove push --abort --project {project} --version {version}` \
                 to end it"
        )
    })?;

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
        .map(str::to_owned);
    let count = files.len();
    if out::json_mode() {
        return out::json(&json!({
            "project_id": project,
            "version": version,
            "revision": revision,
            "files": count,
            "uploaded": pushed.uploaded,
            "skipped": pushed.skipped,
            "bytes": pushed.bytes,
        }));
    }
    let skipped = if pushed.skipped > 0 {
        format!(", {} already stored", pushed.skipped)
    } else {
        String::new()
    };
    out::human(&format!(
        "pushed {count} file{} ({}{skipped}) to {project}@{version}{}",
        if count == 1 { "" } else { "s" },
        human_bytes(pushed.bytes),
        revision.map_or_else(String::new, |revision| format!(", revision {revision}"))
    ))
}

/// Creates the version (`409` when it exists: then --resume is the way on).
async fn create_version(client: &ApiClient, args: &PushArgs) -> anyhow::Result<()> {
    let (project, version) = (args.project.as_str(), args.version.as_str());
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
    Ok(())
}

/// For --resume: the files already stored in the open version (path → size and md5), after
/// creating the version when it does not exist yet.
async fn resumable_files(
    client: &ApiClient,
    args: &PushArgs,
) -> anyhow::Result<HashMap<String, (u64, String)>> {
    let (project, version) = (args.project.as_str(), args.version.as_str());
    let record = match client
        .get_json(&["projects", project, "version", version])
        .await
    {
        Ok(record) => record,
        Err(error) if is_status(&error, StatusCode::NOT_FOUND) => {
            create_version(client, args).await?;
            return Ok(HashMap::new());
        }
        Err(error) => {
            return Err(error.context(format!("cannot look up version {project}@{version}")));
        }
    };
    match record["status"].as_str() {
        Some("open") => {}
        Some("completed") => {
            anyhow::bail!("version {project}@{version} is already completed: nothing to resume")
        }
        status => anyhow::bail!(
            "version {project}@{version} is {} (an ArtifactDB upload): resume it with the tool \
             that started it, or end it with --abort",
            status.unwrap_or("in an unknown state")
        ),
    }
    let listing = client
        .get_json(&["projects", project, "version", version, "files"])
        .await
        .with_context(|| format!("cannot list the files of {project}@{version}"))?;
    let stored = listing["files"]
        .as_array()
        .map(|files| {
            files
                .iter()
                .filter_map(|file| {
                    Some((
                        file["path"].as_str()?.to_owned(),
                        (
                            file["size"].as_u64()?,
                            file["md5sum"].as_str()?.to_ascii_lowercase(),
                        ),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(stored)
}

/// `--abort`: an open version is deleted, an ArtifactDB upload aborted.
async fn abort_push(client: &ApiClient, project: &str, version: &str) -> anyhow::Result<()> {
    let record = client
        .get_json(&["projects", project, "version", version])
        .await
        .with_context(|| format!("cannot look up version {project}@{version}"))?;
    match record["status"].as_str() {
        Some("open") => {
            client
                .json(
                    Method::DELETE,
                    &["projects", project, "version", version],
                    None,
                )
                .await
                .with_context(|| format!("cannot delete the open version {project}@{version}"))?;
        }
        Some("completed") => {
            anyhow::bail!("version {project}@{version} is completed: there is no push to abort")
        }
        _ => {
            client
                .json(
                    Method::PUT,
                    &["projects", project, "version", version, "abort"],
                    None,
                )
                .await
                .with_context(|| format!("cannot abort the upload of {project}@{version}"))?;
        }
    }
    if out::json_mode() {
        return out::json(&json!({"project_id": project, "version": version, "aborted": true}));
    }
    out::human(&format!("aborted the push of {project}@{version}"))
}

fn is_status(error: &anyhow::Error, status: StatusCode) -> bool {
    error
        .downcast_ref::<ApiFailure>()
        .is_some_and(|failure| failure.status == status)
}

/// Uploads the files `jobs` at a time, skipping those `stored` already holds with the same
/// size and md5; the first failure stops the push.
async fn upload_all(
    client: &ApiClient,
    project: &str,
    version: &str,
    files: &[LocalFile],
    stored: &HashMap<String, (u64, String)>,
    jobs: usize,
) -> anyhow::Result<Pushed> {
    let mut total = 0_u64;
    for file in files {
        total += std::fs::metadata(&file.absolute).map_or(0, |metadata| metadata.len());
    }
    let count = files.len();
    let transfer = Transfer::start("uploading", count, total);
    let counter = Counter::new(&transfer, "uploaded", count);
    let stop = AtomicBool::new(false);
    let tasks = files.iter().enumerate().map(|(index, file)| {
        let label = format!("[{}/{count}] {}", index + 1, file.relative);
        let (transfer, counter, stop) = (&transfer, &counter, &stop);
        async move {
            // After a failure, files not started yet are left for --resume.
            if stop.load(Ordering::Relaxed) {
                return Ok::<_, anyhow::Error>(None);
            }
            let path = file.absolute.clone();
            let digests = tokio::task::spawn_blocking(move || hash_file(&path))
                .await?
                .with_context(|| format!("cannot read {}", file.absolute.display()))?;
            let md5 = hex::encode(digests.md5);
            if stored.get(&file.relative) == Some(&(digests.size, md5)) {
                transfer.println(&format!("already stored {label}"));
                counter.tick();
                return Ok(Some((false, 0)));
            }
            let meter = transfer.file(label, Some(digests.size));
            let size = upload_file(client, project, version, file, &digests, &meter)
                .await
                .with_context(|| format!("cannot upload {}", file.relative))?;
            counter.tick();
            Ok(Some((true, size)))
        }
    });
    let mut results = futures::stream::iter(tasks).buffer_unordered(jobs.max(1));
    let mut pushed = Pushed {
        uploaded: 0,
        skipped: 0,
        bytes: 0,
    };
    let mut failure = None;
    // Uploads in flight when one fails are let finish: they are stored for --resume, and no
    // upload is cut off mid-body.
    while let Some(result) = results.next().await {
        match result {
            Ok(Some((true, size))) => {
                pushed.uploaded += 1;
                pushed.bytes += size;
            }
            Ok(Some((false, _))) => pushed.skipped += 1,
            Ok(None) => {}
            Err(error) => {
                stop.store(true, Ordering::Relaxed);
                failure.get_or_insert(error);
            }
        }
    }
    drop(results);
    transfer.finish();
    if let Some(error) = failure {
        return Err(error);
    }
    Ok(pushed)
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
            out::note(&format!("created project {project}"));
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

/// Streams one hashed file; answers its size.
async fn upload_file(
    client: &ApiClient,
    project: &str,
    version: &str,
    file: &LocalFile,
    digests: &Digests,
    meter: &Meter,
) -> anyhow::Result<u64> {
    let reader = tokio::fs::File::open(&file.absolute)
        .await
        .with_context(|| format!("cannot read {}", file.absolute.display()))?;
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
