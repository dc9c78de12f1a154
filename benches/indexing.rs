//! Indexing throughput benchmark (SPEC §12): end to end — list and read from storage, parse,
//! resolve permission profiles, build documents, index and commit — through
//! `Indexer::index_projects(None, ..)`, the full rebuild the server runs at start-up.
//!
//! Seeds `TROVE_BENCH_INDEX_DOCS` metadata documents (default 50,000; projects of 4 completed
//! versions × 50 documents, random profiles, 3 % disabled) into local storage (a temporary
//! directory) and into an in-process S3 server (`s3s-fs` over HTTP on 127.0.0.1, the one the
//! integration tests use), then times one full rebuild of each and prints documents/s.
//! `TROVE_BENCH_S3_DOCS` overrides the S3 size (default: 5,000 at most — `s3s-fs` walks the
//! whole bucket on every recursive listing, so beyond that the figure measures the test
//! server: 506 docs/s at 50,000 documents against ~2,200 at 5,000 on the same machine).
//!
//! The local rebuild runs in a child process of its own (this binary re-executed with
//! `TROVE_BENCH_INDEX_CHILD=rebuild`), so its peak RSS — and the anonymous part of it, sampled
//! — is the rebuild's, not the seeding's; two more children (`restart`) then open the index it
//! left and time the start-up reconciliation until reads would be served (issue 18 item 7):
//! the first as after a crash (no clean-close record), the second after the first's graceful
//! stop.
//!
//! Run: `scripts/bench.sh` (or `cargo bench --bench indexing`). To compare builds or profile
//! one rebuild: seed a directory once with `TROVE_BENCH_INDEX_CHILD=seed
//! TROVE_BENCH_INDEX_CHILD_DIR=<dir>`, then time `TROVE_BENCH_INDEX_CHILD=rebuild` on it (remove
//! `<dir>/index` first), which prints projects, versions, documents, seconds, CPU seconds and
//! memory.

#[path = "common/corpus.rs"]
mod corpus;
#[allow(dead_code)]
#[path = "../tests/it/common/s3_server.rs"]
mod s3_server;
#[path = "common/seed.rs"]
mod seed;

use std::time::Instant;

use trove::app::AppState;
use trove::storage::s3::S3Store;

