//! Permission profiles: `GET·PUT·DELETE /projects/{p}/permissions`,
//! `GET·PUT·DELETE /projects/{p}/version/{v}/permissions` and `/permissions` (global)
//! (ArtifactDB: PUT merges a partial body, `scope` is the route's, grants may not exceed the
//! grantee's role; PUT and DELETE answer `202` with the re-indexing job). Read-only shares
//! are [`super::shares`].
//!
//! Only owners and admins change profiles (`Action::ChangePermissions`).
//!
//! Audit (SPEC §9): once the caller passed [`authorize_project`] / [`authorize_version`]
//! (whose denials are `access.denied`), each change is one mutation event, one call site per
//! action: `permissions.update` (PUT, details: the scope and the partial profile merged),
//! and `permissions.delete` (DELETE).

use axum::extract::State;
use axum::response::Response;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::{authorize_project, authorize_version};
use super::extract::RequireAdmin;
use super::index_admin::accepted;
use super::projects::{loader_error, spawn_reindex_job};
use crate::app::AppState;
use crate::audit::AuditEvent;
use crate::auth::Principal;
pub use crate::catalog::permissions::{merge_profile, validate_grants};
use crate::catalog::projects::{start_global_reindex, start_version_reindex};
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult, ErrorCode};
use crate::permissions::{Action, Profile, ProfileLocation, ProfileScope};

/// The stored profile with the access-rule defaults filled in.
pub fn present(profile: &Profile) -> Value {
    let mut value = profile.to_json_value();
    if let Some(object) = value.as_object_mut() {
        object.insert("read_access".into(), json!(profile.read_rule().as_str()));
        object.insert(
            "download_access".into(),
            json!(profile.download_rule().as_str()),
        );
        object.insert("write_access".into(), json!(profile.write_rule().as_str()));
        object.entry("writers").or_insert_with(|| json!([]));
        object.entry("inherit").or_insert(json!(false));
    }
    value
}

async fn show(
    app: &AppState,
    location: &ProfileLocation,
    fallback: Value,
) -> ApiResult<ApiJson<Value>> {
    let stored = app.profiles.load(location).await.map_err(loader_error)?;
    Ok(ApiJson(match stored {
        Some(profile) => present(&profile),
        None => fallback,
    }))
}

/// Parses a profile update body: a JSON object (`400 invalid_json`, `422 invalid_profile`).
pub fn parse_patch(body: &[u8]) -> ApiResult<Value> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| ApiError::new(ErrorCode::InvalidJson, error.to_string()))?;
    if !value.is_object() {
        return Err(ApiError::new(
            ErrorCode::InvalidProfile,
            "a profile update must be a JSON object",
        ));
    }
    Ok(value)
}

/// A project's profile (stored, defaults filled in; the resolved one when it has none).
#[utoipa::path(get, path = "/projects/{project}/permissions", tag = "permissions",
    params(("project" = String, Path)),
    responses((status = 200, description = "The profile"),
        (status = 404, description = "No such project, or not readable", body = crate::error::ErrorBody)))]
pub async fn get_project_permissions(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(project): ApiPath<String>,
) -> ApiResult<ApiJson<Value>> {
    let view = authorize_project(&app, &principal, &project, Action::ReadPermissions).await?;
    show(
        &app,
        &ProfileLocation::Project(project),
        view.target.profile.to_json_value(),
    )
    .await
}

/// Merges a partial profile into the project's (owners and admins) → `202` with the job.
#[utoipa::path(put, path = "/projects/{project}/permissions", tag = "permissions",
    params(("project" = String, Path)),
    request_body(content = String, content_type = "application/json", description = "A partial profile"),
    responses((status = 202, description = "`{job_id, path, job_url, status}`"),
        (status = 403, description = "Not an owner", body = crate::error::ErrorBody),
        (status = 422, description = "Invalid profile, scope or grant", body = crate::error::ErrorBody)))]
