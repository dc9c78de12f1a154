//! Integration tests: one binary driving the real router, real storage backends (a temp
//! directory, and an in-process S3 server on 127.0.0.1) and a real TCP server; one module per
//! area.

mod architecture;
mod artifacts;
mod audit;
mod auth;
mod cli;
mod client;
mod common;
mod crash;
mod fuzz;
mod index;
mod indexing;
mod model;
mod namespaces;
mod relevance;
mod replicas;
mod route_cost;
mod search_api;
mod search_text;
mod security;
mod shared_config;
mod storage;
mod storage_conformance;
mod system;
mod ui;
