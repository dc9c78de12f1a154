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
use chrono::Utc;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::{
    authorize_project, authorize_project_patch, authorize_version, authorize_version_patch, decide,
};
use crate::app::AppState;
use crate::audit::AuditEvent;
use crate::auth::Principal;
pub use crate::catalog::projects::{
    PatchProjectRequest, PatchVersionRequest, caller_principal, create_project, create_version,
    delete_version_objects, index_error, new_version_record, publish, read_record, reindex_project,
    reindex_version, spawn_reindex_job, write_record,
};
use crate::catalog::projects::{update_project, update_version};
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::model::names::{self, NameError};
use crate::model::records::{ProjectRecord, ProjectType, VersionRecord, VersionStatus};
use crate::permissions::{Action, LifecycleState, LoaderError, Visibility};

/// Maps a name or path error to `400 invalid_name` / `400 invalid_path`.
#[must_use]
pub fn name_error(error: &NameError) -> ApiError {
    crate::catalog::Error::from(error.clone()).into()
}

/// Maps a profile loader error: an invalid profile is `422` with the profile error's code.
#[must_use]
pub fn loader_error(error: LoaderError) -> ApiError {
    crate::catalog::Error::from(error).into()
}

/// Decides whether `principal` may create a project in `namespace` (or outside namespaces),
/// recording a refusal as `access.denied`.
pub async fn authorize_creation(
    app: &AppState,
    principal: &Principal,
    namespace: Option<&str>,
) -> ApiResult<()> {
    let target = crate::catalog::projects::creation_target(app, namespace).await?;
    decide(app, principal, Action::CreateProject, &target)
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
    let event = project_create_event(&principal, &record, visibility);
    // The record (`Sync`) comes out of the mutation, the response is built after it.
    let record = app
        .audit
        .mutation(event, 201, async {
            let record = create_project(&app, &principal, record, visibility).await?;
            reindex_project(&app, &record.project_id).await?;
            Ok::<_, crate::error::ApiError>(record)
        })
        .await?;
    Ok((StatusCode::CREATED, ApiJson(record)).into_response())
}

/// The `project.create` event of a new project record.
fn project_create_event(
    principal: &Principal,
    record: &ProjectRecord,
    visibility: Visibility,
) -> AuditEvent {
    AuditEvent::new("project.create")
        .by(principal)
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
        .detail("namespace", record.namespace.clone())
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
            Ok::<_, crate::error::ApiError>(record)
        })
        .await?;
    Ok((StatusCode::CREATED, ApiJson(record)).into_response())
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
    Ok(ApiJson(view.record.presented()))
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
    Ok(ApiJson(record.presented()))
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

/// This module's routes, merged into the API's router by `api::api_router`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_project))
        .routes(routes!(post_version))
        .routes(routes!(get_project, patch_project))
        .routes(routes!(get_version, patch_version, delete_version))
}
