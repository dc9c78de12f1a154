//! HTTP search throughput benchmark (SPEC §12): the real server (`App::build` +
//! `trove::api::serve` on 127.0.0.1:0, local storage) with `TROVE_BENCH_HTTP_DOCS` documents
//! (default 100,000) written through the index writer, and 32 keep-alive connections (one
//! client each, one request at a time) sending `GET /search` for `TROVE_BENCH_HTTP_SECONDS`
//! (default 10) as a logged-in account that belongs to 50 groups (53 reader tokens; every
//! request verifies its JWT and filters by them). Queries rotate over broad and selective
//! ones; prints requests/s and p50/p99 latency. Client and server share this machine's cores.
//!
//! Then every frequent read route (issue 18) on a second instance: see
//! `common/http_routes.rs` (`TROVE_BENCH_ROUTE_PROJECTS`, `TROVE_BENCH_ROUTE_SECONDS`).
//!
//! Run: `scripts/bench.sh` (or `cargo bench --bench http`).

#[path = "common/corpus.rs"]
mod corpus;
#[path = "common/load.rs"]
mod load;
#[path = "common/http_routes.rs"]
mod routes;
#[path = "common/seed.rs"]
mod seed;

use std::sync::Arc;

use anyhow::Context as _;
use chrono::Utc;
use serde_json::{Value, json};
use trove::index::writer::WriteOp;
use trove::permissions::Role;

use corpus::{Generator, ProjectAccess, caller_groups};
use load::{Load, load_with};

/// Projects of the corpus.
const PROJECTS: usize = 1_000;
/// Versions per project.
const VERSIONS: usize = 4;
/// Concurrent connections.
const CONNECTIONS: usize = 32;
/// The caller's password.
const PASSWORD: &str = "benchmark-password-1";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// Writes `documents` documents through the single writer.
async fn fill(app: &trove::app::AppState, documents: usize) -> anyhow::Result<()> {
    let fields = *app.index.fields();
    let per_version = documents.div_ceil(PROJECTS * VERSIONS).max(1);
    let mut generator = Generator::new(42);
    let uploaded = Utc::now();
    let mut ops = Vec::new();
    let mut produced = 0;
    for project_index in 0..PROJECTS {
        let project = corpus::project_id(project_index);
        let access = ProjectAccess::random(generator.rng());
        for version in 1..=VERSIONS {
            let mut batch = Vec::new();
            while batch.len() < per_version && produced < documents {
                let metadata = generator.metadata(batch.len());
                batch.push(
                    Generator::index_document(&project, version, metadata, &access, uploaded)
                        .to_tantivy(&fields),
                );
                produced += 1;
            }
            ops.push(WriteOp::Replace {
                owner: format!("{project}/v{version}"),
                documents: batch,
            });
        }
        if produced == documents || ops.len() >= 400 {
            app.index.writer().apply(std::mem::take(&mut ops)).await?;
        }
        if produced == documents {
            break;
        }
    }
    Ok(())
}

/// Percent-encodes a query parameter value.
fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let documents = env_usize("TROVE_BENCH_HTTP_DOCS", 100_000);
    let seconds = env_usize("TROVE_BENCH_HTTP_SECONDS", 10);
    println!(
        "## http: GET /search, {CONNECTIONS} keep-alive connections, {seconds} s, {documents} documents"
    );
    let data_dir = tempfile::tempdir()?;
    let app = seed::app(seed::local_settings(data_dir.path())).await?;
    fill(&app, documents).await?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(trove::api::serve(listener, app.clone(), async move {
        let _ = stopped.await;
    }));

    // The caller: an account in 50 groups.
    let username = corpus::user(7);
    app.auth
        .create_account(&username, PASSWORD, Role::Maintainer, None)
        .await?;
    let client = reqwest::Client::new();
    let login: Value = client
        .post(format!("{base}/auth/login"))
        .json(&json!({"username": username, "password": PASSWORD}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = login["access_token"]
        .as_str()
        .context("no access token")?
        .to_owned();
    for group in caller_groups(3, 50) {
        let name = corpus::group(group);
        let name = name.trim_start_matches("group:");
        client
            .post(format!("{base}/groups"))
            .bearer_auth(&token)
            .json(&json!({"name": name, "members": [username]}))
            .send()
            .await?
            .error_for_status()
            .with_context(|| format!("create group {name}"))?;
    }
    let me: Value = client
        .get(format!("{base}/auth/me"))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    let identities = me["identities"].as_array().map_or(0, Vec::len);
    let visible: Value = client
        .get(format!("{base}/search?q=*&size=1"))
        .bearer_auth(&token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    println!(
        "caller {username}: {identities} identities; sees {} of {documents} documents",
        visible["total"]
    );

    let mut queries: Vec<String> = vec![
        "*".into(),
        "title:model".into(),
        "tags:nlp".into(),
        "description:training".into(),
    ];
    queries.extend((1_500..1_504).map(|i| format!("title:{}", corpus::word(i))));
    queries.extend((0..4).map(|i| format!("_extra.project_id:{}", corpus::project_id(i * 97))));
    let urls: Arc<Vec<String>> = Arc::new(
        queries
            .iter()
            .map(|q| format!("{base}/search?q={}&size=10", encode(q)))
            .collect(),
    );

    let measured = load(urls, &token, seconds).await?;
    let Load {
        requests,
        errors,
        elapsed,
        rate,
        p50,
        p99,
    } = measured;
    println!();
    println!("| requests | errors | seconds | requests/s | p50 ms | p99 ms |");
    println!("|---:|---:|---:|---:|---:|---:|");
    println!("| {requests} | {errors} | {elapsed:.1} | **{rate:.0}** | {p50:.2} | {p99:.2} |");
    println!();
    println!("SPEC §12 (≥ 2,000 searches/s at 32 connections, p99 ≤ 50 ms, 100,000 documents):");
    println!(
        "  {rate:.0} req/s, p99 {p99:.1} ms → {}",
        if rate >= 2_000.0 && p99 <= 50.0 && errors == 0 {
            "meets"
        } else {
            "SHORT"
        }
    );
    let _ = stop.send(());
    let _ = server.await;
    app.index.close();
    drop(app);

    routes::run(seconds).await
}

/// `CONNECTIONS` keep-alive connections sending GETs to `urls` in rotation for `seconds`.
pub(crate) async fn load(
    urls: Arc<Vec<String>>,
    token: &str,
    seconds: usize,
) -> anyhow::Result<Load> {
    load_with(urls, token, seconds, CONNECTIONS).await
}
