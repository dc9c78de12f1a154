//! Projects and versions as records: reading and writing JSON records, creating a project
//! (record and profile) or a version, deleting a version's objects, and re-indexing what
//! changed (locally now, on every other replica through the change feed).
//!
//! Unique records are created with `If-None-Match: *` (exactly one of many concurrent
//! creators wins) and updated with `If-Match`.

use chrono::Utc;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::namespaces::{claim_project, release_claim};
use super::target::{ProjectView, VersionView};
use super::{Error, Result};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::ErrorCode;
use crate::feed::{Change, FeedError};
use crate::model::names;
use crate::model::records::{
    NamespaceRecord, ProjectRecord, ProjectType, VersionRecord, VersionStatus,
};
use crate::permissions::{
    AccessRule, Action, LifecycleState, PrincipalRef, Profile, ProfileLocation, ProfileScope, Role,
    Target, Visibility,
};
use crate::storage::records::{self, Edit, RecordError, Retry};
use crate::storage::{PutCondition, StorageError, keys};

/// Reads a JSON record with its ETag; `None` when absent ([`records::read`]).
pub async fn read_record<T: DeserializeOwned>(
    app: &AppState,
    key: &str,
) -> Result<Option<(T, String)>> {
    Ok(records::read(&*app.storage, key)
        .await?
        .map(|found| (found.record, found.etag)))
}

/// Writes a JSON record subject to `condition` ([`records::write`]): an existing record on
/// `IfAbsent` is `409 already_exists`, a stale ETag on `IfMatch` is `412 precondition_failed`.
pub async fn write_record<T: serde::Serialize + Sync>(
    app: &AppState,
    key: &str,
    value: &T,
    condition: PutCondition,
) -> Result<String> {
    Ok(records::write(&*app.storage, key, value, condition).await?)
}

/// Creates a JSON record if absent ([`records::create`]); an existing one is
/// `409 already_exists` with `taken` as the reason.
pub async fn create_record<T: serde::Serialize + Sync>(
    app: &AppState,
    key: &str,
    value: &T,
    taken: impl FnOnce() -> String,
) -> Result<String> {
    match records::create(&*app.storage, key, value).await {
        Err(RecordError::Storage(StorageError::AlreadyExists { .. })) => {
            Err(Error::new(ErrorCode::AlreadyExists, taken()))
        }
        other => Ok(other?),
    }
}

/// Appends `change` to the change feed, so every other replica re-indexes it too; before
/// the request is answered.
pub async fn publish(app: &AppState, change: Change) -> Result<()> {
    app.feed
        .publish(change)
        .await
        .map(|_| ())
        .map_err(|error| match error {
            FeedError::Storage(storage) => storage.into(),
            other => Error::new(ErrorCode::StorageUnavailable, other.to_string()),
        })
}

/// Re-indexes whole projects now (record, every version), so a change is searchable when
/// the request is answered; every other replica follows through the change feed.
pub async fn reindex_project(app: &AppState, project: &str) -> Result<()> {
    // Published even when the local re-index fails, and the local index updated even when
    // publishing fails: the change is stored either way.
    let published = publish(
        app,
        Change::Projects {
            projects: vec![project.to_owned()],
        },
    )
    .await;
    app.indexer
        .index_projects(Some(vec![project.to_owned()]), |_, _| {})
        .await
        .map(|_| ())
        .map_err(index_error)?;
    published
}

/// Re-indexes one version now (and, through the change feed, on every other replica).
pub async fn reindex_version(app: &AppState, project: &str, version: &str) -> Result<()> {
    let published = publish(
        app,
        Change::Version {
            project: project.to_owned(),
            version: version.to_owned(),
        },
    )
    .await;
    app.indexer
        .index_version(project, version)
        .await
        .map(|_| ())
        .map_err(index_error)?;
    published
}

/// Maps an indexer error.
#[must_use]
pub fn index_error(error: crate::index::indexer::IndexerError) -> Error {
    match error {
        crate::index::indexer::IndexerError::Storage(storage) => storage.into(),
        other => Error::internal(other),
    }
}

