//! `GET /aggregate` and the facets of `GET /search`: term counts over the caller's result set.

use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::search_scope;
use super::search::{DEFAULT_SIZE, audit_search, search_error};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson, ApiQuery, ApiResult};
use crate::index::search::SearchRequest;

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
    Ok(ApiJson(super::object([
        ("field", Value::from(params.field)),
        ("results", Value::Array(results)),
        ("facets", facets_json(&facets)),
    ])))
}

/// The field names of a comma-separated `field` / `facets` parameter.
pub(super) fn facet_names(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Term counts of `names` over what `request` finds for the caller (off the async runtime).
pub(super) async fn run_facets(
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
pub(super) fn facets_json(facets: &crate::index::search::Facets) -> Value {
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

/// This module's routes, merged into the API's router by `api::api_router`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_aggregate))
}
