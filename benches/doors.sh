#!/usr/bin/env bash
# The three doors side by side in one run, rounds interleaved: gRPC `Authorize`, Envoy
# `ext_authz` `Check` and AuthZEN `POST /access/v1/evaluation`, each asking the same question
# (examples/door_bodies.rs: alice asks her assistant for `reports.generate`), so all three share
# one cache entry and one decision. One release server on core 0 with one worker, h2load on
# core 1 (h2c, one connection, CONCURRENCY streams). Rows: a warm in-process cache, and every
# question evaluated (`--cache-capacity 0`); the audit trail is off so the rows measure the
# door and the decision path. Per row: requests/s, median and p99 latency (from h2load's
# per-request log), and the server's CPU time per request (user + system, from /proc).
#
#   bash benches/doors.sh
#   ROUNDS=5 SECS=8 CONCURRENCY=16 bash benches/doors.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-8}
CONCURRENCY=${CONCURRENCY:-16}
command -v h2load >/dev/null || { echo "h2load is missing: apt-get install nghttp2-client" >&2; exit 1; }
cargo build --release --quiet --bin baton --example door_bodies
B=target/release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
$B/examples/door_bodies "$work"
# Envoy's check names its caller in a header the (loopback) gateway vouches for.
printf '[envoy]\ntrust_headers = true\n' >"$work/mapping.toml"

GRPC=http://127.0.0.1:50051
HTTP=http://127.0.0.1:19090
# door|url|body|content type
DOORS=(
  "authorize|$GRPC/baton.v1.DecisionService/Authorize|authorize.grpc|application/grpc"
  "ext_authz|$GRPC/envoy.service.auth.v3.Authorization/Check|check.grpc|application/grpc"
  "authzen|$HTTP/access/v1/evaluation|evaluation.json|application/json"
)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK_US=$(( 1000000 / $(getconf CLK_TCK) ))

# Asks each door once and checks it answers ALLOW: the rows must measure allows.
allowed() {
  local door=$1 url=$2 body=$3 type=$4 reply
  reply=$(curl -s --http2-prior-knowledge -H "content-type: $type" -H 'te: trailers' \
    --data-binary "@$work/$body" "$url" | tr -d '\0' | tr -c '[:print:]' ' ')
  case $door in
    authorize) grep -q 'reports.generate' <<<"$reply" ;;
    ext_authz) grep -q 'x-baton-verdict' <<<"$reply" ;;
    authzen) grep -q '"decision":true' <<<"$reply" ;;
  esac || { echo "$door does not answer ALLOW: $reply" >&2; exit 1; }
}

load() {
  local url=$1 body=$2 type=$3 secs=$4 log=$5
  # h2load appends to its log file: each row counts its own requests only.
  rm -f "$log"
  taskset -c 1 h2load -c 1 -m "$CONCURRENCY" -D "$secs" -d "$work/$body" \
    -H "content-type: $type" -H 'te: trailers' --log-file="$log" "$url" >"$log.out"
}

row() {
  local label=$1 flags=$2 pid before after n
  # shellcheck disable=SC2086
  BATON_LOG=warn TOKIO_WORKER_THREADS=1 taskset -c 0 $B/baton serve --audit off $flags \
    --gateway-mapping "$work/mapping.toml" --listen 127.0.0.1:50051 \
    --http-listen 127.0.0.1:19090 --admin-listen 127.0.0.1:50052 --store-dir "$work/store" \
    >"$work/log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf $HTTP/readyz >/dev/null && break; sleep 0.1; done
  curl -sf $HTTP/readyz >/dev/null || { echo "the server did not start:" >&2; cat "$work/log" >&2; exit 1; }
  for entry in "${DOORS[@]}"; do
    IFS='|' read -r door url body type <<<"$entry"
    allowed "$door" "$url" "$body" "$type"
    load "$url" "$body" "$type" 2 "$work/warm"
  done
  for entry in "${DOORS[@]}"; do
    IFS='|' read -r door url body type <<<"$entry"
    before=$(cpu_ticks $pid)
    load "$url" "$body" "$type" "$SECS" "$work/requests"
    after=$(cpu_ticks $pid)
    n=$(wc -l <"$work/requests")
    failed=$(grep -o '[0-9]* failed' "$work/requests.out" | head -1 | tr -dc 0-9)
    # Columns: start (µs since the epoch), HTTP status, duration (µs).
    cut -f3 "$work/requests" | sort -n | awk -v label="$label $door" -v secs="$SECS" \
      -v cpu="$(( (after - before) * TICK_US ))" -v failed="${failed:-0}" \
      '{ d[NR] = $1 } END {
         printf "%-22s %8.0f req/s  median %6.0f µs  p99 %6.0f µs  server CPU %5.1f µs/request  (%d requests, %d failed)\n",
           label, NR / secs, d[int(NR * 0.5) + 1], d[int(NR * 0.99) + 1], cpu / NR, NR, failed }'
  done
  kill -INT $pid; wait $pid || true
  rm -rf "$work/store"
}

for _ in $(seq "$ROUNDS"); do
  row cached ""
  row evaluated "--cache-capacity 0"
done