/// Starts a job re-indexing one project (record and versions); answers its id. The change
/// is in the feed for the other replicas before this returns.
pub async fn spawn_reindex_job(app: &AppState, actor: &str, project: &str) -> Result<String> {
    publish(
        app,
        Change::Projects {
            projects: vec![project.to_owned()],
        },
    )
    .await?;
    let job = app.jobs.create(crate::jobs::JobKind::IndexProject, actor);
    let id = job.id().to_owned();
    let indexer = app.indexer.clone();
    let project = project.to_owned();
    app.jobs
        .start(job, move |job| async move {
            crate::crash::point("reindex.start");
            indexer
                .index_projects(Some(vec![project]), |done, total| {
                    job.progress(done as u64, total as u64);
                })
                .await
                .map(|_| ())
                .map_err(|error| error.to_string())
        })
        .await;
    Ok(id)
}

/// The principal string of the caller, as listed in a profile.
pub fn caller_principal(principal: &Principal) -> Result<PrincipalRef> {
    PrincipalRef::parse(&principal.actor())
        .map_err(|_| Error::new(ErrorCode::Forbidden, "this caller cannot own a project"))
}

/// The evaluation target of creating a project: its namespace, or the global target.
///
/// # Errors
///
/// `404` when the namespace does not exist.
pub async fn creation_target(app: &AppState, namespace: Option<&str>) -> Result<Target> {
    Ok(versioned_creation_target(app, namespace).await?.0)
}

/// The namespace record a creation was authorized against: its ETag (the creation claims
/// its project id against it) and whether a deletion has marked it.
struct NamespaceSeen {
    etag: String,
    deleting: bool,
}

/// [`creation_target`] with what the creation saw of the namespace record (nothing for the
/// global target).
async fn versioned_creation_target(
    app: &AppState,
    namespace: Option<&str>,
) -> Result<(Target, Option<NamespaceSeen>)> {
    let Some(namespace) = namespace else {
        return Ok((Target::default(), None));
    };
    names::validate_namespace(namespace)?;
    let (record, etag) = read_record::<NamespaceRecord>(app, &keys::namespace_record(namespace))
        .await?
        .ok_or_else(|| Error::not_found(format!("no namespace {namespace}")))?;
    let seen = NamespaceSeen {
        etag,
        deleting: record.deleting,
    };
    let chain = app.profiles.load_chain(Some(namespace), None, None).await?;
    let target = Target {
        profile: chain.resolve(),
        state: record.state,
        parent_state: LifecycleState::Active,
        namespace: Some(namespace.to_owned()),
        auto_create: record.auto_create,
        ..Target::default()
    };
    Ok((target, Some(seen)))
}

/// Creates a project record and its profile for `principal` (who must be allowed to create
/// projects where it goes). `409 already_exists` when the id is taken.
pub async fn create_project(
    app: &AppState,
    principal: &Principal,
    mut record: ProjectRecord,
    visibility: Visibility,
) -> Result<ProjectRecord> {
    names::validate_project_id(&record.project_id)?;
    let (target, namespace_seen) =
        versioned_creation_target(app, record.namespace.as_deref()).await?;
    // Decided first: a namespace the caller may not see answers as it always does, never
    // "being deleted".
    principal.decide(Action::CreateProject, &target, app.clock.now())?;
    let owner = caller_principal(principal)?;
    record.created_at = Utc::now();
    record.created_by = principal.actor();
    // In a namespace: claim the id there first, so a deletion of the namespace either sees
    // this project or this creation sees the deletion (`catalog::namespaces`).
    let claim = match (&record.namespace, &namespace_seen) {
        (Some(namespace), Some(seen)) if seen.deleting => {
            return Err(Error::new(
                ErrorCode::Conflict,
                format!("namespace {namespace} is being deleted"),
            ));
        }
        (Some(namespace), Some(seen)) => {
            Some(claim_project(app, namespace, &record.project_id, &seen.etag).await?)
        }
        _ => None,
    };
    crate::crash::point("project.create.claimed");
    let created = create_record(
        app,
        &keys::project_record(&record.project_id),
        &record,
        || format!("project {} already exists", record.project_id),
    )
    .await;
    if let Err(error) = created {
        if let Some(claim) = claim {
            release_claim(app, claim).await;
        }
        return Err(error);
    }
    let profile = if record.namespace.is_some() {
        namespaced_project_profile(principal, visibility, owner)
    } else {
        Profile::for_visibility(visibility, owner)
    };
    app.profiles
        .write_profile(
            &ProfileLocation::Project(record.project_id.clone()),
            profile,
        )
        .await?;
    Ok(record)
}

