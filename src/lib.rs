//! Trove: a secure, search-indexed registry for machine-learning and research artifacts.
//!
//! Architecture (dependencies point one way, top to bottom):
//!
//! - [`api`]: the axum router, one module per resource; the only place (with [`error`]) that
//!   knows HTTP.
//! - [`app`]: `App`, the shared services every handler reaches through `AppState`.
//! - [`index`]: the tantivy index built from `index-schema/`.
//! - [`storage`]: the `ObjectStore` trait and its local and S3 backends — the source of truth.
//! - [`model`]: names, ids and records.
//! - [`config`]: settings from `trove.toml`, `TROVE_*` variables and flags.
//! - [`telemetry`]: tracing and Prometheus metrics.
//! - [`cli`]: the `trove` command line.

pub mod model;
pub mod storage;
