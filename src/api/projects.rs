//! Trove's direct project and version routes: `POST /projects`, `GET·PATCH /projects/{p}`,
//! `POST /projects/{p}/versions`, `GET·PATCH·DELETE /projects/{p}/version/{v}`.
//!
//! Every route reaches its project or version through [`super::access`], so the permission
//! engine decides; unique records are created with `If-None-Match: *` (exactly one of many
//! concurrent creators wins) and updated with `If-Match`. Whatever changes is re-indexed
//! before the answer, so it is searchable at once.
//!
//! # Audit
//!
//! Each mutation route records one event through one call site per action (SPEC §9), with
//! [`crate::audit::Audit::mutation`]: `project.create` (`POST /projects`), `version.create`
//! (`POST .../versions`), `version.delete` (`DELETE .../version/{v}`), and for the PATCH
//! routes **one event per request**, whose action is chosen by precedence when one PATCH
//! changes several things:
//!
//! 1. `state.change` when `state` is given (details `from`, `to`),
//! 2. else `version.stable` when `stable` is given (`PATCH .../version/{v}` only),
//! 3. else `project.update` / `version.update` (an empty PATCH counts as an update).
//!
//! The details of a PATCH event always carry `fields`, every field the request changes (so a
//! `state.change` that also retitles the project says so), and `stable` when it is given.
//!
//! Every permission decision runs before the event, through [`super::access`] (which records
//! a refusal as `access.denied` with the engine's reason, the one call site for that action):
//! the gate, and the decisions that need the request's values (creating a project, a state
//! change, marking stable, updating the record). A refused request therefore leaves one
//! `access.denied` and no mutation event.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::Utc;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::access::{ProjectView, VersionView, authorize_project, authorize_version, decide};
use crate::app::AppState;
use crate::audit::AuditEvent;
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult, ErrorCode};
use crate::feed::{Change, FeedError};
use crate::model::names::{self, NameError};
use crate::model::records::{
    NamespaceRecord, ProjectRecord, ProjectType, VersionRecord, VersionStatus,
};
use crate::permissions::{
    AccessRule, Action, LifecycleState, LoaderError, PrincipalRef, Profile, ProfileLocation,
    ProfileScope, Role, Target, Visibility, effective_state,
};
use crate::storage::{ObjectStoreExt as _, PutCondition, PutOptions, keys};

/// Maps a name or path error to `400 invalid_name` / `400 invalid_path`.
#[must_use]
pub fn name_error(error: &NameError) -> ApiError {
    let code = if error.code() == "invalid_path" {
        ErrorCode::InvalidPath
    } else {
        ErrorCode::InvalidName
    };
    ApiError::new(code, error.to_string())
}

/// Maps a profile loader error: an invalid profile is `422` with the profile error's code.
#[must_use]
pub fn loader_error(error: LoaderError) -> ApiError {
    match error {
        LoaderError::Storage(storage) => storage.into(),
        LoaderError::Profile { source, .. } => {
            ApiError::new(ErrorCode::Unprocessable, source.to_string())
                .with_code_name(source.code())
        }
    }
}