/// The profile of a project created in a namespace: `inherit: true`, so the namespace's
/// grants and rules reach it; the creator is listed as owner when its role may own (else as
/// writer: a developer creating in an `auto_create` namespace). `public` opens the metadata
/// to everyone (downloads still for viewers); otherwise the namespace's rules apply.
fn namespaced_project_profile(
    principal: &Principal,
    visibility: Visibility,
    creator: PrincipalRef,
) -> Profile {
    let mut profile = Profile {
        scope: Some(ProfileScope::Project),
        inherit: true,
        ..Profile::default()
    };
    if principal.caller.role().is_some_and(Role::can_own) {
        profile.owners.push(creator);
    } else {
        profile.writers.push(creator);
    }
    if visibility == Visibility::Public {
        profile.read_access = Some(AccessRule::Public);
        profile.download_access = Some(AccessRule::Viewers);
    }
    profile
}

/// A fresh version record.
#[must_use]
pub fn new_version_record(
    project: &str,
    version: &str,
    principal: &Principal,
    status: VersionStatus,
) -> VersionRecord {
    VersionRecord {
        project_id: project.to_owned(),
        version: version.to_owned(),
        changelog: String::new(),
        created_at: Utc::now(),
        created_by: principal.actor(),
        status,
        revision: None,
        numerical_revision: None,
        completed_at: None,
        stable: false,
        state: LifecycleState::Active,
        expires_at: None,
        complete_before: None,
        announced_files: Vec::new(),
        upload_id: None,
        upload_key: None,
        upload_account: None,
        upload_external: None,
        leases: std::collections::BTreeMap::new(),
    }
}

/// Writes a new version record if absent: `409 already_exists` when the version exists.
pub async fn create_version(app: &AppState, record: &VersionRecord) -> Result<()> {
    create_record(
        app,
        &keys::version_record(&record.project_id, &record.version),
        record,
        || format!("version {} of {} exists", record.version, record.project_id),
    )
    .await?;
    Ok(())
}

/// Deletes every object of a version, its record last.
pub async fn delete_version_objects(app: &AppState, project: &str, version: &str) -> Result<()> {
    let record_key = keys::version_record(project, version);
    let objects = app
        .storage
        .list_all(&keys::version_prefix(project, version))
        .await?;
    for object in objects.iter().filter(|object| object.key != record_key) {
        app.storage.delete(&object.key).await?;
        crate::crash::point("version.delete.partial");
    }
    app.storage.delete(&record_key).await?;
    app.profiles.invalidate(&ProfileLocation::Version {
        project: project.to_owned(),
        version: version.to_owned(),
    });
    Ok(())
}

/// `PATCH /projects/{p}` body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchProjectRequest {
    /// New title.
    pub title: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New tags.
    pub tags: Option<Vec<String>>,
    /// New type.
    #[serde(rename = "type")]
    pub project_type: Option<ProjectType>,
    /// New lifecycle state.
    #[schema(value_type = Option<String>)]
    pub state: Option<LifecycleState>,
}

