//! The domain operations of Trove — what a project, version, file, upload or purge *does* —
//! as plain async functions over `storage`, `permissions` and `index`, returning a
//! [`Error`] that carries its [`ErrorCode`](crate::error::ErrorCode). No HTTP here: the API
//! extracts, authorizes, audits, calls these and shapes the answer; background jobs call them
//! directly (never the API).
//!
//! See `docs/ARCHITECTURE.md` for what lives where while handlers move here.

pub mod accounts;
pub mod api_keys;
pub mod error;
pub mod file_listing;
pub mod files;
pub mod members;
pub mod namespace_deletion;
pub mod namespaces;
pub mod permissions;
pub mod projects;
pub mod staging;
pub mod target;
pub mod uploads;

pub use error::{Error, Result};
