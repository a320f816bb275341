#!/usr/bin/env bash
# What TLS costs Authorize: the release server plaintext, with TLS, with mutual TLS, and with
# mutual TLS whose client certificate is held to the caller (workload identities), side by
# side in one run, rounds interleaved. The server runs on core 0 with one worker, the load
# generator (examples/load.rs: 4 long-lived HTTP/2 connections, so handshakes are few) on
# core 1. For each row: throughput and latency from the load run, and the server's CPU time
# (user + system, from /proc) per request it answered.
#
#   bash benches/tls_cost.sh                 # 3 rounds of 10 s
#   ROUNDS=5 SECS=8 CONCURRENCY=16 bash benches/tls_cost.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-10}
CONCURRENCY=${CONCURRENCY:-16}
cargo build --release --quiet --bin baton --example load
B=${CARGO_TARGET_DIR:-target}/release
PKI=$(mktemp -d)
trap 'rm -rf "$PKI"' EXIT
$B/baton demo-pki --out "$PKI/pki" >/dev/null
P=$PKI/pki

TLS="--tls-cert $P/server.pem --tls-key $P/server.key"
MTLS="$TLS --client-ca $P/ca.pem --client-auth required --http-client-auth optional"
AGENT="--ca $P/ca.pem --client-cert $P/agent-user-assistant.pem --client-key $P/agent-user-assistant.key"
# label | server flags | load flags
ROWS=(
  "plaintext|| --server http://127.0.0.1:50051"
  "tls|$TLS| --server https://127.0.0.1:50051 --ca $P/ca.pem"
  "mtls|$MTLS| --server https://127.0.0.1:50051 $AGENT"
  "mtls-workload-identity|$MTLS --workload-identity spiffe://corp.example/agent/{id}=Agent:{id}| --server https://127.0.0.1:50051 $AGENT"
)

# utime + stime, in clock ticks; the comm field has no spaces here.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK_US=$(( 1000000 / $(getconf CLK_TCK) ))

ready() {
  for _ in $(seq 100); do
    curl -sf --cacert "$P/ca.pem" https://localhost:19090/readyz >/dev/null 2>&1 && return
    curl -sf http://127.0.0.1:19090/readyz >/dev/null 2>&1 && return
    sleep 0.1
  done
}

run() {
  local label=$1 flags=$2 load=$3 dir pid before after out requests
  dir=$(mktemp -d)
  # shellcheck disable=SC2086
  BATON_LOG=warn TOKIO_WORKER_THREADS=1 taskset -c 0 $B/baton serve \
    --listen 127.0.0.1:50051 --http-listen 127.0.0.1:19090 --store-dir "$dir" $flags \
    >"$dir/log" 2>&1 &
  pid=$!
  ready
  # shellcheck disable=SC2086
  taskset -c 1 $B/examples/load --concurrency "$CONCURRENCY" --seconds 2 $load >/dev/null
  before=$(cpu_ticks $pid)
  # shellcheck disable=SC2086
  out=$(taskset -c 1 $B/examples/load --concurrency "$CONCURRENCY" --seconds "$SECS" --label "$label" $load)
  after=$(cpu_ticks $pid)
  kill -INT $pid; wait $pid || true
  rm -rf "$dir"
  requests=$(echo "$out" | grep -o '([0-9]* requests' | tr -dc 0-9)
  echo "$out" | awk -v cpu="$(( (after - before) * TICK_US ))" -v n="$requests" \
    '{printf "%s  server CPU %.1f µs/request\n", $0, cpu / n}'
}

for _ in $(seq "$ROUNDS"); do
  for row in "${ROWS[@]}"; do
    IFS='|' read -r label flags load <<<"$row"
    run "$label" "$flags" "$load"
  done
done
