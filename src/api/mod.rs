//! The HTTP API: the axum router, with one module per resource.
//!
//! Every route is registered through `utoipa_axum`'s `routes!` so it lands in the OpenAPI
//! document (`/openapi.json`, browsable at `/docs`). Cross-cutting layers: request ids
//! (`x-request-id`, generated when absent and echoed back), a tracing span per request,
//! Prometheus metrics by route template, panics turned into `500 internal`, a JSON body limit,
//! JSON answers for unknown routes and methods, and safe headers on every answer
//! (`nosniff`, a `Content-Security-Policy`, `Referrer-Policy`, `X-Frame-Options`).

pub mod access;
pub mod api_keys;
pub mod audit_log;
pub mod download;
pub mod extract;
pub mod facets;
pub mod file_listing;
pub mod files;
pub mod groups;
pub mod hits;
pub mod index_admin;
pub mod listing;
pub mod members;
pub mod metadata;
mod mutations;
pub mod namespaces;
pub mod openapi;
pub mod presented;
pub mod presigned;
pub mod profiles;
pub mod projects;
pub mod search;
pub mod sessions;
pub mod shares;
pub mod system;
pub mod uploads;
pub mod users;

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;
use crate::error::{ApiError, ErrorBody, ErrorCode};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// `Content-Security-Policy` of API answers (JSON): nothing may load, nothing may frame them.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The OpenAPI document's static part; routes add themselves.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Trove",
        description = "Secure, search-indexed registry for machine-learning and research artifacts. Speaks ArtifactDB's API."
    ),
    components(schemas(ErrorBody, crate::index::search::KindFilter))
)]
struct ApiDoc;

/// Builds the whole router over the shared state: the web interface (`/`, `/docs`, `/ui/`,
/// see [`crate::ui`]) in front of the API.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = api_router(state.clone());
    let openapi = serde_json::to_value(&openapi).unwrap_or_default();
    crate::ui::router(crate::ui::UiState::new(state, api, openapi))
}

/// The API's router alone, and its OpenAPI document.
/// A JSON object of `fields`, moved in. `json!` serializes what it is given by reference, so
/// `json!({"results": results})` deep-copies a whole page of hits; this does not. Same bytes:
/// an object's keys are written in order either way.
pub(crate) fn object<const N: usize>(fields: [(&str, serde_json::Value); N]) -> serde_json::Value {
    serde_json::Value::Object(
        fields
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect(),
    )
}

fn api_router(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    let serve_metrics = state.settings.metrics_listen.is_none();
    let (api_router, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(system::routes(serve_metrics))
        .merge(presigned::routes())
        .merge(search::routes())
        .merge(facets::routes())
        .merge(metadata::routes())
        .merge(listing::routes())
        .merge(projects::routes())
        .merge(files::routes())
        .merge(file_listing::routes())
        .merge(profiles::routes())
        .merge(shares::routes())
        .merge(uploads::routes())
        .merge(index_admin::routes())
        .merge(sessions::routes())
        .merge(users::routes())
        .merge(groups::routes())
        .merge(api_keys::routes())
        .merge(namespaces::routes())
        .merge(members::routes())
        .merge(audit_log::routes())
        .split_for_parts();
    let mut openapi = openapi;
    openapi::complete(&mut openapi);

    let openapi_json = openapi.clone();
    let routes = api_router.route(
        "/openapi.json",
        axum::routing::get(move || async move { axum::Json(openapi_json) }),
    );
    (with_layers(routes, state), openapi)
}

/// The API's cross-cutting layers around its routes, innermost first: metrics, the audit
/// context, the start-up wait and the run to completion of mutations per matched route; then the JSON fallbacks, the JSON body
/// limit, panics as `500 internal`, the safe headers, the tracing span and the request id.
fn with_layers(routes: Router<AppState>, state: AppState) -> Router {
    let max_json_bytes = state.settings.max_json_bytes;
    with_route_layers(routes, &state)
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_json_bytes))
        .layer(CatchPanicLayer::custom(panic_response))
        // Safe defaults on every answer; a route that sets its own (downloads, docs) keeps it.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(API_CSP),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

/// The layers of each matched route, innermost first: metrics, the audit context, the
/// start-up wait, the run to completion of mutations.
fn with_route_layers(routes: Router<AppState>, state: &AppState) -> Router<AppState> {
    routes
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            record_metrics,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit_context,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            wait_until_reconciled,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.mutations.clone(),
            mutations::run_to_completion,
        ))
}

/// The tracing span of one request: method, path and request id.
fn request_span(request: &Request) -> tracing::Span {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("-");
    // The path only, never the query: presigned URLs carry signatures there.
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
    )
}

/// Records request count and latency by route template and status.
async fn record_metrics(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    state.metrics.observe_http(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Runs the request inside its audit context, so events take the client address from it.
/// Routes that never read the search index: they answer during the start-up reconciliation.
const ANSWERS_WHILE_RECONCILING: [&str; 8] = [
    "/",
    "/healthz",
    "/readyz",
    "/status",
    "/metrics",
    "/openapi.json",
    "/auth/login",
    "/auth/me",
];

/// Holds reads (`GET`) while the start-up reconciliation brings the index back to storage
/// (hardening, issue 14): after a crash between a profile write and its re-index, the index
/// may still admit callers the stored profile no longer does. Waits up to the storage
/// timeout, then answers `503 index_unavailable` with `Retry-After`.
async fn wait_until_reconciled(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let exempt = request.method() != axum::http::Method::GET
        || ANSWERS_WHILE_RECONCILING.contains(&request.uri().path())
        || request.uri().path().starts_with("/docs");
    if !exempt && !*state.reconciled.borrow() {
        let mut ready = state.reconciled.subscribe();
        let waited = tokio::time::timeout(
            state.settings.storage_timeout(),
            ready.wait_for(|done| *done),
        )
        .await;
        if !matches!(waited, Ok(Ok(_))) {
            return ApiError::new(
                ErrorCode::IndexUnavailable,
                "the index is being reconciled with storage after a restart; retry shortly",
            )
            .with_retry_after(1)
            .into_response();
        }
    }
    next.run(request).await
}

async fn audit_context(
    extract::ClientAddress(address): extract::ClientAddress,
    request: Request,
    next: Next,
) -> Response {
    let context = crate::audit::RequestContext {
        ip: Some(address).filter(|address| address != "unknown"),
    };
    crate::audit::scope(context, next.run(request)).await
}

async fn unknown_route() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this route",
    )
}

fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("request handler panicked");
    let mut response = ApiError::new(ErrorCode::Internal, "internal error").into_response();
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

/// Serves the router on `listener` until `shutdown` resolves, then drains in-flight
/// requests (graceful shutdown).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested, draining requests");
    // Give load balancers a moment to notice before connections close.
    tokio::time::sleep(Duration::from_millis(50)).await;
}
