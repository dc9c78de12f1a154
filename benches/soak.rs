//! Soak (issue 14, point 4): a load run, not a timed test. The real server (`App::build` +
//! `trove::api::serve` on 127.0.0.1:0, local storage) with 20 accounts owning projects of every
//! visibility, some shared with each other; `TROVE_SOAK_CONNECTIONS` (default 50) keep-alive
//! connections for `TROVE_SOAK_SECONDS` (default 60) mix searches, `/projects` listings,
//! metadata reads, downloads, uploads, profile changes and logins as those accounts.
//!
//! It reports: the 5xx count (must be 0), leaked documents (every search hit is re-checked by
//! direct access as the same caller; a hit that answers `404` is a leak unless its project's
//! profile change is being re-indexed — counted apart as a race; after the run, with nothing in
//! flight, every hit of every account is re-checked and `/index/sync` must find no drift),
//! p50/p99 per route,
//! and resident memory, open file descriptors and live tokio tasks at the start and the end.
//! It exits non-zero on any 5xx or leak, or when RSS grows by more than
//! `TROVE_SOAK_MAX_RSS_GROWTH_MIB` (default 256) or tasks by more than 1,000.
//!
//! Run: `scripts/bench.sh soak` (release; on an idle machine), or briefly in debug:
//! `TROVE_SOAK_SECONDS=10 cargo test --bench soak`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::Engine as _;
use md5::Digest as _;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{Value, json};
use trove::app::App;
use trove::config::Settings;
use trove::permissions::Role;

const PASSWORD: &str = "soak-password-of-the-accounts";
/// Files per seeded version.
const FILES: usize = 5;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn account(index: usize) -> String {
    format!("soak{index:02}")
}

fn project(index: usize) -> String {
    format!("soak-p{index:02}")
}

fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Resident memory (KiB) and open file descriptors of this process (Linux `/proc`).
fn process_stats() -> (u64, usize) {
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0);
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count);
    (rss, fds)
}

/// `RssAnon` and `RssFile` (KiB) of this process: heap against mapped files (the index's
/// segments are memory-mapped, so a growing index grows the file-backed part).
fn rss_parts() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kib| kib.parse().ok())
            .unwrap_or(0)
    };
    (field("RssAnon:"), field("RssFile:"))
}

fn percentile(sorted: &[f64], pct: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((pct / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// What the connections share.
#[derive(Default)]
struct Shared {
    latencies: Mutex<BTreeMap<&'static str, Vec<f64>>>,
    server_errors: Mutex<Vec<String>>,
    leaks: Mutex<Vec<String>>,
    raced: Mutex<usize>,
    rechecked: Mutex<usize>,
    failures: Mutex<usize>,
    /// Per project: profile changes whose re-index job has not finished, and when the last
    /// one finished.
    profile_changes: Mutex<HashMap<String, (usize, Option<Instant>)>>,
}

impl Shared {
    fn record(
        &self,
        route: &'static str,
        started: Instant,
        status: reqwest::StatusCode,
        what: &str,
    ) {
        self.latencies
            .lock()
            .unwrap()
            .entry(route)
            .or_default()
            .push(started.elapsed().as_secs_f64() * 1e3);
        if status.is_server_error() {
            self.server_errors
                .lock()
                .unwrap()
                .push(format!("{status} {what}"));
        }
    }

    fn in_flux(&self, project: &str) -> bool {
        self.profile_changes
            .lock()
            .unwrap()
            .get(project)
            .is_some_and(|(pending, settled)| {
                *pending > 0 || settled.is_some_and(|at| at.elapsed() < Duration::from_secs(1))
            })
    }

    fn change_started(&self, project: &str) {
        self.profile_changes
            .lock()
            .unwrap()
            .entry(project.to_owned())
            .or_default()
            .0 += 1;
    }

    fn change_settled(&self, project: &str) {
        let mut changes = self.profile_changes.lock().unwrap();
        let entry = changes.entry(project.to_owned()).or_default();
        entry.0 = entry.0.saturating_sub(1);
        entry.1 = Some(Instant::now());
    }
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
        .context("no token")?
        .to_owned())
}

async fn put_file(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    location: &str,
    bytes: Vec<u8>,
) -> anyhow::Result<reqwest::StatusCode> {
    let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&bytes));
    Ok(client
        .put(format!("{base}{location}"))
        .bearer_auth(token)
        .header("content-md5", md5)
        .body(bytes)
        .send()
        .await?
        .status())
}

