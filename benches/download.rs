//! Download benchmark (issue 18 item 2, SPEC §12): Trove's `GET /files/{id}?redirect=false`
//! against a plain static-file server on the same file, and against a direct storage read.
//!
//! Builds a local-storage instance on a temp directory and stores a 1 MiB and a 256 MiB object
//! in a public project. In one run, with one HTTP client, it measures:
//! - reading each object from storage directly (`ObjectStore::get`, consuming the stream);
//! - a plain static-file server — tower-http's `ServeFile` on the object's file, in this
//!   process on its own 127.0.0.1 port — serving it;
//! - Trove serving it (`GET /files/{id}?redirect=false`: authorization, audit event, `ETag`,
//!   `Range` support);
//!
//! for one 256 MiB download (best of `ROUNDS`), 1 MiB downloads one after another (best of
//! `ROUNDS` batches of `SMALL_BATCH`), and 32 concurrent clients downloading 1 MiB each
//! `CONCURRENT_EACH` times (best of `ROUNDS`). The static server and Trove alternate inside
//! each round so that both see the same machine. Prints MiB/s and Trove ÷ static (goal ≥ 0.9).
//! Run with `cargo bench --bench download`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use futures::StreamExt as _;
use serde_json::json;
use trove::app::App;
use trove::config::Settings;
use trove::storage::{ObjectStore, ObjectStoreExt as _, PutOptions, keys};

const LARGE: usize = 256 * 1024 * 1024;
const SMALL: usize = 1024 * 1024;
const ROUNDS: usize = 5;
const SMALL_BATCH: usize = 100;
const CONCURRENCY: usize = 32;
const CONCURRENT_EACH: usize = 8;

fn mib_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64()
}

/// Downloads `url` whole; fails unless it answers 2xx with `size` bytes.
async fn fetch(client: &reqwest::Client, url: &str, size: usize) -> anyhow::Result<()> {
    let response = client.get(url).send().await?;
    anyhow::ensure!(
        response.status().is_success(),
        "{url} answered {}",
        response.status()
    );
    let mut stream = response.bytes_stream();
    let mut total = 0;
    while let Some(chunk) = stream.next().await {
        total += chunk?.len();
    }
    anyhow::ensure!(total == size, "{url} returned {total} bytes, not {size}");
    Ok(())
}

/// Time of `count` downloads of `url` one after another.
async fn sequential(
    client: &reqwest::Client,
    url: &str,
    size: usize,
    count: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for _ in 0..count {
        fetch(client, url, size).await?;
    }
    Ok(started.elapsed())
}

/// Time of `CONCURRENCY` clients each downloading `url` `CONCURRENT_EACH` times.
async fn concurrent(client: &reqwest::Client, url: &str, size: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let client = client.clone();
            let url = url.to_owned();
            tokio::spawn(async move { sequential(&client, &url, size, CONCURRENT_EACH).await })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(started.elapsed())
}

/// Time of reading `key` whole from storage directly.
async fn direct(storage: &dyn ObjectStore, key: &str, size: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut object = storage.get(key, None).await?;
    let mut total = 0;
    while let Some(chunk) = object.body.next().await {
        total += chunk?.len();
    }
    anyhow::ensure!(total == size, "direct read returned {total} bytes");
    Ok(started.elapsed())
}

/// The file under `root` whose name is `name` (the local backend's copy of an object).
fn find_file(root: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(root).ok()? {
        let path = entry.ok()?.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, name) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|file| file == name) {
            return Some(path);
        }
    }
    None
}

/// Seeds a public project `bench` whose version `v1` holds `small.bin` and `large.bin`.
async fn seed(storage: &dyn ObjectStore) -> anyhow::Result<()> {
    let records = [
        (
            keys::project_record("bench"),
            json!({"project_id": "bench", "created_at": Utc::now(), "created_by": "bench"}),
        ),
        (
            keys::project_permissions("bench"),
            json!({"scope": "project", "owners": ["bench"], "read_access": "public",
                   "download_access": "public"}),
        ),
        (
            keys::version_record("bench", "v1"),
            json!({"project_id": "bench", "version": "v1", "created_at": Utc::now(),
                   "created_by": "bench", "status": "completed", "revision": "NUM-1",
                   "numerical_revision": 1}),
        ),
    ];
    for (key, value) in records {
        let body = Bytes::from(value.to_string());
        storage.put_bytes(&key, body, PutOptions::default()).await?;
    }
    for (name, size) in [("small.bin", SMALL), ("large.bin", LARGE)] {
        let chunk = Bytes::from(vec![7_u8; SMALL]);
        let body = futures::stream::iter((0..size / SMALL).map(move |_| Ok(chunk.clone())));
        let key = keys::version_file("bench", "v1", name);
        storage
            .put(&key, Box::pin(body), PutOptions::default())
            .await?;
    }
    Ok(())
}