/// The mutation of `PATCH /projects/{p}`: applies the request to the fresh record
/// (`If-Match`, retried on concurrent changes of other fields; `412` when the state changed
/// meanwhile) and re-indexes the project.
pub async fn update_project(
    app: &AppState,
    view: ProjectView,
    request: PatchProjectRequest,
) -> Result<ProjectRecord> {
    let project = view.record.project_id.clone();
    let key = keys::project_record(&project);
    // Concurrent changes of other fields are retried on the fresh record; a concurrent state
    // change is not: the permission decisions were made for the state read first.
    let retry = Retry::fixed(9, |attempt| {
        let jitter = u64::from(rand::random::<u8>() % 20);
        std::time::Duration::from_millis(u64::from(attempt) * 5 + jitter)
    });
    let record = records::update(&*app.storage, &key, retry, |record: &mut ProjectRecord| {
        if record.state != view.record.state {
            return Err(Error::new(
                ErrorCode::PreconditionFailed,
                "the project's state changed meanwhile, retry",
            ));
        }
        if let Some(title) = &request.title {
            record.title.clone_from(title);
        }
        if let Some(description) = &request.description {
            record.description.clone_from(description);
        }
        if let Some(tags) = &request.tags {
            record.tags.clone_from(tags);
        }
        if let Some(project_type) = request.project_type {
            record.project_type = project_type;
        }
        if let Some(state) = request.state {
            record.state = state;
        }
        Ok(Edit::Write)
    })
    .await?
    .ok_or_else(|| Error::not_found(format!("no project {project}")))?
    .record;
    reindex_project(app, &project).await?;
    Ok(record)
}

/// `PATCH /projects/{p}/version/{v}` body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchVersionRequest {
    /// New changelog (writers; not on a stable version).
    pub changelog: Option<String>,
    /// Mark or unmark stable (owners and admins; completed versions only).
    pub stable: Option<bool>,
    /// New lifecycle state.
    #[schema(value_type = Option<String>)]
    pub state: Option<LifecycleState>,
}

/// The mutation of `PATCH .../version/{v}`: applies the request (`If-Match`) and re-indexes
/// the version.
pub async fn update_version(
    app: &AppState,
    view: VersionView,
    request: PatchVersionRequest,
) -> Result<VersionRecord> {
    let project = view.record.project_id.clone();
    let version = view.record.version.clone();
    let key = keys::version_record(&project, &version);
    let (mut record, etag) = read_record::<VersionRecord>(app, &key)
        .await?
        .ok_or_else(|| Error::not_found(format!("no version {version} of {project}")))?;
    if let Some(changelog) = request.changelog {
        record.changelog = changelog;
    }
    if let Some(stable) = request.stable {
        record.stable = stable;
    }
    if let Some(state) = request.state {
        record.state = state;
    }
    write_record(app, &key, &record, PutCondition::IfMatch(etag)).await?;
    reindex_version(app, &project, &version).await?;
    Ok(record)
}

/// Starts the job of `PUT /index/build`: re-indexes `projects` (every project when `None`)
/// in the background, reporting progress on the job; answers the job's id.
pub async fn start_index_build(
    app: &AppState,
    actor: &str,
    projects: Option<Vec<String>>,
) -> String {
    let job = app.jobs.create(crate::jobs::JobKind::IndexBuild, actor);
    let id = job.id().to_owned();
    let indexer = app.indexer.clone();
    app.jobs
        .start(job, move |job| async move {
            indexer
                .index_projects(projects, |done, total| {
                    if done >= 1 {
                        crate::crash::point("rebuild.progress");
                    }
                    job.progress(done as u64, total as u64);
                })
                .await
                .map(|_| ())
                .map_err(|error| error.to_string())
        })
        .await;
    id
}

/// Publishes a global change and starts a job re-indexing every project (a global profile
/// change can touch any document); answers the job's id.
pub async fn start_global_reindex(app: &AppState, actor: &str) -> Result<String> {
    publish(app, Change::All).await?;
    Ok(start_index_build(app, actor, None).await)
}

/// Publishes a version's change and starts a job re-indexing it (a version profile
/// change); answers the job's id.
pub async fn start_version_reindex(
    app: &AppState,
    actor: &str,
    project: &str,
    version: &str,
) -> Result<String> {
    publish(
        app,
        Change::Version {
            project: project.to_owned(),
            version: version.to_owned(),
        },
    )
    .await?;
    let job = app.jobs.create(crate::jobs::JobKind::IndexVersion, actor);
    let id = job.id().to_owned();
    let indexer = app.indexer.clone();
    let (project, version) = (project.to_owned(), version.to_owned());
    app.jobs
        .start(job, move |job| async move {
            job.progress(0, 1);
            indexer
                .index_version(&project, &version)
                .await
                .map(|_| job.progress(1, 1))
                .map_err(|error| error.to_string())
        })
        .await;
    Ok(id)
}
