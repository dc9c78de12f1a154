//! The ArtifactDB upload workflow (SPEC §8) as domain operations: planning an upload from
//! its announcement, starting it (the project when absent, the version in status
//! `uploading`, presigned URLs into the staging area and link URLs, md5 de-duplication into
//! links), recording links, completing it (moving the staged bytes, sidecar records, the
//! permissions of the body, the revision) and aborting it; checking a presigned URL at use
//! time; and the scheduled purge of late uploads and expired transient versions
//! ([`purge_expired`]), which `jobs` calls directly.
//!
//! Authorization and the audit event of each route are the API's (`api::uploads`); a purge
//! records its own `version.purge` mutation (the system actor).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use futures::TryStreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::files::{hash_object, sidecar_key, write_sidecar};
use super::permissions::merge_profile;
use super::projects::{
    create_project, create_version, delete_version_objects, index_error, new_version_record,
    read_record, reindex_version, spawn_reindex_job,
};
use super::target::{VersionView, load_project, load_version};
use super::{Error, Result};
use crate::app::AppState;
use crate::audit::AuditEvent;
use crate::auth::Principal;
use crate::error::ErrorCode;
use crate::model::id::ArtifactId;
use crate::model::names;
use crate::model::records::{
    FileRecord, ProjectRecord, ProjectType, VersionRecord, VersionStatus, revision_name,
};
use crate::permissions::{Action, LifecycleState, ProfileLocation, Visibility};
use crate::storage::records::{self, Retry};
use crate::storage::{ByteStream, PresignMethod, PutOptions, PutOutcome, keys};

/// Default time an upload has to complete.
const DEFAULT_COMPLETE_WITHIN_HOURS: i64 = 24;

/// Parses `"<RFC 3339 time>"` or `"in N days|hours|minutes"`.
pub fn parse_when(text: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    let mut words = text.split_whitespace();
    if words.next()? != "in" {
        return None;
    }
    let count: i64 = words.next()?.parse().ok()?;
    let unit = words.next()?;
    if words.next().is_some() || !(0..=100_000).contains(&count) {
        return None;
    }
    let delta = match unit.trim_end_matches('s') {
        "day" => chrono::Duration::days(count),
        "hour" => chrono::Duration::hours(count),
        "minute" => chrono::Duration::minutes(count),
        _ => return None,
    };
    Some(now + delta)
}

/// One announced file.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Filename {
    /// A plain path (`check: simple`).
    Plain(String),
    /// A path with a check.
    Checked {
        /// The path.
        filename: String,
        /// `simple`, `md5` or `link`.
        #[serde(default)]
        check: Option<String>,
        /// `{md5sum, field}` for `md5`, `{artifactdb_id}` for `link`.
        #[serde(default)]
        value: Option<Value>,
    },
}

/// `POST .../upload` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UploadRequest {
    /// Files to upload.
    pub filenames: Vec<Filename>,
    /// Deadline: ISO time or `in N days|hours|minutes` (default one day).
    pub completed_by: Option<String>,
    /// Makes the version transient: purged after this.
    pub expires_in: Option<String>,
    /// Only `s3-presigned-url`.
    pub mode: Option<String>,
}

/// One presigned upload URL.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PresignedUrl {
    /// The path.
    pub filename: String,
    /// PUT here.
    pub url: String,
    /// base64 md5 to send as `Content-MD5`, when announced.
    pub md5sum: Option<String>,
}

/// One link URL.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LinkUrl {
    /// The path.
    pub filename: String,
    /// PUT here (relative URL) to record the link.
    pub url: String,
}

/// `POST .../upload` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadAnswer {
    /// Project id.
    pub project_id: String,
    /// Version.
    pub version: String,
    /// Assigned at completion (in completion order), so `null` here.
    pub revision: Option<String>,
    /// Upload URLs.
    pub presigned_urls: Vec<PresignedUrl>,
    /// Link URLs.
    pub links: Vec<LinkUrl>,
    /// `PUT` here to complete.
    pub completion_url: String,
    /// `PUT` here to abort.
    pub abort_url: String,
    /// Deadline.
    pub complete_before: DateTime<Utc>,
}

