//! Download benchmark (SPEC §12: streaming download ≥ 80 % of the throughput of reading the
//! same object from storage directly).
//!
//! Builds a local-storage instance on a temp directory, stores one object of `SIZE` bytes in a
//! public project, then measures in one run (best of `ROUNDS` each):
//! - reading the object from storage directly (`ObjectStore::get`, consuming the stream);
//! - downloading it through Trove over HTTP on 127.0.0.1 (`GET /files/{id}?redirect=false`).
//!
//! Prints both throughputs and their ratio. Run with `cargo bench --bench download`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use futures::StreamExt as _;
use serde_json::json;
use trove::app::App;
use trove::config::Settings;
use trove::storage::{ObjectStoreExt as _, PutOptions, keys};

const SIZE: usize = 256 * 1024 * 1024;
const ROUNDS: usize = 5;

fn mib_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64()
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

    // A public project with one completed version holding the object.
    let put_json = |key: String, value: serde_json::Value| {
        let storage = storage.clone();
        async move {
            storage
                .put_bytes(&key, Bytes::from(value.to_string()), PutOptions::default())
                .await
        }
    };
    put_json(
        keys::project_record("bench"),
        json!({"project_id": "bench", "created_at": Utc::now(), "created_by": "bench"}),
    )
    .await?;
    put_json(
        keys::project_permissions("bench"),
        json!({"scope": "project", "owners": ["bench"], "read_access": "public", "download_access": "public"}),
    )
    .await?;
    put_json(
        keys::version_record("bench", "v1"),
        json!({"project_id": "bench", "version": "v1", "created_at": Utc::now(), "created_by": "bench",
               "status": "completed", "revision": "NUM-1", "numerical_revision": 1}),
    )
    .await?;
    let key = keys::version_file("bench", "v1", "blob.bin");
    let chunk = Bytes::from(vec![7_u8; 1024 * 1024]);
    let body = futures::stream::iter((0..SIZE / chunk.len()).map(move |_| Ok(chunk.clone())));
    storage
        .put(&key, Box::pin(body), PutOptions::default())
        .await?;

    let server_state = app.clone();
    let server = tokio::spawn(async move {
        let _ = trove::api::serve(listener, server_state, std::future::pending()).await;
    });

    let mut direct = Duration::MAX;
    let mut streamed = Duration::MAX;
    let client = reqwest::Client::new();
    let url = format!("http://{address}/files/bench%3Ablob.bin%40v1?redirect=false");
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let mut object = storage.get(&key, None).await?;
        let mut total = 0;
        while let Some(chunk) = object.body.next().await {
            total += chunk?.len();
        }
        anyhow::ensure!(total == SIZE, "direct read returned {total} bytes");
        direct = direct.min(started.elapsed());

        let started = Instant::now();
        let response = client.get(&url).send().await?;
        anyhow::ensure!(
            response.status().is_success(),
            "download answered {}",
            response.status()
        );
        let mut stream = response.bytes_stream();
        let mut total = 0;
        while let Some(chunk) = stream.next().await {
            total += chunk?.len();
        }
        anyhow::ensure!(total == SIZE, "download returned {total} bytes");
        streamed = streamed.min(started.elapsed());
    }
    server.abort();

    let direct_rate = mib_per_s(SIZE, direct);
    let streamed_rate = mib_per_s(SIZE, streamed);
    println!(
        "download benchmark: {} MiB object, best of {ROUNDS}",
        SIZE / (1024 * 1024)
    );
    println!("  direct storage read : {direct_rate:10.1} MiB/s");
    println!("  streamed over HTTP  : {streamed_rate:10.1} MiB/s");
    println!(
        "  ratio streamed/direct: {:.2} (target >= 0.80)",
        streamed_rate / direct_rate
    );
    Ok(())
}
