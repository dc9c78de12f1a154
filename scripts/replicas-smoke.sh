#!/usr/bin/env bash
# The topology of docker-compose.yml without Docker: an S3 server (moto, `pip install
# 'moto[server]'`), two `trove serve` replicas on one bucket with their own data directories
# and the same shared secrets, and nginx with deploy/nginx.conf (upstream names replaced by
# the replicas' local ports). Checks through the proxy and across replicas:
#
#   * both replicas become ready, the bootstrap admin exists once;
#   * a token issued by one replica is accepted by the other (TROVE_JWT_SECRET);
#   * a scroll cursor made by one replica is accepted by the other (TROVE_CURSOR_SECRET);
#   * the sign-in form of one replica is accepted by the other (TROVE_UI_SECRET);
#   * the download 302 (through the proxy) points at TROVE_S3_PUBLIC_ENDPOINT (`localhost`
#     while the replicas use 127.0.0.1) and works there with plain curl.
#
#   scripts/replicas-smoke.sh            (builds the debug binary if needed)
#   TROVE_BINARY=path/to/trove scripts/replicas-smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/trove-target-main}"
binary="${TROVE_BINARY:-}"
if [ -z "$binary" ]; then
    cargo build --locked --quiet --bin trove
    binary="$CARGO_TARGET_DIR/debug/trove"