/// URL-safe base64 of an id (as link URLs carry it).
#[must_use]
pub fn b64(text: &str) -> String {
    base64::engine::general_purpose::URL_SAFE.encode(text)
}

/// Decodes an id of a link URL (URL-safe or standard base64, padded or not).
pub fn unb64(text: &str) -> Result<String> {
    let trimmed = text.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
        .map_err(|_| Error::new(ErrorCode::InvalidId, "ids in link URLs must be base64"))?;
    String::from_utf8(bytes)
        .map_err(|_| Error::new(ErrorCode::InvalidId, "ids in link URLs must be UTF-8"))
}

/// Parses an ArtifactDB id (`invalid_path` for a bad path, else `invalid_id`).
pub fn parse_id(text: &str) -> Result<ArtifactId> {
    ArtifactId::parse(text).map_err(|error| {
        if error.code() == "invalid_path" {
            Error::new(ErrorCode::InvalidPath, error.to_string())
        } else {
            Error::new(ErrorCode::InvalidId, error.to_string())
        }
    })
}

/// A link URL for `source` → `target` (relative).
#[must_use]
pub fn link_url(source: &str, target: &str) -> String {
    format!("/link/{}/to/{}", b64(source), b64(target))
}

/// The earlier completed version (highest revision) of `project` whose file at `path` has
/// the md5 `md5_hex`, per the files' sidecar records, among the versions `principal` may
/// download from: a link never points a writer into a version it cannot read (the file is
/// uploaded instead).
async fn find_duplicate(
    app: &AppState,
    principal: &Principal,
    project: &str,
    path: &str,
    md5_hex: &str,
) -> Result<Option<String>> {
    let Some(project_view) = load_project(app, project).await? else {
        return Ok(None);
    };
    let versions = app
        .indexer
        .version_names(project)
        .await
        .map_err(index_error)?;
    let now = app.clock.now();
    let mut best: Option<(u64, String)> = None;
    for version in versions {
        let Some(view) = load_version(app, project_view.clone(), &version).await? else {
            continue;
        };
        let Some(number) = view
            .record
            .numerical_revision
            .filter(|_| view.record.is_completed())
        else {
            continue;
        };
        if best.as_ref().is_some_and(|(best, _)| *best >= number) {
            continue;
        }
        if principal
            .decide(Action::ReadMetadata, &view.target, now)
            .and_then(|()| principal.decide(Action::Download, &view.target, now))
            .is_err()
        {
            continue;
        }
        if let Some((file, _)) =
            read_record::<FileRecord>(app, &sidecar_key(project, &version, path)).await?
            && file.md5sum.eq_ignore_ascii_case(md5_hex)
        {
            best = Some((number, version));
        }
    }
    Ok(best.map(|(_, version)| version))
}

