//! The frequent read routes of the API and the web interface over HTTP (issue 18): the real
//! server with `TROVE_BENCH_ROUTE_PROJECTS` projects (default 10,000; two completed versions
//! with one metadata document each) seeded in local storage and indexed by the indexer, and
//! one project whose version holds 1,000 data files with their sidecar records. A logged-in
//! account in 50 groups (53 reader tokens) reads half the projects. Each route is loaded at
//! 32 connections for `TROVE_BENCH_ROUTE_SECONDS` (default 5): requests/s, p50, p99.

use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use serde_json::{Value, json};
use trove::permissions::Role;
use trove::storage::{ObjectStoreExt as _, PutOptions, keys};

use super::corpus::{self, caller_groups};
use super::{CONNECTIONS, PASSWORD, encode, env_usize, load, seed};

/// The project of the file listing.
const BIG: &str = "big-model";
/// Its files.
const BIG_FILES: usize = 1_000;

/// Writes the corpus into storage; answers the projects the caller reads.
async fn fill(app: &trove::app::AppState, projects: usize) -> anyhow::Result<Vec<String>> {
    let groups = caller_groups(3, 50);
    let mut objects: Vec<(String, Value)> = Vec::new();
    let mut readable = Vec::new();
    for index in 0..projects {
        let project = corpus::project_id(index);
        // Every other project is shared with one of the caller's groups.
        let viewer = if index % 2 == 0 {
            readable.push(project.clone());
            corpus::group(groups[index / 2 % groups.len()])
        } else {
            corpus::group(900 + index % 50)
        };
        objects.push((keys::project_record(&project), json!({
            "project_id": project, "title": format!("model {index} {}", corpus::word(index % 997)),
            "type": if index % 3 == 0 { "DATASET" } else { "MODEL" },
            "description": format!("trained on {}", corpus::word(index % 89)),
            "tags": [corpus::word(index % 13)],
            "created_at": "2026-11-01T00:00:00Z", "created_by": corpus::user(1),
        })));
        objects.push((
            keys::project_permissions(&project),
            json!({
                "scope": "project", "owners": [corpus::user(1)], "viewers": [viewer],
                "read_access": "viewers",
            }),
        ));
        for version in 1..=2 {
            let name = format!("v{version}");
            objects.push((
                keys::version_record(&project, &name),
                json!({
                    "project_id": project, "version": name, "created_at": "2026-11-01T00:00:00Z",
                    "created_by": corpus::user(1), "status": "completed",
                    "revision": format!("NUM-{version}"), "numerical_revision": version,
                }),
            ));
            objects.push((
                keys::version_file(&project, &name, "card.json"),
                json!({
                    "path": "card.json", "title": format!("card of {project} {name}"),
                    "metrics": {"accuracy": 0.5 + (index % 50) as f64 / 100.0},
                }),
            ));
        }
    }
    objects.push((
        keys::project_record(BIG),
        json!({
            "project_id": BIG, "title": "a model of many files", "type": "MODEL",
            "created_at": "2026-11-01T00:00:00Z", "created_by": corpus::user(1),
        }),
    ));
    objects.push((
        keys::project_permissions(BIG),
        json!({
            "scope": "project", "owners": [corpus::user(1)],
            "viewers": [corpus::group(groups[0])], "read_access": "viewers",
        }),
    ));
    objects.push((
        keys::version_record(BIG, "v1"),
        json!({
            "project_id": BIG, "version": "v1", "created_at": "2026-11-01T00:00:00Z",
            "created_by": corpus::user(1), "status": "completed", "revision": "NUM-1",
            "numerical_revision": 1,
        }),
    ));
    let storage = app.storage.clone();
    let mut writes: Vec<(String, Bytes)> = objects
        .into_iter()
        .map(|(key, value)| (key, Bytes::from(value.to_string())))
        .collect();
    for file in 0..BIG_FILES {
        let path = format!("shards/part-{file:04}.bin");
        let body = Bytes::from(format!("shard {file}"));
        writes.push((
            keys::file_record(BIG, "v1", &path),
            Bytes::from(
                json!({
                    "path": path, "size": body.len(), "md5sum": format!("{:032x}", file),
                    "sha256": format!("{:064x}", file), "content_type": "application/octet-stream",
                    "uploaded_at": "2026-11-02T00:00:00Z", "uploaded_by": corpus::user(1),
                })
                .to_string(),
            ),
        ));
        writes.push((keys::version_file(BIG, "v1", &path), body));
    }
    futures::stream::iter(writes)
        .map(|(key, body)| {
            let storage = storage.clone();
            async move {
                storage
                    .put_bytes(&key, body, PutOptions::default())
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(16)
        .try_collect::<()>()
        .await?;
    app.indexer.index_projects(None, |_, _| {}).await?;
    Ok(readable)
}

/// Loads every route and prints the table.
pub async fn run(seconds_default: usize) -> anyhow::Result<()> {
    let projects = env_usize("TROVE_BENCH_ROUTE_PROJECTS", 10_000);
    let seconds = env_usize("TROVE_BENCH_ROUTE_SECONDS", seconds_default.min(5));
    println!();
    println!(
        "## http: read routes, {CONNECTIONS} keep-alive connections, {seconds} s each, {projects} projects"
    );
    let data_dir = tempfile::tempdir()?;
    let app = seed::app(seed::local_settings(data_dir.path())).await?;
    let started = std::time::Instant::now();
    let readable = fill(&app, projects).await?;
    // A served index is a merged one: close the writer (merges finish) and start the server
    // on the same data directory, as after a restart. Measuring while the rebuild's many
    // small segments are still being merged measures the merges.
    app.index.close();
    drop(app);
    let app = seed::app(seed::local_settings(data_dir.path())).await?;
    let segments = app.index.reader().searcher().segment_readers().len();
    println!(
        "seeded and indexed {projects} projects + one of {BIG_FILES} files in {:.1} s; served from {segments} segments",
        started.elapsed().as_secs_f64()
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(trove::api::serve(listener, app.clone(), async move {
        let _ = stopped.await;
    }));
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
    let listing: Value = client
        .get(format!("{base}/projects?size=50"))
        .bearer_auth(&token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    println!(
        "caller {username} reads {} of {} projects",
        listing["total"],
        projects + 1
    );

    let sample: Vec<&String> = readable
        .iter()
        .step_by(readable.len().div_ceil(64).max(1))
        .collect();
    let each = |make: &dyn Fn(&str) -> String| -> Arc<Vec<String>> {
        Arc::new(
            sample
                .iter()
                .map(|project| format!("{base}{}", make(project)))
                .collect(),
        )
    };
    let routes: Vec<(&str, &str, Arc<Vec<String>>)> = vec![
        (
            "GET /projects?size=50",
            "listing",
            Arc::new(vec![format!("{base}/projects?size=50")]),
        ),
        (
            "GET /projects/{p}",
            "one",
            each(&|p| format!("/projects/{p}")),
        ),
        (
            "GET /projects/{p}/versions",
            "one",
            each(&|p| format!("/projects/{p}/versions")),
        ),
        (
            "GET /projects/{p}/version/{v}/files (1,000 files)",
            "files",
            Arc::new(vec![format!("{base}/projects/{BIG}/version/v1/files")]),
        ),
        (
            "GET /files/{id}/metadata",
            "one",
            each(&|p| {
                format!(
                    "/files/{}/metadata",
                    encode(&format!("{p}:card.json@latest"))
                )
            }),
        ),
        (
            "GET /search?size=10",
            "listing",
            Arc::new(
                ["*", "model", "title:card", "_extra.version:v2", "trained"]
                    .iter()
                    .map(|q| format!("{base}/search?q={}&size=10", encode(q)))
                    .collect(),
            ),
        ),
        (
            "GET /aggregate?field=_extra.type",
            "one",
            Arc::new(vec![format!("{base}/aggregate?field=_extra.type")]),
        ),
    ];
    // `TROVE_BENCH_ROUTES` (comma-separated parts of route names) loads only those routes,
    // e.g. while a profiler is attached.
    let only: Vec<String> = std::env::var("TROVE_BENCH_ROUTES")
        .map(|value| value.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let routes: Vec<_> = routes
        .into_iter()
        .filter(|(route, _, _)| {
            only.is_empty() || only.iter().any(|part| route.contains(part.as_str()))
        })
        .collect();
    // Every URL answers before it is loaded.
    for (_, _, urls) in &routes {
        for url in urls.iter() {
            client
                .get(url)
                .bearer_auth(&token)
                .send()
                .await?
                .error_for_status()
                .with_context(|| format!("GET {url}"))?;
        }
    }
    println!();
    eprintln!("routes: loading");
    println!("| route | requests | errors | requests/s | p50 ms | p99 ms | goal | |");
    println!("|---|---:|---:|---:|---:|---:|---|---|");
    for (route, kind, urls) in routes {
        let measured = load(urls, &token, seconds).await?;
        let (goal, met) = match kind {
            "listing" => ("≥ 3,000/s, p99 ≤ 20 ms", measured.rate >= 3_000.0),
            "files" => ("p99 ≤ 20 ms", true),
            _ => ("≥ 10,000/s, p99 ≤ 20 ms", measured.rate >= 10_000.0),
        };
        let met = met && measured.p99 <= 20.0 && measured.errors == 0;
        println!(
            "| {route} | {} | {} | **{:.0}** | {:.2} | {:.2} | {goal} | {} |",
            measured.requests,
            measured.errors,
            measured.rate,
            measured.p50,
            measured.p99,
            if met { "meets" } else { "SHORT" }
        );
    }
    let counters = app.index.search_counters();
    let (hits, misses) = app.index.allow_cache().stats();
    println!();
    println!(
        "index searches: {} in all, {} on async worker threads; allow-set cache: {hits} hits, {misses} misses",
        counters.total(),
        counters.on_async_workers()
    );
    let _ = stop.send(());
    let _ = server.await;
    app.index.close();
    Ok(())
}
