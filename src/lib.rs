//! Trove: a secure, search-indexed registry for machine-learning and research artifacts.
//!
//! Architecture (dependencies point one way, top to bottom):
//!
//! - [`cli`]: the `trove` command line (`serve`, `check-config`, ...).
//! - [`ui`]: the web interface under `/ui/` (server-rendered pages that call the API router
//!   in-process, so authorization is the API's own), and `/docs`.
//! - [`api`]: the axum router, one module per resource; with [`ui`] and [`error`] the only
//!   code that knows HTTP.
//! - [`catalog`]: the domain operations (uploads and the purge so far; see
//!   `docs/ARCHITECTURE.md`), returning errors that carry their code; no HTTP.
//! - [`audit`]: the audit log — events, the durable chained sink, verification, queries.
//! - [`auth`]: accounts, passwords, tokens, the external identity provider, rate limits.
//! - [`app`]: `App`, the shared services every handler reaches through `AppState`.
//! - [`jobs`]: the job registry and scheduled jobs (sync check, purges, grant expiry), and
//!   the follower of the change feed.
//! - [`feed`]: the change feed in storage that keeps every replica's index in step.
//! - [`index`]: the tantivy index built from `index-schema/`, a cache derived from storage.
//! - [`storage`]: the `ObjectStore` trait and its local and S3 backends — the source of truth.
//! - [`permissions`]: profiles, roles, lifecycle and the one evaluator every route and the
//!   search use (pure, exhaustively tested).
//! - [`model`]: names, ArtifactDB ids and records.
//! - [`config`]: settings from `trove.toml`, `TROVE_*` variables and flags.
//! - [`telemetry`]: tracing and Prometheus metrics.
//! - [`cache`]: the one TTL cache type (accounts, groups, API keys, revoked tokens, profiles).
//! - [`clock`]: the time grant expiry is decided against (system; movable in tests).
//! - [`crash`]: test-only crash points (`TROVE_TEST_CRASH_AT`).

pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crash;
pub mod error;
pub mod feed;
pub mod index;
pub mod jobs;
pub mod model;
pub mod permissions;
pub mod storage;
pub mod telemetry;
pub mod ui;

/// jemalloc, not glibc's malloc, for every binary built on this crate (the server, its tests
/// and benchmarks; the `jemalloc` feature, on by default): measured A/B (docs/DECISIONS.md,
/// "Allocator"), it held the soak's resident memory at a third of glibc's and served every
/// read route and the rebuild faster.
#[cfg(all(target_os = "linux", feature = "jemalloc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