/// Reads a JSON record with its ETag; `None` when absent.
pub async fn read_record<T: DeserializeOwned>(
    app: &AppState,
    key: &str,
) -> ApiResult<Option<(T, String)>> {
    match app.storage.get_bytes(key).await {
        Ok((bytes, meta)) => serde_json::from_slice(&bytes)
            .map(|value| Some((value, meta.etag)))
            .map_err(|error| {
                ApiError::internal(std::io::Error::other(format!(
                    "corrupt record {key}: {error}"
                )))
            }),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Writes a JSON record subject to `condition`: an existing record on `IfAbsent` is
/// `409 already_exists`, a stale ETag on `IfMatch` is `412 precondition_failed`.
pub async fn write_record<T: serde::Serialize + Sync>(
    app: &AppState,
    key: &str,
    value: &T,
    condition: PutCondition,
) -> ApiResult<String> {
    let body = serde_json::to_vec_pretty(value).map_err(ApiError::internal)?;
    let outcome = app
        .storage
        .put_bytes(
            key,
            Bytes::from(body),
            PutOptions {
                content_type: Some("application/json".to_owned()),
                condition,
                ..PutOptions::default()
            },
        )
        .await?;
    Ok(outcome.meta.etag)
}

/// Appends `change` to the change feed, so every other replica re-indexes it too; before
/// the request is answered.
pub async fn publish(app: &AppState, change: Change) -> ApiResult<()> {
    app.feed
        .publish(change)
        .await
        .map(|_| ())
        .map_err(|error| match error {
            FeedError::Storage(storage) => storage.into(),
            other => ApiError::new(ErrorCode::StorageUnavailable, other.to_string()),
        })
}

/// Re-indexes whole projects now (record, every version), so a change is searchable when
/// the request is answered; every other replica follows through the change feed.
pub async fn reindex_project(app: &AppState, project: &str) -> ApiResult<()> {
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
pub async fn reindex_version(app: &AppState, project: &str, version: &str) -> ApiResult<()> {
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
pub fn index_error(error: crate::index::indexer::IndexerError) -> ApiError {
    match error {
        crate::index::indexer::IndexerError::Storage(storage) => storage.into(),
        other => ApiError::internal(other),
    }
}

/// Starts a job re-indexing one project (record and versions); answers its id. The change
/// is in the feed for the other replicas before this returns.
pub async fn spawn_reindex_job(app: &AppState, actor: &str, project: &str) -> ApiResult<String> {
    publish(
        app,
        Change::Projects {
            projects: vec![project.to_owned()],
        },
    )
    .await?;
    let job = app.jobs.create("index_project", actor);
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
pub fn caller_principal(principal: &Principal) -> ApiResult<PrincipalRef> {
    PrincipalRef::parse(&principal.actor())
        .map_err(|_| ApiError::new(ErrorCode::Forbidden, "this caller cannot own a project"))
}

/// The evaluation target of creating a project: its namespace, or the global target.
async fn creation_target(app: &AppState, namespace: Option<&str>) -> ApiResult<Target> {
    let Some(namespace) = namespace else {
        return Ok(Target::default());
    };
    names::validate_namespace(namespace).map_err(|error| name_error(&error))?;
    let (record, _) = read_record::<NamespaceRecord>(app, &keys::namespace_record(namespace))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no namespace {namespace}")))?;
    let chain = app
        .profiles
        .load_chain(Some(namespace), None, None)
        .await
        .map_err(loader_error)?;
    Ok(Target {
        profile: chain.resolve(),
        state: record.state,
        parent_state: LifecycleState::Active,
        namespace: Some(namespace.to_owned()),
        auto_create: record.auto_create,
        ..Target::default()
    })
}

/// Decides whether `principal` may create a project in `namespace` (or outside namespaces),
/// recording a refusal as `access.denied`.
pub async fn authorize_creation(
    app: &AppState,
    principal: &Principal,
    namespace: Option<&str>,
) -> ApiResult<()> {
    let target = creation_target(app, namespace).await?;
    decide(app, principal, Action::CreateProject, &target)
}

/// Creates a project record and its profile for `principal` (who must be allowed to create
/// projects where it goes). `409 already_exists` when the id is taken.
pub async fn create_project(
    app: &AppState,
    principal: &Principal,
    mut record: ProjectRecord,
    visibility: Visibility,
) -> ApiResult<ProjectRecord> {
    names::validate_project_id(&record.project_id).map_err(|error| name_error(&error))?;
    let target = creation_target(app, record.namespace.as_deref()).await?;
    principal.decide(Action::CreateProject, &target, app.clock.now())?;
    let owner = caller_principal(principal)?;
    record.created_at = Utc::now();
    record.created_by = principal.actor();
    write_record(
        app,
        &keys::project_record(&record.project_id),
        &record,
        PutCondition::IfAbsent,
    )
    .await
    .map_err(|error| {
        if error.code() == ErrorCode::AlreadyExists {
            ApiError::new(
                ErrorCode::AlreadyExists,
                format!("project {} already exists", record.project_id),
            )
        } else {
            error
        }
    })?;
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
        .await
        .map_err(loader_error)?;
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

/// `POST /projects` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProjectRequest {
    /// Project id; generated when absent.
    pub project_id: Option<String>,
    /// Human title.
    #[serde(default)]
    pub title: String,
    /// Artifact type.
    #[serde(default, rename = "type")]
    pub project_type: ProjectType,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// `private` (default), `shared` or `public`.
    #[schema(value_type = Option<String>)]
    pub visibility: Option<Visibility>,
    /// Namespace, fixed at creation.
    pub namespace: Option<String>,
}

/// Creates a project; the caller becomes its owner.
#[utoipa::path(post, path = "/projects", tag = "projects", request_body = CreateProjectRequest,
    responses(
        (status = 201, description = "Created", body = ProjectRecord),
        (status = 403, description = "The caller's role may not create projects here", body = crate::error::ErrorBody),
        (status = 409, description = "The id is taken", body = crate::error::ErrorBody),
    ))]
pub async fn post_project(
    State(app): State<AppState>,
    principal: Principal,
    ApiJson(request): ApiJson<CreateProjectRequest>,
) -> ApiResult<Response> {
    let project_id = request
        .project_id
        .unwrap_or_else(|| format!("P{}", uuid::Uuid::now_v7().simple()));
    // Never store an unvalidated client string as the event's resource.
    names::validate_project_id(&project_id).map_err(|error| name_error(&error))?;
    let visibility = request.visibility.unwrap_or(Visibility::Private);
    authorize_creation(&app, &principal, request.namespace.as_deref()).await?;
    let record = ProjectRecord {
        project_id,
        title: request.title,
        project_type: request.project_type,
        description: request.description,
        tags: request.tags,
        namespace: request.namespace,
        state: LifecycleState::Active,
        created_at: Utc::now(),
        created_by: String::new(),
    };
    let event = AuditEvent::new("project.create")
        .by(&principal)
        .resource(format!("project:{}", record.project_id))
        .project(&record.project_id)
        .detail(
            "type",
            serde_json::to_value(record.project_type).unwrap_or_default(),
        )
        .detail(
            "visibility",
            serde_json::to_value(visibility).unwrap_or_default(),
        )
        .detail("namespace", record.namespace.clone());
    // The record (`Sync`) comes out of the mutation, the response is built after it.
    let record = app
        .audit
        .mutation(event, 201, async {
            let record = create_project(&app, &principal, record, visibility).await?;
            reindex_project(&app, &record.project_id).await?;
            Ok(record)
        })
        .await?;
    Ok((StatusCode::CREATED, ApiJson(record)).into_response())
}

/// A project's record.
#[utoipa::path(get, path = "/projects/{project}", tag = "projects",
    params(("project" = String, Path)),
    responses(
        (status = 200, description = "The record", body = ProjectRecord),
        (status = 404, description = "No such project, or not readable", body = crate::error::ErrorBody),
    ))]
pub async fn get_project(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(project): ApiPath<String>,
) -> ApiResult<ApiJson<ProjectRecord>> {
    let view = authorize_project(&app, &principal, &project, Action::ReadMetadata).await?;
    Ok(ApiJson(view.record))
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

/// Changes a project's record (writers) or state (owners: active ↔ deprecated; admins).
#[utoipa::path(patch, path = "/projects/{project}", tag = "projects",
    params(("project" = String, Path)), request_body = PatchProjectRequest,
    responses(
        (status = 200, description = "The new record", body = ProjectRecord),
        (status = 403, description = "Not allowed", body = crate::error::ErrorBody),
        (status = 409, description = "Deprecated, or a parent is disabled", body = crate::error::ErrorBody),
    ))]
