#!/usr/bin/env bash
# What the console costs Authorize: the release build with `--console-listen`, loaded by
# examples/load.rs in interleaved rounds with nobody on the console and with a logged-in
# console streaming decisions (`/decisions/stream`, as the live page does). Unwatched, the
# pipeline pays one atomic load per answer (see `audit::live`); watched, it shares the audit
# record (one Arc) onto a broadcast channel that wakes nobody, and the page renders at most 50
# rows a second. benches/console_callgrind.sh counts the same in
# instructions, which this machine's noise does not move.
#
#   bash benches/console_cost.sh
#   ROUNDS=5 SECS=8 CONCURRENCY=16 bash benches/console_cost.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-8}
CONCURRENCY=${CONCURRENCY:-16}
cargo build --release --quiet --bin baton --example load
B=${CARGO_TARGET_DIR:-target}/release
TOKEN=console-bench-token-0123456789
PORT=${PORT:-50081}
HTTP_PORT=${HTTP_PORT:-19181}
ADMIN_PORT=${ADMIN_PORT:-50082}
CONSOLE_PORT=${CONSOLE_PORT:-50083}
work=$(mktemp -d)
BATON_ADMIN_TOKEN=$TOKEN "$B/baton" serve --store-dir "$work/store" --audit-file "$work/audit.jsonl" \
  --listen 127.0.0.1:$PORT --http-listen 127.0.0.1:$HTTP_PORT --admin-listen 127.0.0.1:$ADMIN_PORT \
  --console-listen 127.0.0.1:$CONSOLE_PORT >"$work/serve.log" 2>&1 &
server=$!
watcher=
cleanup() {
  [ -n "$watcher" ] && kill "$watcher" 2>/dev/null || true
  kill "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
until curl -sf -o /dev/null "http://127.0.0.1:$HTTP_PORT/readyz"; do sleep 0.2; done
load() { "$B/examples/load" --server "http://127.0.0.1:$PORT" --concurrency "$CONCURRENCY" --seconds "$SECS" | tail -3; }
load >/dev/null # warm-up
curl -sf -c "$work/jar" -o /dev/null -d "token=$TOKEN" "http://127.0.0.1:$CONSOLE_PORT/login"
unwatched() {
  echo "== round $1: nobody on the console"
  load
}
streaming() {
  curl -sN -b "$work/jar" "http://127.0.0.1:$CONSOLE_PORT/decisions/stream" >"$work/stream.out" &
  watcher=$!
  sleep 1
  echo "== round $1: console open and streaming"
  load
  kill "$watcher"; wait "$watcher" 2>/dev/null || true; watcher=
  echo "   (streamed $(grep -c '^event: decision' "$work/stream.out" || true) rows)"
}
# The order alternates (ABBA): a run's second half is not its first (the audit file grows and
# rotates), and an A/A run of this script showed the second slot slower by itself.
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then
    unwatched "$round"; streaming "$round"
  else
    streaming "$round"; unwatched "$round"
  fi
done
