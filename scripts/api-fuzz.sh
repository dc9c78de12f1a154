#!/usr/bin/env bash
# Schema-driven API fuzzing (issue 14): Schemathesis (PyPI) against a real `trove serve` on
# 127.0.0.1 with its own OpenAPI document. Fails on any 5xx and on any answer that does not
# match the documented status codes, content types and schemas.
#
#   scripts/api-fuzz.sh                 bounded run (TROVE_API_FUZZ_EXAMPLES per operation, 10)
#   TROVE_API_FUZZ_EXAMPLES=100 scripts/api-fuzz.sh
#
# Schemathesis is installed into a virtualenv ($TROVE_API_FUZZ_VENV, default
# ~/.cache/trove-schemathesis-venv) when absent. The debug `trove` binary is built if needed.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/trove-target-main}"
venv="${TROVE_API_FUZZ_VENV:-$HOME/.cache/trove-schemathesis-venv}"
examples="${TROVE_API_FUZZ_EXAMPLES:-10}"
schemathesis_version="4.32.5"

if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$schemathesis_version"; then
    echo "== installing schemathesis $schemathesis_version into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$schemathesis_version"
fi

cargo build --locked --quiet --bin trove
binary="$CARGO_TARGET_DIR/debug/trove"

data_dir="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$data_dir"
}
trap cleanup EXIT

admin_password="api-fuzz-$(date +%s)-password"
TROVE_BOOTSTRAP_ADMIN="fuzzadmin:$admin_password" TROVE_LOG=warn \
    TROVE_LOGIN_RATE_LIMIT_PER_USER_IP=0 TROVE_LOGIN_RATE_LIMIT_PER_USER=0 \
    TROVE_LOGIN_RATE_LIMIT_PER_IP=0 TROVE_REGISTER_RATE_LIMIT_PER_IP=0 \
    "$binary" serve --listen "127.0.0.1:$port" --data-dir "$data_dir" >"$data_dir/server.log" 2>&1 &
server_pid=$!
# Ready: storage answers and the start-up reconciliation is over.
for _ in $(seq 1 150); do
    curl -fsS "$base/readyz" >/dev/null 2>&1 && break
    sleep 0.2
done
curl -fsS "$base/readyz" >/dev/null

token="$(curl -fsS -H 'content-type: application/json' \
    -d "{\"username\":\"fuzzadmin\",\"password\":\"$admin_password\"}" "$base/auth/login" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"

# Something to find: a project with a completed version holding a metadata document.
auth=(-H "Authorization: Bearer $token")
curl -fsS "${auth[@]}" -H 'content-type: application/json' \
    -d '{"project_id":"fuzz","title":"Fuzz","type":"MODEL","visibility":"public"}' "$base/projects" >/dev/null
curl -fsS "${auth[@]}" -H 'content-type: application/json' -d '{"version":"v1"}' \
    "$base/projects/fuzz/versions" >/dev/null
curl -fsS "${auth[@]}" -X PUT --data-binary '{"path":"data.bin","title":"fuzz"}' \
    "$base/projects/fuzz/version/v1/files/data.bin.json" >/dev/null
curl -fsS "${auth[@]}" -X PUT --data-binary 'bytes' "$base/projects/fuzz/version/v1/files/data.bin" >/dev/null
curl -fsS "${auth[@]}" -X PUT "$base/projects/fuzz/version/v1/complete" >/dev/null

echo "== schemathesis against $base/openapi.json ($examples examples per operation)"
status=0
# Logout and password change would revoke the token the run uses: one exclusion regex (a
# second --exclude-path-regex replaces the first).
"$venv/bin/st" --no-color run "$base/openapi.json" \
    -H "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
      --exclude-path-regex '^/auth/(logout|password)$' \
    --max-examples "$examples" \
    --seed 14 \
    --request-timeout 20 \
    --phases examples,coverage,fuzzing \
    --generation-deterministic \
    || status=$?
if [ "$status" -ne 0 ]; then
    echo "== server log (tail)"
    tail -n 50 "$data_dir/server.log"
fi
exit "$status"
