//! Changes under load (SPEC §12, issue 18 items 5 and 6), on one real server (`App::build` +
//! `trove::api::serve` on 127.0.0.1:0, local storage, `TROVE_BENCH_LIVE_DOCS` metadata
//! documents seeded and indexed, default 20,000):
//!
//! * **freshness** — a file uploaded into an open version (`PUT .../files/{path}`) → the first
//!   search that finds it, polled every millisecond by the uploader: p50/p95 over
//!   `TROVE_BENCH_LIVE_ROUNDS` uploads (default 50); and a profile change (`PUT
//!   /projects/{p}/permissions` adding a viewer) → the first search by that viewer that finds
//!   the project's documents, and the same for removing the viewer (the documents gone).
//!   Goal: p95 ≤ 300 ms.
//! * **logins** — `POST /auth/login` at 8 connections for `TROVE_BENCH_LIVE_SECONDS`
//!   (default 10): logins/s (the rate limits are raised for the benchmark; argon2id is the
//!   cost); then search p99 at 8 connections alone, and while the login storm runs. Goal:
//!   ≥ 25 logins/s, search p99 during the storm ≤ 1.5× alone.
//!
//! Run: `scripts/bench.sh live` (or `cargo bench --bench live`).

#[path = "common/corpus.rs"]
mod corpus;
#[path = "common/load.rs"]
mod load;
#[path = "common/seed.rs"]
mod seed;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};
use trove::permissions::Role;

use corpus::percentile;

/// The uploader's (and every account's) password.
const PASSWORD: &str = "benchmark-password-1";
/// Login and search connections.
const CONNECTIONS: usize = 8;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.replace('_', "").parse().ok())
        .unwrap_or(default)
}

