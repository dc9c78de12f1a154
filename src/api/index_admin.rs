//! The index and its jobs: `GET /projects/{p}/version/{v}/info` (sync report of one version),
//! `GET /index/sync` (global check, admins), `PUT /index/build` (admins), `GET /jobs/{id}`,
//! `GET /index/status` (admins).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::authorize_version;
use super::extract::RequireAdmin;
use crate::app::AppState;
use crate::audit::AuditEvent;
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, ErrorCode};
use crate::index::sync::{SyncReport, VersionReport, check_version};
use crate::jobs::{JobInfo, schedule::run_sync};
use crate::model::names;
use crate::permissions::Action;

fn indexer_error(error: crate::index::indexer::IndexerError) -> ApiError {
    match error {
        crate::index::indexer::IndexerError::Storage(storage) => storage.into(),
        other => ApiError::internal(other),
    }
}

/// ArtifactDB's sync report of one version: the profile resolved from storage now, and every
/// difference between the documents storage yields and those the index holds.
#[utoipa::path(get, path = "/projects/{project}/version/{version}/info", tag = "index",
    params(("project" = String, Path), ("version" = String, Path)),
    responses(
        (status = 200, description = "The report", body = VersionReport),
        (status = 404, description = "No such version, or not readable", body = crate::error::ErrorBody),
    ))]
pub async fn get_version_info(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath((project, version)): ApiPath<(String, String)>,
) -> ApiResult<ApiJson<VersionReport>> {
    let view =
        authorize_version(&app, &principal, &project, &version, Action::ReadMetadata).await?;
    let mut report = check_version(
        &app.indexer,
        &app.index,
        &project,
        &view.record.version,
        app.clock.now(),
    )
    .await
    .map_err(indexer_error)?
    .ok_or_else(|| ApiError::not_found(format!("no version {version} of {project}")))?;
    // Who has access is shown to those who manage the version only (as in search hits).
    if principal
        .decide(Action::ReadPermissions, &view.target, app.clock.now())
        .is_err()
    {
        report.permissions = serde_json::Value::Null;
    }
    Ok(ApiJson(report))
}

/// `GET /index/sync` parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct SyncParams {
    /// Re-index whatever drifted.
    pub repair: Option<bool>,
}

/// Compares every project and version of storage with the index (admins).
#[utoipa::path(get, path = "/index/sync", tag = "index", params(SyncParams),
    responses(
        (status = 200, description = "The report", body = SyncReport),
        (status = 401, description = "Anonymous", body = crate::error::ErrorBody),
        (status = 403, description = "Not an admin", body = crate::error::ErrorBody),
    ))]
pub async fn get_index_sync(
    State(app): State<AppState>,
    RequireAdmin(admin): RequireAdmin,
    ApiQuery(params): ApiQuery<SyncParams>,
) -> ApiResult<ApiJson<SyncReport>> {
    let repair = params.repair.unwrap_or(false);
    let sync = async {
        run_sync(&app, repair)
            .await
            .map_err(|message| ApiError::internal(std::io::Error::other(message)))
    };
    // A check is a read; a repair changes the index, so it is audited as a mutation.
    let report = if repair {
        let event = AuditEvent::new("index.sync")
            .by(&admin)
            .resource("index")
            .detail("repair", true);
        app.audit.mutation(event, 200, sync).await?
    } else {
        sync.await?
    };
    Ok(ApiJson(report))
}

/// `PUT /index/build` body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildRequest {
    /// Projects to re-index; all when absent.
    pub project_ids: Option<Vec<String>>,
}

/// The answer of an accepted job.
#[must_use]
pub fn accepted(app: &AppState, job_id: &str) -> Response {
    let path = format!("/jobs/{job_id}");
    (
        StatusCode::ACCEPTED,
        ApiJson(json!({
            "job_id": job_id,
            "path": path,
            "job_url": format!("{}{path}", app.settings.public_url()),
            "status": "accepted",
        })),
    )
        .into_response()
}

/// The projects a `PUT /index/build` body names (`None`: every project). The body is
/// optional: empty means every project.
fn build_projects(body: &[u8]) -> ApiResult<Option<Vec<String>>> {
    let request: BuildRequest = if body.iter().all(u8::is_ascii_whitespace) {
        BuildRequest::default()
    } else {
        serde_json::from_slice(body)
            .map_err(|error| ApiError::new(ErrorCode::InvalidJson, error.to_string()))?
    };
    let projects = request.project_ids;
    if let Some(projects) = &projects {
        for project in projects {
            names::validate_project_id(project)
                .map_err(|error| ApiError::new(ErrorCode::InvalidName, error.to_string()))?;
        }
    }
    Ok(projects)
}

/// Starts an indexing job over some or all projects (admins).
#[utoipa::path(put, path = "/index/build", tag = "index", request_body(content = BuildRequest),
    responses(
        (status = 202, description = "`{job_id, path, job_url, status: \"accepted\"}`"),
        (status = 403, description = "Not an admin", body = crate::error::ErrorBody),
    ))]
pub async fn put_index_build(
    State(app): State<AppState>,
    RequireAdmin(admin): RequireAdmin,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let projects = build_projects(&body)?;
    let event = AuditEvent::new("index.build")
        .by(&admin)
        .resource("index")
        .detail(
            "project_ids",
            serde_json::to_value(&projects).unwrap_or_default(),
        );
    let pending = app.audit.begin(event).await?;
    let id = crate::catalog::projects::start_index_build(&app, &admin.actor(), projects).await;
    app.audit
        .finish(
            pending,
            crate::audit::Outcome::Ok,
            202,
            json!({"job_id": id}),
        )
        .await;
    Ok(accepted(&app, &id))
}

/// A job's status (its creator or admins).
#[utoipa::path(get, path = "/jobs/{id}", tag = "index",
    params(("id" = String, Path)),
    responses(
        (status = 200, description = "The job", body = JobInfo),
        (status = 404, description = "No such job, or not yours", body = crate::error::ErrorBody),
    ))]
pub async fn get_job(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<ApiJson<JobInfo>> {
    let job = app
        .jobs
        .find(&id)
        .await
        .filter(|job| {
            principal.is_admin() || (!principal.is_anonymous() && job.creator == principal.actor())
        })
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    Ok(ApiJson(job))
}

/// Index status (admins): document count, last commit, schema version, last sync result.
#[utoipa::path(get, path = "/index/status", tag = "index",
    responses((status = 200, description = "The status")))]
pub async fn get_index_status(
    State(app): State<AppState>,
    RequireAdmin(_admin): RequireAdmin,
) -> ApiResult<ApiJson<Value>> {
    let health = app.index.health();
    let writer = app.index.writer().status();
    let last_sync = app.last_sync.lock().ok().and_then(|last| last.clone());
    let (cache_hits, cache_misses) = app.index.allow_cache().stats();
    Ok(ApiJson(json!({
        "documents": health.documents,
        "schema_version": health.schema_version,
        "last_commit": writer.last_commit,
        "commits": writer.commits,
        "last_error": writer.last_error,
        "last_sync": last_sync,
        "filter_cache": {"hits": cache_hits, "misses": cache_misses},
    })))
}

/// This module's routes, merged into the API's router by `api::api_router`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_version_info))
        .routes(routes!(get_index_sync))
        .routes(routes!(put_index_build))
        .routes(routes!(get_job))
        .routes(routes!(get_index_status))
}
