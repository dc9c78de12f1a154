//! The metadata read routes: `GET /files/{id}/metadata` (one document, links followed when
//! asked), `/projects/{p}/metadata` and `/projects/{p}/version/{v}/metadata` (pages of the
//! search, narrowed to a project or version).

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::{authorize_project, authorize_version, search_scope};
use super::hits::present;
use super::presented::Presented;
use super::search::{ListParams, cursor_from, list_params, page, search_error};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, ErrorCode};
use crate::index::extra::Extra;
use crate::index::search::{Hit, KindFilter};
use crate::model::id::{ArtifactId, VersionSelector};
use crate::permissions::Action;

/// `GET /files/{id}/metadata` parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct MetadataParams {
    /// Return the document as stored, without `_extra`.
    pub raw: Option<bool>,
    /// For a link, return the target's document.
    pub follow_link: Option<bool>,
}

/// Finds one document by id under the caller's scope (index searches: on the blocking pool).
fn find_document(app: &AppState, principal: &Principal, id: &ArtifactId) -> ApiResult<Hit> {
    let version = match &id.version {
        VersionSelector::Exact(version) => version.clone(),
        VersionSelector::Latest => {
            super::access::latest_readable_version(app, principal, &id.project)?.ok_or_else(
                || ApiError::not_found(format!("no readable version of {}", id.project)),
            )?
        }
    };
    let document_id = format!("{}:{}@{}", id.project, id.path, version);
    let found = crate::index::search::get_by_id(
        &app.index,
        &search_scope(principal),
        &document_id,
        app.clock.now(),
    )
    .map_err(search_error)?;
    found.ok_or_else(|| ApiError::not_found(format!("no document {id}")))
}

/// The document of `GET /files/{id}/metadata`, links followed when asked, as answered
/// (index searches: on the blocking pool).
fn file_metadata(
    app: &AppState,
    principal: &Principal,
    id: &ArtifactId,
    params: &MetadataParams,
) -> ApiResult<Presented> {
    let mut hit = find_document(app, principal, id)?;
    if params.follow_link.unwrap_or(false) {
        let mut hops = 0;
        while let Some(target) = Extra::of(hit.source()).link_target() {
            hops += 1;
            if hops > 8 {
                return Err(ApiError::new(ErrorCode::Conflict, "link chain too long"));
            }
            let target = ArtifactId::parse(target)
                .map_err(|error| ApiError::new(ErrorCode::InvalidId, error.to_string()))?;
            hit = find_document(app, principal, &target)?;
        }
    }
    let mut document = present(app, principal, hit, None, app.clock.now());
    if params.raw.unwrap_or(false) {
        document.set("_extra", None);
    }
    Ok(document)
}

/// One document.
#[utoipa::path(get, path = "/files/{id}/metadata", tag = "search",
    params(("id" = String, Path, description = "ArtifactDB id `project:path@version` (URL-encoded)"), MetadataParams),
    responses(
        (status = 200, description = "The document with `_extra`"),
        (status = 404, description = "No such document, or not readable", body = crate::error::ErrorBody),
    ))]
pub async fn get_file_metadata(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<MetadataParams>,
) -> ApiResult<ApiJson<Presented>> {
    let id = ArtifactId::parse(&id)
        .map_err(|error| ApiError::new(ErrorCode::InvalidId, error.to_string()))?;
    let app = app.clone();
    let document = crate::index::off_runtime(move || file_metadata(&app, &principal, &id, &params))
        .await
        .map_err(ApiError::internal)??;
    Ok(ApiJson(document))
}

/// All documents of a project the caller can read, paginated.
#[utoipa::path(get, path = "/projects/{project}/metadata", tag = "search",
    params(("project" = String, Path), ListParams),
    responses(
        (status = 200, description = "`{results, count, total, next}`"),
        (status = 404, description = "No such project, or not readable", body = crate::error::ErrorBody),
    ))]
pub async fn get_project_metadata(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(project): ApiPath<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Response> {
    authorize_project(&app, &principal, &project, Action::ReadMetadata).await?;
    let cursor = cursor_from(
        &app,
        &list_params(&params, KindFilter::File),
        Some(&project),
        None,
    )?;
    page(&app, &principal, cursor).await
}

/// All documents of a version the caller can read (`latest` works), paginated.
#[utoipa::path(get, path = "/projects/{project}/version/{version}/metadata", tag = "search",
    params(("project" = String, Path), ("version" = String, Path), ListParams),
    responses(
        (status = 200, description = "`{results, count, total, next}`"),
        (status = 404, description = "No such version, or not readable", body = crate::error::ErrorBody),
    ))]
pub async fn get_version_metadata(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath((project, version)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Response> {
    let view =
        authorize_version(&app, &principal, &project, &version, Action::ReadMetadata).await?;
    let cursor = cursor_from(
        &app,
        &list_params(&params, KindFilter::File),
        Some(&project),
        Some(&view.record.version),
    )?;
    page(&app, &principal, cursor).await
}

/// This module's routes, merged into the API's router by `api::api_router`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_file_metadata))
        .routes(routes!(get_project_metadata))
        .routes(routes!(get_version_metadata))
}
