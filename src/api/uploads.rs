//! ArtifactDB's upload contract (SPEC §8): `POST /projects/{p}/version/{v}/upload` (presigned
//! PUT URLs, md5 de-duplication into links), `PUT /link/{source}/to/{target}`,
//! `PUT /projects/{p}/version/{v}/complete` (also seals an `open` version) and
//! `PUT .../abort`; and the body of the scheduled purge of late uploads and expired
//! transient versions ([`purge_expired`]).
//!
//! Audit (SPEC §9): each route is one mutation event, one call site per action:
//! `upload.start`, `upload.complete`, `upload.abort` (resource `version:<p>@<v>`) and
//! `link.create` (resource `file:<p>:<path>@<v>`, the target id in the details). The gate
//! through [`super::access`] (whose denials are `access.denied`) runs before the event, and
//! so do the decisions on creating the project an upload starts and on merging the
//! completion's permissions. Only a race (another upload creating the same project between
//! the decision and the write) is decided inside the mutation and recorded as its outcome.
//! An upload that creates its project
//! records no separate `project.create`: its `upload.start` says `creates_project: true`.

use axum::extract::State;
use axum::response::Response;
use chrono::Utc;
use serde::Deserialize;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::{VersionView, authorize_project, authorize_version, decide, load_project};
use super::index_admin::accepted;
use super::projects::authorize_creation;
use crate::app::AppState;
use crate::audit::AuditEvent;
use crate::auth::Principal;
pub use crate::catalog::uploads::{
    Filename, LinkUrl, PresignedUrl, PurgeReport, UploadAnswer, UploadRequest,
    check_presigned_upload, link_url, parse_when, purge_expired,
};
use crate::catalog::uploads::{
    abort_upload, complete_upload, completion_applies_permissions, new_upload_record,
    parse_completion_body, parse_id, plan_upload, record_link, start_upload, unb64,
};
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::permissions::Action;

/// Starts an ArtifactDB upload: creates the project when absent (the caller becomes its owner
/// with `read_access: owners`), the version in status `uploading` (`409` if it exists), and
/// answers presigned upload URLs and link URLs.
#[utoipa::path(post, path = "/projects/{project}/version/{version}/upload", tag = "uploads",
    params(("project" = String, Path), ("version" = String, Path)), request_body = UploadRequest,
    responses(
        (status = 200, description = "URLs to upload to", body = UploadAnswer),
        (status = 400, description = "Invalid path or time", body = crate::error::ErrorBody),
        (status = 409, description = "The version exists", body = crate::error::ErrorBody),
    ))]
pub async fn post_upload(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath((project, version)): ApiPath<(String, String)>,
    ApiJson(request): ApiJson<UploadRequest>,
) -> ApiResult<ApiJson<UploadAnswer>> {
    let plan = plan_upload(&project, &version, &request, Utc::now())?;
    let creates_project = load_project(&app, &project).await?.is_none();
    if creates_project {
        authorize_creation(&app, &principal, None).await?;
    } else {
        authorize_project(&app, &principal, &project, Action::CreateVersion).await?;
    }
    let record = new_upload_record(&project, &version, &principal, &plan);
    let event = AuditEvent::new("upload.start")
        .by(&principal)
        .resource(format!("version:{project}@{version}"))
        .project(&project)
        .detail("files", record.announced_files.clone())
        .detail("creates_project", creates_project)
        .detail("complete_before", plan.complete_before.to_rfc3339())
        .detail("expires_at", plan.expires_at.map(|at| at.to_rfc3339()));
    let answer = app
        .audit
        .mutation(
            event,
            200,
            start_upload(&app, &principal, record, plan.files, creates_project),
        )
        .await?;
    Ok(ApiJson(answer))
}

/// Records a link: the source file (in a version being uploaded) is the target's bytes.
#[utoipa::path(put, path = "/link/{source}/to/{target}", tag = "uploads",
    params(("source" = String, Path, description = "base64 of the source id"), ("target" = String, Path, description = "base64 of the target id")),
    responses(
        (status = 200, description = "`{status: \"ok\"}`"),
        (status = 404, description = "No such version or target", body = crate::error::ErrorBody),
    ))]