async fn login(client: &reqwest::Client, base: &str, username: &str) -> anyhow::Result<String> {
    let answer: Value = client
        .post(format!("{base}/auth/login"))
        .json(&json!({"username": username, "password": PASSWORD}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(answer["access_token"]
        .as_str()
        .context("no access token")?
        .to_owned())
}

/// Searches `query` as `token` until `done(total)`, every millisecond; answers how long it
/// took from `started`.
async fn until(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    started: Instant,
    done: impl Fn(u64) -> bool,
) -> anyhow::Result<f64> {
    loop {
        let answer: Value = client
            .get(url)
            .bearer_auth(token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if done(answer["total"].as_u64().unwrap_or(0)) {
            return Ok(started.elapsed().as_secs_f64() * 1e3);
        }
        if started.elapsed() > Duration::from_secs(10) {
            anyhow::bail!("not visible after 10 s: {url}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn row(label: &str, sorted: &mut [f64]) {
    sorted.sort_by(f64::total_cmp);
    let p50 = percentile(sorted, 50.0);
    let p95 = percentile(sorted, 95.0);
    println!(
        "| {label} | {} | {p50:.1} | **{p95:.1}** | {:.1} | {} |",
        sorted.len(),
        sorted.last().copied().unwrap_or(0.0),
        if p95 <= 300.0 { "meets" } else { "SHORT" }
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let documents = env_usize("TROVE_BENCH_LIVE_DOCS", 20_000);
    let rounds = env_usize("TROVE_BENCH_LIVE_ROUNDS", 50);
    let seconds = env_usize("TROVE_BENCH_LIVE_SECONDS", 10);
    println!("## live: freshness and logins under load, {documents} documents, one server");
    let data_dir = tempfile::tempdir()?;
    let mut settings = seed::local_settings(data_dir.path());
    // The benchmark measures argon2id, not the brute-force guard.
    settings.auth.login_rate_limit_per_user_ip = 1_000_000;
    settings.auth.login_rate_limit_per_user = 1_000_000;
    settings.auth.login_rate_limit_per_ip = 1_000_000;
    let app = seed::app(settings).await?;
    seed::seed(app.storage.clone(), documents, 2, 5, 16).await?;
    app.indexer.index_projects(None, |_, _| {}).await?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(trove::api::serve(listener, app.clone(), async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    for name in ["uploader", "reader"]
        .into_iter()
        .map(str::to_owned)
        .chain((0..CONNECTIONS).map(|i| format!("storm{i}")))
    {
        app.auth
            .create_account(&name, PASSWORD, Role::Maintainer, None)
            .await?;
    }
    let uploader = login(&client, &base, "uploader").await?;
    let reader = login(&client, &base, "reader").await?;

    // Freshness: upload → searchable.
    client
        .post(format!("{base}/projects"))
        .bearer_auth(&uploader)
        .json(&json!({"project_id": "fresh", "title": "fresh", "type": "MODEL", "visibility": "private"}))
        .send()
        .await?
        .error_for_status()?;
    client
        .post(format!("{base}/projects/fresh/versions"))
        .bearer_auth(&uploader)
        .json(&json!({"version": "v1"}))
        .send()
        .await?
        .error_for_status()?;
    let mut uploads = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let word = format!("freshword{round}x");
        let body = json!({"title": word, "path": format!("doc{round}.json")}).to_string();
        let started = Instant::now();
        client
            .put(format!(
                "{base}/projects/fresh/version/v1/files/doc{round}.json"
            ))
            .bearer_auth(&uploader)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?
            .error_for_status()?;
        let url = format!("{base}/search?q=title:{word}&size=1");
        uploads.push(until(&client, &url, &uploader, started, |total| total == 1).await?);
    }
    // Freshness: profile change → the viewer's search changes.
    let mut granted = Vec::with_capacity(rounds);
    let mut revoked = Vec::with_capacity(rounds);
    let url = format!("{base}/search?q=_extra.project_id:fresh&size=1");
    for _ in 0..rounds {
        for (viewers, into, visible) in [
            (json!(["reader"]), &mut granted, true),
            (json!([]), &mut revoked, false),
        ] {
            let started = Instant::now();
            client
                .put(format!("{base}/projects/fresh/permissions"))
                .bearer_auth(&uploader)
                .json(&json!({"viewers": viewers, "read_access": "viewers"}))
                .send()
                .await?
                .error_for_status()?;
            into.push(
                until(&client, &url, &reader, started, |total| {
                    (total > 0) == visible
                })
                .await?,
            );
        }
    }
    println!();
    println!(
        "| change → search result changed | rounds | p50 ms | p95 ms | max ms | goal p95 ≤ 300 ms |"
    );
    println!("|---|---:|---:|---:|---:|---|");
    row("upload (`PUT .../files/{path}`) → found", &mut uploads);
    row(
        "viewer granted (`PUT .../permissions`) → found",
        &mut granted,
    );
    row(
        "viewer removed (`PUT .../permissions`) → gone",
        &mut revoked,
    );

    // Logins, alone.
    let logins = storm(&base, seconds).await?;
    // Search alone, then during a login storm.
    let queries: Arc<Vec<String>> = Arc::new(
        [
            "*",
            "title:model",
            "tags:nlp",
            "description:training",
            "card",
        ]
        .iter()
        .map(|q| format!("{base}/search?q={q}&size=10"))
        .collect(),
    );
    let alone = load::load_with(queries.clone(), &reader, seconds, CONNECTIONS).await?;
    let storming = tokio::spawn({
        let base = base.clone();
        async move { storm(&base, seconds + 1).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = load::load_with(queries, &reader, seconds, CONNECTIONS).await?;
    let storm_logins = storming.await??;
    println!();
    println!("| logins | connections | logins/s | login p50 ms | login p99 ms | goal |");
    println!("|---|---:|---:|---:|---:|---|");
    println!(
        "| alone | {CONNECTIONS} | **{:.1}** | {:.0} | {:.0} | ≥ 25/s {} |",
        logins.rate,
        logins.p50,
        logins.p99,
        if logins.rate >= 25.0 {
            "meets"
        } else {
            "SHORT"
        }
    );
    println!(
        "| during the search load | {CONNECTIONS} | {:.1} | {:.0} | {:.0} | |",
        storm_logins.rate, storm_logins.p50, storm_logins.p99
    );
    println!();
    let ratio = during.p99 / alone.p99.max(1e-9);
    println!("| search ({CONNECTIONS} connections) | requests/s | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|");
    println!(
        "| alone | {:.0} | {:.2} | {:.2} |",
        alone.rate, alone.p50, alone.p99
    );
    println!(
        "| during a login storm ({CONNECTIONS} connections) | {:.0} | {:.2} | {:.2} |",
        during.rate, during.p50, during.p99
    );
    println!();
    println!(
        "search p99 during the storm ÷ alone: **{ratio:.2}** (SPEC §12: ≤ 1.5) → {}",
        if ratio <= 1.5 { "meets" } else { "SHORT" }
    );
    let _ = stop.send(());
    let _ = server.await;
    app.index.close();
    Ok(())
}

/// `CONNECTIONS` connections logging in (account `storm<i>` each) for `seconds`.
async fn storm(base: &str, seconds: usize) -> anyhow::Result<load::Load> {
    let deadline = Instant::now() + Duration::from_secs(seconds as u64);
    let mut tasks = Vec::new();
    for connection in 0..CONNECTIONS {
        let base = base.to_owned();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()?;
            let username = format!("storm{connection}");
            let (mut latencies, mut errors) = (Vec::new(), 0_usize);
            while Instant::now() < deadline {
                let started = Instant::now();
                match login(&client, &base, &username).await {
                    Ok(_) => latencies.push(started.elapsed().as_secs_f64() * 1e3),
                    Err(_) => errors += 1,
                }
            }
            Ok::<_, anyhow::Error>((latencies, errors))
        }));
    }
    let started = Instant::now();
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for task in tasks {
        let (mut own, own_errors) = task.await??;
        latencies.append(&mut own);
        errors += own_errors;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    Ok(load::Load {
        requests: latencies.len(),
        errors,
        elapsed,
        rate: latencies.len() as f64 / elapsed,
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
    })
}
