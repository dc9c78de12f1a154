//! `trove pull ID|P@V [DIR]`: downloads one file (`project:path@version`) or a whole version
//! (`project@version`, `latest` allowed) into DIR (default: the current directory), keeping
//! each file's relative path.
//!
//! The version's listing (`GET /projects/{p}/version/{v}/files`) names the files, their sizes
//! and md5 sums; each is fetched with `GET /files/{id}?redirect=false` (redirects are followed
//! too), streamed to a temporary name in its destination directory while its md5 is computed,
//! checked against the listing, then renamed into place — a failed or corrupted transfer
//! never leaves a half file under the real name. `--jobs` files transfer at once (default 4);
//! a file already present with the listed size and md5 is not downloaded again. A path that would land outside DIR (also
//! through a symlinked directory inside DIR) is refused.

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use clap::Args;
use futures::StreamExt as _;
use md5::Digest as _;
use reqwest::Method;
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;

use super::http::ApiClient;
use super::progress::{Counter, Meter, Transfer};
use super::{ServerArgs, connect, human_bytes, out};
use crate::model::id::{ArtifactId, VersionSelector};
use crate::model::names;

/// What to pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullTarget {
    /// One file.
    File(ArtifactId),
    /// Every file of a version (`latest` allowed).
    Version {
        /// Project id.
        project: String,
        /// Version, or `latest`.
        version: VersionSelector,
    },
}

/// clap parser of a pull target: `project:path@version` or `project@version`.
///
/// # Errors
/// When it is neither, or a part breaks the naming rules.
pub fn parse_target(value: &str) -> Result<PullTarget, String> {
    if value.contains(':') {
        return ArtifactId::parse(value)
            .map(PullTarget::File)
            .map_err(|error| error.to_string());
    }
    let Some((project, version)) = value.rsplit_once('@') else {
        return Err("expected project@version or project:path@version".to_owned());
    };
    names::validate_project_id(project).map_err(|error| error.to_string())?;
    let version = VersionSelector::parse(version).map_err(|error| error.to_string())?;
    Ok(PullTarget::Version {
        project: project.to_owned(),
        version,
    })
}

