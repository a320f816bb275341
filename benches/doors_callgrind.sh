#!/usr/bin/env bash
# Instructions per request of each door, under callgrind: repeatable on a noisy machine where
# wall-clock rows are not. For each door, the release server runs under
# `valgrind --tool=callgrind` with one worker, answers N requests of that door (h2load, one
# stream, the same question as benches/doors.sh) and stops; a run that answers none gives the
# start-up and shutdown cost, which is subtracted. Rows: a warm cache (one evaluation, then
# cached answers) and every question evaluated (`--cache-capacity 0`).
#
#   bash benches/doors_callgrind.sh          # N=2000
#
# With BASELINE (another commit's release `baton`), only the `Authorize` door is counted, for
# that binary and this tree's side by side; each serves the bundle of its own tree
# (BASELINE_BUNDLE, by default the `policies` beside the baseline's `target`):
#
#   git worktree add /tmp/base <commit> && (cd /tmp/base && cargo build --release --bin baton)
#   BASELINE=/tmp/base/target/release/baton bash benches/doors_callgrind.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-2000}
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install valgrind" >&2; exit 1; }
command -v h2load >/dev/null || { echo "h2load is missing: apt-get install nghttp2-client" >&2; exit 1; }
cargo build --release --quiet --bin baton --example door_bodies
B=target/release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
$B/examples/door_bodies "$work"
printf '[envoy]\ntrust_headers = true\n' >"$work/mapping.toml"
GRPC=http://127.0.0.1:50051
HTTP=http://127.0.0.1:19090

# Total instructions of one run of BIN that answers `count` requests of one door.
BIN=$B/baton
instructions() {
  local flags=$1 url=$2 body=$3 type=$4 count=$5 pid
  rm -f "$work"/callgrind.out.*
  # shellcheck disable=SC2086
  BATON_LOG=warn TOKIO_WORKER_THREADS=1 valgrind --tool=callgrind \
    --callgrind-out-file="$work/callgrind.out.%p" "$BIN" serve --audit off $flags \
    --listen 127.0.0.1:50051 --http-listen 127.0.0.1:19090 --admin-listen 127.0.0.1:50052 \
    --store-dir "$work/store" \
    >"$work/log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do curl -sf $HTTP/readyz >/dev/null && break; sleep 0.1; done
  if [ "$count" -gt 0 ]; then
    h2load -c 1 -m 1 -n "$count" -d "$work/$body" -H "content-type: $type" \
      -H 'te: trailers' "$url" >/dev/null
  fi
  kill -INT $pid; wait $pid || true
  rm -rf "$work/store"
  grep -h '^summary:' "$work"/callgrind.out.* | awk '{s += $2} END {print s}'
}

if [ -n "${BASELINE:-}" ]; then
  BASELINE_BUNDLE=${BASELINE_BUNDLE:-$(dirname "$BASELINE")/../../policies}
  for mode in cached evaluated; do
    for build in baseline this; do
      BIN=$B/baton bundle=policies
      [ "$build" = baseline ] && BIN=$BASELINE bundle=$BASELINE_BUNDLE
      flags="--bundle $bundle"
      [ "$mode" = evaluated ] && flags="$flags --cache-capacity 0"
      idle=$(instructions "$flags" "$HTTP/readyz" "" "" 0)
      total=$(instructions "$flags" "$GRPC/baton.v1.DecisionService/Authorize" authorize.grpc \
        application/grpc "$N")
      echo "$mode authorize $build: $(( (total - idle) / N )) instructions/request ($N requests)"
    done
  done
  exit 0
fi

for mode in cached evaluated; do
  flags="--gateway-mapping $work/mapping.toml"
  [ "$mode" = evaluated ] && flags="$flags --cache-capacity 0"
  idle=$(instructions "$flags" "$HTTP/readyz" "" "" 0)
  for entry in \
    "authorize|$GRPC/baton.v1.DecisionService/Authorize|authorize.grpc|application/grpc" \
    "ext_authz|$GRPC/envoy.service.auth.v3.Authorization/Check|check.grpc|application/grpc" \
    "authzen|$HTTP/access/v1/evaluation|evaluation.json|application/json"; do
    IFS='|' read -r door url body type <<<"$entry"
    total=$(instructions "$flags" "$url" "$body" "$type" "$N")
    echo "$mode $door: $(( (total - idle) / N )) instructions/request ($N requests)"
  done
done
