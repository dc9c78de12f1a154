//! Search latency benchmark (SPEC §12): authorized vs unfiltered `search()` on a synthetic
//! corpus, single-threaded, in one run.
//!
//! Builds `TROVE_BENCH_DOCS` documents (default 1,000,000) over 5,000 projects directly
//! through `IndexDocument` and the single writer, closes the writer (letting merges finish)
//! and re-opens the index, then measures `trove::index::search::search` for broad queries
//! (`*`, common words) and selective ones (rare words, one project) with
//! `AccessScope::Unrestricted` and with a caller holding 53 tokens (one user, 50 groups,
//! `@public`, `@authenticated`): p50/p99 of each, warm (the allow-set cache filled by an
//! earlier query of the same identity set) and cold (the first query of a new identity set),
//! and the ratio authorized ÷ unfiltered p99 per class — broad, selective, and free text (one,
//! two and three unqualified words, a phrase, a prefix, rare words). Also prints the peak
//! resident memory.
//!
//! Run: `scripts/bench.sh` (or `cargo bench --bench search`; `TROVE_BENCH_DOCS=100000` for a
//! quick run, `TROVE_BENCH_ITERATIONS` per query and scope, default 200;
//! `TROVE_BENCH_INDEX_DIR` builds the corpus there once and reuses it;
//! `TROVE_BENCH_PROFILE=<query>` times only that query, authorized, for a profiler).

#[path = "common/corpus.rs"]
mod corpus;

use std::time::Instant;

use anyhow::Context as _;
use chrono::Utc;
use futures::FutureExt as _;
use trove::index::search::{SearchRequest, search};
use trove::index::writer::WriteOp;
use trove::index::{IndexSchema, SearchIndex};
use trove::permissions::AccessScope;

use corpus::{Generator, ProjectAccess, caller_groups, caller_scope, memory_mib, percentile};

/// Projects of the corpus.
const PROJECTS: usize = 5_000;
/// Versions per project.
const VERSIONS: usize = 4;
/// Versions per writer batch, and documents between two commits: the corpus reaches the
/// writer as a full rebuild hands it over (`REBUILD_BATCH_VERSIONS` and
/// `REBUILD_COMMIT_DOCUMENTS` in `trove::index::indexer`), one batch in flight while the next
/// is generated — so the peak memory measured is the writer's, not batches of the bench's own.
const BATCH_VERSIONS: usize = 64;
const COMMIT_DOCS: usize = 100_000;
/// Page size of every search.
const PAGE_SIZE: usize = 10;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// Builds the corpus into `directory` and returns (documents, seconds).
fn build(
    runtime: &tokio::runtime::Runtime,
    directory: &std::path::Path,
    documents: usize,
) -> anyhow::Result<(usize, f64)> {
    let index = SearchIndex::open(directory, IndexSchema::builtin()?)?;
    let fields = *index.fields();
    let writer = index.writer().clone();
    let per_version = documents.div_ceil(PROJECTS * VERSIONS).max(1);
    let mut generator = Generator::new(42);
    let uploaded = Utc::now();
    let started = Instant::now();
    let mut pending: Vec<WriteOp> = Vec::new();
    let (mut pending_versions, mut uncommitted) = (0, 0);
    let mut in_flight: Option<tokio::task::JoinHandle<trove::index::Result<()>>> = None;
    let mut produced = 0;
    'projects: for project_index in 0..PROJECTS {
        let project = corpus::project_id(project_index);
        let access = ProjectAccess::random(generator.rng());
        for version in 1..=VERSIONS {
            let mut batch = Vec::with_capacity(per_version);
            for file in 0..per_version {
                if produced == documents {
                    break;
                }
                let metadata = generator.metadata(file);
                let document =
                    Generator::index_document(&project, version, metadata, &access, uploaded);
                batch.push(document.to_tantivy(&fields));
                produced += 1;
            }
            pending_versions += 1;
            uncommitted += batch.len();
            pending.push(WriteOp::Replace {
                owner: format!("{project}/v{version}"),
                documents: batch,
            });
            if pending_versions >= BATCH_VERSIONS {
                if let Some(previous) = in_flight.take() {
                    runtime.block_on(previous)??;
                }
                let ops = std::mem::take(&mut pending);
                let queued = if uncommitted >= COMMIT_DOCS {
                    uncommitted = 0;
                    writer.submit(ops)?.boxed()
                } else {
                    writer.submit_uncommitted(ops)?.boxed()
                };
                in_flight = Some(runtime.spawn(queued));
                pending_versions = 0;
            }
            if produced == documents {
                break 'projects;
            }
        }
    }
    if let Some(previous) = in_flight.take() {
        runtime.block_on(previous)??;
    }
    // The last batch commits whatever is still uncommitted.
    runtime.block_on(writer.apply(pending))?;
    // Let merges finish, as a long-running server's index would have.
    index.close();
    Ok((produced, started.elapsed().as_secs_f64()))
}

