//! Namespaces (SPEC §3, §8): `POST·GET /namespaces`, `GET·PATCH·DELETE /namespaces/{ns}`,
//! `GET·PUT·DELETE /namespaces/{ns}/permissions`.
//!
//! A namespace groups projects under one team's profile. Admins create and delete them; the
//! namespace's owners change its description, visibility, `auto_create` and profile, and move
//! it between `active` and `deprecated` (admins disable and re-enable). A new namespace's
//! profile lets its writers push (`write_access: writers`); `public` means every logged-in
//! caller sees the metadata (`read_access: authenticated`) while downloads still need a grant
//! (`download_access: viewers`); `private` means only those granted see it. Whatever a change
//! affects — every project of the namespace — is re-indexed before the answer (state,
//! visibility) or by a job (profile PUT/DELETE, `202`), like project profiles.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::{authorize_namespace, authorize_namespace_patch, load_namespace};
use super::extract::RequireAdmin;
use super::index_admin::accepted;
use super::profiles::{merge_profile, present};
use super::projects::{loader_error, name_error};
use crate::app::AppState;
use crate::audit::AuditEvent;
use crate::auth::Principal;
pub use crate::catalog::namespaces::{
    PatchNamespaceRequest, namespace_projects, new_namespace_profile, reindex_namespace,
    spawn_namespace_job,
};
use crate::catalog::namespaces::{apply_patch, create_namespace, update_namespace};
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::model::names;
use crate::model::records::{NamespaceRecord, NamespaceVisibility};
use crate::permissions::{Action, LifecycleState, ProfileLocation};

/// `POST /namespaces` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNamespaceRequest {
    /// `[a-z0-9][a-z0-9-]{0,63}`.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// `public` (every logged-in caller sees the metadata) or `private` (default).
    #[serde(default)]
    pub visibility: NamespaceVisibility,
    /// Whether its writers may create projects in it (default `false`: owners only).
    #[serde(default)]
    pub auto_create: bool,
}

/// Creates a namespace (admins) with the profile its visibility stands for.
#[utoipa::path(post, path = "/namespaces", tag = "namespaces", request_body = CreateNamespaceRequest,
    responses(
        (status = 201, description = "Created", body = NamespaceRecord),
        (status = 403, description = "Not an admin", body = crate::error::ErrorBody),
        (status = 409, description = "The name is taken", body = crate::error::ErrorBody),
    ))]
pub async fn post_namespace(
    State(app): State<AppState>,
    RequireAdmin(principal): RequireAdmin,
    ApiJson(request): ApiJson<CreateNamespaceRequest>,
) -> ApiResult<Response> {
    names::validate_namespace(&request.name).map_err(|error| name_error(&error))?;
    let record = NamespaceRecord {
        name: request.name,
        description: request.description,
        visibility: request.visibility,
        state: LifecycleState::Active,
        auto_create: request.auto_create,
        deleting: false,
        deleting_since: None,
        generation: uuid::Uuid::new_v4().simple().to_string(),
    };
    let event = AuditEvent::new("namespace.create")
        .by(&principal)
        .resource(format!("namespace:{}", record.name))
        .detail("visibility", json!(record.visibility))
        .detail("auto_create", record.auto_create);
    let record = app
        .audit
        .mutation(event, 201, create_namespace(&app, record))
        .await?;
    Ok((StatusCode::CREATED, ApiJson(record)).into_response())
}

/// `GET /namespaces` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NamespaceList {
    /// The namespaces the caller can see, by name.
    pub results: Vec<NamespaceRecord>,
    /// How many.
    pub count: usize,
}

/// The namespaces the caller can see (admins: all, disabled ones included).
#[utoipa::path(get, path = "/namespaces", tag = "namespaces",
    responses((status = 200, description = "The namespaces", body = NamespaceList)))]
pub async fn get_namespaces(
    State(app): State<AppState>,
    principal: Principal,
) -> ApiResult<ApiJson<NamespaceList>> {
    let views = crate::catalog::namespaces::load_all(&app).await?;
    let now = app.clock.now();
    let mut results = Vec::new();
    for view in views {
        if principal
            .decide(Action::ReadMetadata, &view.target, now)
            .is_ok()
        {
            results.push(view.record);
        }
    }
    results.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(ApiJson(NamespaceList {
        count: results.len(),
        results,
    }))
}

/// One namespace's record (`404` when absent or not visible to the caller).
#[utoipa::path(get, path = "/namespaces/{namespace}", tag = "namespaces",
    params(("namespace" = String, Path)),
    responses(
        (status = 200, description = "The record", body = NamespaceRecord),
        (status = 404, description = "No such namespace, or not visible", body = crate::error::ErrorBody),
    ))]
pub async fn get_namespace(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(namespace): ApiPath<String>,
) -> ApiResult<ApiJson<NamespaceRecord>> {
    let view = authorize_namespace(&app, &principal, &namespace, Action::ReadMetadata).await?;
    Ok(ApiJson(view.record))
}

/// Changes a namespace (owners and admins; `state` per SPEC §3); re-indexes its projects
/// when what they inherit changes.
#[utoipa::path(patch, path = "/namespaces/{namespace}", tag = "namespaces",
    params(("namespace" = String, Path)), request_body = PatchNamespaceRequest,
    responses(
        (status = 200, description = "The new record", body = NamespaceRecord),
        (status = 403, description = "Not an owner", body = crate::error::ErrorBody),
        (status = 409, description = "Deprecated", body = crate::error::ErrorBody),
    ))]
