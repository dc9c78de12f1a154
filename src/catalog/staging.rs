//! Staged uploads: how bytes become part of a version only while it still accepts them.
//!
//! Every upload first lands under `<p>/<v>/..meta/staging/` (never listed, indexed or served):
//! presigned URLs of an ArtifactDB upload write `..meta/staging/<upload-id>/<path>`, a direct
//! upload streams to `..meta/staging/direct/<id>`. The bytes move to their final key only:
//!
//! - for a direct upload, under a **lease** on the open version (taken with a conditional
//!   write of the version record, only while the version is open and not stable); completion
//!   seals a version with a conditional write that requires no live lease, so a body still
//!   streaming when the version is completed (and then marked stable) fails with `409` and
//!   leaves nothing behind;
//! - for a presigned upload, at completion, by the completing caller; a presigned URL used
//!   after completion, abort or purge writes only into a staging area that nothing reads.
//!
//! A presigned URL cannot be refused at use on S3 (it checks only the signature): what one
//! writes after its upload ended is removed by the scheduled purge (`sweep`), from a record
//! each upload with URLs writes before any URL exists (`note_sweep`).
//!
//! Path clashes (`x` then `x/y`, `d/b` then `d`) are refused as `409 path_conflict` before
//! anything is stored.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Error, Result};
use crate::app::AppState;
use crate::error::ErrorCode;
use crate::model::records::{VersionRecord, VersionStatus};
use crate::permissions::LifecycleState;
use crate::storage::records::{self, Edit, Retry};
use crate::storage::{ListRequest, keys};

/// How long a direct upload may hold its lease while it moves its staged body into place
/// (a rename locally, one server-side copy on S3). A holder that crashed stops blocking
/// completion after this.
pub const LEASE_TTL: chrono::Duration = chrono::Duration::minutes(5);

/// How long completion waits for leases held by uploads finishing right now.
const SEAL_WAIT: Duration = Duration::from_secs(30);

/// Attempts of a conditional read-modify-write of a version record.
const UPDATE_ATTEMPTS: u32 = 50;

fn version_gone(project: &str, version: &str) -> Error {
    Error::not_found(format!("no version {version} of {project}"))
}

/// Whether the version record still accepts new files: open (or uploading), not stable and
/// not deprecated or disabled itself. `409` with a stable code otherwise.
pub fn check_accepts_files(record: &VersionRecord) -> Result<()> {
    if record.stable {
        return Err(Error::new(ErrorCode::Stable, "the version is stable"));
    }
    if record.status == VersionStatus::Completed {
        return Err(Error::new(
            ErrorCode::VersionCompleted,
            "the version is completed",
        ));
    }
    match record.state {
        LifecycleState::Active => Ok(()),
        LifecycleState::Deprecated => Err(Error::new(
            ErrorCode::Deprecated,
            "the version is deprecated",
        )),
        LifecycleState::Disabled => Err(Error::new(ErrorCode::Disabled, "the version is disabled")),
    }
}

/// Read-modify-write of a version record with `If-Match`, retried on a concurrent change.
/// `change` sees the current record and may refuse (its error is answered as is).
async fn update_version_record(
    app: &AppState,
    project: &str,
    version: &str,
    mut change: impl FnMut(&mut VersionRecord) -> Result<()>,
) -> Result<VersionRecord> {
    let key = keys::version_record(project, version);
    let retry = Retry::fixed(UPDATE_ATTEMPTS, |_| Duration::from_millis(2));
    records::update(&*app.storage, &key, retry, |record: &mut VersionRecord| {
        change(record).map(|()| Edit::Write)
    })
    .await?
    .map(|found| found.record)
    .ok_or_else(|| version_gone(project, version))
}

/// Takes the lease `id` on a version that still accepts files; answers when it ends.
pub async fn take_lease(
    app: &AppState,
    project: &str,
    version: &str,
    id: &str,
) -> Result<DateTime<Utc>> {
    let expires = Utc::now() + LEASE_TTL;
    update_version_record(app, project, version, |record| {
        check_accepts_files(record)?;
        let now = Utc::now();
        record.leases.retain(|_, until| *until > now);
        record.leases.insert(id.to_owned(), expires);
        Ok(())
    })
    .await?;
    Ok(expires)
}