/// The mutation of `POST .../upload`: creates the project when `creates_project` (the caller
/// must be allowed to, and to create versions in it), the version, and the URLs.
pub async fn start_upload(
    app: &AppState,
    principal: &Principal,
    record: VersionRecord,
    planned: Vec<(String, String, Option<Value>)>,
    creates_project: bool,
) -> Result<UploadAnswer> {
    let project = record.project_id.clone();
    let version = record.version.clone();
    let now = record.created_at;
    let complete_before = record.complete_before.unwrap_or(now);
    if creates_project {
        let project_record = ProjectRecord {
            project_id: project.clone(),
            title: project.clone(),
            project_type: ProjectType::Other,
            description: String::new(),
            tags: Vec::new(),
            namespace: None,
            state: LifecycleState::Active,
            created_at: now,
            created_by: String::new(),
        };
        match create_project(app, principal, project_record, Visibility::Private).await {
            Ok(_) => {}
            // A concurrent upload created it: decide against it below.
            Err(error) if error.code() == ErrorCode::AlreadyExists => {}
            Err(error) => return Err(error),
        }
        // Decided here rather than through `access`: a refusal is this mutation's outcome,
        // recorded once.
        let view = load_project(app, &project)
            .await?
            .ok_or_else(|| Error::not_found(format!("no project {project}")))?;
        principal.decide(Action::CreateVersion, &view.target, app.clock.now())?;
    }
    // A URL lives at most `presign_ttl_secs`, and never past `complete_before`.
    let ttl = (complete_before - Utc::now())
        .to_std()
        .unwrap_or_default()
        .clamp(
            Duration::from_secs(1),
            Duration::from_secs(app.settings.presign_ttl_secs),
        );
    let upload_id = record.upload_id.clone().unwrap_or_default();
    if planned.iter().any(|(_, check, _)| check != "link") {
        // Before any URL exists: what its URLs write once the upload is over is removed
        // until the last of them has expired (an S3 URL cannot be refused at use).
        super::staging::note_sweep(app, &project, &version, &upload_id, ttl).await?;
    }
    create_version(app, &record).await?;

    let mut presigned_urls = Vec::new();
    let mut links = Vec::new();
    for (path, check, value) in planned {
        let source = format!("{project}:{path}@{version}");
        let md5_hex = value
            .as_ref()
            .and_then(|value| value.get("md5sum"))
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase);
        if check == "link" {
            let target = value
                .as_ref()
                .and_then(|value| value.get("artifactdb_id"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    Error::bad_request(format!("link check of {path} needs value.artifactdb_id"))
                })?;
            parse_id(target)?;
            links.push(LinkUrl {
                filename: path,
                url: link_url(&source, target),
            });
            continue;
        }
        let md5_raw: Option<[u8; 16]> = match &md5_hex {
            Some(hex_text) => Some(
                hex::decode(hex_text)
                    .ok()
                    .and_then(|bytes| bytes.try_into().ok())
                    .ok_or_else(|| {
                        Error::bad_request(format!("md5sum of {path} must be 32 hex digits"))
                    })?,
            ),
            None => None,
        };
        if check == "md5"
            && let Some(md5_hex) = &md5_hex
            && let Some(earlier) = find_duplicate(app, principal, &project, &path, md5_hex).await?
        {
            links.push(LinkUrl {
                url: link_url(&source, &format!("{project}:{path}@{earlier}")),
                filename: path,
            });
            continue;
        }
        // The URL writes the upload's staging area, never the file itself: completion
        // moves the bytes into the version (see `staging`).
        let key = keys::upload_staging(&project, &version, &upload_id, &path);
        let url = app
            .storage
            .presign(PresignMethod::Put, &key, ttl, md5_raw)
            .await?;
        presigned_urls.push(PresignedUrl {
            filename: path,
            url,
            md5sum: md5_raw.map(|raw| base64::engine::general_purpose::STANDARD.encode(raw)),
        });
    }
    Ok(UploadAnswer {
        completion_url: format!("/projects/{project}/version/{version}/complete"),
        abort_url: format!("/projects/{project}/version/{version}/abort"),
        project_id: project,
        version,
        revision: None,
        presigned_urls,
        links,
        complete_before,
    })
}

/// The mutation of `PUT /link/...`: adds `source` → `target` to the version's links
/// (read-modify-write with `If-Match`, retried).
pub async fn record_link(
    app: &AppState,
    source: &ArtifactId,
    version: &str,
    target: &str,
) -> Result<Value> {
    let key = keys::version_links(&source.project, version);
    records::upsert(
        &*app.storage,
        &key,
        Retry::immediate(5),
        |links: &mut serde_json::Map<String, Value>| {
            links.insert(
                source.path.clone(),
                json!({"type": "artifactdb", "id": target}),
            );
            Ok::<_, Error>(())
        },
    )
    .await?;
    Ok(json!({"status": "ok"}))
}

