//! Web interface render benchmark (issue 17: a project page of a project with 1,000 files and
//! 50 versions renders on the server in under 50 ms at p99).
//!
//! Builds a local-storage instance on a temp directory, pushes through the router a project
//! with 50 completed versions holding 1,000 files in all (49 versions of one file, one of 951),
//! signs in, then renders in turn, `TROVE_BENCH_UI_ITERATIONS` times each (default 300),
//! through the whole router (session check, in-process API calls, template), one request at a
//! time: the project page (50 versions), and the big version's page (951 files, first page of
//! 100, metadata documents). Prints p50/p99/max per page and the size of the JavaScript shipped.
//!
//! Run: `scripts/bench.sh ui` (or `cargo bench --bench ui`).

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use md5::Digest as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;
use trove::app::App;
use trove::config::Settings;
use trove::permissions::Role;

const VERSIONS: usize = 50;
const FILES: usize = 1_000;
const PASSWORD: &str = "benchmark-password-1";

async fn send(
    router: &axum::Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> anyhow::Result<(StatusCode, Vec<u8>)> {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = router
        .clone()
        .oneshot(builder.body(Body::from(body))?)
        .await?;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
    Ok((status, bytes.to_vec()))
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn measure(
    router: &axum::Router,
    path: &str,
    cookie: &str,
    iterations: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        let (status, body) = send(router, "GET", path, &[("cookie", cookie)], Vec::new()).await?;
        times.push(started.elapsed());
        anyhow::ensure!(
            status == StatusCode::OK,
            "{path}: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    times.sort();
    Ok(times)
}

fn print_row(label: &str, times: &[Duration]) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "| {label} | {:.2} | {:.2} | {:.2} |",
        ms(percentile(times, 0.5)),
        ms(percentile(times, 0.99)),
        ms(*times.last().unwrap_or(&Duration::ZERO)),
    );
}

async fn measure_api(
    router: &axum::Router,
    path: &str,
    bearer: &str,
    iterations: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        let (status, _) = send(
            router,
            "GET",
            path,
            &[("authorization", bearer)],
            Vec::new(),
        )
        .await?;
        times.push(started.elapsed());
        anyhow::ensure!(status == StatusCode::OK, "{path}: {status}");
    }
    times.sort();
    Ok(times)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let iterations = std::env::var("TROVE_BENCH_UI_ITERATIONS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(300);
    let data_dir = tempfile::tempdir()?;
    let settings = Settings {
        data_dir: data_dir.path().to_path_buf(),
        log: "warn".to_owned(),
        sync_cron: String::new(),
        purge_cron: String::new(),
        ..Settings::default()
    };
    let app = App::build(settings).await?;
    let router = trove::api::router(app.clone());
    app.auth
        .create_account("bench", PASSWORD, Role::Maintainer, None)
        .await?;
    let (_, login) = send(
        &router,
        "POST",
        "/auth/login",
        &[("content-type", "application/json")],
        json!({"username": "bench", "password": PASSWORD})
            .to_string()
            .into_bytes(),
    )
    .await?;
    let token = serde_json::from_slice::<Value>(&login)?["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let bearer = format!("Bearer {token}");
    let auth = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/json"),
    ];
    let (status, body) = send(
        &router,
        "POST",
        "/projects",
        &auth,
        json!({"project_id": "big", "title": "A big model", "type": "MODEL", "visibility": "private",
               "description": "Fifty versions, a thousand files.", "tags": ["bench"]})
        .to_string()
        .into_bytes(),
    )
    .await?;
    anyhow::ensure!(
        status == StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let started = Instant::now();
    let file_name = |file: usize| {
        if file.is_multiple_of(10) {
            format!("shard-{file:04}.json")
        } else {
            format!("shard-{file:04}.bin")
        }
    };
    let file_bytes = |file: usize, path: &str| {
        if path.ends_with(".json") {
            json!({"path": path, "shard": file, "rows": file * 1000})
                .to_string()
                .into_bytes()
        } else {
            format!("data of shard {file}").into_bytes()
        }
    };
    for version in 1..VERSIONS {
        // Small versions: a direct streamed upload into an open version.
        let name = format!("v{version}");
        let (status, body) = send(
            &router,
            "POST",
            "/projects/big/versions",
            &auth,
            json!({"version": name, "changelog": format!("release {version}")})
                .to_string()
                .into_bytes(),
        )
        .await?;
        anyhow::ensure!(
            status == StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&body)
        );
        let path = file_name(version);
        let bytes = file_bytes(version, &path);
        let md5 = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            md5::Md5::digest(&bytes),
        );
        let (status, body) = send(
            &router,
            "PUT",
            &format!("/projects/big/version/{name}/files/{path}"),
            &[
                ("authorization", bearer.as_str()),
                ("content-md5", md5.as_str()),
            ],
            bytes,
        )
        .await?;
        anyhow::ensure!(
            status == StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&body)
        );
        let (status, body) = send(
            &router,
            "PUT",
            &format!("/projects/big/version/{name}/complete"),
            &auth,
            Vec::new(),
        )
        .await?;
        anyhow::ensure!(
            status == StatusCode::ACCEPTED,
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
    // The big version: the ArtifactDB upload flow (announce, presigned PUTs, complete), one
    // indexing job at the end.
    let big = FILES - (VERSIONS - 1);
    let paths: Vec<String> = (0..big).map(file_name).collect();
    let (status, body) = send(
        &router,
        "POST",
        &format!("/projects/big/version/v{VERSIONS}/upload"),
        &auth,
        json!({"filenames": paths}).to_string().into_bytes(),
    )
    .await?;
    anyhow::ensure!(
        status == StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let answer: Value = serde_json::from_slice(&body)?;
    for (file, target) in answer["presigned_urls"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let url = url::Url::parse(target["url"].as_str().unwrap_or_default())?;
        let path_and_query = format!("{}?{}", url.path(), url.query().unwrap_or_default());
        let name = target["filename"].as_str().unwrap_or_default();
        let (status, body) =
            send(&router, "PUT", &path_and_query, &[], file_bytes(file, name)).await?;
        anyhow::ensure!(
            status.is_success(),
            "{status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    let (status, body) = send(
        &router,
        "PUT",
        &format!("/projects/big/version/v{VERSIONS}/complete"),
        &auth,
        Vec::new(),
    )
    .await?;
    anyhow::ensure!(
        status == StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    // Wait until every version is indexed (the versions listing comes from the index).
    loop {
        let (_, body) = send(&router, "GET", "/projects/big/versions", &auth, Vec::new()).await?;
        if serde_json::from_slice::<Value>(&body)?["total"] == VERSIONS {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "indexing did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seeded = started.elapsed();
    let cookie = format!("trove_session={token}");
    // Warm up caches (profiles, index reader) as a running server would have them.
    measure(&router, "/ui/projects/big", &cookie, 10).await?;

    println!("## Web interface render (server side, through the router)");
    println!();
    println!(
        "project with {VERSIONS} versions and {FILES} files, seeded in {:.1} s; {iterations} renders each, one at a time",
        seeded.as_secs_f64()
    );
    println!();
    println!("| page | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|");
    for (label, path) in [
        ("project page (50 versions)", "/ui/projects/big".to_owned()),
        (
            "version page (951 files, page 1 of 10)",
            format!("/ui/projects/big/versions/v{VERSIONS}"),
        ),
        (
            "search page (facets, highlights)",
            "/ui/search?q=shard".to_owned(),
        ),
    ] {
        let times = measure(&router, &path, &cookie, iterations).await?;
        print_row(label, &times);
    }
    // The API calls the heaviest page makes, alone: what the UI adds is the rest.
    for (label, path) in [
        (
            "API alone: files listing of the 951-file version",
            format!("/projects/big/version/v{VERSIONS}/files"),
        ),
        (
            "API alone: versions listing",
            "/projects/big/versions".to_owned(),
        ),
        (
            "API alone: one version record",
            "/projects/big/version/v1".to_owned(),
        ),
    ] {
        let times = measure_api(&router, &path, &bearer, iterations).await?;
        print_row(label, &times);
    }

    println!();
    println!(
        "JavaScript shipped: {} bytes (budget 50 KB); stylesheet {} bytes",
        trove::ui::assets::JS.len(),
        trove::ui::assets::CSS.len()
    );
    Ok(())
}
