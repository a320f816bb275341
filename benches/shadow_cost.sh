#!/usr/bin/env bash
# What shadow evaluation costs Authorize: the release build served three ways, rounds
# interleaved: no shadow (`--shadow-sample 0`), a shadow bundle at the default sample (0.05),
# and a shadow bundle at sample 1.0 (every request decided twice). The server runs on core 0
# with one worker (`TOKIO_WORKER_THREADS=1`; the shadow worker is a thread of its own, at idle
# priority, on the same core); the load generator (examples/load.rs) runs on core 1. Rows with
# a warm in-process cache and with every question evaluated (`--cache-capacity 0`); audit off.
# The shadow bundle is the shipped one with one TTL shortened, so a share of the compared
# requests disagree and the disagreement path runs too.
#
#   bash benches/shadow_cost.sh
#   ROUNDS=5 SECS=8 CONCURRENCY=16 bash benches/shadow_cost.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-8}
CONCURRENCY=${CONCURRENCY:-16}
cargo build --release --quiet --bin baton --example load
B=${CARGO_TARGET_DIR:-target}/release
export BATON_ADMIN_TOKEN=shadow-bench-token-0123456789
# Ports of their own, so a run can share the machine with another bench's server.
PORT=${PORT:-50071}
HTTP_PORT=${HTTP_PORT:-19171}
ADMIN_PORT=${ADMIN_PORT:-50072}
export BATON_ADMIN_SERVER=http://127.0.0.1:$ADMIN_PORT

shadow_dir=$(mktemp -d)
cp policies/* "$shadow_dir"/
rm "$shadow_dir"/tests.json
sed -i 's/@ttl("900")/@ttl("600")/' "$shadow_dir"/reporting.cedar

# label|sample|push a shadow|extra flags
ROWS=(
  "off-cached|0|no|"
  "default-cached|0.05|yes|"
  "full-cached|1|yes|"
  "off-evaluated|0|no|--cache-capacity 0"
  "default-evaluated|0.05|yes|--cache-capacity 0"
  "full-evaluated|1|yes|--cache-capacity 0"
)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK_US=$(( 1000000 / $(getconf CLK_TCK) ))

run() {
  local label=$1 sample=$2 shadow=$3 flags=$4 dir pid before after out requests status
  dir=$(mktemp -d)
  # shellcheck disable=SC2086
  BATON_LOG=warn TOKIO_WORKER_THREADS=1 taskset -c 0 "$B/baton" serve --audit off --bundle policies \
    --shadow-sample "$sample" $flags \
    --listen 127.0.0.1:$PORT --http-listen 127.0.0.1:$HTTP_PORT --admin-listen 127.0.0.1:$ADMIN_PORT \
    --store-dir "$dir" >"$dir/log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf 127.0.0.1:$HTTP_PORT/readyz >/dev/null && break; sleep 0.1; done
  if ! curl -sf 127.0.0.1:$HTTP_PORT/readyz >/dev/null; then
    echo "$label: the server did not start:" >&2; cat "$dir/log" >&2; exit 1
  fi
  if [ "$shadow" = yes ]; then
    taskset -c 1 "$B/baton" policy push --shadow -m bench "$shadow_dir" >/dev/null
  fi
  taskset -c 1 "$B/examples/load" --server "http://127.0.0.1:$PORT" --concurrency "$CONCURRENCY" \
    --seconds 2 >/dev/null
  before=$(cpu_ticks $pid)
  out=$(taskset -c 1 "$B/examples/load" --server "http://127.0.0.1:$PORT" --concurrency "$CONCURRENCY" \
    --seconds "$SECS" --label "$label c=$CONCURRENCY")
  after=$(cpu_ticks $pid)
  status=""
  if [ "$shadow" = yes ]; then
    status=$(taskset -c 1 "$B/baton" policy shadow status --json \
      | tr -d ' \n' | grep -o '"compared":[0-9]*\|"disagreed":[0-9]*\|"dropped":[0-9]*' | tr '\n' ' ')
  fi
  kill -INT $pid; wait $pid || true
  rm -rf "$dir"
  requests=$(echo "$out" | grep -o '([0-9]* requests' | tr -dc 0-9)
  echo "$out" | awk -v cpu="$(( (after - before) * TICK_US ))" -v n="$requests" -v s="$status" \
    '{printf "%s  server CPU %.1f µs/request  %s\n", $0, cpu / n, s}'
}

for _ in $(seq "$ROUNDS"); do
  for row in "${ROWS[@]}"; do
    IFS='|' read -r label sample shadow flags <<<"$row"
    run "$label" "$sample" "$shadow" "$flags"
  done
done
rm -rf "$shadow_dir"