/// The next revision number of a project: a counter object (`{"last": n}`) updated with
/// `If-Match` retries, so concurrent completions get distinct numbers in completion order.
async fn next_revision(app: &AppState, project: &str) -> Result<u64> {
    let key = keys::revision_counter(project);
    let retry = Retry::fixed(20, |_| Duration::from_millis(5));
    let counter = records::upsert(&*app.storage, &key, retry, |counter: &mut Value| {
        let next = counter["last"].as_u64().unwrap_or(0) + 1;
        *counter = json!({ "last": next });
        Ok::<_, Error>(())
    })
    .await?;
    Ok(counter.record["last"].as_u64().unwrap_or(1))
}

/// Whether `project` has a completed version other than `except`.
pub async fn has_completed_version(app: &AppState, project: &str, except: &str) -> Result<bool> {
    let versions = app
        .indexer
        .version_names(project)
        .await
        .map_err(index_error)?;
    for version in versions.iter().filter(|version| *version != except) {
        if let Some((record, _)) =
            read_record::<VersionRecord>(app, &keys::version_record(project, version)).await?
            && record.is_completed()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether the permissions in a completion's body apply: to a new project (no completed
/// version but `version`), or with `overwrite_permissions`. Applying them needs the right to
/// change permissions, which the caller decides before the mutation.
pub async fn completion_applies_permissions(
    app: &AppState,
    project: &str,
    version: &str,
    permissions: Option<&Value>,
    overwrite_permissions: bool,
) -> Result<bool> {
    if permissions.is_none() {
        return Ok(false);
    }
    let new_project = !has_completed_version(app, project, version).await?;
    Ok(new_project || overwrite_permissions)
}

/// The mutation of `PUT .../complete`; answers the id of the indexing job.
pub async fn complete_upload(
    app: &AppState,
    principal: &Principal,
    view: VersionView,
    permissions: Option<Value>,
) -> Result<String> {
    let project = view.record.project_id.clone();
    let version = view.record.version.clone();
    let links = read_record::<serde_json::Map<String, Value>>(
        app,
        &keys::version_links(&project, &version),
    )
    .await?
    .map(|(links, _)| links)
    .unwrap_or_default();
    let limit = app.settings.max_json_bytes;
    let mut missing = Vec::new();
    // (path, staged key when the bytes are still in the staging area)
    let mut arrived: Vec<(String, Option<String>)> = Vec::new();
    for path in &view.record.announced_files {
        if links.contains_key(path) {
            continue;
        }
        let staged = view
            .record
            .upload_id
            .as_deref()
            .map(|upload_id| keys::upload_staging(&project, &version, upload_id, path));
        let staged_meta = match &staged {
            Some(staged) => match app.storage.head(staged).await {
                Ok(meta) => Some(meta),
                Err(error) if error.is_not_found() => None,
                Err(error) => return Err(error.into()),
            },
            None => None,
        };
        if let Some(meta) = staged_meta {
            if path.ends_with(".json") && meta.size > limit as u64 {
                return Err(Error::new(
                    ErrorCode::PayloadTooLarge,
                    format!("{path}: a metadata document is at most {limit} bytes"),
                ));
            }
            arrived.push((path.clone(), staged));
            continue;
        }
        // Moved by an earlier completion attempt that failed later on.
        match app
            .storage
            .head(&keys::version_file(&project, &version, path))
            .await
        {
            Ok(_) => arrived.push((path.clone(), None)),
            Err(error) if error.is_not_found() => missing.push(path.clone()),
            Err(error) => return Err(error.into()),
        }
    }
    if !missing.is_empty() {
        return Err(Error::new(
            ErrorCode::MissingFiles,
            format!("files never uploaded: {}", missing.join(", ")),
        ));
    }
    if let Some(patch) = permissions {
        merge_profile(app, &ProfileLocation::Project(project.clone()), patch).await?;
    }
    for (path, staged) in arrived {
        let key = keys::version_file(&project, &version, &path);
        let sidecar = sidecar_key(&project, &version, &path);
        match staged {
            Some(staged) => {
                app.storage.rename(&staged, &key).await?;
            }
            None if read_record::<FileRecord>(app, &sidecar).await?.is_some() => continue,
            None => {}
        }
        let meta = app.storage.head(&key).await?;
        let (size, md5sum, sha256) = hash_object(app, &key).await?;
        write_sidecar(
            app,
            &project,
            &version,
            &FileRecord {
                path: path.clone(),
                size,
                md5sum,
                sha256,
                content_type: meta.content_type,
                uploaded_at: meta.last_modified,
                uploaded_by: view.record.created_by.clone(),
            },
        )
        .await?;
    }
    let number = next_revision(app, &project).await?;
    super::staging::seal_version(app, &project, &version, |record| {
        if record.is_completed() {
            return Err(Error::new(
                ErrorCode::VersionCompleted,
                "the version is completed",
            ));
        }
        record.status = VersionStatus::Completed;
        record.revision = Some(revision_name(number));
        record.numerical_revision = Some(number);
        record.completed_at = Some(Utc::now());
        record.complete_before = None;
        Ok(())
    })
    .await?;
    discard_staging(app, &project, &version).await;
    spawn_reindex_job(app, &principal.actor(), &project).await
}

/// Removes what is left in a version's staging area (best effort: it is never read again).
async fn discard_staging(app: &AppState, project: &str, version: &str) {
    let prefix = keys::version_staging_prefix(project, version);
    let leftovers = match app.storage.list_all(&prefix).await {
        Ok(objects) => objects,
        Err(error) => {
            tracing::warn!(project, version, error = %error, "listing a staging area failed");
            return;
        }
    };
    for object in leftovers {
        if let Err(error) = app.storage.delete(&object.key).await {
            tracing::warn!(key = object.key, error = %error, "removing a staged upload failed");
        }
    }
}

/// A file of an upload sent to a presigned URL of the local backend (`PUT /storage/{key}`),
/// once its signature is verified.
#[derive(Debug)]
pub struct PresignedPut<'a> {
    /// The signed key: a key of an upload's staging area.
    pub key: &'a str,
    /// `Content-Type` as sent.
    pub content_type: Option<String>,
    /// The md5 the URL binds, else the one sent (checked by storage).
    pub content_md5: Option<[u8; 16]>,
    /// `Content-Length` as sent, when it is a number.
    pub content_length: Option<u64>,
}

/// Which file of which upload a presigned PUT to `key` fills, checked now as at the URL's
/// making ([`check_presigned_upload`]); `403 forbidden` when `key` is not in an upload's
/// staging area. Answers the file's path.
pub async fn presigned_upload_path<'k>(app: &AppState, key: &'k str) -> Result<&'k str> {
    let Some((project, version, upload_id, path)) = keys::parse_upload_staging(key) else {
        return Err(Error::new(
            ErrorCode::Forbidden,
            "this URL does not upload a file of an upload",
        ));
    };
    check_presigned_upload(app, project, version, upload_id, path).await?;
    Ok(path)
}

