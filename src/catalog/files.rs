//! Files of a version as records: the sidecar record of each file (size, digests, who
//! uploaded it; read for a listing through the ETag-validated cache, [`file_records`]),
//! hashing an object already in storage, the direct upload of one file ([`store_file`]:
//! staged, checked, moved into the version under a lease), a link's target
//! ([`link_target`]) and the removal of a file or link ([`remove_file`]).

use std::sync::Arc;

use chrono::Utc;
use futures::{StreamExt as _, TryStreamExt as _};
use serde::Serialize;
use serde_json::Value;
use sha2::Digest as _;

use super::projects::{read_record, reindex_version, write_record};
use super::{Error, Result};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::ErrorCode;
use crate::model::records::FileRecord;
use crate::storage::{ByteStream, PutCondition, PutOptions, bytes_stream, keys};

/// The key of a file's sidecar record.
#[must_use]
pub fn sidecar_key(project: &str, version: &str, path: &str) -> String {
    keys::file_record(project, version, path)
}

/// Writes the sidecar record of an uploaded file.
pub async fn write_sidecar(
    app: &AppState,
    project: &str,
    version: &str,
    record: &FileRecord,
) -> Result<()> {
    write_record(
        app,
        &sidecar_key(project, version, &record.path),
        record,
        PutCondition::None,
    )
    .await
    .map(|_| ())
}

/// Hashes an object already in storage (md5, sha256, size) by streaming it.
pub async fn hash_object(app: &AppState, key: &str) -> Result<(u64, String, String)> {
    let object = app.storage.get(key, None).await?;
    let mut md5 = md5::Md5::new();
    let mut sha = sha2::Sha256::new();
    let mut size = 0_u64;
    let mut body = object.body;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(Error::internal)?;
        size += chunk.len() as u64;
        md5.update(&chunk);
        sha.update(&chunk);
    }
    Ok((
        size,
        hex::encode(md5.finalize()),
        hex::encode(sha.finalize()),
    ))
}

/// Answer of a direct upload.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadOutcome {
    /// ArtifactDB id of the file.
    pub id: String,
    /// Size in bytes.
    pub size: u64,
    /// md5 (hex).
    pub md5sum: String,
    /// sha256 (hex).
    pub sha256: String,
}

/// What `PUT .../files/{path}` stores, once authorized.
pub struct FileUpload<'a> {
    /// Project id.
    pub project: &'a str,
    /// Version (resolved, not `latest`).
    pub version: &'a str,
    /// File path (validated).
    pub path: &'a str,
    /// The body's `Content-Type`.
    pub content_type: Option<String>,
    /// The announced `Content-MD5`, checked by storage.
    pub content_md5: Option<[u8; 16]>,
    /// The announced sha256 (hex), checked once the body is stored.
    pub expected_sha256: Option<String>,
}

