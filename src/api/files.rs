//! Files: `PUT /projects/{p}/version/{v}/files/{path}` (streamed upload into an open
//! version; the listing `GET /projects/{p}/version/{v}/files` is in [`super::file_listing`]),
//! `GET /files/{id}` (download: `302` to a presigned URL on S3, streamed otherwise or with
//! `?redirect=false`) and `DELETE /files/{id}` (owners; never in stable or deprecated
//! versions).
//!
//! Uploads never hold the body in memory (metadata documents, which must be JSON objects, are
//! the exception: they are small and checked before they are stored). Every upload writes a
//! [`crate::model::records::FileRecord`] sidecar at `<p>/<v>/..meta/files/<path>.json` and re-indexes the version
//! before answering, so the file is searchable at once.
//!
//! Audit (SPEC §9): one call site per action — `file.upload` and `file.delete` are mutations
//! (event stored before, completion after, with [`crate::audit::Audit::mutation`]) that begin
//! once the caller passed [`authorize_version`] (whose denials are `access.denied`);
//! `file.download` is a read, recorded once per authorized download.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt as _;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::{VersionView, authorize_version};
use super::download::{
    content_disposition, download_content_type, download_headers, file_name, not_modified,
    with_range,
};
use super::presigned::{header_text, parse_content_md5, parse_range, parse_sha256};
use super::projects::name_error;
use crate::app::AppState;
use crate::audit::AuditEvent;
use crate::auth::Principal;
use crate::catalog::files::{self, FileUpload, store_file};
pub use crate::catalog::files::{UploadOutcome, hash_object, sidecar_key, write_sidecar};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, ErrorCode};
use crate::model::id::ArtifactId;
use crate::model::names;
use crate::permissions::Action;
use crate::storage::{DownloadHeaders, ObjectMeta, StorageKind, keys};

/// Largest hop count when following links.
const MAX_LINK_HOPS: usize = 8;

/// A request body as a storage byte stream.
fn request_stream(body: Body) -> crate::storage::ByteStream {
    Box::pin(body.into_data_stream().map_err(std::io::Error::other))
}

/// Uploads one file into an open version; the body is streamed to storage.
#[utoipa::path(put, path = "/projects/{project}/version/{version}/files/{*path}", tag = "files",
    params(("project" = String, Path), ("version" = String, Path), ("path" = String, Path)),
    responses(
        (status = 201, description = "Stored", body = UploadOutcome),
        (status = 400, description = "Invalid path or digest mismatch", body = crate::error::ErrorBody),
        (status = 409, description = "The version is completed, stable or deprecated", body = crate::error::ErrorBody),
    ))]
pub async fn put_file(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath((project, version, path)): ApiPath<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    names::validate_path(&path).map_err(|error| name_error(&error))?;
    let content_md5 = parse_content_md5(&headers)?;
    let expected_sha256 = parse_sha256(&headers)?;
    let view = authorize_version(&app, &principal, &project, &version, Action::UploadFile).await?;
    let version = view.record.version.clone();
    let content_type = header_text(&headers, header::CONTENT_TYPE).map(str::to_owned);
    let mut event = AuditEvent::new("file.upload")
        .by(&principal)
        .resource(format!("file:{project}:{path}@{version}"))
        .project(&project);
    if let Some(length) =
        header_text(&headers, header::CONTENT_LENGTH).and_then(|value| value.parse::<u64>().ok())
    {
        event = event.detail("content_length", length);
    }
    let file = FileUpload {
        project: &project,
        version: &version,
        path: &path,
        content_type,
        content_md5,
        expected_sha256,
    };
    // The outcome (`Sync`) comes out of the mutation, the response is built after it.
    let work = store_file(&app, &principal, file, request_stream(body));
    let outcome = app.audit.mutation(event, 201, work).await?;
    Ok((StatusCode::CREATED, ApiJson(outcome)).into_response())
}

/// `GET /files/{id}` parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct DownloadParams {
    /// `false` always streams through Trove (default `true`: redirect on S3).
    pub redirect: Option<bool>,
    /// Lifetime of the presigned URL, 10..=86400 seconds (default 120).
    pub expires_in: Option<u64>,
}

fn parse_id(id: &str) -> ApiResult<ArtifactId> {
    ArtifactId::parse(id).map_err(|error| {
        if error.code() == "invalid_path" {
            ApiError::new(ErrorCode::InvalidPath, error.to_string())
        } else {
            ApiError::new(ErrorCode::InvalidId, error.to_string())
        }
    })
}

/// Resolves an id for `action`, following links (each hop is authorized too); answers the
/// version reached and the storage key of the bytes.
async fn resolve_file(
    app: &AppState,
    principal: &Principal,
    id: &ArtifactId,
    action: Action,
) -> ApiResult<(VersionView, String, ObjectMeta)> {
    let mut id = id.clone();
    for _ in 0..MAX_LINK_HOPS {
        let view =
            authorize_version(app, principal, &id.project, id.version.as_str(), action).await?;
        let key = keys::version_file(&id.project, &view.record.version, &id.path);
        match app.storage.head(&key).await {
            Ok(meta) => return Ok((view, key, meta)),
            Err(error) if error.is_not_found() => {}
            Err(error) => return Err(error.into()),
        }
        let target = files::link_target(app, &id.project, &view.record.version, &id.path).await?;
        let Some(target) = target else {
            return Err(ApiError::not_found(format!("no file {id}")));
        };
        id = parse_id(&target)?;
    }
    Err(ApiError::new(ErrorCode::Conflict, "link chain too long"))
}