/// Versions per project.
const VERSIONS: usize = 4;
/// Metadata documents per version.
const FILES_PER_VERSION: usize = 50;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// Bytes of the files under `directory` (recursively).
fn directory_bytes(directory: &std::path::Path) -> u64 {
    std::fs::read_dir(directory)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| match entry.metadata() {
                    Ok(meta) if meta.is_dir() => directory_bytes(&entry.path()),
                    Ok(meta) => meta.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system, all threads) this process has used so far, from
/// `/proc/self/stat` (clock ticks of 1/100 s): on a shared machine the CPU time a rebuild takes
/// varies far less than its wall time.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may contain spaces).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// A full rebuild's figures.
struct Rebuild {
    projects: usize,
    versions: usize,
    documents: usize,
    seconds: f64,
    cpu: f64,
    /// Peak RSS (MiB) during the rebuild, and RSS before it.
    peak: f64,
    before: f64,
    /// The largest anonymous part of RSS (MiB) sampled during the rebuild: RSS without the
    /// index's memory-mapped files.
    anon_peak: f64,
}

/// Samples [`corpus::rss_anon_mib`] every 10 ms on a thread of its own until `stop` is set; the
/// thread answers the largest value seen (Linux keeps no high-water mark of it).
fn sample_anon(
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<f64> {
    let stop = std::sync::Arc::clone(stop);
    std::thread::spawn(move || {
        let mut largest = corpus::rss_anon_mib();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            largest = largest.max(corpus::rss_anon_mib());
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        largest.max(corpus::rss_anon_mib())
    })
}

/// Times a full rebuild of `app`'s index from its storage.
async fn rebuild(app: &AppState) -> anyhow::Result<Rebuild> {
    // The rebuild's own peak memory (issue 18 item 7): reset the high-water mark (Linux:
    // `5` to `clear_refs`), so what came before does not count.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let (_, before) = corpus::memory_mib();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = sample_anon(&stop);
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let report = app.indexer.index_projects(None, |_, _| {}).await;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let anon_peak = sampler
        .join()
        .map_err(|_| anyhow::anyhow!("sampler panicked"))?;
    let report = report?;
    let (peak, _) = corpus::memory_mib();
    Ok(Rebuild {
        projects: report.projects,
        versions: report.versions,
        documents: report.documents,
        seconds,
        cpu,
        peak,
        before,
        anon_peak,
    })
}

/// The environment variable that makes this benchmark a child process running one phase
/// (`rebuild` or `restart`) over the data directory in [`CHILD_DIR`]: the local figures are
/// taken in a process that did nothing else, so its peak memory is the phase's own.
const CHILD: &str = "TROVE_BENCH_INDEX_CHILD";
/// The child's data directory.
const CHILD_DIR: &str = "TROVE_BENCH_INDEX_CHILD_DIR";

/// Runs `phase` in a child process of this benchmark over `data_dir`; answers its stdout.
fn in_child(phase: &str, data_dir: &std::path::Path) -> anyhow::Result<String> {
    let output = std::process::Command::new(std::env::current_exe()?)
        .arg("--bench")
        .env(CHILD, phase)
        .env(CHILD_DIR, data_dir)
        .stderr(std::process::Stdio::inherit())
        .output()?;
    anyhow::ensure!(output.status.success(), "{phase} child: {}", output.status);
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

/// Seeds `app`'s storage with `documents` metadata documents in this benchmark's shape.
async fn seed_corpus(app: &AppState, documents: usize) -> anyhow::Result<seed::Seeded> {
    seed::seed(
        app.storage.clone(),
        documents,
        VERSIONS,
        FILES_PER_VERSION,
        64,
    )
    .await
}

/// A child's phase; prints its result on stdout.
async fn child(phase: &str, data_dir: &std::path::Path) -> anyhow::Result<()> {
    if phase == "restart" {
        println!("{}", restart(data_dir).await?);
        return Ok(());
    }
    if phase == "writer" {
        println!("{}", writer_alone(data_dir).await?);
        return Ok(());
    }
    if phase == "seed" {
        // Only seeds (`TROVE_BENCH_INDEX_DOCS` documents): a data directory to rebuild again
        // and again with `rebuild`, e.g. under a profiler or to compare two builds.
        let app = seed::app(seed::local_settings(data_dir)).await?;
        let documents = env_usize("TROVE_BENCH_INDEX_DOCS", 50_000);
        let seeded = seed_corpus(&app, documents).await?;
        app.index.close();
        println!("{} {}", seeded.projects, seeded.documents);
        return Ok(());
    }
    let app = seed::app(seed::local_settings(data_dir)).await?;
    let figures = rebuild(&app).await?;
    app.index.close();
    println!(
        "{} {} {} {} {} {} {} {}",
        figures.projects,
        figures.versions,
        figures.documents,
        figures.seconds,
        figures.cpu,
        figures.peak,
        figures.before,
        figures.anon_peak
    );
    Ok(())
}

/// Seeds `app`'s storage with `documents`, then times a full rebuild — in a child process
/// when `fresh` is the app's data directory (the app is closed first), else in this one;
/// prints the report's row and answers documents/s.
async fn measure(
    label: &str,
    app: AppState,
    documents: usize,
    fresh: Option<&std::path::Path>,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let seeded = seed_corpus(&app, documents).await?;
    let seeding = started.elapsed().as_secs_f64();
    // A marker for profilers attaching to the indexing phase only.
    eprintln!("seeded {label}: indexing");
    let figures = match fresh {
        None => {
            let figures = rebuild(&app).await?;
            app.index.close();
            figures
        }
        Some(data_dir) => {
            app.index.close();
            drop(app);
            let line = in_child("rebuild", data_dir)?;
            let numbers: Vec<f64> = line
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()?;
            anyhow::ensure!(numbers.len() == 8, "rebuild child answered {line:?}");
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let count = |index: usize| numbers[index] as usize;
            Rebuild {
                projects: count(0),
                versions: count(1),
                documents: count(2),
                seconds: numbers[3],
                cpu: numbers[4],
                peak: numbers[5],
                before: numbers[6],
                anon_peak: numbers[7],
            }
        }
    };
    anyhow::ensure!(
        figures.documents == seeded.documents + seeded.projects,
        "indexed {} documents, seeded {} + {} project records",
        figures.documents,
        seeded.documents,
        seeded.projects
    );
    let Rebuild {
        projects,
        versions,
        documents,
        seconds,
        cpu,
        peak,
        before,
        anon_peak,
    } = figures;
    let rate = documents as f64 / seconds;
    // What the rebuild would reach with both cores to itself: documents per CPU second × 2.
    let cpu_rate = documents as f64 / cpu.max(0.01) * 2.0;
    let process = if fresh.is_some() {
        "own process"
    } else {
        "after the seeding"
    };
    println!(
        "| {label} | {projects} | {versions} | {documents} | {seconds:.2} | **{rate:.0}** | {cpu:.2} ({cpu_rate:.0}) | {seeding:.1} | {peak:.0} (anonymous {anon_peak:.0}; from {before:.0}; {process}) |"
    );
    Ok(rate)
}

/// The reference beside the local rebuild (issue 18 item 8): Trove's index writer alone, in a
/// process of its own over an empty index in `data_dir` — the same number of file documents
/// of the same shape (the seeding's generator and seed, one version's documents per
/// `Replace`), built into tantivy documents *before* the clock starts, then fed in the
/// rebuild's batches of 64 versions and committed once at the end, as a rebuild does. What
/// the rebuild adds to it — listing and reading storage, parsing, resolving profiles,
/// building documents — is the difference. Answers `documents seconds cpu_seconds`.
async fn writer_alone(data_dir: &std::path::Path) -> anyhow::Result<String> {
    use trove::index::writer::WriteOp;
    let documents = env_usize("TROVE_BENCH_INDEX_DOCS", 50_000);
    let index = trove::index::SearchIndex::open(
        &data_dir.join("index"),
        trove::index::IndexSchema::builtin()?,
    )?;
    let fields = *index.fields();
    let mut generator = corpus::Generator::new(7);
    let uploaded = chrono::Utc::now();
    let mut batches: Vec<Vec<WriteOp>> = Vec::new();
    let mut batch: Vec<WriteOp> = Vec::new();
    let mut produced = 0;
    'projects: for project_index in 0.. {
        let project = corpus::project_id(project_index);
        let access = corpus::ProjectAccess::random(generator.rng());
        for version in 1..=VERSIONS {
            let mut built = Vec::with_capacity(FILES_PER_VERSION);
            for file in 0..FILES_PER_VERSION {
                if produced == documents {
                    break;
                }
                let metadata = generator.metadata(file);
                let document = corpus::Generator::index_document(
                    &project, version, metadata, &access, uploaded,
                );
                built.push(document.into_tantivy(&fields));
                produced += 1;
            }
            batch.push(WriteOp::Replace {
                owner: format!("{project}/v{version}"),
                documents: built,
            });
            if batch.len() == 64 {
                batches.push(std::mem::take(&mut batch));
            }
            if produced == documents {
                break 'projects;
            }
        }
    }
    let writer = index.writer().clone();
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    // As the rebuild: one batch handed over while the next waits, none committed on its own.
    let mut in_flight = None;
    for ops in batches {
        if let Some(previous) = in_flight.take() {
            previous.await?;
        }
        in_flight = Some(writer.submit_uncommitted(ops)?);
    }
    if let Some(previous) = in_flight {
        previous.await?;
    }
    writer.apply(batch).await?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let indexed = index.searcher().num_docs();
    anyhow::ensure!(
        usize::try_from(indexed)? == produced,
        "the writer alone indexed {indexed} of {produced} documents"
    );
    index.close();
    Ok(format!("{produced} {seconds} {cpu}"))
}

/// Start-up with the index on disk (issue 18 item 7): a new instance over `data_dir` —
/// `App::build` opens the index — following the change feed as `trove serve` does, then the
/// start-up reconciliation it runs before it answers reads (the index is current, so no
/// rebuild). Without a clean-close record (the rebuild child only closed the index, as after
/// a crash) reads wait for the sync check of all of storage; after a graceful stop
/// ([`trove::app::App::close`], which this phase ends with) they wait for the change feed's
/// replay only, the sync check following. Answers the report's line.
async fn restart(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let started = Instant::now();
    let app = seed::app(seed::local_settings(data_dir)).await?;
    let opened = started.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(
        !app.index.needs_rebuild(),
        "the index on disk was not taken as current"
    );
    let follower = trove::jobs::follow::start(&app).await;
    let mut ready = app.reconciled.subscribe();
    let job = app.reconcile_in_background();
    // A reconciliation that keeps failing retries forever: bound the waits.
    let limit = std::time::Duration::from_secs(1800);
    tokio::time::timeout(limit, ready.wait_for(|done| *done))
        .await
        .map_err(|_| anyhow::anyhow!("start-up reconciliation still running after 30 min"))??;
    let serving = started.elapsed().as_secs_f64();
    let after = app
        .reads_opened
        .get()
        .map_or_else(|| "?".to_owned(), |opened| format!("{:?}", opened.after));
    // The rest of the reconciliation (after a replay: the sync check) ends too, and the
    // follower saves its position: what the next start replays from.
    let position = data_dir.join("feed-position");
    let finished = Instant::now();
    while app
        .jobs
        .get(&job)
        .is_none_or(|info| info.finished_at.is_none())
        || !position.exists()
    {
        anyhow::ensure!(
            finished.elapsed() < limit,
            "reconciliation job still running"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let reconciled = started.elapsed().as_secs_f64();
    let (peak, _) = corpus::memory_mib();
    if let Some(follower) = follower {
        follower.abort();
        let _ = follower.await;
    }
    let clean = app.close().await.is_ok();
    Ok(format!(
        "`App::build` (opens the index) {opened:.0} ms; **reads served at {serving:.2} s** (after: {after}); the whole start-up reconciliation done at {reconciled:.2} s; peak RSS {peak:.0} MiB; closed cleanly: {clean}"
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let (Ok(phase), Some(data_dir)) = (std::env::var(CHILD), std::env::var_os(CHILD_DIR)) {
        return child(&phase, std::path::Path::new(&data_dir)).await;
    }
    let documents = env_usize("TROVE_BENCH_INDEX_DOCS", 50_000);
    // The in-process S3 server (s3s-fs) walks the whole bucket on every recursive listing
    // whatever the prefix, so each version listing costs O(bucket): at 50,000 documents the
    // S3 figure measures that server, not Trove. 5,000 by default; override to see the curve.
    let s3_documents = env_usize("TROVE_BENCH_S3_DOCS", documents.min(5_000));
    println!(
        "## indexing: full rebuild via Indexer::index_projects ({VERSIONS} versions × {FILES_PER_VERSION} metadata docs per project)"
    );
    println!();
    println!(
        "| backend | projects | versions | documents | seconds | docs/s | CPU s (docs per CPU s × 2) | seeding s | peak RSS MiB during the rebuild |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---|");

    let local_dir = tempfile::tempdir()?;
    let local = seed::app(seed::local_settings(local_dir.path())).await?;
    let local_rate = measure("local", local, documents, Some(local_dir.path())).await?;
    // The child closed the index, which waits for tantivy's merges: the size is the index
    // as the rebuild leaves it.
    let index_bytes = directory_bytes(&local_dir.path().join("index"));
    // The first restart follows a rebuild that only closed the index (as after a crash); it
    // stops gracefully, so the second one follows a clean close.
    let restarted = in_child("restart", local_dir.path());
    let writer_dir = tempfile::tempdir()?;
    let writer_alone = in_child("writer", writer_dir.path())?;
    let writer_figures: Vec<f64> = writer_alone
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    anyhow::ensure!(
        writer_figures.len() == 3,
        "writer child answered {writer_alone:?}"
    );
    drop(writer_dir);
    let (writer_documents, writer_seconds, writer_cpu) =
        (writer_figures[0], writer_figures[1], writer_figures[2]);
    let writer_rate = writer_documents / writer_seconds;
    println!(
        "| reference: the index writer alone (the same number of file documents of the same shape, built in memory before the clock; own process) | — | — | {writer_documents:.0} | {writer_seconds:.2} | **{writer_rate:.0}** | {writer_cpu:.2} ({:.0}) | — | — |",
        writer_documents / writer_cpu.max(0.01) * 2.0
    );
    let restarted_clean = in_child("restart", local_dir.path());

    let server = s3_server::S3TestServer::start().await;
    let store = S3Store::connect(server.settings("trove-bench", "")).await?;
    store.create_bucket_if_missing().await?;
    let s3_dir = tempfile::tempdir()?;
    let s3 = seed::app(seed::s3_settings(
        s3_dir.path(),
        &server.endpoint(),
        "trove-bench",
        s3_server::ACCESS_KEY,
        s3_server::SECRET_KEY,
    ))
    .await?;
    let s3_rate = measure("s3 (127.0.0.1)", s3, s3_documents, None).await?;

    println!();
    println!(
        "local index on disk after the rebuild and its merges: {index_bytes} bytes ({:.1} MiB, {:.0} bytes/doc)",
        index_bytes as f64 / 1_048_576.0,
        index_bytes as f64 / documents.max(1) as f64
    );
    println!(
        "restart over the local index on disk, own process, without a clean-close record (as after a crash): {}",
        restarted?
    );
    println!(
        "restart over the local index on disk, own process, after a graceful stop: {}",
        restarted_clean?
    );
    println!(
        "local rebuild ÷ the writer alone (same run): {:.2} ({local_rate:.0} ÷ {writer_rate:.0} docs/s) — the share of the rebuild's time that is tantivy's indexing of these documents",
        local_rate / writer_rate
    );
    println!("SPEC §12 (≥ 25,000 docs/s local, ≥ 2,000 docs/s S3 on loopback):");
    println!(
        "  local: {local_rate:.0} docs/s → {}",
        if local_rate >= 25_000.0 {
            "meets"
        } else {
            "SHORT"
        }
    );
    println!(
        "  s3:    {s3_rate:.0} docs/s → {}",
        if s3_rate >= 2_000.0 { "meets" } else { "SHORT" }
    );
    Ok(())
}