pub async fn put_project_permissions(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(project): ApiPath<String>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    authorize_project(&app, &principal, &project, Action::ChangePermissions).await?;
    let patch = parse_patch(&body)?;
    let event = permissions_event("permissions.update", &principal, &project, None)
        .detail("changes", patch.clone());
    let job = app
        .audit
        .mutation(event, 202, async {
            merge_profile(&app, &ProfileLocation::Project(project.clone()), patch).await?;
            spawn_reindex_job(&app, &principal.actor(), &project).await
        })
        .await?;
    Ok(accepted(&app, &job))
}

/// Deletes the project's profile so resolution falls through to the scope above.
#[utoipa::path(delete, path = "/projects/{project}/permissions", tag = "permissions",
    params(("project" = String, Path)),
    responses((status = 202, description = "`{job_id, path, job_url, status}`"),
        (status = 403, description = "Not an owner", body = crate::error::ErrorBody)))]
pub async fn delete_project_permissions(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(project): ApiPath<String>,
) -> ApiResult<Response> {
    authorize_project(&app, &principal, &project, Action::ChangePermissions).await?;
    let event = permissions_event("permissions.delete", &principal, &project, None);
    let job = app
        .audit
        .mutation(event, 202, async {
            app.profiles
                .delete_profile(&ProfileLocation::Project(project.clone()))
                .await
                .map_err(loader_error)?;
            Ok::<_, crate::error::ApiError>(
                spawn_reindex_job(&app, &principal.actor(), &project).await?,
            )
        })
        .await?;
    Ok(accepted(&app, &job))
}

/// A version's profile (stored, defaults filled in; the resolved one when it has none).
#[utoipa::path(get, path = "/projects/{project}/version/{version}/permissions", tag = "permissions",
    params(("project" = String, Path), ("version" = String, Path)),
    responses((status = 200, description = "The profile"),
        (status = 404, description = "No such version, or not readable", body = crate::error::ErrorBody)))]
pub async fn get_version_permissions(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath((project, version)): ApiPath<(String, String)>,
) -> ApiResult<ApiJson<Value>> {
    let view = authorize_version(
        &app,
        &principal,
        &project,
        &version,
        Action::ReadPermissions,
    )
    .await?;
    show(
        &app,
        &ProfileLocation::Version {
            project,
            version: view.record.version,
        },
        view.target.profile.to_json_value(),
    )
    .await
}

/// The global profile (admins; the built-in default, which grants nothing, when absent).
#[utoipa::path(get, path = "/permissions", tag = "permissions",
    responses((status = 200, description = "The profile"),
        (status = 401, description = "Anonymous", body = crate::error::ErrorBody),
        (status = 403, description = "Not an admin", body = crate::error::ErrorBody)))]
pub async fn get_global_permissions(
    State(app): State<AppState>,
    RequireAdmin(_admin): RequireAdmin,
) -> ApiResult<ApiJson<Value>> {
    let fallback = present(&Profile {
        scope: Some(ProfileScope::Global),
        ..Profile::default()
    });
    show(&app, &ProfileLocation::Global, fallback).await
}

/// Merges a partial profile into the global one (admins) → `202` with a job re-indexing
/// every project.
#[utoipa::path(put, path = "/permissions", tag = "permissions",
    request_body(content = String, content_type = "application/json", description = "A partial profile"),
    responses((status = 202, description = "`{job_id, path, job_url, status}`"),
        (status = 403, description = "Not an admin", body = crate::error::ErrorBody),
        (status = 422, description = "Invalid profile, scope or grant", body = crate::error::ErrorBody)))]
pub async fn put_global_permissions(
    State(app): State<AppState>,
    RequireAdmin(admin): RequireAdmin,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let patch = parse_patch(&body)?;
    let event = AuditEvent::new("permissions.update")
        .by(&admin)
        .resource("global")
        .detail("scope", "global")
        .detail("changes", patch.clone());
    let job = app
        .audit
        .mutation(event, 202, async {
            merge_profile(&app, &ProfileLocation::Global, patch).await?;
            start_global_reindex(&app, &admin.actor()).await
        })
        .await?;
    Ok(accepted(&app, &job))
}

