#!/usr/bin/env bash
# Authorize throughput and latency of two `baton` binaries side by side, in one run, rounds
# interleaved: this tree's release build against BASELINE (the release build of another commit,
# such as the one before a change). Each server runs on core 0 with one worker; the load
# generator (this tree's examples/load.rs) runs on core 1. Rows: a warm in-process cache, and
# every question evaluated (`--cache-capacity 0`), both with the audit trail off so the rows
# measure the decision path; at CONCURRENCY callers, and one at a time for the latency floor.
# For each row: throughput and latency percentiles from the load generator, and the server's CPU
# time (user + system, from /proc) per request.
#
# Each binary serves the example bundle of its own tree (BASELINE_BUNDLE, by default the
# `policies` beside the baseline's `target`), since a bundle's test cases follow its release.
#
#   git worktree add /tmp/base <commit> && (cd /tmp/base && cargo build --release --bin baton)
#   BASELINE=/tmp/base/target/release/baton bash benches/side_by_side.sh
#   ROUNDS=5 SECS=8 CONCURRENCY=16 BASELINE=... BASELINE_BUNDLE=/tmp/base/policies bash benches/side_by_side.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${BASELINE:?set BASELINE to the baton binary to compare against}"
BASELINE_BUNDLE=${BASELINE_BUNDLE:-$(dirname "$BASELINE")/../../policies}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-8}
CONCURRENCY=${CONCURRENCY:-16}
cargo build --release --quiet --bin baton --example load
B=target/release

# label|binary|flags
ROWS=(
  "baseline-cached|$BASELINE|--bundle $BASELINE_BUNDLE"
  "this-cached|$B/baton|--bundle policies"
  "baseline-evaluated|$BASELINE|--bundle $BASELINE_BUNDLE --cache-capacity 0"
  "this-evaluated|$B/baton|--bundle policies --cache-capacity 0"
)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK_US=$(( 1000000 / $(getconf CLK_TCK) ))

run() {
  local label=$1 binary=$2 flags=$3 concurrency=$4 dir pid before after out requests
  dir=$(mktemp -d)
  # shellcheck disable=SC2086
  BATON_LOG=warn TOKIO_WORKER_THREADS=1 taskset -c 0 "$binary" serve --audit off $flags \
    --listen 127.0.0.1:50051 --http-listen 127.0.0.1:19090 --store-dir "$dir" \
    >"$dir/log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf 127.0.0.1:19090/readyz >/dev/null && break; sleep 0.1; done
  if ! curl -sf 127.0.0.1:19090/readyz >/dev/null; then
    echo "$label: the server did not start:" >&2; cat "$dir/log" >&2; exit 1
  fi
  taskset -c 1 $B/examples/load --concurrency "$concurrency" --seconds 2 >/dev/null
  before=$(cpu_ticks $pid)
  out=$(taskset -c 1 $B/examples/load --concurrency "$concurrency" \
    --seconds "$SECS" --label "$label c=$concurrency")
  after=$(cpu_ticks $pid)
  kill -INT $pid; wait $pid || true
  rm -rf "$dir"
  requests=$(echo "$out" | grep -o '([0-9]* requests' | tr -dc 0-9)
  echo "$out" | awk -v cpu="$(( (after - before) * TICK_US ))" -v n="$requests" \
    '{printf "%s  server CPU %.1f µs/request\n", $0, cpu / n}'
}

for _ in $(seq "$ROUNDS"); do
  for row in "${ROWS[@]}"; do
    IFS='|' read -r label binary flags <<<"$row"
    run "$label" "$binary" "$flags" "$CONCURRENCY"
    run "$label" "$binary" "$flags" 1
  done
done