pub async fn put_link(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath((source, target)): ApiPath<(String, String)>,
) -> ApiResult<ApiJson<Value>> {
    let source = parse_id(&unb64(&source)?)?;
    let target_text = unb64(&target)?;
    let target = parse_id(&target_text)?;
    let view = authorize_version(
        &app,
        &principal,
        &source.project,
        source.version.as_str(),
        Action::CreateLink,
    )
    .await?;
    // The caller must be able to read what it links to.
    authorize_version(
        &app,
        &principal,
        &target.project,
        target.version.as_str(),
        Action::ReadMetadata,
    )
    .await?;
    let version = view.record.version;
    let event = AuditEvent::new("link.create")
        .by(&principal)
        .resource(format!("file:{}:{}@{version}", source.project, source.path))
        .project(&source.project)
        .detail("target", target_text.clone());
    let work = record_link(&app, &source, &version, &target_text);
    let answer = app.audit.mutation(event, 200, work).await?;
    Ok(ApiJson(answer))
}

/// `PUT .../complete` parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct CompleteParams {
    /// Merge the body's permissions into the project profile even when the project has an
    /// earlier completed version.
    pub overwrite_permissions: Option<bool>,
}

/// Completes an upload (or seals an open version): checks every announced file arrived
/// (`400 missing_files` naming them), records their checksums, merges the body's permissions
/// into the project profile (new project, or `?overwrite_permissions=true`), assigns the
/// revision, and answers `202` with the indexing job.
#[utoipa::path(put, path = "/projects/{project}/version/{version}/complete", tag = "uploads",
    params(("project" = String, Path), ("version" = String, Path), CompleteParams),
    request_body(content = String, content_type = "application/json", description = "Optional permissions `{read_access, owners, viewers, ...}`"),
    responses(
        (status = 202, description = "`{job_id, path, job_url, status: \"accepted\"}`"),
        (status = 400, description = "Files missing", body = crate::error::ErrorBody),
        (status = 409, description = "Already completed", body = crate::error::ErrorBody),
    ))]
pub async fn put_complete(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath((project, version)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<CompleteParams>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let permissions = parse_completion_body(&body)?;
    let view =
        authorize_version(&app, &principal, &project, &version, Action::CompleteUpload).await?;
    let overwrite = params.overwrite_permissions.unwrap_or(false);
    // Permissions in the body apply to a new project, or with `overwrite_permissions`; they
    // need the right to change them (decided here, so a refusal is an `access.denied`).
    let completing = &view.record.version;
    let apply =
        completion_applies_permissions(&app, &project, completing, permissions.as_ref(), overwrite)
            .await?;
    if apply {
        let target = &view.project.target;
        decide(&app, &principal, Action::ChangePermissions, target)?;
    }
    let event = complete_event(&principal, &project, &view, &permissions, overwrite);
    let job = app
        .audit
        .mutation(
            event,
            202,
            complete_upload(&app, &principal, view, permissions.filter(|_| apply)),
        )
        .await?;
    Ok(accepted(&app, &job))
}

/// The `upload.complete` event of a completion.
fn complete_event(
    principal: &Principal,
    project: &str,
    view: &VersionView,
    permissions: &Option<Value>,
    overwrite_permissions: bool,
) -> AuditEvent {
    AuditEvent::new("upload.complete")
        .by(principal)
        .resource(format!("version:{project}@{}", view.record.version))
        .project(project)
        // The paths are in the `upload.start` event already.
        .detail("file_count", view.record.announced_files.len())
        .detail("permissions", permissions.clone())
        .detail("overwrite_permissions", overwrite_permissions)
}

/// Aborts an upload: deletes the version and whatever was uploaded.
#[utoipa::path(put, path = "/projects/{project}/version/{version}/abort", tag = "uploads",
    params(("project" = String, Path), ("version" = String, Path)),
    responses(
        (status = 200, description = "`{status: \"ok\"}`"),
        (status = 409, description = "Already completed", body = crate::error::ErrorBody),
    ))]
pub async fn put_abort(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath((project, version)): ApiPath<(String, String)>,
) -> ApiResult<ApiJson<Value>> {
    let view = authorize_version(&app, &principal, &project, &version, Action::AbortUpload).await?;
    let version = view.record.version;
    let event = AuditEvent::new("upload.abort")
        .by(&principal)
        .resource(format!("version:{project}@{version}"))
        .project(&project)
        .detail(
            "status",
            serde_json::to_value(view.record.status).unwrap_or_default(),
        );
    let answer = app
        .audit
        .mutation(event, 200, abort_upload(&app, &project, &version))
        .await?;
    Ok(ApiJson(answer))
}

/// This module's routes, merged into the API's router by `api::api_router`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_upload))
        .routes(routes!(put_link))
        .routes(routes!(put_complete))
        .routes(routes!(put_abort))
}