/// Deletes the global profile (admins): the built-in default applies where no other scope
/// has a profile.
#[utoipa::path(delete, path = "/permissions", tag = "permissions",
    responses((status = 202, description = "`{job_id, path, job_url, status}`"),
        (status = 403, description = "Not an admin", body = crate::error::ErrorBody)))]
pub async fn delete_global_permissions(
    State(app): State<AppState>,
    RequireAdmin(admin): RequireAdmin,
) -> ApiResult<Response> {
    let event = AuditEvent::new("permissions.delete")
        .by(&admin)
        .resource("global")
        .detail("scope", "global");
    let job = app
        .audit
        .mutation(event, 202, async {
            app.profiles
                .delete_profile(&ProfileLocation::Global)
                .await
                .map_err(crate::catalog::Error::from)?;
            start_global_reindex(&app, &admin.actor()).await
        })
        .await?;
    Ok(accepted(&app, &job))
}

/// The event of a profile change at project level, or at `version` level when given.
fn permissions_event(
    action: &str,
    principal: &Principal,
    project: &str,
    version: Option<&str>,
) -> AuditEvent {
    let (resource, scope) = match version {
        Some(version) => (format!("version:{project}@{version}"), "version"),
        None => (format!("project:{project}"), "project"),
    };
    AuditEvent::new(action)
        .by(principal)
        .resource(resource)
        .project(project)
        .detail("scope", scope)
}

/// Merges a partial profile into the version's (owners and admins) → `202` with the job.
#[utoipa::path(put, path = "/projects/{project}/version/{version}/permissions", tag = "permissions",
    params(("project" = String, Path), ("version" = String, Path)),
    request_body(content = String, content_type = "application/json", description = "A partial profile"),
    responses((status = 202, description = "`{job_id, path, job_url, status}`"),
        (status = 403, description = "Not an owner", body = crate::error::ErrorBody),
        (status = 422, description = "Invalid profile, scope or grant", body = crate::error::ErrorBody)))]
pub async fn put_version_permissions(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath((project, version)): ApiPath<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let view = authorize_version(
        &app,
        &principal,
        &project,
        &version,
        Action::ChangePermissions,
    )
    .await?;
    let patch = parse_patch(&body)?;
    let version = view.record.version;
    let location = ProfileLocation::Version {
        project: project.clone(),
        version: version.clone(),
    };
    let event = permissions_event("permissions.update", &principal, &project, Some(&version))
        .detail("changes", patch.clone());
    let job = app
        .audit
        .mutation(event, 202, async {
            merge_profile(&app, &location, patch).await?;
            start_version_reindex(&app, &principal.actor(), &project, &version).await
        })
        .await?;
    Ok(accepted(&app, &job))
}

/// Deletes the version's profile so resolution falls through to the project's.
#[utoipa::path(delete, path = "/projects/{project}/version/{version}/permissions", tag = "permissions",
    params(("project" = String, Path), ("version" = String, Path)),
    responses((status = 202, description = "`{job_id, path, job_url, status}`"),
        (status = 403, description = "Not an owner", body = crate::error::ErrorBody)))]
pub async fn delete_version_permissions(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath((project, version)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let view = authorize_version(
        &app,
        &principal,
        &project,
        &version,
        Action::ChangePermissions,
    )
    .await?;
    let version = view.record.version;
    let event = permissions_event("permissions.delete", &principal, &project, Some(&version));
    let job = app
        .audit
        .mutation(event, 202, async {
            app.profiles
                .delete_profile(&ProfileLocation::Version {
                    project: project.clone(),
                    version: version.clone(),
                })
                .await
                .map_err(crate::catalog::Error::from)?;
            start_version_reindex(&app, &principal.actor(), &project, &version).await
        })
        .await?;
    Ok(accepted(&app, &job))
}

/// This module's routes, merged into the API's router by `api::api_router`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(
            get_project_permissions,
            put_project_permissions,
            delete_project_permissions
        ))
        .routes(routes!(
            get_version_permissions,
            put_version_permissions,
            delete_version_permissions
        ))
        .routes(routes!(
            get_global_permissions,
            put_global_permissions,
            delete_global_permissions
        ))
}
