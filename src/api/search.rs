//! ArtifactDB's read side: `GET /search`, `/scroll/{cursor}`, `/aggregate`,
//! `/files/{id}/metadata`, `/projects`, `/projects/{p}/versions`, `/projects/{p}/metadata`,
//! `/projects/{p}/version/{v}/metadata`. Every query runs through
//! [`crate::index::search::search`] with the caller's scope, and `_extra.permissions` is
//! returned only on documents the caller may manage.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::access::{authorize_project, authorize_version, search_scope};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, ErrorCode};
use crate::index::cursor::{CursorError, CursorState};
use crate::index::search::{
    Hit, KindFilter, ReadableVersions, SearchError, SearchPage, SearchRequest, SortKey, search,
};
use crate::model::id::{ArtifactId, VersionSelector};
use crate::permissions::{Action, ResolvedProfile, Target, can_manage};

/// Default page size.
const DEFAULT_SIZE: usize = 50;

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

/// Keeps only the requested keys (top level, or `_extra.<key>`).
fn filter_fields(document: Value, fields: Option<&str>) -> Value {
    let Some(fields) = fields.map(str::trim).filter(|f| !f.is_empty()) else {
        return document;
    };
    let Value::Object(object) = document else {
        return document;
    };
    let mut kept = Map::new();
    for field in fields.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        match field.split_once('.') {
            Some((top, sub)) => {
                if let Some(value) = object.get(top).and_then(|inner| inner.get(sub)) {
                    let entry = kept
                        .entry(top.to_owned())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(inner) = entry {
                        inner.insert(sub.to_owned(), value.clone());
                    }
                }
            }
            None => {
                if let Some(value) = object.get(field) {
                    kept.insert(field.to_owned(), value.clone());
                }
            }
        }
    }
    Value::Object(kept)
}

/// Whether the caller may manage the resource a hit belongs to (then it sees
/// `_extra.permissions`), evaluated from what the hit carries.
fn may_manage(principal: &Principal, hit: &Hit, now: DateTime<Utc>) -> bool {
    if principal.is_admin() {
        return true;
    }
    if principal.is_anonymous() {
        return false;
    }
    let extra = &hit.source["_extra"];
    let Ok(profile) = serde_json::from_value::<ResolvedProfile>(extra["permissions"].clone())
    else {
        return false;
    };
    let state = serde_json::from_value(extra["state"].clone()).unwrap_or_default();
    let target = Target {
        profile,
        state,
        parent_state: state,
        namespace: extra["namespace"].as_str().map(str::to_owned),
        project: extra["project_id"].as_str().map(str::to_owned),
        version: extra["version"].as_str().map(str::to_owned),
        ..Target::default()
    };
    let allowed = can_manage(&principal.caller, &target, now);
    match &principal.creator {
        Some(creator) => allowed && can_manage(creator, &target, now),
        None => allowed,
    }
}