/// Streams the body of a presigned PUT to its key. A metadata document (`path` ending in
/// `.json`) is capped at `max_json_bytes` here as on every other path that writes one:
/// `413 payload_too_large` from `Content-Length` before reading, or as soon as the body
/// passes the cap.
pub async fn store_presigned(
    app: &AppState,
    path: &str,
    put: PresignedPut<'_>,
    body: ByteStream,
) -> Result<PutOutcome> {
    let limit = path
        .ends_with(".json")
        .then_some(app.settings.max_json_bytes as u64);
    let too_large = || {
        Error::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "a metadata document is at most {} bytes",
                app.settings.max_json_bytes
            ),
        )
    };
    if let Some(limit) = limit
        && put.content_length.is_some_and(|length| length > limit)
    {
        return Err(too_large());
    }
    let exceeded = Arc::new(AtomicBool::new(false));
    let mut seen: u64 = 0;
    let flag = Arc::clone(&exceeded);
    let stream = body.and_then(move |chunk| {
        seen = seen.saturating_add(chunk.len() as u64);
        let over = limit.is_some_and(|limit| seen > limit);
        if over {
            flag.store(true, Ordering::Relaxed);
        }
        futures::future::ready(if over {
            Err(std::io::Error::other(
                "metadata document over the size limit",
            ))
        } else {
            Ok(chunk)
        })
    });
    let options = PutOptions {
        content_type: put.content_type,
        content_md5: put.content_md5,
        ..PutOptions::default()
    };
    app.storage
        .put(put.key, Box::pin(stream), options)
        .await
        .map_err(|error| {
            if exceeded.load(Ordering::Relaxed) {
                too_large()
            } else {
                Error::from(error)
            }
        })
}

