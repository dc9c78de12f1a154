//! Instance information and health: `GET /`, `/status`, `/healthz`, `/readyz`, `/metrics`.
//!
//! `/metrics` is for admins on the main listener; with `TROVE_METRICS_LISTEN` it is served
//! without authentication on that separate address only ([`metrics_router`]) and the main
//! listener answers `404` for it.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::RequireAdmin;
use crate::app::AppState;
use crate::error::{ApiError, ApiJson, ErrorCode};
use crate::index::IndexHealth;
use crate::storage::StorageKind;

/// `GET /` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceInfo {
    /// Always `trove`.
    pub name: &'static str,
    /// Server version.
    pub version: &'static str,
    /// Storage backend in use (`local` or `s3`).
    #[schema(value_type = String)]
    pub storage: StorageKind,
    /// Where the interactive API documentation is.
    pub docs: &'static str,
    /// Where the OpenAPI document is.
    pub openapi: &'static str,
    /// Seconds since the process started.
    pub uptime_secs: u64,
}

/// Instance information.
#[utoipa::path(get, path = "/", tag = "system",
    responses((status = 200, description = "Instance information", body = InstanceInfo)))]
pub async fn get_root(State(state): State<AppState>) -> ApiJson<InstanceInfo> {
    ApiJson(InstanceInfo {
        name: "trove",
        version: env!("CARGO_PKG_VERSION"),
        storage: state.storage.kind(),
        docs: "/docs",
        openapi: "/openapi.json",
        uptime_secs: state.uptime().as_secs(),
    })
}

/// Storage health within `/status`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StorageHealth {
    /// Backend kind.
    #[schema(value_type = String)]
    pub kind: StorageKind,
    /// Whether the check round trip succeeded within the storage timeout.
    pub ok: bool,
    /// Round-trip time of the check.
    pub latency_ms: u64,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /status` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusReport {
    /// `ok` when every component is healthy, else `error`.
    pub status: &'static str,
    /// `storage_unavailable` when storage is down (with status 503).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    /// Human summary when unhealthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Storage health.
    pub storage: StorageHealth,
    /// Index health.
    pub index: IndexHealth,
    /// How and when the start-up reconciliation let reads through; absent while it runs
    /// (and in processes that start none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reads_opened: Option<crate::app::ReadsOpened>,
}

/// Health of storage and index; `503` with code `storage_unavailable` when storage does not
/// answer within the storage timeout.
#[utoipa::path(get, path = "/status", tag = "system",
    responses(
        (status = 200, description = "Everything healthy", body = StatusReport),
        (status = 503, description = "Storage unavailable", body = StatusReport),
    ))]
pub async fn get_status(State(state): State<AppState>) -> Response {
    let started = std::time::Instant::now();
    let check = state.check_storage().await;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let index = state.index.health();
    let storage = StorageHealth {
        kind: state.storage.kind(),
        ok: check.is_ok(),
        latency_ms,
        error: check.as_ref().err().map(ToString::to_string),
    };
    let healthy = storage.ok && index.ok;
    let report = StatusReport {
        status: if healthy { "ok" } else { "error" },
        code: (!storage.ok).then_some(ErrorCode::StorageUnavailable.as_str()),
        reason: (!storage.ok).then(|| "object storage is unavailable".to_owned()),
        storage,
        index,
        reads_opened: state.reads_opened.get().copied(),
    };
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, ApiJson(report)).into_response()
}

/// `GET /healthz` and `/readyz` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Probe {
    /// Always `ok` (failures use the error body).
    pub status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, description = "Alive", body = Probe)))]
pub async fn get_healthz() -> ApiJson<Probe> {
    ApiJson(Probe { status: "ok" })
}

/// Readiness: storage answers and the start-up reconciliation is over (the index agrees with
/// storage), so requests can be served.
#[utoipa::path(get, path = "/readyz", tag = "system",
    responses(
        (status = 200, description = "Ready", body = Probe),
        (status = 503, description = "Storage unavailable", body = crate::error::ErrorBody),
    ))]
pub async fn get_readyz(State(state): State<AppState>) -> Result<ApiJson<Probe>, ApiError> {
    state.check_storage().await?;
    // Not ready while the start-up reconciliation brings the index back to storage.
    if !*state.reconciled.borrow() {
        return Err(ApiError::new(
            ErrorCode::IndexUnavailable,
            "the index is being reconciled with storage",
        )
        .with_retry_after(1));
    }
    Ok(ApiJson(Probe { status: "ok" }))
}

/// Prometheus metrics in the text exposition format, for admins (not routed at all when
/// `TROVE_METRICS_LISTEN` is set).
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses(
        (status = 200, description = "Prometheus text format (OpenMetrics)", content_type = "application/openmetrics-text"),
        (status = 401, description = "Not logged in", body = crate::error::ErrorBody),
        (status = 403, description = "Not an admin", body = crate::error::ErrorBody),
        (status = 404, description = "Served on TROVE_METRICS_LISTEN instead", body = crate::error::ErrorBody),
    ))]
pub async fn get_metrics(
    State(state): State<AppState>,
    RequireAdmin(_admin): RequireAdmin,
) -> Response {
    render_metrics(&state)
}

/// The router of `TROVE_METRICS_LISTEN`: `GET /metrics` only, without authentication (the
/// operator chose who can reach that address).
pub fn metrics_router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(
                |State(state): State<AppState>| async move { render_metrics(&state) },
            ),
        )
        .with_state(state)
}

/// Serves [`metrics_router`] on `listener` (until the task is dropped).
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    state: AppState,
) -> std::io::Result<()> {
    axum::serve(listener, metrics_router(state)).await
}

fn render_metrics(state: &AppState) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// This module's routes, merged into the API's router by `api::api_router`;
/// `/metrics` only when it has no listener of its own (`TROVE_METRICS_LISTEN`).
pub(super) fn routes(serve_metrics: bool) -> OpenApiRouter<AppState> {
    let mut router = OpenApiRouter::new();
    // Admins only; not routed here at all when it has its own listener.
    if serve_metrics {
        router = router.routes(routes!(get_metrics));
    }
    router
        .routes(routes!(get_root))
        .routes(routes!(get_status))
        .routes(routes!(get_healthz))
        .routes(routes!(get_readyz))
}
