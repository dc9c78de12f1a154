#!/usr/bin/env bash
# Trove benchmarks (SPEC §12): builds the bench binaries in release mode and prints one
# combined Markdown report on stdout.
#
#   scripts/bench.sh            full sizes: 1,000,000 documents for search latency,
#                               50,000 for indexing, 100,000 for HTTP (10 s)
#   scripts/bench.sh --quick    100,000 / 10,000 / 20,000 documents, HTTP 5 s
#   scripts/bench.sh search     only some of: search indexing http live download upload ui soak
#                               replicas
#                               (soak is never in the default set: TROVE_SOAK_SECONDS,
#                               TROVE_SOAK_CONNECTIONS, TROVE_SOAK_ACCOUNTS; see benches/soak.rs)
#
# Sizes can be overridden with TROVE_BENCH_DOCS, TROVE_BENCH_ITERATIONS,
# TROVE_BENCH_INDEX_DOCS, TROVE_BENCH_S3_DOCS, TROVE_BENCH_HTTP_DOCS, TROVE_BENCH_HTTP_SECONDS,
# TROVE_BENCH_ROUTE_PROJECTS, TROVE_BENCH_ROUTE_SECONDS (http: the read routes),
# TROVE_BENCH_LIVE_DOCS, TROVE_BENCH_LIVE_ROUNDS, TROVE_BENCH_LIVE_SECONDS (live: freshness,
# logins), TROVE_BENCH_UPLOAD_MIB (upload). The release build goes to $CARGO_TARGET_DIR when set.
# Run on an otherwise idle machine: the numbers are latencies and throughputs.
set -euo pipefail
cd "$(dirname "$0")/.."

benches=()
for argument in "$@"; do
    case "$argument" in
        --quick)
            export TROVE_BENCH_DOCS="${TROVE_BENCH_DOCS:-100000}"
            export TROVE_BENCH_INDEX_DOCS="${TROVE_BENCH_INDEX_DOCS:-10000}"
            export TROVE_BENCH_HTTP_DOCS="${TROVE_BENCH_HTTP_DOCS:-20000}"
            export TROVE_BENCH_HTTP_SECONDS="${TROVE_BENCH_HTTP_SECONDS:-5}"
            export TROVE_BENCH_ROUTE_PROJECTS="${TROVE_BENCH_ROUTE_PROJECTS:-2000}"
            export TROVE_BENCH_ROUTE_SECONDS="${TROVE_BENCH_ROUTE_SECONDS:-3}"
            export TROVE_BENCH_LIVE_DOCS="${TROVE_BENCH_LIVE_DOCS:-5000}"
            export TROVE_BENCH_LIVE_ROUNDS="${TROVE_BENCH_LIVE_ROUNDS:-20}"
            export TROVE_BENCH_LIVE_SECONDS="${TROVE_BENCH_LIVE_SECONDS:-5}"
            ;;
        search | indexing | http | download | upload | ui | live | soak | replicas) benches+=("$argument") ;;
        -h | --help)
            sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "unknown argument: $argument (try --help)" >&2
            exit 2
            ;;
    esac
done
if [ ${#benches[@]} -eq 0 ]; then
    benches=(indexing search http live download upload ui replicas)
fi

args=()
for bench in "${benches[@]}"; do
    args+=(--bench "$bench")
done
# Build first so compilation output does not interleave with the report.
cargo bench --no-run "${args[@]}" >&2

echo "# Trove benchmark report"
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(uname -sr), $(rustc --version)"
echo "git $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
for bench in "${benches[@]}"; do
    echo
    cargo bench --quiet --bench "$bench"
done