/// The mutation of a direct upload: streams `body` to storage, checks the digests, writes
/// the sidecar and re-indexes the version.
pub async fn store_file(
    app: &AppState,
    principal: &Principal,
    file: FileUpload<'_>,
    stream: ByteStream,
) -> Result<UploadOutcome> {
    let FileUpload {
        project,
        version,
        path,
        content_type,
        content_md5,
        expected_sha256,
    } = file;
    let key = keys::version_file(project, version, path);
    // Fail early on a clash; checked again once the body is stored.
    super::staging::check_path_free(app, project, version, path).await?;
    let stream: ByteStream = if path.ends_with(".json") {
        // A metadata document: small, and it must be a JSON object to be indexed.
        let limit = app.settings.max_json_bytes;
        let mut buffer = Vec::new();
        let mut stream = stream;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|error| Error::bad_request(error.to_string()))?;
            if buffer.len() + chunk.len() > limit {
                return Err(Error::new(
                    ErrorCode::PayloadTooLarge,
                    format!("a metadata document is at most {limit} bytes"),
                ));
            }
            buffer.extend_from_slice(&chunk);
        }
        if !matches!(
            serde_json::from_slice::<Value>(&buffer),
            Ok(Value::Object(_))
        ) {
            return Err(Error::new(
                ErrorCode::InvalidJson,
                "a .json file is a metadata document and must be a JSON object",
            ));
        }
        bytes_stream(buffer.into())
    } else {
        stream
    };
    // The body streams to a staging key; it becomes the file only under a lease on the
    // version, taken once the body is complete (see `staging`).
    let upload_id = uuid::Uuid::new_v4().simple().to_string();
    let staged = keys::direct_staging(project, version, &upload_id);
    let outcome = app
        .storage
        .put(
            &staged,
            stream,
            PutOptions {
                content_type: content_type.clone(),
                content_md5,
                ..PutOptions::default()
            },
        )
        .await?;
    crate::crash::point("upload.staged");
    let record = FileRecord {
        path: path.to_owned(),
        size: outcome.meta.size,
        md5sum: outcome.md5_hex.clone(),
        sha256: outcome.sha256_hex.clone(),
        content_type,
        uploaded_at: Utc::now(),
        uploaded_by: principal.actor(),
    };
    let accepted = async {
        if let Some(expected) = &expected_sha256
            && *expected != outcome.sha256_hex
        {
            return Err(Error::new(
                ErrorCode::DigestMismatch,
                format!(
                    "sha256 mismatch: expected {expected}, got {}",
                    outcome.sha256_hex
                ),
            ));
        }
        let lease_ends = super::staging::take_lease(app, project, version, &upload_id).await?;
        let record = &record;
        let moved = async {
            super::staging::check_path_free(app, project, version, path).await?;
            if Utc::now() >= lease_ends {
                return Err(Error::new(
                    ErrorCode::UploadInProgress,
                    "the upload took too long to be accepted, retry",
                ));
            }
            app.storage.rename(&staged, &key).await?;
            crate::crash::point("upload.moved");
            write_sidecar(app, project, version, record).await
        }
        .await;
        super::staging::release_lease(app, project, version, &upload_id).await;
        moved
    }
    .await;
    if let Err(error) = accepted {
        if let Err(cleanup) = app.storage.delete(&staged).await {
            tracing::warn!(key = staged, error = %cleanup, "removing a refused upload failed");
        }
        return Err(error);
    }
    reindex_version(app, project, version).await?;
    Ok(UploadOutcome {
        id: format!("{project}:{path}@{version}"),
        size: record.size,
        md5sum: record.md5sum,
        sha256: record.sha256,
    })
}

/// Sidecar reads in flight at once for a listing's cache misses.
const SIDECAR_READS: usize = 16;

/// The sidecar records of a listed version by file path: from the ETag-validated cache when
/// the listing's ETag matches, else read (concurrently) and cached. The flag tells whether
/// every record is the one the listing names: each listed with a known ETag and, when read,
/// read with that ETag (a record rewritten or removed since the listing is not).
pub async fn file_records(
    app: &AppState,
    listing: &crate::index::indexer::VersionListing,
) -> Result<(FileRecords, bool)> {
    let mut records = FileRecords::with_capacity(listing.sidecar_keys.len());
    let mut missing = Vec::new();
    let mut as_listed = true;
    for (path, key) in &listing.sidecar_keys {
        let etag = listing.sidecar_etags.get(key).map_or("", String::as_str);
        as_listed &= !etag.is_empty();
        match app.file_records.get(key, etag) {
            Some(record) => {
                records.insert(path.clone(), record);
            }
            None => missing.push((path.clone(), key.clone(), etag.to_owned())),
        }
    }
    let read: Vec<ReadRecord> = futures::stream::iter(missing)
        .map(|(path, key, listed)| async move {
            let found = read_record::<FileRecord>(app, &key).await?;
            let same = found.as_ref().is_some_and(|(_, etag)| *etag == listed);
            let found = found.map(|(record, etag)| {
                let record = Arc::new(record);
                app.file_records.insert(key, etag, record.clone());
                (path, record)
            });
            Ok::<_, Error>((found, same))
        })
        .buffer_unordered(SIDECAR_READS)
        .try_collect()
        .await?;
    for (found, same) in read {
        as_listed &= same;
        records.extend(found);
    }
    Ok((records, as_listed))
}

/// A listed version's sidecar records by file path.
pub type FileRecords = std::collections::HashMap<String, Arc<FileRecord>>;

/// A sidecar read for a listing: the path and record when found, and whether it had the
/// listed ETag.
type ReadRecord = (Option<(String, Arc<FileRecord>)>, bool);

