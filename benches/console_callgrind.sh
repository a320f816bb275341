#!/usr/bin/env bash
# What the console costs the decision path, in instructions (callgrind): repeatable on a noisy
# machine where the wall-clock rounds of benches/console_cost.sh are not. The release server
# (defaults: cache on, audit file on) runs under `valgrind --tool=callgrind` with one worker and
# answers N cached Authorize requests (h2load, one stream) in three setups:
#
#   no console      no `--console-listen`
#   unwatched       the console listening, nobody on its live page
#   streaming       a logged-in console streaming every decision (`/decisions/stream`)
#
# Each row gives the instructions of `Pipeline::decide` (inclusive: conversion to answer and
# audit record, the live feed included) per request, the part of it spent recording, and the
# whole process per request (which, streaming, includes the console rendering each decision
# for the browser on its own task, off the decision path).
#
#   bash benches/console_callgrind.sh          # N=2000
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-2000}
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install valgrind" >&2; exit 1; }
command -v h2load >/dev/null || { echo "h2load is missing: apt-get install nghttp2-client" >&2; exit 1; }
cargo build --release --quiet --bin baton --example door_bodies
B=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
"$B/examples/door_bodies" "$work"
TOKEN=console-bench-token-0123456789
GRPC=http://127.0.0.1:50061
HTTP=http://127.0.0.1:19061
CONSOLE=http://127.0.0.1:50063

# Prints "decide record total" instructions of one run answering `count` requests.
run() {
  local setup=$1 count=$2 pid watcher= flags=
  [ "$setup" != none ] && flags="--console-listen 127.0.0.1:50063"
  rm -rf "$work/store" "$work/audit.jsonl"* "$work"/callgrind.out.*
  # shellcheck disable=SC2086
  BATON_ADMIN_TOKEN=$TOKEN BATON_LOG=warn TOKIO_WORKER_THREADS=1 valgrind --tool=callgrind \
    --callgrind-out-file="$work/callgrind.out.%p" "$B/baton" serve $flags \
    --store-dir "$work/store" --audit-file "$work/audit.jsonl" \
    --listen 127.0.0.1:50061 --http-listen 127.0.0.1:19061 --admin-listen 127.0.0.1:50062 \
    >"$work/log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do curl -sf $HTTP/readyz >/dev/null && break; sleep 0.1; done
  if [ "$setup" = streaming ]; then
    curl -sf -c "$work/jar" -o /dev/null -d "token=$TOKEN" "$CONSOLE/login"
    curl -sN -b "$work/jar" "$CONSOLE/decisions/stream" >"$work/stream.out" &
    watcher=$!
    sleep 2
  fi
  if [ "$count" -gt 0 ]; then
    h2load -c 1 -m 1 -n "$count" -d "$work/human-led.grpc" -H 'content-type: application/grpc' \
      -H 'te: trailers' "$GRPC/baton.v1.DecisionService/Authorize" >/dev/null
  fi
  if [ -n "$watcher" ]; then
    sleep 1
    kill "$watcher"
    wait "$watcher" 2>/dev/null || true
    echo "  (the console streamed $(grep -c '^event: decision' "$work/stream.out" || true) decisions)" >&2
  fi
  kill -INT $pid; wait $pid || true
  local out total decide record
  out=$(ls "$work"/callgrind.out.*)
  total=$(grep -h '^summary:' "$out" | awk '{print $2}')
  # Inclusive cost of the pipeline's decide and record futures (their poll closures).
  callgrind_annotate --inclusive=yes --threshold=100 "$out" >"$work/annotated" 2>/dev/null
  decide=$(incl 'baton::pipeline::Pipeline::decide::\{\{closure\}\}')
  record=$(incl 'baton::pipeline::Pipeline::record::\{\{closure\}\}')
  echo "$decide $record $total"
}

# The largest inclusive count of the functions matching $1 (0 when none ran).
incl() {
  { grep -E "$1" "$work/annotated" || true; } | awk '{gsub(",", "", $1); if ($1 + 0 > m) m = $1 + 0} END {print m + 0}'
}

printf '%-10s %12s %12s %14s   (per request, %d cached Authorize, human-led, signed verdict)\n' \
  setup decide record "whole process" "$N"
for setup in none unwatched streaming; do
  read -r _ _ idle < <(run "$setup" 0)
  read -r decide record total < <(run "$setup" "$N")
  printf '%-10s %12d %12d %14d\n' "$setup" $((decide / N)) $((record / N)) $(((total - idle) / N))
done