/// Latencies of one query under both scopes, in milliseconds.
#[derive(Default)]
struct Samples {
    unfiltered: Vec<f64>,
    authorized: Vec<f64>,
}

fn time_search(index: &SearchIndex, scope: &AccessScope, query: &str) -> anyhow::Result<f64> {
    // `prefix:` marks a search-box query whose last word is a prefix (`?prefix=true`).
    let (query, prefix) = match query.strip_prefix("prefix:") {
        Some(rest) => (rest, true),
        None => (query, false),
    };
    let request = SearchRequest {
        query: query.to_owned(),
        size: PAGE_SIZE,
        prefix,
        ..SearchRequest::default()
    };
    let now = Utc::now();
    let started = Instant::now();
    let page = search(index, scope, &request, now).with_context(|| format!("query {query}"))?;
    let elapsed = started.elapsed();
    std::hint::black_box(page);
    Ok(elapsed.as_secs_f64() * 1e3)
}

/// `count` projects the caller may read (so both scopes fetch a full page of hits).
fn readable_projects(
    index: &SearchIndex,
    caller: &AccessScope,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    for candidate in 0..PROJECTS {
        let project = corpus::project_id((candidate * 241 + 17) % PROJECTS);
        let request = SearchRequest {
            query: format!("_extra.project_id:{project}"),
            size: 1,
            ..SearchRequest::default()
        };
        if search(index, caller, &request, Utc::now())?.total > 0 {
            found.push(project);
            if found.len() == count {
                break;
            }
        }
    }
    Ok(found)
}

fn summary(values: &[f64]) -> (f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    (percentile(&sorted, 50.0), percentile(&sorted, 99.0))
}