/// Seeds `accounts` accounts, each owning one project (private, shared or public in turn;
/// shared ones shared with the next account) with a completed version `v1` of `FILES` files and
/// their metadata documents, and an open version `scratch` for uploads during the run.
async fn seed(
    client: &reqwest::Client,
    base: &str,
    app: &trove::app::AppState,
    accounts: usize,
) -> anyhow::Result<Vec<String>> {
    let mut tokens = Vec::new();
    for index in 0..accounts {
        app.auth
            .create_account(&account(index), PASSWORD, Role::Maintainer, None)
            .await?;
        let token = login(client, base, &account(index)).await?;
        let visibility = ["private", "shared", "public"][index % 3];
        let project = project(index);
        client
            .post(format!("{base}/projects"))
            .bearer_auth(&token)
            .json(&json!({"project_id": project, "title": format!("soak {index}"), "type": "DATASET", "visibility": visibility}))
            .send()
            .await?
            .error_for_status()?;
        for version in ["v1", "scratch"] {
            client
                .post(format!("{base}/projects/{project}/versions"))
                .bearer_auth(&token)
                .json(&json!({"version": version}))
                .send()
                .await?
                .error_for_status()?;
        }
        for file in 0..FILES {
            let data = format!("data {project} {file}").repeat(200).into_bytes();
            put_file(
                client,
                base,
                &token,
                &format!("/projects/{project}/version/v1/files/f{file}.bin"),
                data,
            )
            .await?;
            let meta = json!({"path": format!("f{file}.bin"), "title": format!("file {file} of {project}"), "score": file});
            put_file(
                client,
                base,
                &token,
                &format!("/projects/{project}/version/v1/files/f{file}.bin.json"),
                meta.to_string().into_bytes(),
            )
            .await?;
        }
        client
            .put(format!("{base}/projects/{project}/version/v1/complete"))
            .bearer_auth(&token)
            .send()
            .await?
            .error_for_status()?;
        tokens.push(token);
    }
    for index in (1..accounts).step_by(3) {
        let grantee = account((index + 1) % accounts);
        client
            .post(format!("{base}/projects/{}/share", project(index)))
            .bearer_auth(&tokens[index])
            .json(&json!({"principal": grantee}))
            .send()
            .await?
            .error_for_status()?;
    }
    Ok(tokens)
}