pub async fn patch_project(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(project): ApiPath<String>,
    ApiJson(request): ApiJson<PatchProjectRequest>,
) -> ApiResult<ApiJson<ProjectRecord>> {
    let view = authorize_project(&app, &principal, &project, Action::ReadMetadata).await?;
    authorize_project_patch(&app, &principal, &view, &request)?;
    let mut fields = Vec::new();
    for (field, given) in [
        ("title", request.title.is_some()),
        ("description", request.description.is_some()),
        ("tags", request.tags.is_some()),
        ("type", request.project_type.is_some()),
        ("state", request.state.is_some()),
    ] {
        if given {
            fields.push(field);
        }
    }
    // One event per request; precedence: state.change > project.update.
    let event = match request.state {
        Some(to) => AuditEvent::new("state.change")
            .detail("from", view.record.state.as_str())
            .detail("to", to.as_str()),
        None => AuditEvent::new("project.update"),
    }
    .by(&principal)
    .resource(format!("project:{project}"))
    .project(&project)
    .detail("fields", fields);
    let record = app
        .audit
        .mutation(event, 200, update_project(&app, view, request))
        .await?;
    Ok(ApiJson(record))
}

/// The mutation of `PATCH /projects/{p}`: the route's own decisions, then the write.
/// The permission decisions of `PATCH /projects/{p}`, before its event: a refusal is an
/// `access.denied` with its reason (recorded by [`decide`]), not a mutation.
fn authorize_project_patch(
    app: &AppState,
    principal: &Principal,
    view: &ProjectView,
    request: &PatchProjectRequest,
) -> ApiResult<()> {
    let mut target = view.target.clone();
    if let Some(to) = request.state {
        decide(
            app,
            principal,
            Action::ChangeState {
                from: view.record.state,
                to,
            },
            &target,
        )?;
        let namespace_state = view.record.namespace.as_ref().map(|_| {
            view.namespace
                .as_ref()
                .map_or(LifecycleState::Active, |ns| ns.state)
        });
        target.state = effective_state(namespace_state, Some(to), None);
    }
    let changes_record = request.title.is_some()
        || request.description.is_some()
        || request.tags.is_some()
        || request.project_type.is_some();
    // An empty patch is judged as a record update, so readers cannot cause writes.
    if changes_record || request.state.is_none() {
        decide(app, principal, Action::UpdateRecord, &target)?;
    }
    Ok(())
}

