//! Replica freshness (issue 16): two `App`s with their own index on one in-process S3 server
//! (`s3s-fs` over HTTP on 127.0.0.1), the second following the change feed at the default
//! `TROVE_FEED_POLL_MS` (250 ms). For each of `TROVE_BENCH_REPLICA_CHANGES` (default 100)
//! uploads of a metadata document with a unique word on A, the time from A's answer until B's
//! search finds it (polled every 5 ms): p50, p95, max — goal p95 ≤ 1 s. And what the feed
//! adds to each write: the latency of appending one entry (one conditional PUT) beside the
//! latency of the whole upload on A, measured in the same run.

#[path = "../tests/it/common/s3_server.rs"]
#[allow(dead_code)]
mod s3_server;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use md5::Digest as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;
use trove::app::App;
use trove::config::{Secret, Settings};
use trove::feed::Change;
use trove::permissions::Role;

const BUCKET: &str = "trove-bench-replicas";

async fn send(
    router: &axum::Router,
    method: &str,
    path: &str,
    bearer: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> anyhow::Result<(StatusCode, Value)> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {bearer}"));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = router
        .clone()
        .oneshot(builder.body(Body::from(body))?)
        .await?;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len().saturating_sub(1))]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn row(label: &str, times: &mut [Duration]) {
    times.sort();
    println!(
        "| {label} | {:.1} | {:.1} | {:.1} |",
        ms(percentile(times, 0.5)),
        ms(percentile(times, 0.95)),
        ms(*times.last().unwrap_or(&Duration::ZERO)),
    );
}

async fn replica(server: &s3_server::S3TestServer) -> anyhow::Result<(App2, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let mut settings = Settings {
        data_dir: dir.path().to_path_buf(),
        log: "warn".to_owned(),
        ..Settings::default()
    };
    settings.storage = trove::storage::StorageKind::S3;
    settings.s3.bucket = Some(BUCKET.to_owned());
    settings.s3.endpoint = Some(server.endpoint());
    settings.s3.region = Some("us-east-1".to_owned());
    settings.s3.path_style = true;
    settings.s3.access_key_id = Some(s3_server::ACCESS_KEY.to_owned());
    settings.s3.secret_access_key = Some(Secret::new(s3_server::SECRET_KEY));
    settings.auth.jwt_secret = Some(Secret::new("benchmark-replicas-share-this-secret-0123"));
    settings.sync_cron = String::new();
    settings.purge_cron = String::new();
    settings.revocation_purge_cron = String::new();
    let state = App::build(settings).await?;
    let router = trove::api::router(state.clone());
    let follower = trove::jobs::follow::start(&state).await;
    Ok((
        App2 {
            state,
            router,
            _follower: follower,
        },
        dir,
    ))
}

struct App2 {
    state: trove::app::AppState,
    router: axum::Router,
    _follower: Option<tokio::task::JoinHandle<()>>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let changes: usize = std::env::var("TROVE_BENCH_REPLICA_CHANGES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(100);
    let server = s3_server::S3TestServer::start().await;
    let store = trove::storage::s3::S3Store::connect(server.settings(BUCKET, "")).await?;
    store.create_bucket_if_missing().await?;
    let (a, _dir_a) = replica(&server).await?;
    let (b, _dir_b) = replica(&server).await?;
    a.state
        .auth
        .create_account("bench", "benchmark-password-1", Role::Maintainer, None)
        .await?;
    let login = a
        .state
        .auth
        .login("bench", "benchmark-password-1", "127.0.0.1")
        .await?;
    let token = login.token.clone();
    let (status, body) = send(
        &a.router,
        "POST",
        "/projects",
        &token,
        &[("content-type", "application/json")],
        json!({"project_id": "fresh", "title": "Freshness", "type": "MODEL", "visibility": "private"})
            .to_string()
            .into_bytes(),
    )
    .await?;
    anyhow::ensure!(status == StatusCode::CREATED, "create: {status} {body}");
    let (status, body) = send(
        &a.router,
        "POST",
        "/projects/fresh/versions",
        &token,
        &[("content-type", "application/json")],
        json!({"version": "v1"}).to_string().into_bytes(),
    )
    .await?;
    anyhow::ensure!(status == StatusCode::CREATED, "version: {status} {body}");

    let mut writes = Vec::with_capacity(changes);
    let mut visible = Vec::with_capacity(changes);
    for change in 0..changes {
        let word = format!("marker{change}x");
        let document = json!({"title": word}).to_string().into_bytes();
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&document));
        let started = Instant::now();
        let (status, body) = send(
            &a.router,
            "PUT",
            &format!("/projects/fresh/version/v1/files/doc{change}.json"),
            &token,
            &[("content-md5", md5.as_str())],
            document,
        )
        .await?;
        let acknowledged = Instant::now();
        writes.push(acknowledged - started);
        anyhow::ensure!(status == StatusCode::CREATED, "upload: {status} {body}");
        let deadline = acknowledged + Duration::from_secs(30);
        loop {
            let (status, page) = send(
                &b.router,
                "GET",
                &format!("/search?q={word}"),
                &token,
                &[],
                Vec::new(),
            )
            .await?;
            anyhow::ensure!(status == StatusCode::OK, "search on B: {status} {page}");
            if page["results"]
                .as_array()
                .is_some_and(|hits| !hits.is_empty())
            {
                visible.push(acknowledged.elapsed());
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "{word} never reached B");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    let mut appends = Vec::with_capacity(changes);
    for change in 0..changes {
        let started = Instant::now();
        a.state
            .feed
            .publish(Change::Version {
                project: "fresh".to_owned(),
                version: format!("bench{change}"),
            })
            .await?;
        appends.push(started.elapsed());
    }

    println!("## Replicas: change feed freshness (issue 16)");
    println!();
    println!(
        "Two replicas on one in-process S3 server on 127.0.0.1, B polling the feed every {} ms; {changes} metadata uploads on A.",
        b.state.settings.feed_poll_ms
    );
    println!();
    println!("| measure | p50 ms | p95 ms | max ms |");
    println!("|---|---|---|---|");
    row("upload on A acknowledged → searchable on B", &mut visible);
    row("whole upload on A (includes one feed append)", &mut writes);
    row("one feed append alone (conditional PUT)", &mut appends);
    println!();
    println!("Goal: p95 of the first row ≤ 1,000 ms.");
    Ok(())
}
