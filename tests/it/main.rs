//! Trove's integration tests: one binary, one module per area.

mod common;
mod storage;
mod storage_conformance;