/// Whether a presigned upload to `staged` (a key of an upload's staging area) may be
/// accepted now: the version still exists and is `uploading` under the same upload, the
/// path was announced, `complete_before` has not passed, and the one who started the upload
/// may still write there. Checked by the local backend's `PUT /storage/{key}` at use time.
pub async fn check_presigned_upload(
    app: &AppState,
    project: &str,
    version: &str,
    upload_id: &str,
    path: &str,
) -> Result<()> {
    let closed = |why: &str| {
        Error::new(
            ErrorCode::UploadClosed,
            format!("this upload URL is closed: {why}"),
        )
    };
    let Some(project_view) = load_project(app, project).await? else {
        return Err(closed("the version no longer exists"));
    };
    let Some(view) = load_version(app, project_view, version).await? else {
        return Err(closed("the version no longer exists"));
    };
    let record = &view.record;
    if record.upload_id.as_deref() != Some(upload_id) {
        return Err(closed("the upload it belongs to ended"));
    }
    if record.status != VersionStatus::Uploading {
        return Err(closed("the version is no longer being uploaded"));
    }
    super::staging::check_accepts_files(record)?;
    if record
        .complete_before
        .is_some_and(|until| until <= Utc::now())
    {
        return Err(closed("the upload's completion deadline passed"));
    }
    if !record
        .announced_files
        .iter()
        .any(|announced| announced == path)
    {
        return Err(Error::new(
            ErrorCode::Forbidden,
            "this file was not announced by the upload",
        ));
    }
    // The signer as they are now: the very API key that started the upload (its creator's
    // rights, its scopes, not deleted, disabled or expired), else the account.
    let signer = if record.created_by.starts_with("machine:") {
        match record.upload_key.as_deref() {
            Some(id) => app.auth.principal_for_api_key(id).await,
            // Started with a key before keys were recorded: nobody left to check.
            None => Ok(None),
        }
    } else if let Some(external) = &record.upload_external {
        app.auth
            .principal_for_external(
                &record.created_by,
                external.role,
                &external.directory_groups,
            )
            .await
    } else {
        app.auth.principal_for_account(&record.created_by).await
    }
    .map_err(|error| Error::internal(std::io::Error::other(error.to_string())))?
    // The very account that started it, never a later one of the same name.
    .filter(|signer| record.upload_account.is_none() || signer.account_id == record.upload_account);
    let allowed = signer.is_some_and(|signer| {
        signer
            .decide(Action::UploadFile, &view.target, app.clock.now())
            .is_ok()
    });
    if !allowed {
        return Err(Error::new(
            ErrorCode::Forbidden,
            "the one who started this upload may no longer write to the version",
        ));
    }
    Ok(())
}

/// What a purge removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    /// `project/version` of uploads not completed in time.
    pub late_uploads: Vec<String>,
    /// `project/version` of expired transient versions.
    pub expired_versions: Vec<String>,
    /// Objects presigned URLs wrote into the staging area of an upload already over.
    pub staged_orphans: usize,
}

