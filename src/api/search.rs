//! ArtifactDB's search: `GET /search` and `/scroll/{cursor}` (the cursor, the page, its
//! `Link: rel="more"` and the `search.query` audit). Every query runs through
//! [`crate::index::search::search`] with the caller's scope; the hits are answered by
//! [`super::hits`]. `/aggregate` and the facets are in [`super::facets`], `GET /projects` in
//! [`super::listing`], the metadata routes in [`super::metadata`].

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::search_scope;
use super::facets::{facet_names, facets_json, run_facets};
use super::hits::present_page;
use super::presented::{HitsPage, Presented};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, ErrorCode};
use crate::index::cursor::{CursorError, CursorState};
use crate::index::search::{KindFilter, SearchError, SearchPage, SearchRequest, SortKey, search};

/// Default page size.
pub(super) const DEFAULT_SIZE: usize = 50;

/// Maps a search error to the API error.
pub fn search_error(error: SearchError) -> ApiError {
    crate::catalog::Error::from(error).into()
}

/// `GET /search` parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct SearchParams {
    /// Query (tantivy syntax: `field:value`, `AND`/`OR`/`NOT`, phrases, ranges; `*` = all).
    pub q: Option<String>,
    /// Comma-separated keys to return (`path,_extra.id`).
    pub fields: Option<String>,
    /// A sortable `_extra` field, `-` for descending.
    pub sort: Option<String>,
    /// Keep each project's latest readable version only.
    pub latest: Option<bool>,
    /// Page size (1..=500, default 50).
    pub size: Option<usize>,
    /// `file` (default), `project` or `all`.
    pub kind: Option<KindFilter>,
    /// The last word is a prefix (`ber` finds `bert`), for a search box.
    pub prefix: Option<bool>,
    /// Each hit carries `_extra.highlight`: a short snippet of its own text with the query's
    /// words in `<em>` (the rest HTML-escaped).
    pub highlight: Option<bool>,
    /// Comma-separated aggregatable fields to count over the whole result set, answered as
    /// `facets: {field: [{value, count}]}` (at most 20 terms each).
    pub facets: Option<String>,
}

fn kind_name(kind: KindFilter) -> &'static str {
    match kind {
        KindFilter::File => "file",
        KindFilter::Project => "project",
        KindFilter::All => "all",
    }
}

fn parse_kind(name: &str) -> KindFilter {
    match name {
        "project" => KindFilter::Project,
        "all" => KindFilter::All,
        _ => KindFilter::File,
    }
}

/// Builds the request of a cursor state.
pub(super) fn request_of(app: &AppState, state: &CursorState) -> ApiResult<SearchRequest> {
    Ok(SearchRequest {
        query: state.q.clone(),
        kind: parse_kind(&state.kind),
        sort: state
            .sort
            .as_deref()
            .map(|sort| SortKey::parse(app.index.schema(), sort))
            .transpose()
            .map_err(search_error)?,
        size: state.size,
        offset: state.offset,
        latest: state.latest,
        project: state.project.clone(),
        version: state.version.clone(),
        prefix: state.prefix,
    })
}

/// Longest query text kept in a `search.query` event.
const AUDITED_QUERY_BYTES: usize = 1024;

/// Records one `search.query` read event when searches are audited (`audit_searches`): the
/// route, the query text (bounded) and how many documents matched.
pub(super) fn audit_search(
    app: &AppState,
    principal: &Principal,
    route: &str,
    query: &str,
    total: usize,
) {
    if !app.settings.audit_searches {
        return;
    }
    let mut end = query.len().min(AUDITED_QUERY_BYTES);
    while !query.is_char_boundary(end) {
        end -= 1;
    }
    app.audit.record(
        crate::audit::AuditEvent::new("search.query")
            .by(principal)
            .resource(route.to_owned())
            .outcome(crate::audit::Outcome::Ok, 200)
            .detail("q", &query[..end])
            .detail("total", total),
    );
}

pub(super) async fn page(
    app: &AppState,
    principal: &Principal,
    cursor: CursorState,
) -> ApiResult<Response> {
    let (body, next) = page_body(app, principal, cursor).await?;
    Ok(with_link(
        app,
        ApiJson(body).into_response(),
        next.as_deref(),
    ))
}

/// Adds `Link: <next>; rel="more"` when there is a next page.
pub(super) fn with_link(app: &AppState, mut response: Response, next: Option<&str>) -> Response {
    if let Some(next) = next
        && let Ok(link) = HeaderValue::from_str(&format!(
            "<{}{next}>; rel=\"more\"",
            app.settings.public_url()
        ))
    {
        response.headers_mut().insert(header::LINK, link);
    }
    response
}

/// One page's body `{results, count, total, next}` and its `next`.
async fn page_body(
    app: &AppState,
    principal: &Principal,
    cursor: CursorState,
) -> ApiResult<(HitsPage, Option<String>)> {
    let request = request_of(app, &cursor)?;
    let now = app.clock.now();
    // The search and every per-hit decision (a link target's readability is a search too)
    // in one trip to the blocking pool.
    let (results, total, exact) = {
        let (app, principal, cursor) = (app.clone(), principal.clone(), cursor.clone());
        crate::index::off_runtime(move || -> ApiResult<(Vec<Presented>, usize, bool)> {
            let page: SearchPage = search(&app.index, &search_scope(&principal), &request, now)
                .map_err(search_error)?;
            let results = present_page(&app, &principal, &cursor, page.hits, now);
            Ok((results, page.total, page.total_exact))
        })
        .await
        .map_err(ApiError::internal)??
    };
    let next =
        next_token(app, &cursor, total, results.len(), now).map(|token| format!("/scroll/{token}"));
    let route = if cursor.offset == 0 {
        "search"
    } else {
        "scroll"
    };
    audit_search(app, principal, route, &cursor.q, total);
    // `total_relation` as Elasticsearch names it: `gte` when `total` is a lower bound.
    let body = HitsPage {
        count: results.len(),
        facets: None,
        next: next.clone(),
        results,
        total,
        total_relation: Some(if exact { "eq" } else { "gte" }),
    };
    Ok((body, next))
}

