//! Shared fixtures of the integration tests.

pub mod s3_server;