/// A file as a version's listing shows it: its id, size and checksums, the content type given
/// at upload (else the one storage guesses), and its upload time (else the object's). Fields
/// in `serde_json`'s object order, so the bytes equal those of the `json!` object it replaced.
#[derive(Debug, Serialize)]
pub struct FileEntry<'a> {
    content_type: Option<&'a str>,
    id: String,
    md5sum: Option<&'a str>,
    path: &'a str,
    sha256: Option<&'a str>,
    size: u64,
    uploaded_at: chrono::DateTime<Utc>,
}

impl<'a> FileEntry<'a> {
    /// The entry of the file at `path`, listed as `object`, with its sidecar `record` if any.
    pub fn new(
        project: &str,
        version: &str,
        path: &'a str,
        object: &'a crate::storage::ObjectMeta,
        record: Option<&'a FileRecord>,
    ) -> Self {
        Self {
            content_type: record
                .and_then(|r| r.content_type.as_deref())
                .or(object.content_type.as_deref()),
            id: format!("{project}:{path}@{version}"),
            md5sum: record.map(|r| r.md5sum.as_str()),
            path,
            sha256: record.map(|r| r.sha256.as_str()),
            size: object.size,
            uploaded_at: record.map_or(object.last_modified, |r| r.uploaded_at),
        }
    }
}

/// The mutation of `DELETE /files/{id}`: the bytes and sidecar, or the link; `404` when the
/// version holds neither.
pub async fn remove_file(app: &AppState, project: &str, version: &str, path: &str) -> Result<()> {
    let key = keys::version_file(project, version, path);
    let exists = match app.storage.head(&key).await {
        Ok(_) => true,
        Err(error) if error.is_not_found() => false,
        Err(error) => return Err(error.into()),
    };
    let links_key = keys::version_links(project, version);
    let links = read_record::<serde_json::Map<String, Value>>(app, &links_key).await?;
    let linked = links
        .as_ref()
        .is_some_and(|(links, _)| links.contains_key(path));
    if !exists && !linked {
        return Err(Error::not_found(format!(
            "no file {project}:{path}@{version}"
        )));
    }
    if exists {
        app.storage.delete(&key).await?;
        app.storage
            .delete(&sidecar_key(project, version, path))
            .await?;
    }
    if let Some((mut links, etag)) = links
        && links.remove(path).is_some()
    {
        write_record(app, &links_key, &links, PutCondition::IfMatch(etag)).await?;
    }
    reindex_version(app, project, version).await?;
    Ok(())
}

/// The id a link of a version points to (`None` when `path` is no link there).
pub async fn link_target(
    app: &AppState,
    project: &str,
    version: &str,
    path: &str,
) -> Result<Option<String>> {
    let links =
        read_record::<serde_json::Map<String, Value>>(app, &keys::version_links(project, version))
            .await?
            .map(|(links, _)| links)
            .unwrap_or_default();
    Ok(links
        .get(path)
        .and_then(|link| link.get("id"))
        .and_then(Value::as_str)
        .map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::ObjectMeta;

    /// The typed entry writes the bytes of the `json!` object the listing used to build, with
    /// and without a sidecar record.
    #[test]
    fn a_file_entry_is_written_as_the_json_object_it_replaced() {
        let at = |s: &str| s.parse::<chrono::DateTime<Utc>>().unwrap();
        let object = ObjectMeta {
            key: "p/v1/dir/a \"b\".csv".into(),
            size: 42,
            etag: "e".into(),
            last_modified: at("2026-01-02T03:04:05.678Z"),
            content_type: Some("text/csv".into()),
        };
        let record = FileRecord {
            path: "dir/a \"b\".csv".into(),
            size: 42,
            md5sum: "m".into(),
            sha256: "s".into(),
            content_type: Some("text/plain".into()),
            uploaded_at: at("2025-12-31T23:59:59Z"),
            uploaded_by: "u".into(),
        };
        let path = "dir/a \"b\".csv";
        for record in [Some(&record), None] {
            let old = serde_json::json!({
                "id": format!("p:{path}@v1"),
                "path": path,
                "size": object.size,
                "md5sum": record.map(|r| r.md5sum.clone()),
                "sha256": record.map(|r| r.sha256.clone()),
                "content_type": record.and_then(|r| r.content_type.clone()).or_else(|| object.content_type.clone()),
                "uploaded_at": record.map_or(object.last_modified, |r| r.uploaded_at),
            });
            let new = FileEntry::new("p", "v1", path, &object, record);
            assert_eq!(
                serde_json::to_string(&new).unwrap(),
                serde_json::to_string(&old).unwrap()
            );
        }
    }
}