/// The scheduled purge's body: deletes uploads not completed by their `complete_before` and
/// transient versions past their `expires_at`, and re-indexes what it removed.
pub async fn purge_expired(app: &AppState, now: DateTime<Utc>) -> Result<PurgeReport, String> {
    let mut report = PurgeReport::default();
    let projects = app
        .indexer
        .project_ids()
        .await
        .map_err(|error| error.to_string())?;
    for project in projects {
        let versions = app
            .indexer
            .version_names(&project)
            .await
            .map_err(|error| error.to_string())?;
        for version in versions {
            let record = match read_record::<VersionRecord>(
                app,
                &keys::version_record(&project, &version),
            )
            .await
            {
                Ok(Some((record, _))) => record,
                Ok(None) => continue,
                Err(error) => {
                    tracing::warn!(%project, %version, %error, "purge: unreadable version record");
                    continue;
                }
            };
            let late = record.status == VersionStatus::Uploading
                && record
                    .complete_before
                    .is_some_and(|deadline| deadline <= now);
            let expired = record.expires_at.is_some_and(|at| at <= now) && !record.stable;
            if !late && !expired {
                continue;
            }
            // Purging deletes data: a mutation of the system actor, audited like the others.
            let event = AuditEvent::new("version.purge")
                .resource(format!("version:{project}@{version}"))
                .project(&project)
                .detail(
                    "reason",
                    if late {
                        "upload_not_completed"
                    } else {
                        "expired"
                    },
                );
            app.audit
                .mutation(event, 204, delete_version_objects(app, &project, &version))
                .await
                .map_err(|error| error.to_string())?;
            crate::crash::point("purge.deleted");
            let change = crate::feed::Change::Version {
                project: project.clone(),
                version: version.clone(),
            };
            if let Err(error) = app.feed.publish(change).await {
                tracing::warn!(%project, %version, %error, "purge: change not published");
            }
            if let Err(error) = app.indexer.index_version(&project, &version).await {
                tracing::warn!(%project, %version, %error, "purge: re-index failed");
            }
            let name = format!("{project}/{version}");
            if late {
                report.late_uploads.push(name);
            } else {
                report.expired_versions.push(name);
            }
        }
    }
    report.staged_orphans = super::staging::sweep(app, now).await?;
    Ok(report)
}

/// One announced file as planned: its path, its check (`simple`, `md5` or `link`) and the
/// check's value.
pub type PlannedFile = (String, String, Option<Value>);

/// An upload announcement, validated before anything is written.
#[derive(Debug, Clone)]
pub struct UploadPlan {
    /// Deadline of the completion.
    pub complete_before: DateTime<Utc>,
    /// When the version is purged, for a transient one.
    pub expires_at: Option<DateTime<Utc>>,
    /// The announced files.
    pub files: Vec<PlannedFile>,
}

/// Validates an upload announcement of `project@version` (names, times, paths, checks, no
/// path announced twice or clashing with another).
pub fn plan_upload(
    project: &str,
    version: &str,
    request: &UploadRequest,
    now: DateTime<Utc>,
) -> Result<UploadPlan> {
    names::validate_project_id(project)?;
    names::validate_version(version)?;
    if request
        .mode
        .as_deref()
        .is_some_and(|mode| mode != "s3-presigned-url")
    {
        return Err(Error::new(
            ErrorCode::InvalidParameter,
            "mode must be s3-presigned-url",
        ));
    }
    let complete_before = match &request.completed_by {
        Some(text) => parse_when(text, now).ok_or_else(|| {
            Error::new(
                ErrorCode::InvalidParameter,
                "completed_by: expected an ISO time or 'in N days|hours|minutes'",
            )
        })?,
        None => now + chrono::Duration::hours(DEFAULT_COMPLETE_WITHIN_HOURS),
    };
    let expires_at = match &request.expires_in {
        Some(text) => Some(parse_when(text, now).ok_or_else(|| {
            Error::new(
                ErrorCode::InvalidParameter,
                "expires_in: expected an ISO time or 'in N days|hours|minutes'",
            )
        })?),
        None => None,
    };
    let mut files: Vec<PlannedFile> = Vec::new();
    for entry in &request.filenames {
        let (path, check, value) = match entry {
            Filename::Plain(path) => (path.clone(), "simple".to_owned(), None),
            Filename::Checked {
                filename,
                check,
                value,
            } => (
                filename.clone(),
                check.clone().unwrap_or_else(|| "simple".to_owned()),
                value.clone(),
            ),
        };
        names::validate_path(&path)?;
        if !matches!(check.as_str(), "simple" | "md5" | "link") {
            return Err(Error::new(
                ErrorCode::InvalidParameter,
                format!("check of {path} must be simple, md5 or link"),
            ));
        }
        files.push((path, check, value));
    }
    let mut paths: Vec<&str> = files.iter().map(|(path, _, _)| path.as_str()).collect();
    paths.sort_unstable();
    if paths.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err(Error::bad_request("a file is announced twice"));
    }
    super::staging::check_announced_paths(&paths)?;
    Ok(UploadPlan {
        complete_before,
        expires_at,
        files,
    })
}