/// Waits until the job of a `202` answer (`{path}`) is over.
async fn wait_for_job(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    answer: &Value,
) -> anyhow::Result<()> {
    let Some(path) = answer["path"].as_str() else {
        return Ok(());
    };
    for _ in 0..600 {
        let job: Value = client
            .get(format!("{base}{path}"))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        if job["status"] == "SUCCESS" || job["status"] == "FAILURE" {
            anyhow::ensure!(job["status"] == "SUCCESS", "job failed: {job}");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("job {path} did not finish")
}

/// After the run, with nothing in flight: every hit of every account is re-checked, and the
/// sync check must find no drift. Answers the hits checked, the leaks and the sync report.
async fn final_check(
    client: &reqwest::Client,
    base: &str,
    tokens: &[String],
    admin: &str,
) -> anyhow::Result<(usize, Vec<String>, Value)> {
    let mut checked = 0;
    let mut leaks = Vec::new();
    for (index, token) in tokens.iter().enumerate() {
        let body: Value = client
            .get(format!("{base}/search?q=*&size=500"))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        for hit in body["results"].as_array().into_iter().flatten() {
            let Some(id) = hit["_extra"]["id"].as_str() else {
                continue;
            };
            let status = client
                .get(format!("{base}/files/{}/metadata", encode(id)))
                .bearer_auth(token)
                .send()
                .await?
                .status();
            checked += 1;
            if status != reqwest::StatusCode::OK {
                leaks.push(format!(
                    "{} found {id} ({status}) after the run",
                    account(index)
                ));
            }
        }
    }
    let sync: Value = client
        .get(format!("{base}/index/sync"))
        .bearer_auth(admin)
        .send()
        .await?
        .json()
        .await?;
    Ok((checked, leaks, sync))
}

/// One connection's loop.
#[allow(clippy::too_many_lines)]
async fn connection(
    id: usize,
    base: String,
    accounts: usize,
    tokens: Vec<String>,
    deadline: Instant,
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(id as u64);
    let me = id % accounts;
    let mut token = tokens[me].clone();
    let mut uploads = 0_usize;
    while Instant::now() < deadline {
        let dice = rng.random_range(0..100);
        let target = rng.random_range(0..accounts);
        let started = Instant::now();
        let result: anyhow::Result<()> = async {
            match dice {
                0..35 => {
                    let query =
                        ["*", "soak", "title:file", "score:[1 TO 3]", "f2"][rng.random_range(0..5)];
                    let response = client
                        .get(format!("{base}/search?q={}&size=20", encode(query)))
                        .bearer_auth(&token)
                        .send()
                        .await?;
                    let status = response.status();
                    shared.record("GET /search", started, status, query);
                    if !status.is_success() {
                        return Ok(());
                    }
                    let body: Value = response.json().await?;
                    let hits: Vec<String> = body["results"]
                        .as_array()
                        .map(|hits| {
                            hits.iter()
                                .filter_map(|hit| hit["_extra"]["id"].as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default();
                    // Every hit is re-checked by direct access as the same caller.
                    for hit in hits.iter().take(3) {
                        let started = Instant::now();
                        let response = client
                            .get(format!("{base}/files/{}/metadata", encode(hit)))
                            .bearer_auth(&token)
                            .send()
                            .await?;
                        let status = response.status();
                        shared.record("GET /files/{id}/metadata", started, status, hit);
                        *shared.rechecked.lock().unwrap() += 1;
                        if status == reqwest::StatusCode::NOT_FOUND {
                            let project = hit.split(':').next().unwrap_or_default();
                            if shared.in_flux(project) || hit.contains("@scratch") {
                                *shared.raced.lock().unwrap() += 1;
                            } else {
                                shared
                                    .leaks
                                    .lock()
                                    .unwrap()
                                    .push(format!("{} found {hit}", account(me)));
                            }
                        }
                    }
                }
                35..45 => {
                    let response = client
                        .get(format!("{base}/projects?size=50"))
                        .bearer_auth(&token)
                        .send()
                        .await?;
                    shared.record("GET /projects", started, response.status(), "");
                    response.bytes().await?;
                }
                45..60 => {
                    let id = format!("{}:f{}.bin@v1", project(target), rng.random_range(0..FILES));
                    let response = client
                        .get(format!("{base}/files/{}/metadata", encode(&id)))
                        .bearer_auth(&token)
                        .send()
                        .await?;
                    shared.record("GET /files/{id}/metadata", started, response.status(), &id);
                    response.bytes().await?;
                }
                60..72 => {
                    let id = format!(
                        "{}:f{}.bin@latest",
                        project(target),
                        rng.random_range(0..FILES)
                    );
                    let response = client
                        .get(format!("{base}/files/{}?redirect=false", encode(&id)))
                        .bearer_auth(&token)
                        .send()
                        .await?;
                    shared.record("GET /files/{id}", started, response.status(), &id);
                    response.bytes().await?;
                }
                72..84 => {
                    uploads += 1;
                    let location = format!(
                        "/projects/{}/version/scratch/files/c{id}/u{uploads}.bin",
                        project(me)
                    );
                    let bytes = vec![u8::try_from(uploads % 251).unwrap_or(0); 16 * 1024];
                    let status = put_file(&client, &base, &token, &location, bytes).await?;
                    shared.record("PUT .../files/{path}", started, status, &location);
                }
                84..92 => {
                    let rule =
                        ["owners", "viewers", "public", "authenticated"][rng.random_range(0..4)];
                    let project = project(me);
                    shared.change_started(&project);
                    let settled = async {
                        let response = client
                            .put(format!("{base}/projects/{project}/permissions"))
                            .bearer_auth(&token)
                            .json(&json!({"read_access": rule}))
                            .send()
                            .await?;
                        shared.record(
                            "PUT /projects/{p}/permissions",
                            started,
                            response.status(),
                            rule,
                        );
                        let body: Value = response.json().await?;
                        wait_for_job(&client, &base, &token, &body).await
                    }
                    .await;
                    shared.change_settled(&project);
                    settled?;
                }
                _ => {
                    let response = client
                        .post(format!("{base}/auth/login"))
                        .json(&json!({"username": account(me), "password": PASSWORD}))
                        .send()
                        .await?;
                    let status = response.status();
                    shared.record("POST /auth/login", started, status, "");
                    if status.is_success() {
                        let body: Value = response.json().await?;
                        if let Some(fresh) = body["access_token"].as_str() {
                            fresh.clone_into(&mut token);
                        }
                    }
                }
            }
            Ok(())
        }
        .await;
        if result.is_err() {
            *shared.failures.lock().unwrap() += 1;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds = env_usize("TROVE_SOAK_SECONDS", 60);
    let connections = env_usize("TROVE_SOAK_CONNECTIONS", 50);
    let accounts = env_usize("TROVE_SOAK_ACCOUNTS", 20).max(2);
    let max_rss_growth_mib = env_usize("TROVE_SOAK_MAX_RSS_GROWTH_MIB", 256);
    println!("## soak: {connections} connections, {seconds} s, {accounts} accounts");

    let data_dir = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let mut settings = Settings {
        data_dir: data_dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse()?,
        log: "warn".to_owned(),
        public_url: Some(base.clone()),
        sync_cron: String::new(),
        purge_cron: String::new(),
        ..Settings::default()
    };
    settings.auth.login_rate_limit_per_user_ip = 0;
    settings.auth.login_rate_limit_per_user = 0;
    settings.auth.login_rate_limit_per_ip = 0;
    settings.validate()?;
    let app = App::build(settings).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(trove::api::serve(listener, app.clone(), async move {
        let _ = stopped.await;
    }));

    let client = reqwest::Client::new();
    let tokens = seed(&client, &base, &app, accounts).await?;
    app.auth
        .create_account("soakadmin", PASSWORD, Role::Admin, None)
        .await?;
    let admin = login(&client, &base, "soakadmin").await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let (rss_start, fds_start) = process_stats();
    let parts_start = rss_parts();
    let tasks_start = metrics.num_alive_tasks();

    let shared = Arc::new(Shared::default());
    let deadline = Instant::now() + Duration::from_secs(seconds as u64);
    let started = Instant::now();
    // Resident memory every tenth of the run: a plateau is a bounded working set (the index
    // writer's arena, caches), a steady climb a leak.
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        let step = Duration::from_secs((seconds as u64 / 10).max(1));
        while Instant::now() < deadline {
            tokio::time::sleep(step).await;
            samples.push(process_stats().0 / 1024);
        }
        samples
    });
    let mut running = Vec::new();
    for id in 0..connections {
        running.push(tokio::spawn(connection(
            id,
            base.clone(),
            accounts,
            tokens.clone(),
            deadline,
            shared.clone(),
        )));
    }
    for task in running {
        task.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Let background jobs (re-indexing) finish before the end measurement.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_end, fds_end) = process_stats();
    let parts_end = rss_parts();
    let tasks_end = metrics.num_alive_tasks();
    let (final_checked, final_leaks, sync) = final_check(&client, &base, &tokens, &admin).await?;

    println!();
    println!("| route | requests | req/s | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|");
    let mut total = 0;
    for (route, latencies) in shared.latencies.lock().unwrap().iter_mut() {
        latencies.sort_by(f64::total_cmp);
        total += latencies.len();
        #[allow(clippy::cast_precision_loss)]
        let rate = latencies.len() as f64 / elapsed;
        println!(
            "| `{route}` | {} | {rate:.0} | {:.1} | {:.1} |",
            latencies.len(),
            percentile(latencies, 50.0),
            percentile(latencies, 99.0)
        );
    }
    let server_errors = shared.server_errors.lock().unwrap().clone();
    let leaks = shared.leaks.lock().unwrap().clone();
    println!();
    println!(
        "- requests: {total} in {elapsed:.1} s; client-side failures (connection, body): {}",
        shared.failures.lock().unwrap()
    );
    println!("- 5xx: {}", server_errors.len());
    println!(
        "- search hits re-checked by direct access: {}; leaked: {}; raced with a profile change or a fresh upload (not counted): {}",
        shared.rechecked.lock().unwrap(),
        leaks.len(),
        shared.raced.lock().unwrap()
    );
    println!(
        "- resident memory: {:.0} MiB → {:.0} MiB; open fds: {fds_start} → {fds_end}; live tokio tasks: {tasks_start} → {tasks_end} (client and server share this process)",
        rss_start as f64 / 1024.0,
        rss_end as f64 / 1024.0
    );
    let samples = sampler.await.unwrap_or_default();
    println!("  - allocator: jemalloc (the crate's global allocator on Linux)");
    println!(
        "  - every tenth of the run (MiB): {}",
        samples
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" → ")
    );
    println!(
        "  - of which heap (`RssAnon`) {:.0} → {:.0} MiB, mapped files (`RssFile`, the index's segments) {:.0} → {:.0} MiB",
        parts_start.0 as f64 / 1024.0,
        parts_end.0 as f64 / 1024.0,
        parts_start.1 as f64 / 1024.0,
        parts_end.1 as f64 / 1024.0
    );
    println!(
        "- after the run: {final_checked} hits of every account re-checked, {} leaked; `/index/sync` drift: {}",
        final_leaks.len(),
        sync["drift_count"]
    );
    for leak in final_leaks.iter().take(10) {
        println!("  - leak: {leak}");
    }
    for error in server_errors.iter().take(10) {
        println!("  - 5xx: {error}");
    }
    for leak in leaks.iter().take(10) {
        println!("  - leak: {leak}");
    }
    let _ = stop.send(());
    let _ = server.await;

    let rss_growth_mib = rss_end.saturating_sub(rss_start) / 1024;
    anyhow::ensure!(
        server_errors.is_empty(),
        "{} answers were 5xx",
        server_errors.len()
    );
    anyhow::ensure!(leaks.is_empty(), "{} search hits leaked", leaks.len());
    anyhow::ensure!(
        final_leaks.is_empty(),
        "{} hits leaked after the run",
        final_leaks.len()
    );
    anyhow::ensure!(
        sync["drift_count"] == 0,
        "the index drifted from storage: {sync}"
    );
    anyhow::ensure!(
        rss_growth_mib <= max_rss_growth_mib as u64,
        "resident memory grew by {rss_growth_mib} MiB"
    );
    anyhow::ensure!(
        tasks_end <= tasks_start + 1_000,
        "live tasks grew from {tasks_start} to {tasks_end}"
    );
    Ok(())
}