/// Downloads a file: `302` to a presigned URL on S3; streamed on the local backend or with
/// `?redirect=false` (single `Range`, `ETag`, `If-None-Match`).
#[utoipa::path(get, path = "/files/{id}", tag = "files",
    params(("id" = String, Path, description = "ArtifactDB id `project:path@version` (URL-encoded)"), DownloadParams),
    responses(
        (status = 200, description = "The bytes"),
        (status = 206, description = "A range of the bytes"),
        (status = 302, description = "Redirect to a presigned URL (S3)"),
        (status = 304, description = "Not modified"),
        (status = 404, description = "No such file, or not readable", body = crate::error::ErrorBody),
    ))]
pub async fn get_file(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<DownloadParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let expires_in = params.expires_in.unwrap_or(120);
    if !(10..=86_400).contains(&expires_in) {
        return Err(ApiError::new(
            ErrorCode::InvalidParameter,
            "expires_in must be between 10 and 86400 seconds",
        ));
    }
    let (_, key, meta) = resolve_file(&app, &principal, &id, Action::Download).await?;
    // One read event per authorized download (denials are recorded by `access`).
    app.audit.record(
        AuditEvent::new("file.download")
            .by(&principal)
            .resource(format!("file:{id}"))
            .project(id.project.clone())
            .outcome(crate::audit::Outcome::Ok, 200),
    );
    if app.storage.kind() == StorageKind::S3 && params.redirect.unwrap_or(true) {
        return presigned_redirect(&app, &key, &meta, expires_in).await;
    }
    stream_object(&app, &key, &headers).await
}

/// `302` to a presigned URL of the file on S3, answered as an attachment.
async fn presigned_redirect(
    app: &AppState,
    key: &str,
    meta: &ObjectMeta,
    expires_in: u64,
) -> ApiResult<Response> {
    // S3 cannot be told to send `nosniff` or a CSP: the URL makes it answer as an
    // attachment, with an inert content type.
    let url = app
        .storage
        .presign_download(
            key,
            Duration::from_secs(expires_in),
            &DownloadHeaders {
                content_disposition: Some(content_disposition(file_name(key))),
                content_type: Some(download_content_type(meta.content_type.as_deref())),
            },
        )
        .await?;
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, url)
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::empty())
        .map_err(ApiError::internal)
}

/// Streams an object with `ETag`, `If-None-Match` (`304`) and a single `Range` (`206`), as an
/// attachment with safe headers ([`download_headers`]).
pub async fn stream_object(app: &AppState, key: &str, headers: &HeaderMap) -> ApiResult<Response> {
    let meta = app.storage.head(key).await?;
    let etag = format!("\"{}\"", meta.etag.trim_matches('"'));
    if not_modified(headers, &etag) {
        return download_headers(Response::builder(), key)
            .status(StatusCode::NOT_MODIFIED)
            .header(header::ETAG, etag)
            .body(Body::empty())
            .map_err(ApiError::internal);
    }
    let range = parse_range(headers, Some(meta.size))?;
    if let Some(range) = range
        && range.start >= meta.size
    {
        return Err(ApiError::new(
            ErrorCode::RangeNotSatisfiable,
            format!("range starts past the end of {} bytes", meta.size),
        ));
    }
    let object = app.storage.get(key, range).await?;
    let mut builder = download_headers(Response::builder(), key)
        .header(header::ETAG, etag)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(
            header::CONTENT_TYPE,
            download_content_type(object.meta.content_type.as_deref()),
        );
    builder = with_range(builder, object.range, object.meta.size);
    builder
        .body(Body::from_stream(object.body))
        .map_err(ApiError::internal)
}

/// Deletes a file (owners; never in a stable or deprecated version).
#[utoipa::path(delete, path = "/files/{id}", tag = "files",
    params(("id" = String, Path, description = "ArtifactDB id `project:path@version` (URL-encoded)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Not an owner", body = crate::error::ErrorBody),
        (status = 404, description = "No such file, or not readable", body = crate::error::ErrorBody),
        (status = 409, description = "Stable or deprecated version", body = crate::error::ErrorBody),
    ))]
pub async fn delete_file(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id)?;
    let view = authorize_version(
        &app,
        &principal,
        &id.project,
        id.version.as_str(),
        Action::DeleteFile,
    )
    .await?;
    let version = view.record.version;
    let event = AuditEvent::new("file.delete")
        .by(&principal)
        .resource(format!("file:{}:{}@{version}", id.project, id.path))
        .project(&id.project);
    let removal = files::remove_file(&app, &id.project, &version, &id.path);
    app.audit.mutation(event, 204, removal).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// This module's routes, merged into the API's router by `api::api_router`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_file, delete_file))
        // Uploads are streamed and may be large: no JSON body limit on this route.
        .merge(
            OpenApiRouter::new()
                .routes(routes!(put_file))
                .layer(DefaultBodyLimit::disable()),
        )
}