/// The version record an upload starts with: `uploading`, with its deadline, expiry,
/// announced files and a fresh upload id.
#[must_use]
pub fn new_upload_record(
    project: &str,
    version: &str,
    principal: &Principal,
    plan: &UploadPlan,
) -> VersionRecord {
    let mut record = new_version_record(project, version, principal, VersionStatus::Uploading);
    record.complete_before = Some(plan.complete_before);
    record.expires_at = plan.expires_at;
    record.announced_files = plan.files.iter().map(|(path, _, _)| path.clone()).collect();
    record.upload_id = Some(uuid::Uuid::new_v4().simple().to_string());
    record.upload_key.clone_from(&principal.api_key);
    record.upload_account.clone_from(&principal.account_id);
    if principal.credential == crate::auth::principal::CredentialKind::External
        && let crate::permissions::Caller::Account {
            role,
            directory_groups,
            ..
        } = &principal.caller
    {
        record.upload_external = Some(crate::model::records::ExternalSigner {
            role: *role,
            directory_groups: directory_groups.clone(),
        });
    }
    record
}

/// The permissions a completion body carries: none for an empty body, `{}` or `null`; `400
/// invalid_json` when it is not JSON, `422` when it is not an object.
pub fn parse_completion_body(body: &[u8]) -> Result<Option<Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| Error::new(ErrorCode::InvalidJson, error.to_string()))?;
    match value {
        Value::Object(object) if object.is_empty() => Ok(None),
        Value::Object(object) => Ok(Some(Value::Object(object))),
        Value::Null => Ok(None),
        _ => Err(Error::new(
            ErrorCode::Unprocessable,
            "the completion body must be a JSON object",
        )),
    }
}

/// The mutation of aborting an upload: deletes the version and whatever was uploaded, and
/// re-indexes it.
pub async fn abort_upload(app: &AppState, project: &str, version: &str) -> Result<Value> {
    delete_version_objects(app, project, version).await?;
    reindex_version(app, project, version).await?;
    Ok(json!({"status": "ok"}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_iso_or_relative() {
        let now = DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_when("in 2 days", now),
            Some(now + chrono::Duration::days(2))
        );
        assert_eq!(
            parse_when("in 1 hour", now),
            Some(now + chrono::Duration::hours(1))
        );
        assert_eq!(
            parse_when("in 5 minutes", now),
            Some(now + chrono::Duration::minutes(5))
        );
        assert!(parse_when("2026-12-01T00:00:00Z", now).is_some());
        for bad in [
            "",
            "in",
            "in x days",
            "in 2 weeks",
            "tomorrow",
            "in 2 days now",
        ] {
            assert!(parse_when(bad, now).is_none(), "{bad}");
        }
    }

    #[test]
    fn link_ids_round_trip_through_base64() {
        let id = "p:a/b.csv@v1";
        assert_eq!(unb64(&b64(id)).unwrap(), id);
        assert!(unb64("!!!").is_err());
    }
}