fi
command -v moto_server >/dev/null || { echo "needs moto_server (pip install 'moto[server]')"; exit 2; }
command -v nginx >/dev/null || { echo "needs nginx (apt-get install nginx-light)"; exit 2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [ -f "$work/nginx/nginx.pid" ]; then kill "$(cat "$work/nginx/nginx.pid")" 2>/dev/null || true; fi
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; for log in "$work"/*.log; do echo "== $log"; tail -20 "$log"; done; exit 1; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

s3_port="$(free_port)"
moto_server -H 127.0.0.1 -p "$s3_port" >"$work/moto.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$s3_port/" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS -X PUT "http://127.0.0.1:$s3_port/trove" >/dev/null || fail "cannot create the bucket"

proxy_port="$(free_port)"
ports=("$(free_port)" "$(free_port)")
password="smoke-admin-password"
for replica in 0 1; do
    mkdir -p "$work/data$replica"
    env TROVE_STORAGE=s3 TROVE_S3_BUCKET=trove TROVE_S3_ENDPOINT="http://127.0.0.1:$s3_port" \
        TROVE_S3_PUBLIC_ENDPOINT="http://localhost:$s3_port" TROVE_S3_REGION=us-east-1 \
        TROVE_S3_PATH_STYLE=true AWS_ACCESS_KEY_ID=smoke AWS_SECRET_ACCESS_KEY=smoke-secret \
        TROVE_PUBLIC_URL="http://127.0.0.1:$proxy_port" \
        TROVE_JWT_SECRET=smoke-jwt-secret-0123456789-abcdefghij \
        TROVE_CURSOR_SECRET=smoke-cursor-secret-0123456789-abcdefg \
        TROVE_UI_SECRET=smoke-ui-secret-0123456789-abcdefghijkl \
        TROVE_AUDIT_CHECKPOINT_SECRET=smoke-audit-secret-0123456789-abcdefgh \
        TROVE_BOOTSTRAP_ADMIN="admin:$password" TROVE_LOG=warn \
        "$binary" serve --listen "127.0.0.1:${ports[$replica]}" --data-dir "$work/data$replica" \
        >"$work/replica$replica.log" 2>&1 &
    pids+=($!)
done
a="http://127.0.0.1:${ports[0]}"
b="http://127.0.0.1:${ports[1]}"
for base in "$a" "$b"; do
    for _ in $(seq 1 300); do curl -fsS "$base/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
    curl -fsS "$base/readyz" >/dev/null || fail "$base not ready"
done

mkdir -p "$work/nginx"
sed -e "s/trove-1:8080/127.0.0.1:${ports[0]}/" -e "s/trove-2:8080/127.0.0.1:${ports[1]}/" \
    -e "s/listen 8080;/listen 127.0.0.1:$proxy_port;/" deploy/nginx.conf >"$work/nginx/site.conf"
cat >"$work/nginx/nginx.conf" <<EOF
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events {}
http {
    access_log off;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    include $work/nginx/site.conf;
}
EOF
nginx -c "$work/nginx/nginx.conf" || fail "nginx did not start"
proxy="http://127.0.0.1:$proxy_port"
for _ in $(seq 1 50); do curl -fsS "$proxy/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

# One admin, whichever replica created it; a token of A works on B.
token_a="$(curl -fsS -H 'content-type: application/json' \
    -d "{\"username\":\"admin\",\"password\":\"$password\"}" "$a/auth/login" | json '["access_token"]')"
[ "$(curl -fsS -H "Authorization: Bearer $token_a" "$b/auth/me" | json '["username"]')" = admin ] ||
    fail "B refuses A's token"
echo "ok: a token of replica A is accepted by replica B"
auth=(-H "Authorization: Bearer $token_a")

# Through the proxy: a project, a version, a file, completed. (An explicit content type:
# curl's default, form-urlencoded, is stored as the object's type, and moto's web server
# consumes form bodies, storing an empty object.)
curl -fsS "${auth[@]}" -H 'content-type: application/json' \
    -d '{"project_id":"smoke","title":"Smoke","type":"MODEL","visibility":"private"}' "$proxy/projects" >/dev/null
curl -fsS "${auth[@]}" -H 'content-type: application/json' \
    -d '{"version":"v1","changelog":"first"}' "$proxy/projects/smoke/versions" >/dev/null
for number in 1 2 3; do
    printf '{"path":"doc%s.json","title":"smoke document"}' "$number" >"$work/doc$number.json"
    curl -fsS "${auth[@]}" -H "content-type: application/octet-stream" -X PUT --data-binary "@$work/doc$number.json" \
        "$proxy/projects/smoke/version/v1/files/doc$number.json" >/dev/null || fail "upload $number"
done
printf 'weights' >"$work/model.bin"
curl -fsS "${auth[@]}" -H "content-type: application/octet-stream" -X PUT --data-binary "@$work/model.bin" \
    "$proxy/projects/smoke/version/v1/files/model.bin" >/dev/null || fail "upload model.bin"
curl -fsS "${auth[@]}" -X PUT "$proxy/projects/smoke/version/v1/complete" >/dev/null || fail "complete"

# The 302 names the public endpoint and works there.
location="$(curl -sS -o /dev/null -w '%{redirect_url}' "${auth[@]}" "$proxy/files/smoke%3Amodel.bin%40v1")"
case "$location" in
    "http://localhost:$s3_port/"*) ;;
    *) fail "the download redirect is not signed for the public endpoint: $location" ;;
esac
got="$(curl -sS "$location")"
[ "$got" = weights ] || fail "the presigned URL does not work: $location answered '$got'; streamed: '$(curl -sS "${auth[@]}" "$proxy/files/smoke%3Amodel.bin%40v1?redirect=false")'; headers: $(curl -sS -D - -o /dev/null "$location")"
echo "ok: the download 302 names TROVE_S3_PUBLIC_ENDPOINT and works there"

# A cursor of the replica holding the documents, served by the other one. The search runs on
# whichever replica indexed them (each replica indexes its own writes at once).
search=""
for base in "$a" "$b"; do
    for _ in $(seq 1 50); do
        answer="$(curl -fsS "${auth[@]}" "$base/search?q=title:smoke&size=1")"
        [ "$(echo "$answer" | json '["total"]')" -ge 3 ] && { search="$base"; break 2; }
        sleep 0.1
    done
done
[ -n "$search" ] || fail "no replica found the documents"
other="$a"; [ "$search" = "$a" ] && other="$b"
next="$(echo "$answer" | json '["next"]')"
status="$(curl -sS -o "$work/page2.json" -w '%{http_code}' "${auth[@]}" "$other$next")"
[ "$status" = 200 ] || fail "the other replica refused the cursor: $status $(cat "$work/page2.json")"
echo "ok: a cursor of one replica is accepted by the other"

# The sign-in form of A, posted to B.
form="$(curl -fsS -c "$work/cookies" "$a/ui/login")"
csrf="$(echo "$form" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' | head -1)"
status="$(curl -sS -o /dev/null -w '%{http_code}' -b "$work/cookies" \
    --data-urlencode username=admin --data-urlencode "password=$password" \
    --data-urlencode "csrf=$csrf" "$b/ui/login")"
[ "$status" = 303 ] || fail "B refused A's sign-in form: $status"
echo "ok: the sign-in form of one replica is accepted by the other"
echo "replicas smoke test passed"