/// Serves `small` at `/small.bin` and `large` at `/large.bin` with tower-http's `ServeFile`.
async fn static_server(small: PathBuf, large: PathBuf) -> anyhow::Result<String> {
    let router = axum::Router::new()
        .route_service("/small.bin", tower_http::services::ServeFile::new(small))
        .route_service("/large.bin", tower_http::services::ServeFile::new(large));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(format!("http://{address}"))
}

/// The best (shortest) of three timings, per kind: direct, static, Trove.
#[derive(Clone, Copy)]
struct Best([Duration; 3]);

impl Best {
    fn new() -> Self {
        Self([Duration::MAX; 3])
    }

    fn keep(&mut self, which: usize, elapsed: Duration) {
        self.0[which] = self.0[which].min(elapsed);
    }

    fn print(&self, label: &str, bytes: usize) {
        let rate = |elapsed: Duration| mib_per_s(bytes, elapsed);
        let [direct, plain, trove] = self.0;
        let (plain, trove) = (rate(plain), rate(trove));
        let (direct, vs_direct) = if direct == Duration::MAX {
            ("—".to_owned(), "—".to_owned())
        } else {
            let direct = rate(direct);
            (format!("{direct:.1}"), format!("{:.2}", trove / direct))
        };
        println!(
            "| {label} | {direct} | {plain:.1} | {trove:.1} | **{:.2}** | {vs_direct} |",
            trove / plain
        );
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let data_dir = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let settings = Settings {
        data_dir: data_dir.path().to_path_buf(),
        public_url: Some(format!("http://{address}")),
        log: "warn".to_owned(),
        sync_cron: String::new(),
        purge_cron: String::new(),
        ..Settings::default()
    };
    let app = App::build(settings).await?;
    let storage = app.storage.clone();
    seed(storage.as_ref()).await?;
    let small_file = find_file(data_dir.path(), "small.bin").expect("small.bin on disk");
    let large_file = find_file(data_dir.path(), "large.bin").expect("large.bin on disk");
    let plain = static_server(small_file, large_file).await?;

    let server_state = app.clone();
    let server = tokio::spawn(async move {
        let _ = trove::api::serve(listener, server_state, std::future::pending()).await;
    });
    let trove = |name: &str| format!("http://{address}/files/bench%3A{name}%40v1?redirect=false");
    let client = reqwest::Client::new();
    let small_key = keys::version_file("bench", "v1", "small.bin");
    let large_key = keys::version_file("bench", "v1", "large.bin");

    // Warm up both servers, the client's connection pool and the page cache.
    sequential(&client, &format!("{plain}/large.bin"), LARGE, 1).await?;
    sequential(&client, &trove("large.bin"), LARGE, 1).await?;
    concurrent(&client, &trove("small.bin"), SMALL).await?;

    let (mut large, mut small, mut many) = (Best::new(), Best::new(), Best::new());
    for _ in 0..ROUNDS {
        large.keep(0, direct(storage.as_ref(), &large_key, LARGE).await?);
        large.keep(
            1,
            sequential(&client, &format!("{plain}/large.bin"), LARGE, 1).await?,
        );
        large.keep(2, sequential(&client, &trove("large.bin"), LARGE, 1).await?);

        let mut reads = Duration::ZERO;
        for _ in 0..SMALL_BATCH {
            reads += direct(storage.as_ref(), &small_key, SMALL).await?;
        }
        small.keep(0, reads);
        let url = format!("{plain}/small.bin");
        small.keep(1, sequential(&client, &url, SMALL, SMALL_BATCH).await?);
        small.keep(
            2,
            sequential(&client, &trove("small.bin"), SMALL, SMALL_BATCH).await?,
        );

        many.keep(1, concurrent(&client, &url, SMALL).await?);
        many.keep(2, concurrent(&client, &trove("small.bin"), SMALL).await?);
    }
    server.abort();

    println!("download benchmark: local storage, 127.0.0.1, best of {ROUNDS} rounds, MiB/s");
    println!();
    println!(
        "| download | direct read | static server | Trove | Trove ÷ static | Trove ÷ direct |"
    );
    println!("|---|---|---|---|---|---|");
    large.print("256 MiB, one client", LARGE);
    small.print(
        &format!("1 MiB, one client, {SMALL_BATCH} in a row"),
        SMALL * SMALL_BATCH,
    );
    many.print(
        &format!("1 MiB, {CONCURRENCY} clients × {CONCURRENT_EACH}"),
        SMALL * CONCURRENCY * CONCURRENT_EACH,
    );
    println!();
    println!("goal (issue 18): Trove ≥ 0.9 × the static server in every row");
    Ok(())
}
