//! `GET /projects` (the projects the caller can read, each with its readable versions, paged
//! by a `/projects?cursor=` cursor) and `GET /projects/{p}/versions`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::{authorize_project, search_scope};
use super::hits::present;
use super::presented::{HitsPage, Presented};
use super::search::{
    ListParams, cursor_from, decode_cursor, list_params, next_token, request_of, search_error,
    with_link,
};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, ErrorCode};
use crate::index::cursor::CursorState;
use crate::index::search::{KindFilter, ReadableVersions, SearchRequest, search};
use crate::permissions::{AccessScope, Action};

/// The readable versions and `latest` of every project of a page under `scope`, in one index
/// pass on the blocking pool's thread that calls it.
fn readable_versions_of(
    app: &AppState,
    scope: &AccessScope,
    projects: &[String],
) -> ApiResult<std::collections::HashMap<String, ReadableVersions>> {
    crate::index::search::readable_versions(&app.index, scope, projects, app.clock.now())
        .map_err(search_error)
}

/// One page of `GET /projects` as answered (on the blocking pool): the search, then the
/// readable versions of all its projects in one pass, then each hit presented.
fn projects_page(
    app: &AppState,
    principal: &Principal,
    request: &SearchRequest,
    fields: Option<&str>,
    now: DateTime<Utc>,
) -> ApiResult<(Vec<Presented>, usize)> {
    // The caller's scope is built once for both passes: it copies every identity.
    let scope = search_scope(principal);
    let page = search(&app.index, &scope, request, now).map_err(search_error)?;
    let projects: Vec<String> = page
        .hits
        .iter()
        .map(|hit| {
            hit.source()["project_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let readable = readable_versions_of(app, &scope, &projects)?;
    let results = page
        .hits
        .into_iter()
        .zip(projects)
        .map(|(hit, project)| {
            let versions = readable.get(&project).cloned().unwrap_or_default();
            project_document(present(app, principal, hit, fields, now), project, versions)
        })
        .collect();
    Ok((results, page.total))
}

/// A project hit as answered: presented, with its `project_id`, its readable versions
/// (`aggs`) and `latest`.
fn project_document(
    mut document: Presented,
    project: String,
    readable: ReadableVersions,
) -> Presented {
    let ReadableVersions { versions, latest } = readable;
    document.set("project_id", Some(Value::String(project)));
    document.set(
        "aggs",
        Some(
            versions
                .iter()
                .map(|v| json!({"_extra.version": v}))
                .collect(),
        ),
    );
    document.set(
        "latest",
        Some(json!(latest.map(|v| json!({"_extra.version": v})))),
    );
    document
}

/// The cursor of a `GET /projects` page: the one given (`400 invalid_cursor` unless it is a
/// cursor of `/projects`), or the first page's.
fn projects_cursor(app: &AppState, params: &ListParams) -> ApiResult<CursorState> {
    let Some(token) = &params.cursor else {
        return cursor_from(app, &list_params(params, KindFilter::Project), None, None);
    };
    let state = decode_cursor(app, token)?;
    if state.kind != "project" || state.project.is_some() {
        return Err(ApiError::new(
            ErrorCode::InvalidCursor,
            "not a cursor of /projects",
        ));
    }
    Ok(state)
}

/// Projects the caller can read, each with its readable versions; paginated (`next` and a
/// `Link: <…>; rel="more"` header).
#[utoipa::path(get, path = "/projects", tag = "search", params(ListParams),
    responses((status = 200, description = "`{results: [{project_id, aggs, ...record}], count, total, next}`")))]
pub async fn get_projects(
    State(app): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Response> {
    let cursor = projects_cursor(&app, &params)?;
    let request = request_of(&app, &cursor)?;
    let now = app.clock.now();
    let (results, total) = {
        let (app, principal, fields) = (app.clone(), principal.clone(), cursor.fields.clone());
        crate::index::off_runtime(move || {
            projects_page(&app, &principal, &request, fields.as_deref(), now)
        })
        .await
        .map_err(ApiError::internal)??
    };
    let next = next_token(&app, &cursor, total, results.len(), now).map(|token| {
        let token: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
        format!("/projects?cursor={token}")
    });
    let body = ApiJson(HitsPage {
        count: results.len(),
        facets: None,
        next: next.clone(),
        results,
        total,
        total_relation: None,
    });
    Ok(with_link(&app, body.into_response(), next.as_deref()))
}

/// The versions of one project the caller can read.
#[utoipa::path(get, path = "/projects/{project}/versions", tag = "search",
    params(("project" = String, Path)),
    responses(
        (status = 200, description = "`{project_id, aggs, total, latest, _latest}`"),
        (status = 404, description = "No such project, or not readable", body = crate::error::ErrorBody),
    ))]
pub async fn get_project_versions(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(project): ApiPath<String>,
) -> ApiResult<ApiJson<Value>> {
    authorize_project(&app, &principal, &project, Action::ReadMetadata).await?;
    let scope = search_scope(&principal);
    // An answer kept since the index last changed is read from memory here, without the hop
    // to the blocking pool an index search takes.
    let kept = crate::index::search::kept_readable_versions(
        &app.index,
        &scope,
        std::slice::from_ref(&project),
        app.clock.now(),
    );
    let ReadableVersions { versions, latest } = match kept {
        Some(mut found) => found.remove(&project).unwrap_or_default(),
        None => {
            let (app, project) = (app.clone(), project.clone());
            crate::index::off_runtime(move || {
                readable_versions_of(&app, &scope, std::slice::from_ref(&project))
                    .map(|mut found| found.remove(&project).unwrap_or_default())
            })
            .await
            .map_err(ApiError::internal)??
        }
    };
    let latest = latest.map(|v| json!({"_extra.version": v}));
    Ok(ApiJson(json!({
        "project_id": project,
        "aggs": versions.iter().map(|v| json!({"_extra.version": v})).collect::<Vec<_>>(),
        "total": versions.len(),
        "latest": latest,
        "_latest": latest,
    })))
}

/// This module's routes, merged into the API's router by `api::api_router`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_projects))
        .routes(routes!(get_project_versions))
}