/// Gives the lease `id` back (a version deleted meanwhile has nothing to give back).
pub async fn release_lease(app: &AppState, project: &str, version: &str, id: &str) {
    let released = update_version_record(app, project, version, |record| {
        record.leases.remove(id);
        Ok(())
    })
    .await;
    match released {
        Ok(_) => {}
        Err(error) if error.code() == ErrorCode::NotFound => {}
        // The lease then expires on its own.
        Err(error) => {
            tracing::warn!(project, version, error = %error.reason(), "releasing an upload lease failed")
        }
    }
}

/// Seals a version: applies `change` in the same conditional write that observes no live
/// lease, waiting a little for uploads that are moving their bytes into place right now;
/// `409 upload_in_progress` if they do not finish in time.
pub async fn seal_version(
    app: &AppState,
    project: &str,
    version: &str,
    mut change: impl FnMut(&mut VersionRecord) -> Result<()>,
) -> Result<VersionRecord> {
    let deadline = tokio::time::Instant::now() + SEAL_WAIT;
    loop {
        let mut leased = false;
        let sealed = update_version_record(app, project, version, |record| {
            let now = Utc::now();
            record.leases.retain(|_, until| *until > now);
            if !record.leases.is_empty() {
                leased = true;
                return Err(Error::new(
                    ErrorCode::UploadInProgress,
                    "files are being uploaded into the version, retry",
                ));
            }
            change(record)
        })
        .await;
        match sealed {
            Err(_) if leased && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

fn path_conflict(path: &str, other: &str) -> Error {
    Error::new(
        ErrorCode::PathConflict,
        format!("{path} clashes with {other}: one would be a folder of the other"),
    )
}

/// Refuses a set of announced paths where one is a folder of another (`x` and `x/y`).
pub fn check_announced_paths(paths: &[&str]) -> Result<()> {
    let mut sorted: Vec<&str> = paths.to_vec();
    sorted.sort_unstable();
    // After sorting, `x` comes right before the paths below `x/` (only `x` + a byte below
    // `/` could sit between them, and such a path is not below `x/`): checking each path
    // against every later one that shares its prefix is enough.
    for (index, path) in sorted.iter().enumerate() {
        let folder = format!("{path}/");
        if let Some(below) = sorted[index + 1..]
            .iter()
            .take_while(|other| other.starts_with(*path))
            .find(|other| other.starts_with(&folder))
        {
            return Err(path_conflict(below, path));
        }
    }
    Ok(())
}

/// Refuses `path` in a version when a file of the version sits at one of its folders, or
/// files sit below it.
pub async fn check_path_free(
    app: &AppState,
    project: &str,
    version: &str,
    path: &str,
) -> Result<()> {
    let mut folder = String::new();
    for segment in path
        .split('/')
        .collect::<Vec<_>>()
        .split_last()
        .map_or(&[][..], |(_, rest)| rest)
    {
        if !folder.is_empty() {
            folder.push('/');
        }
        folder.push_str(segment);
        match app
            .storage
            .head(&keys::version_file(project, version, &folder))
            .await
        {
            Ok(_) => return Err(path_conflict(path, &folder)),
            Err(error) if error.is_not_found() => {}
            Err(error) => return Err(error.into()),
        }
    }
    let below = app
        .storage
        .list(&ListRequest {
            prefix: format!("{}/", keys::version_file(project, version, path)),
            max_keys: 1,
            ..ListRequest::default()
        })
        .await?;
    if let Some(object) = below.objects.first() {
        let relative = object
            .key
            .strip_prefix(&keys::version_prefix(project, version))
            .unwrap_or(&object.key);
        return Err(path_conflict(path, relative));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announced_paths_where_one_is_a_folder_of_another_clash() {
        assert!(check_announced_paths(&["a", "b/c", "b/d", "ab/c", "a.json"]).is_ok());
        for clash in [
            &["x", "x/y"][..],
            &["x/y", "x"],
            &["d/b/c", "d/b", "e"],
            &["x", "x-1", "x.json", "x/y"],
        ] {
            let error = check_announced_paths(clash).expect_err("clash");
            // `409 path_conflict` (was `Conflict` with the name set beside it).
            assert_eq!(error.code(), ErrorCode::PathConflict);
            assert_eq!(error.code().status().as_u16(), 409);
        }
    }

    fn record() -> VersionRecord {
        serde_json::from_value(serde_json::json!({
            "project_id": "p", "version": "v", "created_at": "2026-01-01T00:00:00Z",
            "created_by": "alice", "status": "open"
        }))
        .expect("record")
    }

    #[test]
    fn only_open_active_unstable_versions_accept_files() {
        assert!(check_accepts_files(&record()).is_ok());
        let mut uploading = record();
        uploading.status = VersionStatus::Uploading;
        assert!(check_accepts_files(&uploading).is_ok());
        let mut completed = record();
        completed.status = VersionStatus::Completed;
        let mut stable = completed.clone();
        stable.stable = true;
        let mut deprecated = record();
        deprecated.state = LifecycleState::Deprecated;
        for (refused, code) in [
            (completed, ErrorCode::VersionCompleted),
            (stable, ErrorCode::Stable),
            (deprecated, ErrorCode::Deprecated),
        ] {
            let error = check_accepts_files(&refused).expect_err("refused");
            assert_eq!(error.code(), code);
            assert_eq!(error.code().status().as_u16(), 409);
        }
    }
}

/// An upload whose presigned URLs may still write its staging area
/// ([`keys::staging_sweep`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StagingSweep {
    project: String,
    version: String,
    upload_id: String,
    /// When the last of its URLs expires (and a margin for clocks).
    until: DateTime<Utc>,
}

/// Margin past a URL's expiry for the clocks of storage and replicas.
const SWEEP_CLOCK_MARGIN_SECS: i64 = 300;

/// Records that upload `upload_id`'s URLs, living `ttl`, may write its staging area.
pub(super) async fn note_sweep(
    app: &AppState,
    project: &str,
    version: &str,
    upload_id: &str,
    ttl: Duration,
) -> Result<()> {
    let lifetime = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
    let until = Utc::now()
        .checked_add_signed(lifetime)
        .and_then(|at| at.checked_add_signed(chrono::Duration::seconds(SWEEP_CLOCK_MARGIN_SECS)))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let sweep = StagingSweep {
        project: project.to_owned(),
        version: version.to_owned(),
        upload_id: upload_id.to_owned(),
        until,
    };
    super::projects::write_record(
        app,
        &keys::staging_sweep(upload_id),
        &sweep,
        crate::storage::PutCondition::None,
    )
    .await?;
    Ok(())
}

/// Removes what presigned URLs wrote into the staging area of uploads that are over
/// (completed, aborted, purged, deleted, or replaced by another upload of the version name):
/// a URL is checked when used only on local storage, so on S3 a URL used after its upload
/// ended writes an object nothing reads. An upload's record goes once its URLs have all
/// expired. Answers how many objects were removed.
pub(super) async fn sweep(
    app: &AppState,
    now: DateTime<Utc>,
) -> std::result::Result<usize, String> {
    let sweeps = app
        .storage
        .list_all(&keys::staging_sweeps_prefix())
        .await
        .map_err(|error| error.to_string())?;
    let mut removed = 0;
    for object in sweeps {
        // One upload's trouble (an unreadable record, a failing delete) is logged and tried
        // again at the next purge; it does not hold up the others.
        match sweep_one(app, &object.key, now).await {
            Ok(count) => removed += count,
            Err(error) => {
                tracing::warn!(key = object.key, %error, "purge: staging area not swept");
            }
        }
    }
    Ok(removed)
}

/// [`sweep`] for the upload recorded at `key`.
async fn sweep_one(app: &AppState, key: &str, now: DateTime<Utc>) -> Result<usize> {
    let Some((sweep, _)) = super::projects::read_record::<StagingSweep>(app, key).await? else {
        return Ok(0);
    };
    let record = super::projects::read_record::<VersionRecord>(
        app,
        &keys::version_record(&sweep.project, &sweep.version),
    )
    .await?;
    let going_on = record.is_some_and(|(record, _)| {
        record.status == VersionStatus::Uploading
            && record.upload_id.as_deref() == Some(sweep.upload_id.as_str())
    });
    if going_on {
        return Ok(0);
    }
    let prefix = keys::upload_staging_prefix(&sweep.project, &sweep.version, &sweep.upload_id);
    let mut removed = 0;
    for staged in app.storage.list_all(&prefix).await? {
        match app.storage.delete(&staged.key).await {
            Ok(()) => removed += 1,
            Err(error) if error.is_not_found() => {}
            Err(error) => return Err(error.into()),
        }
    }
    if now > sweep.until {
        match app.storage.delete(key).await {
            Ok(()) => {}
            Err(error) if error.is_not_found() => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(removed)
}