/// The signed token of the page after `cursor`'s, when there is one (`count` hits on this
/// page of `total`).
pub(super) fn next_token(
    app: &AppState,
    cursor: &CursorState,
    total: usize,
    count: usize,
    now: DateTime<Utc>,
) -> Option<String> {
    let next_offset = cursor.offset + cursor.size;
    (next_offset < total && count > 0).then(|| {
        app.cursors.encode(
            CursorState {
                offset: next_offset,
                ..cursor.clone()
            },
            now,
        )
    })
}

pub(super) fn cursor_from(
    app: &AppState,
    params: &SearchParams,
    project: Option<&str>,
    version: Option<&str>,
) -> ApiResult<CursorState> {
    let size = params.size.unwrap_or(DEFAULT_SIZE);
    if size == 0 || size > crate::index::search::MAX_PAGE_SIZE {
        return Err(ApiError::new(
            ErrorCode::InvalidParameter,
            format!(
                "size must be between 1 and {}",
                crate::index::search::MAX_PAGE_SIZE
            ),
        ));
    }
    if let Some(sort) = &params.sort {
        SortKey::parse(app.index.schema(), sort).map_err(search_error)?;
    }
    Ok(CursorState {
        q: params.q.clone().unwrap_or_else(|| "*".to_owned()),
        kind: kind_name(params.kind.unwrap_or_default()).to_owned(),
        sort: params.sort.clone(),
        fields: params.fields.clone(),
        size,
        offset: 0,
        latest: params.latest.unwrap_or(false),
        project: project.map(str::to_owned),
        version: version.map(str::to_owned),
        prefix: params.prefix.unwrap_or(false),
        highlight: params.highlight.unwrap_or(false),
        exp: 0,
    })
}

/// Authorized search.
#[utoipa::path(get, path = "/search", tag = "search", params(SearchParams),
    responses(
        (status = 200, description = "`{results, count, total, next}`; `Link: <...>; rel=\"more\"` when there is more"),
        (status = 400, description = "invalid_query / invalid_parameter", body = crate::error::ErrorBody),
    ))]
pub async fn get_search(
    State(app): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> ApiResult<Response> {
    let cursor = cursor_from(&app, &params, None, None)?;
    let Some(names) = params.facets.as_deref().map(facet_names) else {
        return page(&app, &principal, cursor).await;
    };
    // Counted over the same result set as the hits, under the same access filter.
    let request = request_of(&app, &cursor)?;
    let facets = run_facets(&app, &principal, request, names, FACET_TERMS).await?;
    let (mut body, next) = page_body(&app, &principal, cursor).await?;
    body.facets = Some(facets_json(&facets));
    Ok(with_link(
        &app,
        ApiJson(body).into_response(),
        next.as_deref(),
    ))
}

/// Terms per facet in a search answer.
const FACET_TERMS: usize = 20;

/// The next page of a search (stateless, signed, expiring cursor).
#[utoipa::path(get, path = "/scroll/{cursor}", tag = "search",
    params(("cursor" = String, Path, description = "cursor from `next`")),
    responses(
        (status = 200, description = "The next page"),
        (status = 400, description = "invalid_cursor / cursor_expired", body = crate::error::ErrorBody),
    ))]
pub async fn get_scroll(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(cursor): ApiPath<String>,
) -> ApiResult<Response> {
    let state = decode_cursor(&app, &cursor)?;
    page(&app, &principal, state).await
}

/// A signed cursor's state (`400 invalid_cursor`, `400 cursor_expired`).
pub(super) fn decode_cursor(app: &AppState, cursor: &str) -> ApiResult<CursorState> {
    app.cursors
        .decode(cursor, Utc::now())
        .map_err(|error| match error {
            CursorError::Invalid => ApiError::new(ErrorCode::InvalidCursor, error.to_string()),
            CursorError::Expired => ApiError::new(ErrorCode::CursorExpired, error.to_string()),
        })
}

/// `GET /projects` and metadata listings parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct ListParams {
    /// The next page of `GET /projects`: the `cursor` of the previous page's `next` (the other
    /// parameters are in it).
    pub cursor: Option<String>,
    /// Page size (1..=500, default 50).
    pub size: Option<usize>,
    /// Keys to return.
    pub fields: Option<String>,
    /// Restrict with a query.
    pub q: Option<String>,
    /// Sort, as for `/search`.
    pub sort: Option<String>,
    /// Keep only each project's latest readable version.
    pub latest: Option<bool>,
}

pub(super) fn list_params(params: &ListParams, kind: KindFilter) -> SearchParams {
    SearchParams {
        q: params.q.clone(),
        fields: params.fields.clone(),
        sort: params.sort.clone(),
        latest: params.latest,
        size: params.size,
        kind: Some(kind),
        prefix: None,
        highlight: None,
        facets: None,
    }
}

/// This module's routes, merged into the API's router by `api::api_router`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_search))
        .routes(routes!(get_scroll))
}