pub async fn patch_namespace(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(namespace): ApiPath<String>,
    ApiJson(request): ApiJson<PatchNamespaceRequest>,
) -> ApiResult<ApiJson<NamespaceRecord>> {
    let view = authorize_namespace(&app, &principal, &namespace, Action::ReadMetadata).await?;
    authorize_namespace_patch(&app, &principal, &view, &request)?;
    let (record, changed, action) = apply_patch(&view.record, &request);
    let mut event = AuditEvent::new(action)
        .by(&principal)
        .resource(format!("namespace:{namespace}"))
        .detail("changed", json!(changed));
    if let Some(to) = request.state {
        event = event
            .detail("from", view.record.state.as_str())
            .detail("to", to.as_str());
    }
    let record = app
        .audit
        .mutation(
            event,
            200,
            update_namespace(&app, record, view.etag, &request),
        )
        .await?;
    Ok(ApiJson(record))
}

/// Deletes a namespace (admins); refused with `409 namespace_not_empty` while it holds
/// projects.
#[utoipa::path(delete, path = "/namespaces/{namespace}", tag = "namespaces",
    params(("namespace" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such namespace", body = crate::error::ErrorBody),
        (status = 409, description = "It holds projects", body = crate::error::ErrorBody),
    ))]
pub async fn delete_namespace(
    State(app): State<AppState>,
    RequireAdmin(principal): RequireAdmin,
    ApiPath(namespace): ApiPath<String>,
) -> ApiResult<StatusCode> {
    load_namespace(&app, &namespace)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no namespace {namespace}")))?;
    let event = AuditEvent::new("namespace.delete")
        .by(&principal)
        .resource(format!("namespace:{namespace}"));
    app.audit
        .mutation(event, 204, async {
            crate::catalog::namespaces::delete_namespace(&app, &namespace).await?;
            Ok(StatusCode::NO_CONTENT)
        })
        .await
}

/// A namespace's profile, defaults filled in.
#[utoipa::path(get, path = "/namespaces/{namespace}/permissions", tag = "namespaces",
    params(("namespace" = String, Path)),
    responses((status = 200, description = "The profile"),
        (status = 404, description = "No such namespace, or not visible", body = crate::error::ErrorBody)))]
pub async fn get_namespace_permissions(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(namespace): ApiPath<String>,
) -> ApiResult<ApiJson<Value>> {
    let view = authorize_namespace(&app, &principal, &namespace, Action::ReadPermissions).await?;
    let stored = app
        .profiles
        .load(&ProfileLocation::Namespace(namespace))
        .await
        .map_err(loader_error)?;
    Ok(ApiJson(match stored {
        Some(profile) => present(&profile),
        None => view.target.profile.to_json_value(),
    }))
}

/// Merges a partial profile into the namespace's (owners and admins) → `202` with the job
/// re-indexing its projects.
#[utoipa::path(put, path = "/namespaces/{namespace}/permissions", tag = "namespaces",
    params(("namespace" = String, Path)),
    request_body(content = String, content_type = "application/json", description = "A partial profile"),
    responses((status = 202, description = "`{job_id, path, job_url, status}`"),
        (status = 403, description = "Not an owner", body = crate::error::ErrorBody),
        (status = 422, description = "Invalid profile, scope or grant", body = crate::error::ErrorBody)))]
pub async fn put_namespace_permissions(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(namespace): ApiPath<String>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    authorize_namespace(&app, &principal, &namespace, Action::ChangePermissions).await?;
    let patch = super::profiles::parse_patch(&body)?;
    let event = AuditEvent::new("permissions.update")
        .by(&principal)
        .resource(format!("namespace:{namespace}"))
        .detail(
            "fields",
            json!(patch.as_object().map(|o| o.keys().collect::<Vec<_>>())),
        );
    let job = app
        .audit
        .mutation(event, 202, async {
            merge_profile(&app, &ProfileLocation::Namespace(namespace.clone()), patch).await?;
            spawn_namespace_job(&app, &principal.actor(), &namespace).await
        })
        .await?;
    Ok(accepted(&app, &job))
}

/// Deletes the namespace's profile (owners and admins): its projects fall through to the
/// global profile → `202` with the re-indexing job.
#[utoipa::path(delete, path = "/namespaces/{namespace}/permissions", tag = "namespaces",
    params(("namespace" = String, Path)),
    responses((status = 202, description = "`{job_id, path, job_url, status}`"),
        (status = 403, description = "Not an owner", body = crate::error::ErrorBody)))]
pub async fn delete_namespace_permissions(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(namespace): ApiPath<String>,
) -> ApiResult<Response> {
    authorize_namespace(&app, &principal, &namespace, Action::ChangePermissions).await?;
    let event = AuditEvent::new("permissions.delete")
        .by(&principal)
        .resource(format!("namespace:{namespace}"));
    let job = app
        .audit
        .mutation(event, 202, async {
            app.profiles
                .delete_profile(&ProfileLocation::Namespace(namespace.clone()))
                .await
                .map_err(loader_error)?;
            Ok::<_, ApiError>(spawn_namespace_job(&app, &principal.actor(), &namespace).await?)
        })
        .await?;
    Ok(accepted(&app, &job))
}

/// This module's routes, merged into the API's router by `api::api_router`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_namespace, get_namespaces))
        .routes(routes!(get_namespace, patch_namespace, delete_namespace))
        .routes(routes!(
            get_namespace_permissions,
            put_namespace_permissions,
            delete_namespace_permissions
        ))
}
