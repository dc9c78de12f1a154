//! Upload benchmark (issue 18 item 3): a 256 MiB direct upload (`PUT
//! /projects/{p}/version/{v}/files/{path}`, local storage, over HTTP on 127.0.0.1) against the
//! cost of computing its MD5 and SHA-256 alone, measured in the same run.
//!
//! References, each best of `ROUNDS`:
//! - **hashing limit**: MD5 and SHA-256 of the same 256 MiB, in 1 MiB chunks from memory, one
//!   after the other on one thread (what one pass over the bytes costs one core); and each
//!   digest alone (Trove computes the two side by side on two threads, so the slower of the
//!   two bounds it);
//! - **disk write**: writing the 256 MiB to a new file on the data directory's file system and
//!   `fsync`ing it (what storing them durably costs).
//!
//! Trove's upload streams the body to storage, hashes it, `fsync`s it, moves it into the version
//! under a lease, writes its sidecar record and re-indexes the version. Goal: ≥ 0.8 × the
//! hashing limit. Run with `cargo bench --bench upload` (`TROVE_BENCH_UPLOAD_MIB` sets the size).

use std::io::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;
use sha2::Digest as _;
use trove::config::Settings;
use trove::permissions::Role;

const ROUNDS: usize = 5;
const CHUNK: usize = 1024 * 1024;
const PASSWORD: &str = "correct horse battery staple";

fn mib_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64()
}

/// Time of hashing `chunks` with MD5 and SHA-256 one after the other on one thread (both
/// digests checked against each other's length so the work is not optimized away).
fn hash_alone(chunks: &[Bytes]) -> Duration {
    let started = Instant::now();
    let mut md5 = md5::Md5::new();
    let mut sha = sha2::Sha256::new();
    for chunk in chunks {
        md5.update(chunk);
        sha.update(chunk);
    }
    let digests = (md5.finalize(), sha.finalize());
    assert_eq!(digests.0.len() + digests.1.len(), 48);
    started.elapsed()
}

/// Time of hashing `chunks` with one digest alone (`D`: MD5 or SHA-256).
fn digest_alone<D: sha2::Digest>(chunks: &[Bytes]) -> Duration {
    let started = Instant::now();
    let mut digest = D::new();
    for chunk in chunks {
        digest.update(chunk);
    }
    assert!(!digest.finalize().is_empty());
    started.elapsed()
}

/// Time of writing `chunks` to a new file in `dir` and `fsync`ing it.
fn write_alone(dir: &std::path::Path, chunks: &[Bytes]) -> anyhow::Result<Duration> {
    let path = dir.join("write-alone.bin");
    let started = Instant::now();
    let mut file = std::fs::File::create(&path)?;
    for chunk in chunks {
        file.write_all(chunk)?;
    }
    file.sync_all()?;
    let elapsed = started.elapsed();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(elapsed)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mib = std::env::var("TROVE_BENCH_UPLOAD_MIB")
        .ok()
        .and_then(|value| value.parse::<usize>().ok())
        .unwrap_or(256);
    let size = mib * CHUNK;
    let data_dir = tempfile::tempdir()?;
    let settings = Settings {
        data_dir: data_dir.path().to_path_buf(),
        log: "warn".to_owned(),
        sync_cron: String::new(),
        purge_cron: String::new(),
        ..Settings::default()
    };
    let app = trove::app::App::build(settings).await?;
    app.auth
        .create_account("uploader", PASSWORD, Role::Maintainer, None)
        .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(trove::api::serve(
        listener,
        app.clone(),
        std::future::pending(),
    ));
    let client = reqwest::Client::new();
    let login: serde_json::Value = client
        .post(format!("{base}/auth/login"))
        .json(&json!({"username": "uploader", "password": PASSWORD}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = login["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    client
        .post(format!("{base}/projects"))
        .bearer_auth(&token)
        .json(&json!({"project_id": "bench", "title": "bench", "type": "MODEL"}))
        .send()
        .await?
        .error_for_status()?;
    client
        .post(format!("{base}/projects/bench/versions"))
        .bearer_auth(&token)
        .json(&json!({"version": "v1"}))
        .send()
        .await?
        .error_for_status()?;

    // Distinct bytes per chunk, so that nothing compresses or deduplicates.
    let chunks: Vec<Bytes> = (0..mib)
        .map(|index| {
            let seed = sha2::Sha256::digest(index.to_le_bytes());
            Bytes::from(
                seed.iter()
                    .copied()
                    .cycle()
                    .take(CHUNK)
                    .collect::<Vec<u8>>(),
            )
        })
        .collect();

    let (mut hashing, mut writing, mut uploading) = (Duration::MAX, Duration::MAX, Duration::MAX);
    let (mut md5_only, mut sha256_only) = (Duration::MAX, Duration::MAX);
    for round in 0..ROUNDS {
        let hash_chunks = chunks.clone();
        let (both, md5, sha256) = tokio::task::spawn_blocking(move || {
            (
                hash_alone(&hash_chunks),
                digest_alone::<md5::Md5>(&hash_chunks),
                digest_alone::<sha2::Sha256>(&hash_chunks),
            )
        })
        .await?;
        hashing = hashing.min(both);
        md5_only = md5_only.min(md5);
        sha256_only = sha256_only.min(sha256);
        let (dir, write_chunks) = (data_dir.path().to_path_buf(), chunks.clone());
        writing = writing
            .min(tokio::task::spawn_blocking(move || write_alone(&dir, &write_chunks)).await??);

        let body = futures::stream::iter(chunks.clone().into_iter().map(Ok::<_, std::io::Error>));
        let started = Instant::now();
        let answer: serde_json::Value = client
            .put(format!(
                "{base}/projects/bench/version/v1/files/blob{round}.bin"
            ))
            .bearer_auth(&token)
            .header("content-type", "application/octet-stream")
            .header("content-length", size.to_string())
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        uploading = uploading.min(started.elapsed());
        anyhow::ensure!(
            answer["size"].as_u64() == Some(size as u64),
            "upload answered {answer}"
        );
    }
    server.abort();

    let (hash_rate, write_rate, upload_rate) = (
        mib_per_s(size, hashing),
        mib_per_s(size, writing),
        mib_per_s(size, uploading),
    );
    println!("upload benchmark: {mib} MiB, local storage, 127.0.0.1, best of {ROUNDS}, MiB/s");
    println!();
    println!("| measured | MiB/s | ms | Trove ÷ it |");
    println!("|---|---|---|---|");
    println!(
        "| MD5 + SHA-256 alone (hashing limit) | {hash_rate:.1} | {:.0} | **{:.2}** |",
        hashing.as_secs_f64() * 1000.0,
        upload_rate / hash_rate
    );
    for (name, alone) in [("MD5 alone", md5_only), ("SHA-256 alone", sha256_only)] {
        let rate = mib_per_s(size, alone);
        println!(
            "| {name} | {rate:.1} | {:.0} | {:.2} |",
            alone.as_secs_f64() * 1000.0,
            upload_rate / rate
        );
    }
    println!(
        "| write + fsync alone | {write_rate:.1} | {:.0} | {:.2} |",
        writing.as_secs_f64() * 1000.0,
        upload_rate / write_rate
    );
    println!(
        "| Trove `PUT .../files/{{path}}` | {upload_rate:.1} | {:.0} | — |",
        uploading.as_secs_f64() * 1000.0
    );
    println!();
    println!("goal (issue 18): Trove ≥ 0.8 × the hashing limit");
    Ok(())
}