/// `trove pull` arguments.
#[derive(Debug, Clone, Args)]
pub struct PullArgs {
    /// `project:path@version` (one file) or `project@version` (every file; `latest` allowed).
    #[arg(value_name = "ID|P@V", value_parser = parse_target)]
    pub target: PullTarget,
    /// Destination directory (default: the current directory); files keep their relative path.
    pub dir: Option<PathBuf>,
    /// Files transferred at once.
    #[arg(long, short = 'j', default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// Server and credentials.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// One file to download.
#[derive(Debug, Clone)]
struct Wanted {
    id: String,
    path: String,
    size: Option<u64>,
    md5: Option<String>,
}

impl Wanted {
    fn from_listing(entry: &Value) -> Option<Self> {
        Some(Self {
            id: entry["id"].as_str()?.to_owned(),
            path: entry["path"].as_str()?.to_owned(),
            size: entry["size"].as_u64(),
            md5: entry["md5sum"].as_str().map(str::to_ascii_lowercase),
        })
    }
}

/// The destination of `relative` under `root`, or an error when it would escape `root`
/// (absolute, `..`, empty or reserved segments, backslashes...).
///
/// # Errors
/// When the path is not a valid relative path.
pub fn destination(root: &Path, relative: &str) -> anyhow::Result<PathBuf> {
    names::validate_path(relative)
        .map_err(|error| anyhow::anyhow!("refusing to write outside the directory: {error}"))?;
    let mut path = root.to_path_buf();
    for segment in relative.split('/') {
        let mut components = Path::new(segment).components();
        match (components.next(), components.next()) {
            (Some(Component::Normal(part)), None) => path.push(part),
            _ => anyhow::bail!("refusing to write {relative:?} outside the directory"),
        }
    }
    Ok(path)
}

/// Runs `trove pull`.
///
/// # Errors
/// When the server refuses, a transfer fails or a checksum does not match.
pub async fn run_pull(args: &PullArgs) -> anyhow::Result<()> {
    let client = connect(&args.server)?;
    let root = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let (project, version, wanted_path) = match &args.target {
        PullTarget::File(id) => (id.project.as_str(), id.version.as_str(), Some(id)),
        PullTarget::Version { project, version } => (project.as_str(), version.as_str(), None),
    };
    let listing = client
        .get_json(&["projects", project, "version", version, "files"])
        .await
        .with_context(|| format!("cannot list the files of {project}@{version}"))?;
    let resolved_version = listing["version"].as_str().unwrap_or(version).to_owned();
    let entries: Vec<Wanted> = listing["files"]
        .as_array()
        .map(|files| files.iter().filter_map(Wanted::from_listing).collect())
        .unwrap_or_default();
    let wanted = match wanted_path {
        Some(id) => vec![
            entries
                .into_iter()
                .find(|entry| entry.path == id.path)
                .unwrap_or_else(|| Wanted {
                    // Not listed: ask anyway, the server answers why.
                    id: format!("{project}:{}@{resolved_version}", id.path),
                    path: id.path.clone(),
                    size: None,
                    md5: None,
                }),
        ],
        None => entries,
    };
    anyhow::ensure!(
        !wanted.is_empty(),
        "{project}@{resolved_version} holds no files"
    );
    // Every destination is checked before the first byte is written.
    let destinations = wanted
        .iter()
        .map(|file| destination(&root, &file.path))
        .collect::<anyhow::Result<Vec<_>>>()?;
    tokio::fs::create_dir_all(&root)
        .await
        .with_context(|| format!("cannot create {}", root.display()))?;
    let root_canonical = tokio::fs::canonicalize(&root)
        .await
        .with_context(|| format!("cannot open {}", root.display()))?;

    let count = wanted.len();
    let bytes: u64 = wanted.iter().filter_map(|file| file.size).sum();
    let transfer = Transfer::start("downloading", count, bytes);
    let counter = Counter::new(&transfer, "downloaded", count);
    let stop = AtomicBool::new(false);
    let tasks = wanted
        .iter()
        .zip(&destinations)
        .enumerate()
        .map(|(index, (file, target))| {
            let label = format!("[{}/{count}] {}", index + 1, file.path);
            let (client, transfer, counter, root, stop) = (
                &client,
                &transfer,
                &counter,
                root_canonical.as_path(),
                &stop,
            );
            async move {
                // After a failure, files not started yet are left alone.
                if stop.load(Ordering::Relaxed) {
                    return Ok(None);
                }
                if already_present(file, target).await {
                    transfer.println(&format!("already present {label}"));
                    counter.tick();
                    return Ok::<_, anyhow::Error>(Some(None));
                }
                let meter = transfer.file(label, file.size);
                let size = download(client, file, target, root, &meter)
                    .await
                    .with_context(|| format!("cannot download {}", file.id))?;
                counter.tick();
                Ok(Some(Some(size)))
            }
        });
    let mut results = futures::stream::iter(tasks).buffer_unordered(usize::from(args.jobs));
    let (mut downloaded, mut skipped, mut total) = (0_usize, 0_usize, 0_u64);
    let mut failure = None;
    // Transfers in flight when one fails are let finish (and clean up after themselves).
    while let Some(result) = results.next().await {
        match result {
            Ok(Some(Some(size))) => {
                downloaded += 1;
                total += size;
            }
            Ok(Some(None)) => skipped += 1,
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
    if out::json_mode() {
        return out::json(&serde_json::json!({
            "project_id": project,
            "version": resolved_version,
            "files": count,
            "downloaded": downloaded,
            "skipped": skipped,
            "bytes": total,
            "directory": root.display().to_string(),
        }));
    }
    let skipped = if skipped > 0 {
        format!(", {skipped} already present")
    } else {
        String::new()
    };
    out::human(&format!(
        "pulled {count} file{} ({}{skipped}) of {project}@{resolved_version} into {}",
        if count == 1 { "" } else { "s" },
        human_bytes(total),
        root.display()
    ))
}

/// Whether `target` already holds the listed file: same size and md5 (a file the listing
/// gives no md5 for is always downloaded again).
async fn already_present(file: &Wanted, target: &Path) -> bool {
    let (Some(size), Some(expected)) = (file.size, file.md5.clone()) else {
        return false;
    };
    match tokio::fs::symlink_metadata(target).await {
        Ok(metadata) if metadata.is_file() && metadata.len() == size => {}
        _ => return false,
    }
    let path = target.to_path_buf();
    tokio::task::spawn_blocking(move || md5_of(&path).is_ok_and(|md5| md5 == expected))
        .await
        .unwrap_or(false)
}

fn md5_of(path: &Path) -> std::io::Result<String> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    let mut md5 = md5::Md5::new();
    let mut buffer = vec![0_u8; 256 * 1024];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        md5.update(&buffer[..read]);
    }
    Ok(hex::encode(md5.finalize()))
}

/// Streams one file to a temporary name next to `target`, checks it, renames it.
async fn download(
    client: &ApiClient,
    file: &Wanted,
    target: &Path,
    root_canonical: &Path,
    meter: &Meter,
) -> anyhow::Result<u64> {
    let parent = target
        .parent()
        .context("the destination has no parent directory")?;
    tokio::fs::create_dir_all(parent)
        .await
        .with_context(|| format!("cannot create {}", parent.display()))?;
    // A symlinked directory inside DIR must not carry the file elsewhere.
    let parent_canonical = tokio::fs::canonicalize(parent)
        .await
        .with_context(|| format!("cannot open {}", parent.display()))?;
    anyhow::ensure!(
        parent_canonical.starts_with(root_canonical),
        "refusing to write {}: its directory leads outside the destination",
        file.path
    );
    let name = target
        .file_name()
        .context("the destination has no file name")?
        .to_string_lossy()
        .into_owned();
    let temporary = parent.join(format!(".{name}.{}.trove-part", uuid::Uuid::new_v4()));
    let mut url = client.url(&["files", &file.id]);
    url.query_pairs_mut().append_pair("redirect", "false");
    let response = client.send(client.request(Method::GET, url)).await?;
    let written = write_body(response, &temporary, meter).await;
    let checked = written.and_then(|md5| {
        if let Some(expected) = &file.md5
            && *expected != md5
        {
            anyhow::bail!(
                "md5 mismatch: the server lists {expected}, the bytes received hash to {md5}"
            );
        }
        if let Some(size) = file.size
            && size != meter.done()
        {
            anyhow::bail!(
                "size mismatch: the server lists {size} bytes, {} received",
                meter.done()
            );
        }
        Ok(())
    });
    let renamed = match checked {
        Ok(()) => tokio::fs::rename(&temporary, target)
            .await
            .with_context(|| format!("cannot move the file to {}", target.display())),
        Err(error) => Err(error),
    };
    if let Err(error) = renamed {
        meter.abandon();
        let _ = tokio::fs::remove_file(&temporary).await;
        return Err(error);
    }
    meter.finish("downloaded");
    Ok(meter.done())
}

/// Writes the body to `path` (created new), answering its md5 (hex).
async fn write_body(
    response: reqwest::Response,
    path: &Path,
    meter: &Meter,
) -> anyhow::Result<String> {
    let mut output = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .await
        .with_context(|| format!("cannot create {}", path.display()))?;
    let mut md5 = md5::Md5::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.context("the transfer broke off")?;
        md5.update(&chunk);
        output
            .write_all(&chunk)
            .await
            .with_context(|| format!("cannot write {}", path.display()))?;
        meter.add(chunk.len() as u64);
    }
    output
        .sync_all()
        .await
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(hex::encode(md5.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_a_file_id_or_a_version() {
        assert_eq!(
            parse_target("bert@latest").unwrap(),
            PullTarget::Version {
                project: "bert".to_owned(),
                version: VersionSelector::Latest
            }
        );
        match parse_target("bert:weights/model.bin@v1").unwrap() {
            PullTarget::File(id) => {
                assert_eq!(id.path, "weights/model.bin");
                assert_eq!(id.version.as_str(), "v1");
            }
            other => panic!("{other:?}"),
        }
        assert!(parse_target("bert").is_err());
        assert!(parse_target("bert:../x@v1").is_err());
    }

    #[test]
    fn destinations_never_leave_the_directory() {
        let root = Path::new("/data/out");
        assert_eq!(
            destination(root, "a/b.txt").unwrap(),
            PathBuf::from("/data/out/a/b.txt")
        );
        for escaping in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a//b",
            "a/./b",
            "..meta/x",
            "a\\..\\x",
            "",
        ] {
            assert!(destination(root, escaping).is_err(), "{escaping}");
        }
    }
}