/// The mutation of `PATCH /projects/{p}` (authorized by [`authorize_project_patch`]).
async fn update_project(
    app: &AppState,
    view: ProjectView,
    request: PatchProjectRequest,
) -> ApiResult<ProjectRecord> {
    let project = view.record.project_id.clone();
    let key = keys::project_record(&project);
    // Concurrent changes of other fields are retried on the fresh record; a concurrent state
    // change is not: the permission decisions were made for the state read first.
    let mut attempt = 0_u64;
    let record = loop {
        let (mut record, etag) = read_record::<ProjectRecord>(app, &key)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no project {project}")))?;
        if record.state != view.record.state {
            return Err(ApiError::new(
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
        match write_record(app, &key, &record, PutCondition::IfMatch(etag)).await {
            Ok(_) => break record,
            Err(error) if error.code() == ErrorCode::PreconditionFailed && attempt < 8 => {
                attempt += 1;
                let jitter = u64::from(rand::random::<u8>() % 20);
                tokio::time::sleep(std::time::Duration::from_millis(attempt * 5 + jitter)).await;
            }
            Err(error) => return Err(error),
        }
    };
    reindex_project(app, &project).await?;
    Ok(record)
}

/// `POST /projects/{p}/versions` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVersionRequest {
    /// Version name, unique in the project.
    pub version: String,
    /// Free text.
    #[serde(default)]
    pub changelog: String,
}

/// Creates an `open` version (writers).
#[utoipa::path(post, path = "/projects/{project}/versions", tag = "projects",
    params(("project" = String, Path)), request_body = CreateVersionRequest,
    responses(
        (status = 201, description = "Created", body = VersionRecord),
        (status = 409, description = "The version exists", body = crate::error::ErrorBody),
    ))]
pub async fn post_version(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(project): ApiPath<String>,
    ApiJson(request): ApiJson<CreateVersionRequest>,
) -> ApiResult<Response> {
    names::validate_version(&request.version).map_err(|error| name_error(&error))?;
    authorize_project(&app, &principal, &project, Action::CreateVersion).await?;
    let record = new_version_record(&project, &request.version, &principal, VersionStatus::Open);
    let record = VersionRecord {
        changelog: request.changelog,
        ..record
    };
    let event = AuditEvent::new("version.create")
        .by(&principal)
        .resource(format!("version:{project}@{}", record.version))
        .project(&project)
        .detail("status", "open");
    let record = app
        .audit
        .mutation(event, 201, async {
            create_version(&app, &record).await?;
            reindex_version(&app, &project, &record.version).await?;
            Ok(record)
        })
        .await?;
    Ok((StatusCode::CREATED, ApiJson(record)).into_response())
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
        leases: std::collections::BTreeMap::new(),
    }
}

/// Writes a new version record if absent: `409 already_exists` when the version exists.
pub async fn create_version(app: &AppState, record: &VersionRecord) -> ApiResult<()> {
    write_record(
        app,
        &keys::version_record(&record.project_id, &record.version),
        record,
        PutCondition::IfAbsent,
    )
    .await
    .map_err(|error| {
        if error.code() == ErrorCode::AlreadyExists {
            ApiError::new(
                ErrorCode::AlreadyExists,
                format!("version {} of {} exists", record.version, record.project_id),
            )
        } else {
            error
        }
    })?;
    Ok(())
}

/// A version's record (`latest` resolves among the versions the caller can read).
#[utoipa::path(get, path = "/projects/{project}/version/{version}", tag = "projects",
    params(("project" = String, Path), ("version" = String, Path)),
    responses(
        (status = 200, description = "The record", body = VersionRecord),
        (status = 404, description = "No such version, or not readable", body = crate::error::ErrorBody),
    ))]
