//! Logs and metrics.
//!
//! Logs go through `tracing` (text or JSON lines, filter from `TROVE_LOG`). Metrics live in a
//! Prometheus registry owned by the `App` — no global recorder, so every test app has its own
//! — and are served as text by `GET /metrics`: HTTP requests and latencies by route and
//! status, storage operations and latencies by operation and outcome.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::config::Settings;
use crate::storage::instrumented::StorageObserver;

/// Installs the global `tracing` subscriber (once per process; later calls are ignored so
/// tests can build many apps).
pub fn init_tracing(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if settings.log_json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // Already installed (tests, or a second App in one process): keep the first one.
    let _ = result;
}

/// Labels of an HTTP request metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// HTTP method.
    pub method: String,
    /// The route template (`/projects/{project}`), never the raw path, to bound cardinality.
    pub route: String,
    /// Response status code.
    pub status: u16,
}

/// Labels of a storage operation metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StorageLabels {
    /// Operation: head, get, put, delete, list, presign, check.
    pub operation: String,
    /// `ok`, `not_found`, `conflict`, `unavailable` or `error`.
    pub outcome: String,
}

/// The service's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<HttpLabels, Histogram>,
    storage_operations: Family<StorageLabels, Counter>,
    storage_duration: Family<StorageLabels, Histogram>,
    /// 1 while the last storage check succeeded, else 0.
    pub storage_up: Gauge,
    /// Drifted entries found by the last sync check.
    pub sync_drift: Gauge,
    /// The last change feed entry this replica applied.
    pub feed_position: Gauge,
    /// Age of the newest change feed entry when this replica applied it, in milliseconds.
    pub feed_lag_ms: Gauge,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~16 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered.
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("trove");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration =
            Family::<HttpLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        let storage_operations = Family::<StorageLabels, Counter>::default();
        let storage_duration = Family::<StorageLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> _,
        );
        let storage_up = Gauge::default();
        let sync_drift = Gauge::default();
        let feed_position = Gauge::default();
        let feed_lag_ms = Gauge::default();
        registry.register(
            "feed_position",
            "The last change feed entry this replica applied",
            feed_position.clone(),
        );
        registry.register(
            "feed_lag_milliseconds",
            "Age of the newest change feed entry when this replica applied it",
            feed_lag_ms.clone(),
        );
        registry.register(
            "sync_drift",
            "Entries where index and storage disagreed at the last sync check",
            sync_drift.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method, route and status",
            http_duration.clone(),
        );
        registry.register(
            "storage_operations",
            "Storage operations by operation and outcome",
            storage_operations.clone(),
        );
        registry.register(
            "storage_operation_duration_seconds",
            "Storage operation latency by operation and outcome",
            storage_duration.clone(),
        );
        registry.register(
            "storage_up",
            "Whether the last storage health check succeeded",
            storage_up.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            http_requests,
            http_duration,
            storage_operations,
            storage_duration,
            storage_up,
            sync_drift,
            feed_position,
            feed_lag_ms,
        }
    }

    /// Registers another metric (used by later subsystems: index, jobs, audit).
    pub fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        if let Ok(mut registry) = self.registry.lock() {
            registry.register(name, help, metric);
        }
    }

    /// Records one HTTP request.
    pub fn observe_http(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let labels = HttpLabels {
            method: method.to_owned(),
            route: route.to_owned(),
            status,
        };
        self.http_requests.get_or_create(&labels).inc();
        self.http_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition of every metric.
    #[must_use]
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Ok(registry) = self.registry.lock() {
            // Writing into a String cannot fail.
            let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        }
        text
    }
}

impl StorageObserver for Metrics {
    fn observe(&self, operation: &'static str, outcome: &'static str, elapsed: Duration) {
        let labels = StorageLabels {
            operation: operation.to_owned(),
            outcome: outcome.to_owned(),
        };
        self.storage_operations.get_or_create(&labels).inc();
        self.storage_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_metrics_include_http_and_storage_series() {
        let metrics = Metrics::new();
        metrics.observe_http("GET", "/status", 200, Duration::from_millis(3));
        metrics.observe("get", "ok", Duration::from_millis(1));
        let text = metrics.render();
        assert!(
            text.contains(
                "trove_http_requests_total{method=\"GET\",route=\"/status\",status=\"200\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("trove_storage_operations_total{operation=\"get\",outcome=\"ok\"} 1"),
            "{text}"
        );
        assert!(text.contains("trove_http_request_duration_seconds_bucket"));
    }
}