/// ArtifactDB's `readers`: the principals that may read under a profile — the levels its
/// `read_access` admits (owners, writers, viewers), or `authenticated` / `public` for the
/// open rules, nobody for `none`.
fn readers_of(permissions: &Map<String, Value>) -> Vec<String> {
    let list = |key: &str| -> Vec<String> {
        permissions
            .get(key)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let levels: &[&str] = match permissions
        .get("read_access")
        .and_then(Value::as_str)
        .unwrap_or("viewers")
    {
        "owners" => &["owners"],
        "writers" => &["owners", "writers"],
        "authenticated" => return vec!["authenticated".to_owned()],
        "public" => return vec!["public".to_owned()],
        "none" => &[],
        _ => &["owners", "writers", "viewers"],
    };
    let mut readers: Vec<String> = Vec::new();
    for level in levels {
        for principal in list(level) {
            if !readers.contains(&principal) {
                readers.push(principal);
            }
        }
    }
    readers
}

/// Whether the caller may read the document a link points to: only then does it learn the
/// target's id.
pub fn link_target_readable(app: &AppState, principal: &Principal, target: &str) -> bool {
    let Ok(id) = ArtifactId::parse(target) else {
        return false;
    };
    let version = if id.version.as_str() == crate::model::names::LATEST {
        match super::access::latest_readable_version(app, principal, &id.project) {
            Ok(Some(version)) => version,
            _ => return false,
        }
    } else {
        id.version.as_str().to_owned()
    };
    let document_id = format!("{}:{}@{}", id.project, id.path, version);
    matches!(
        crate::index::search::get_by_id(
            &app.index,
            &search_scope(principal),
            &document_id,
            app.clock.now()
        ),
        Ok(Some(_))
    )
}

/// A hit as returned: permissions stripped unless manageable, a link's target hidden unless
/// readable, then fields filtered.
fn present(
    app: &AppState,
    principal: &Principal,
    hit: Hit,
    fields: Option<&str>,
    now: DateTime<Utc>,
) -> Value {
    let manage = may_manage(principal, &hit, now);
    let mut source = hit.source;
    if let Some(extra) = source.get_mut("_extra").and_then(Value::as_object_mut) {
        if manage {
            if let Some(permissions) = extra.get_mut("permissions").and_then(Value::as_object_mut)
                && !permissions.contains_key("readers")
            {
                let readers = readers_of(permissions);
                permissions.insert("readers".to_owned(), json!(readers));
            }
        } else {
            extra.remove("permissions");
        }
        let hidden = extra
            .get("link")
            .and_then(|link| link.get("artifactdb"))
            .and_then(Value::as_str)
            .is_some_and(|target| !link_target_readable(app, principal, target));
        if hidden {
            extra.insert(
                "link".to_owned(),
                serde_json::json!({"artifactdb": Value::Null}),
            );
        }
    }
    filter_fields(source, fields)
}

/// Builds the request of a cursor state.
fn request_of(app: &AppState, state: &CursorState) -> ApiResult<SearchRequest> {
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

/// Runs a page and answers `{results, count, total, next}` with a `Link: rel="more"` header.
/// Longest query text kept in a `search.query` event.
const AUDITED_QUERY_BYTES: usize = 1024;

/// Records one `search.query` read event when searches are audited (`audit_searches`): the
/// route, the query text (bounded) and how many documents matched.
fn audit_search(app: &AppState, principal: &Principal, route: &str, query: &str, total: usize) {
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

async fn page(app: &AppState, principal: &Principal, cursor: CursorState) -> ApiResult<Response> {
    let (body, next) = page_body(app, principal, cursor).await?;
    Ok(with_link(
        app,
        ApiJson(body).into_response(),
        next.as_deref(),
    ))
}

/// Adds `Link: <next>; rel="more"` when there is a next page.
fn with_link(app: &AppState, mut response: Response, next: Option<&str>) -> Response {
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

/// The hits of a page as answered: highlighted when asked, presented (see [`present`]).
/// Runs on the blocking pool: a link's target is checked with a search.
fn present_page(
    app: &AppState,
    principal: &Principal,
    cursor: &CursorState,
    hits: Vec<Hit>,
    now: DateTime<Utc>,
) -> Vec<Value> {
    let words = if cursor.highlight {
        crate::index::highlight::query_words(&cursor.q)
    } else {
        Vec::new()
    };
    hits.into_iter()
        .map(|hit| {
            // Built from the hit itself, before fields are filtered.
            let highlight = cursor
                .highlight
                .then(|| crate::index::highlight::snippet(&hit.source, &words, cursor.prefix));
            let mut document = present(app, principal, hit, cursor.fields.as_deref(), now);
            if let Some(highlight) = highlight
                && let Some(object) = document.as_object_mut()
            {
                let extra = object
                    .entry("_extra")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Some(extra) = extra.as_object_mut() {
                    extra.insert("highlight".to_owned(), json!(highlight));
                }
            }
            document
        })
        .collect()
}

/// One page's body `{results, count, total, next}` and its `next`.
async fn page_body(
    app: &AppState,
    principal: &Principal,
    cursor: CursorState,
) -> ApiResult<(Value, Option<String>)> {
    let request = request_of(app, &cursor)?;
    let now = app.clock.now();
    // The search and every per-hit decision (a link target's readability is a search too)
    // in one trip to the blocking pool.
    let (results, total, exact) = {
        let (app, principal, cursor) = (app.clone(), principal.clone(), cursor.clone());
        crate::index::off_runtime(move || -> ApiResult<(Vec<Value>, usize, bool)> {
            let page: SearchPage = search(&app.index, &search_scope(&principal), &request, now)
                .map_err(search_error)?;
            let results = present_page(&app, &principal, &cursor, page.hits, now);
            Ok((results, page.total, page.total_exact))
        })
        .await
        .map_err(ApiError::internal)??
    };
    let next_offset = cursor.offset + cursor.size;
    let next = (next_offset < total && !results.is_empty()).then(|| {
        let token = app.cursors.encode(
            CursorState {
                offset: next_offset,
                ..cursor.clone()
            },
            now,
        );
        format!("/scroll/{token}")
    });
    audit_search(
        app,
        principal,
        if cursor.offset == 0 {
            "search"
        } else {
            "scroll"
        },
        &cursor.q,
        total,
    );
    // `total_relation` as Elasticsearch names it: `gte` when `total` is a lower bound.
    let body = json!({
        "results": results,
        "count": results.len(),
        "total": total,
        "total_relation": if exact { "eq" } else { "gte" },
        "next": next,
    });
    Ok((body, next))
}

fn cursor_from(
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
    if let Some(object) = body.as_object_mut() {
        object.insert("facets".to_owned(), facets_json(&facets));
    }
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
fn decode_cursor(app: &AppState, cursor: &str) -> ApiResult<CursorState> {
    app.cursors
        .decode(cursor, Utc::now())
        .map_err(|error| match error {
            CursorError::Invalid => ApiError::new(ErrorCode::InvalidCursor, error.to_string()),
            CursorError::Expired => ApiError::new(ErrorCode::CursorExpired, error.to_string()),
        })
}

/// `GET /aggregate` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AggregateParams {
    /// Query, as for `/search`.
    pub q: Option<String>,
    /// Field(s) to count, comma-separated (the aggregatable fields of `index-schema/`:
    /// `_extra.project_id`, `_extra.version`, `_extra.namespace`, `_extra.type`, `_extra.tags`,
    /// `_extra.$schema`, `_extra.content_type`, `_extra.extension`, `_extra.path`).
    pub field: String,
    /// Number of terms (default 50, at most 500).
    pub size: Option<usize>,
}

/// Term counts of a field over the authorized result set.
#[utoipa::path(get, path = "/aggregate", tag = "search", params(AggregateParams),
    responses(
        (status = 200, description = "`{field, results: [{<field>: value, count}]}`"),
        (status = 400, description = "invalid_query / invalid_parameter", body = crate::error::ErrorBody),
    ))]
pub async fn get_aggregate(
    State(app): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<AggregateParams>,
) -> ApiResult<ApiJson<Value>> {
    let size = params.size.unwrap_or(DEFAULT_SIZE).clamp(1, 500);
    let names = facet_names(&params.field);
    let request = SearchRequest {
        query: params.q.clone().unwrap_or_else(|| "*".to_owned()),
        size: 1,
        ..SearchRequest::default()
    };
    let facets = run_facets(&app, &principal, request, names, size).await?;
    // ArtifactDB's shape for the first field, every field under `facets`.
    let first = facet_names(&params.field)
        .into_iter()
        .next()
        .unwrap_or_default();
    let results: Vec<Value> = facets
        .first()
        .map(|(_, counts)| {
            counts
                .iter()
                .map(|(value, count)| json!({ first.clone(): value, "count": count }))
                .collect()
        })
        .unwrap_or_default();
    audit_search(
        &app,
        &principal,
        "aggregate",
        params.q.as_deref().unwrap_or("*"),
        results.len(),
    );
    Ok(ApiJson(json!({
        "field": params.field,
        "results": results,
        "facets": facets_json(&facets),
    })))
}

/// The field names of a comma-separated `field` / `facets` parameter.
fn facet_names(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Term counts of `names` over what `request` finds for the caller (off the async runtime).
async fn run_facets(
    app: &AppState,
    principal: &Principal,
    request: SearchRequest,
    names: Vec<String>,
    size: usize,
) -> ApiResult<crate::index::search::Facets> {
    let scope = search_scope(principal);
    let index = app.index.clone();
    let now = app.clock.now();
    crate::index::off_runtime(move || {
        crate::index::search::facets(&index, &scope, &request, &names, size, now)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(search_error)
}

/// `{field: [{value, count}]}`.
fn facets_json(facets: &crate::index::search::Facets) -> Value {
    Value::Object(
        facets
            .iter()
            .map(|(field, counts)| {
                (
                    field.clone(),
                    counts
                        .iter()
                        .map(|(value, count)| json!({"value": value, "count": count}))
                        .collect(),
                )
            })
            .collect(),
    )
}

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
) -> ApiResult<Value> {
    let mut hit = find_document(app, principal, id)?;
    if params.follow_link.unwrap_or(false) {
        let mut hops = 0;
        while let Some(target) = hit.source["_extra"]["link"]["artifactdb"].as_str() {
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
    if params.raw.unwrap_or(false)
        && let Some(object) = document.as_object_mut()
    {
        object.remove("_extra");
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
) -> ApiResult<ApiJson<Value>> {
    let id = ArtifactId::parse(&id)
        .map_err(|error| ApiError::new(ErrorCode::InvalidId, error.to_string()))?;
    let app = app.clone();
    let document = crate::index::off_runtime(move || file_metadata(&app, &principal, &id, &params))
        .await
        .map_err(ApiError::internal)??;
    Ok(ApiJson(document))
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

fn list_params(params: &ListParams, kind: KindFilter) -> SearchParams {
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

/// The readable versions and `latest` of every project of a page, in one index pass on the
/// blocking pool's thread that calls it.
fn readable_versions_of(
    app: &AppState,
    principal: &Principal,
    projects: &[String],
) -> ApiResult<std::collections::HashMap<String, ReadableVersions>> {
    crate::index::search::readable_versions(
        &app.index,
        &search_scope(principal),
        projects,
        app.clock.now(),
    )
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
) -> ApiResult<(Vec<Value>, usize)> {
    let page = search(&app.index, &search_scope(principal), request, now).map_err(search_error)?;
    let projects: Vec<String> = page
        .hits
        .iter()
        .map(|hit| {
            hit.source["project_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let readable = readable_versions_of(app, principal, &projects)?;
    let mut results = Vec::with_capacity(page.hits.len());
    for (hit, project) in page.hits.into_iter().zip(projects) {
        let ReadableVersions { versions, latest } =
            readable.get(&project).cloned().unwrap_or_default();
        let mut document = present(app, principal, hit, fields, now);
        if let Some(object) = document.as_object_mut() {
            object.insert("project_id".to_owned(), Value::String(project));
            object.insert(
                "aggs".to_owned(),
                versions
                    .iter()
                    .map(|v| json!({"_extra.version": v}))
                    .collect(),
            );
            object.insert(
                "latest".to_owned(),
                json!(latest.map(|v| json!({"_extra.version": v}))),
            );
        }
        results.push(document);
    }
    Ok((results, page.total))
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
    let cursor = match &params.cursor {
        Some(token) => {
            let state = decode_cursor(&app, token)?;
            if state.kind != "project" || state.project.is_some() {
                return Err(ApiError::new(
                    ErrorCode::InvalidCursor,
                    "not a cursor of /projects",
                ));
            }
            state
        }
        None => cursor_from(&app, &list_params(&params, KindFilter::Project), None, None)?,
    };
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
    let next_offset = cursor.offset + cursor.size;
    let next = (next_offset < total && !results.is_empty()).then(|| {
        let token = app.cursors.encode(
            CursorState {
                offset: next_offset,
                ..cursor.clone()
            },
            now,
        );
        let token: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
        format!("/projects?cursor={token}")
    });
    let mut response = ApiJson(json!({
        "results": results,
        "count": results.len(),
        "total": total,
        "next": next,
    }))
    .into_response();
    if let Some(next) = &next
        && let Ok(link) = HeaderValue::from_str(&format!(
            "<{}{next}>; rel=\"more\"",
            app.settings.public_url()
        ))
    {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
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
    let ReadableVersions { versions, latest } = {
        let (app, principal, project) = (app.clone(), principal.clone(), project.clone());
        crate::index::off_runtime(move || {
            readable_versions_of(&app, &principal, std::slice::from_ref(&project))
                .map(|mut found| found.remove(&project).unwrap_or_default())
        })
        .await
        .map_err(ApiError::internal)??
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_follow_the_read_rule() {
        let profile = |rule: &str| {
            json!({"owners": ["alice"], "writers": ["bob"], "viewers": ["carol", "alice"], "read_access": rule})
                .as_object()
                .unwrap()
                .clone()
        };
        assert_eq!(readers_of(&profile("viewers")), ["alice", "bob", "carol"]);
        assert_eq!(readers_of(&profile("writers")), ["alice", "bob"]);
        assert_eq!(readers_of(&profile("owners")), ["alice"]);
        assert_eq!(readers_of(&profile("public")), ["public"]);
        assert!(readers_of(&profile("none")).is_empty());
    }
}