fn main() -> anyhow::Result<()> {
    let documents = env_usize("TROVE_BENCH_DOCS", 1_000_000);
    let iterations = env_usize("TROVE_BENCH_ITERATIONS", 200);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let directory = tempfile::tempdir()?;
    // `TROVE_BENCH_INDEX_DIR`: build the corpus there once and reuse it on later runs (for
    // profiling a query without rebuilding a million documents each time).
    let kept = std::env::var_os("TROVE_BENCH_INDEX_DIR").map(std::path::PathBuf::from);
    let index_dir = kept
        .clone()
        .unwrap_or_else(|| directory.path().join("index"));

    println!("## search: {documents} documents, {PROJECTS} projects, page size {PAGE_SIZE}");
    let reuse = kept.is_some() && index_dir.join("meta.json").exists();
    let built = if reuse {
        println!("corpus reused from {}", index_dir.display());
        documents
    } else {
        let (built, seconds) = build(&runtime, &index_dir, documents)?;
        let (peak_build, _) = memory_mib();
        println!(
            "corpus built through the writer: {built} docs in {seconds:.1} s ({:.0} docs/s, batches of {BATCH_VERSIONS} versions, commits every {COMMIT_DOCS} docs, merges waited for); peak RSS so far {peak_build:.0} MiB",
            built as f64 / seconds
        );
        built
    };

    // Cold start (issue 18 item 7): opening the index on disk and answering a first query,
    // as `trove serve` does before the start-up reconciliation (page cache warm: the index
    // was just written).
    let opening = Instant::now();
    let index = SearchIndex::open(&index_dir, IndexSchema::builtin()?)?;
    let opened = opening.elapsed().as_secs_f64() * 1e3;
    let first_query = Instant::now();
    search(
        &index,
        &AccessScope::Unrestricted,
        &SearchRequest {
            query: "*".into(),
            size: PAGE_SIZE,
            ..SearchRequest::default()
        },
        Utc::now(),
    )?;
    let first = first_query.elapsed().as_secs_f64() * 1e3;
    let searcher = index.reader().searcher();
    println!(
        "index re-opened: {} docs in {} segments; cold start: open {opened:.0} ms, first query {first:.1} ms",
        searcher.num_docs(),
        searcher.segment_readers().len()
    );
    drop(searcher);

    let caller = caller_scope(7, &caller_groups(3, 50));
    let visible = search(
        &index,
        &caller,
        &SearchRequest {
            query: "*".into(),
            size: 1,
            ..SearchRequest::default()
        },
        Utc::now(),
    )?
    .total;
    println!(
        "caller: 1 user + 50 groups + @public + @authenticated; sees {visible} docs ({:.1} %)",
        100.0 * visible as f64 / built as f64
    );

    // `TROVE_BENCH_PROFILE=<query>`: only that query, authorized, in a loop (for `perf`).
    if let Ok(query) = std::env::var("TROVE_BENCH_PROFILE") {
        let mut samples = Vec::new();
        for _ in 0..iterations {
            samples.push(time_search(&index, &caller, &query)?);
        }
        let (p50, p99) = summary(&samples);
        println!("`{query}` authorized: p50 {p50:.2} ms, p99 {p99:.2} ms");
        index.close();
        return Ok(());
    }

    // Cold: the first query of identity sets never seen (allow-sets built from postings).
    let mut cold = Vec::new();
    for fresh in 0..20 {
        let scope = caller_scope(100 + fresh, &caller_groups(11 + fresh * 3, 50));
        cold.push(time_search(&index, &scope, "title:model")?);
    }
    let (cold_p50, _) = summary(&cold);
    let cold_max = cold.iter().copied().fold(0.0, f64::max);
    println!(
        "cold (first query of 20 new identity sets, title:model): p50 {cold_p50:.2} ms, max {cold_max:.2} ms"
    );

    let rare: Vec<String> = (1_500..1_520).map(corpus::word).collect();
    let broad: Vec<String> = vec![
        "*".into(),
        "title:model".into(),
        "description:training".into(),
        "tags:nlp".into(),
        "title:vision OR description:language".into(),
    ];
    let selective: Vec<Vec<String>> = vec![
        rare.iter().map(|word| format!("title:{word}")).collect(),
        readable_projects(&index, &caller, 20)?
            .into_iter()
            .map(|project| format!("_extra.project_id:{project}"))
            .collect(),
        (300..320)
            .map(|i| format!("description:{} AND tags:cv", corpus::word(i)))
            .collect(),
    ];
    // Free text as people type it: unqualified words over every text field.
    let free_text: Vec<Vec<String>> = vec![
        vec!["model".into()],
        vec!["model training".into()],
        vec!["model training vision".into()],
        vec!["\"model training\"".into()],
        vec![
            "prefix:mod".into(),
            "prefix:trai".into(),
            "prefix:visi".into(),
        ],
        rare.iter().take(10).cloned().collect(),
    ];
    let classes: Vec<(&str, Vec<Vec<String>>)> = vec![
        ("broad", broad.into_iter().map(|q| vec![q]).collect()),
        ("selective", selective),
        ("free text", free_text),
    ];

    // Warm-up: fills the OS page cache and the caller's allow-set cache.
    for (_, queries) in &classes {
        for variants in queries {
            for query in variants {
                time_search(&index, &AccessScope::Unrestricted, query)?;
                time_search(&index, &caller, query)?;
            }
        }
    }

    println!();
    println!(
        "| class | query | unfiltered p50 | unfiltered p99 | authorized p50 | authorized p99 | p99 ratio |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    let mut verdicts = Vec::new();
    for (class, queries) in &classes {
        let mut all = Samples::default();
        for variants in queries {
            let mut samples = Samples::default();
            for iteration in 0..iterations {
                let query = &variants[iteration % variants.len()];
                // Alternate the order so neither scope always runs on a warmer cache.
                if iteration % 2 == 0 {
                    samples.unfiltered.push(time_search(
                        &index,
                        &AccessScope::Unrestricted,
                        query,
                    )?);
                    samples
                        .authorized
                        .push(time_search(&index, &caller, query)?);
                } else {
                    samples
                        .authorized
                        .push(time_search(&index, &caller, query)?);
                    samples.unfiltered.push(time_search(
                        &index,
                        &AccessScope::Unrestricted,
                        query,
                    )?);
                }
            }
            let (u50, u99) = summary(&samples.unfiltered);
            let (a50, a99) = summary(&samples.authorized);
            let label = if variants.len() > 1 {
                format!("{} (+{} variants)", variants[0], variants.len() - 1)
            } else {
                variants[0].clone()
            };
            println!(
                "| {class} | `{label}` | {u50:.2} | {u99:.2} | {a50:.2} | {a99:.2} | {:.2} |",
                a99 / u99
            );
            all.unfiltered.extend(samples.unfiltered);
            all.authorized.extend(samples.authorized);
        }
        let (u50, u99) = summary(&all.unfiltered);
        let (a50, a99) = summary(&all.authorized);
        println!(
            "| **{class}, all** | | **{u50:.2}** | **{u99:.2}** | **{a50:.2}** | **{a99:.2}** | **{:.2}** |",
            a99 / u99
        );
        verdicts.push((*class, a50, a99, a99 / u99));
    }
    let (hits, misses) = index.allow_cache().stats();
    let (peak, current) = memory_mib();
    println!();
    println!("allow-set cache: {hits} hits, {misses} misses");
    println!("memory: peak RSS (VmHWM) {peak:.0} MiB, current RSS {current:.0} MiB");
    println!();
    println!(
        "SPEC §12 (1M docs: authorized p50 ≤ 3 ms, p99 ≤ 20 ms, p99 ratio ≤ 1.5; RSS ≤ 500 MB):"
    );
    for (class, p50, p99, ratio) in verdicts {
        let ok = p50 <= 3.0 && p99 <= 20.0 && ratio <= 1.5;
        println!(
            "  {class}: authorized p50 {p50:.2} ms, p99 {p99:.2} ms, ratio {ratio:.2} → {}",
            if ok { "meets" } else { "SHORT" }
        );
    }
    println!(
        "  memory: peak {peak:.0} MiB → {}",
        if peak * 1.048_576 <= 500.0 {
            "meets"
        } else {
            "SHORT"
        }
    );
    index.close();
    Ok(())
}