pub async fn get_version(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath((project, version)): ApiPath<(String, String)>,
) -> ApiResult<ApiJson<VersionRecord>> {
    let view =
        authorize_version(&app, &principal, &project, &version, Action::ReadMetadata).await?;
    Ok(ApiJson(view.record))
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

/// Changes a version's changelog, stability or state.
#[utoipa::path(patch, path = "/projects/{project}/version/{version}", tag = "projects",
    params(("project" = String, Path), ("version" = String, Path)), request_body = PatchVersionRequest,
    responses(
        (status = 200, description = "The new record", body = VersionRecord),
        (status = 403, description = "Not allowed", body = crate::error::ErrorBody),
        (status = 409, description = "Stable, deprecated, or not completed", body = crate::error::ErrorBody),
    ))]
pub async fn patch_version(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath((project, version)): ApiPath<(String, String)>,
    ApiJson(request): ApiJson<PatchVersionRequest>,
) -> ApiResult<ApiJson<VersionRecord>> {
    let view =
        authorize_version(&app, &principal, &project, &version, Action::ReadMetadata).await?;
    authorize_version_patch(&app, &principal, &view, &request)?;
    let mut fields = Vec::new();
    for (field, given) in [
        ("changelog", request.changelog.is_some()),
        ("stable", request.stable.is_some()),
        ("state", request.state.is_some()),
    ] {
        if given {
            fields.push(field);
        }
    }
    // One event per request; precedence: state.change > version.stable > version.update.
    let mut event = match (request.state, request.stable) {
        (Some(to), _) => AuditEvent::new("state.change")
            .detail("from", view.record.state.as_str())
            .detail("to", to.as_str()),
        (None, Some(_)) => AuditEvent::new("version.stable"),
        (None, None) => AuditEvent::new("version.update"),
    }
    .by(&principal)
    .resource(format!("version:{project}@{}", view.record.version))
    .project(&project)
    .detail("fields", fields);
    if let Some(stable) = request.stable {
        event = event.detail("stable", stable);
    }
    let record = app
        .audit
        .mutation(event, 200, update_version(&app, view, request))
        .await?;
    Ok(ApiJson(record))
}

/// The mutation of `PATCH /projects/{p}/version/{v}`: the route's own decisions, then the
/// write.
/// The permission decisions of `PATCH /projects/{p}/version/{v}`, before its event: a
/// refusal is an `access.denied` with its reason, not a mutation.
fn authorize_version_patch(
    app: &AppState,
    principal: &Principal,
    view: &VersionView,
    request: &PatchVersionRequest,
) -> ApiResult<()> {
    let mut target = view.target.clone();
    if let Some(to) = request.state {
        decide(
            app,
            principal,
            Action::ChangeState {
                from: view.record.state,
                to,
            },
            &target,
        )?;
        target.state = effective_state(Some(view.project.target.state), Some(to), None);
    }
    if let Some(stable) = request.stable {
        decide(app, principal, Action::MarkStable, &target)?;
        target.stable = stable;
    }
    // An empty patch is judged as a record update, so readers cannot cause writes.
    if request.changelog.is_some() || (request.state.is_none() && request.stable.is_none()) {
        decide(app, principal, Action::UpdateRecord, &target)?;
    }
    Ok(())
}

/// The mutation of `PATCH /projects/{p}/version/{v}` (authorized by
/// [`authorize_version_patch`]).
async fn update_version(
    app: &AppState,
    view: VersionView,
    request: PatchVersionRequest,
) -> ApiResult<VersionRecord> {
    let project = view.record.project_id.clone();
    let version = view.record.version.clone();
    let key = keys::version_record(&project, &version);
    let (mut record, etag) = read_record::<VersionRecord>(app, &key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no version {version} of {project}")))?;
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

/// Deletes every object of a version, its record last.
pub async fn delete_version_objects(app: &AppState, project: &str, version: &str) -> ApiResult<()> {
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

/// Deletes a version: writers for non-stable versions; a stable one must be unmarked first
/// (`409 stable_version`).
#[utoipa::path(delete, path = "/projects/{project}/version/{version}", tag = "projects",
    params(("project" = String, Path), ("version" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Not allowed", body = crate::error::ErrorBody),
        (status = 409, description = "Stable or deprecated", body = crate::error::ErrorBody),
    ))]
pub async fn delete_version(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath((project, version)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let view =
        authorize_version(&app, &principal, &project, &version, Action::DeleteVersion).await?;
    let version = view.record.version;
    let event = AuditEvent::new("version.delete")
        .by(&principal)
        .resource(format!("version:{project}@{version}"))
        .project(&project)
        .detail(
            "status",
            serde_json::to_value(view.record.status).unwrap_or_default(),
        );
    app.audit
        .mutation(event, 204, async {
            delete_version_objects(&app, &project, &version).await?;
            reindex_version(&app, &project, &version).await?;
            Ok(StatusCode::NO_CONTENT)
        })
        .await
}
