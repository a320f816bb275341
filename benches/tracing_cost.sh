#!/usr/bin/env bash
# What tracing costs Authorize: the release server with span export off and on, side by side
# in one run, rounds interleaved. The server runs on core 0 with one worker; the load generator
# and a span sink that drops what it receives share core 1. For each row: throughput and
# latency from examples/load.rs, and the server's CPU time (user + system, from /proc) per
# request it answered.
#
#   bash benches/tracing_cost.sh                 # 3 rounds of 10 s
#   ROUNDS=5 SECS=8 CONCURRENCY=16 bash benches/tracing_cost.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-10}
CONCURRENCY=${CONCURRENCY:-16}
SINK=127.0.0.1:4317
cargo build --release --quiet --bin baton --example load --example otlp_sink
B=target/release

# label, then the environment of the server
ROWS=(
  "export-off|"
  "export-on-default|OTEL_EXPORTER_OTLP_ENDPOINT=http://$SINK"
  "export-on-every-call|OTEL_EXPORTER_OTLP_ENDPOINT=http://$SINK OTEL_TRACES_SAMPLER=parentbased_always_on"
  "export-on-none-kept|OTEL_EXPORTER_OTLP_ENDPOINT=http://$SINK OTEL_TRACES_SAMPLER=always_off"
)

# utime + stime, in clock ticks; the comm field has no spaces here.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK_US=$(( 1000000 / $(getconf CLK_TCK) ))

run() {
  local label=$1 envs=$2 dir sink pid before after out requests
  dir=$(mktemp -d)
  nice -n 19 taskset -c 1 $B/examples/otlp_sink --listen $SINK >/dev/null 2>&1 &
  sink=$!
  # shellcheck disable=SC2086
  env $envs BATON_LOG=warn TOKIO_WORKER_THREADS=1 taskset -c 0 $B/baton serve \
    --listen 127.0.0.1:50051 --http-listen 127.0.0.1:19090 --store-dir "$dir" \
    >"$dir/log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf 127.0.0.1:19090/readyz >/dev/null && break; sleep 0.1; done
  taskset -c 1 $B/examples/load --concurrency "$CONCURRENCY" --seconds 2 >/dev/null
  before=$(cpu_ticks $pid)
  out=$(taskset -c 1 $B/examples/load --concurrency "$CONCURRENCY" --seconds "$SECS" --label "$label")
  after=$(cpu_ticks $pid)
  kill -INT $pid; wait $pid || true
  kill -INT $sink; wait $sink || true
  rm -rf "$dir"
  requests=$(echo "$out" | grep -o '([0-9]* requests' | tr -dc 0-9)
  echo "$out" | awk -v cpu="$(( (after - before) * TICK_US ))" -v n="$requests" \
    '{printf "%s  server CPU %.1f µs/request\n", $0, cpu / n}'
}

for _ in $(seq "$ROUNDS"); do
  for row in "${ROWS[@]}"; do run "${row%%|*}" "${row#*|}"; done
done
