#!/usr/bin/env bash
# Baton against the transport's floor, side by side in one run. Every server runs on core 0
# with one tokio worker; h2load runs on core 1 and sends every server the same bytes. Rows:
#
#   floor                 examples/floor.rs: tonic serving DecisionService, doing no work
#   warm                  Baton, the answer cached, a signed verdict, audit off
#   warm, audit file      the same with the audit trail in a JSON Lines file (the default)
#   warm, no verdict      the same question with `omit_verdict`: nothing signed, audit off
#   evaluated, shipped    every question evaluated (`--cache-capacity 0`), the example bundle
#   evaluated, N policies every question evaluated over a generated bundle of N policies
#
# The shipped rows ask alice's assistant for the data analyst's `reports.generate` and
# `finance.read`; the generated rows ask agent-3 to call its partner agent-22 for `read` and
# `write` (examples/door_bodies.rs writes both). Per row: requests/s with 128 in flight
# (`h2load -c 16 -m 8`), its median and p99, median and p99 one at a time (`-c 1 -m 1`), and
# the server's CPU time per request at 128 in flight (user + system, from /proc). Each figure is
# the median of ROUNDS rounds; rounds interleave the rows, so a noisy minute touches all alike.
#
#   bash benches/compare.sh
#   ROUNDS=3 SECS=8 POLICIES="100 10000 100000" bash benches/compare.sh
#   BATON=/tmp/before/target/release/baton NO_VERDICT=0 bash benches/compare.sh   # another build
#   ONLY='^warm' bash benches/compare.sh                                  # some rows (and the floor)
#   BASELINE=/tmp/before/target/release/baton ONLY='warm$|10000' bash benches/compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-2}
SECS=${SECS:-8}
POLICIES=${POLICIES:-100 10000 100000}
command -v h2load >/dev/null || { echo "h2load is missing: apt-get install nghttp2-client" >&2; exit 1; }
cargo build --release --quiet --bin baton --example floor --example door_bodies --example synthetic_bundle
B=target/release
BATON=${BATON:-$B/baton}
work=$(mktemp -d)
results=$work/results
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
$B/examples/door_bodies "$work" >/dev/null
for n in $POLICIES; do
  $B/examples/synthetic_bundle "$n" "$work/bundle-$n" >/dev/null
done

URL=http://127.0.0.1:50051/baton.v1.DecisionService/Authorize
HEALTH=http://127.0.0.1:19090/readyz

# label|server|flags|body
ROWS=(
  "floor|floor||human-led.grpc"
  "warm|baton|--audit off|human-led.grpc"
  "warm, audit file|baton|--audit file --audit-file $work/audit.jsonl|human-led.grpc"
  "evaluated, shipped bundle|baton|--audit off --cache-capacity 0|human-led.grpc"
)
# A build from before `omit_verdict` signs anyway: NO_VERDICT=0 leaves the row out.
[ "${NO_VERDICT:-1}" = 0 ] || ROWS+=("warm, no verdict|baton|--audit off|human-led-no-verdict.grpc")
for n in $POLICIES; do
  ROWS+=("evaluated, $n policies|baton|--audit off --cache-capacity 0 --bundle $work/bundle-$n|synthetic.grpc")
done

# BASELINE (another build's `baton`, such as the commit before a change) adds its own warm and
# evaluated rows, so a before and after share one run, rounds interleaved.
if [ -n "${BASELINE:-}" ]; then
  ROWS+=("before: warm|baseline|--audit off|human-led.grpc")
  for n in $POLICIES; do
    ROWS+=("before: evaluated, $n policies|baseline|--audit off --cache-capacity 0 --bundle $work/bundle-$n|synthetic.grpc")
  done
fi

# ONLY (an extended regular expression) keeps the rows whose label matches, and the floor.
if [ -n "${ONLY:-}" ]; then
  kept=()
  for row in "${ROWS[@]}"; do
    label=${row%%|*}
    if [ "$label" = floor ] || grep -Eq -- "$ONLY" <<<"$label"; then kept+=("$row"); fi
  done
  ROWS=("${kept[@]}")
fi

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK_US=$(( 1000000 / $(getconf CLK_TCK) ))

start() {
  local server=$1 flags=$2
  if [ "$server" = floor ]; then
    TOKIO_WORKER_THREADS=1 taskset -c 0 $B/examples/floor 127.0.0.1:50051 >"$work/log" 2>&1 &
    echo $! >"$work/pid"
    for _ in $(seq 100); do
      curl -s --http2-prior-knowledge -o /dev/null "$URL" 2>/dev/null && return; sleep 0.1
    done
  else
    rm -rf "$work/store" "$work"/audit*
    # shellcheck disable=SC2086
    binary=$BATON
    [ "$server" = baseline ] && binary=$BASELINE
    BATON_LOG=warn TOKIO_WORKER_THREADS=1 taskset -c 0 "$binary" serve $flags \
      --listen 127.0.0.1:50051 --http-listen 127.0.0.1:19090 --admin-listen 127.0.0.1:50052 \
      --store-dir "$work/store" >"$work/log" 2>&1 &
    echo $! >"$work/pid"
    # A 100k-policy bundle takes seconds to index.
    for _ in $(seq 600); do curl -sf $HEALTH >/dev/null && return; sleep 0.1; done
  fi
  echo "$server $flags did not start:" >&2; cat "$work/log" >&2; exit 1
}

# Asks once and checks the answer is an ALLOW, with a verdict or (`no-verdict` bodies) without:
# every row must measure what its label says.
allowed() {
  local body=$1
  curl -s --http2-prior-knowledge -H 'content-type: application/grpc' -H 'te: trailers' \
    --data-binary "@$work/$body" -o "$work/reply" "$URL"
  python3 - "$work/reply" "$body" <<'EOF'
import sys
data = open(sys.argv[1], "rb").read()[5:]  # past the gRPC frame header
fields, i = {}, 0
def varint():
    global i
    n = shift = 0
    while True:
        b = data[i]; i += 1
        n |= (b & 0x7F) << shift; shift += 7
        if b < 0x80: return n
while i < len(data):
    key = varint(); number, wire = key >> 3, key & 7
    if wire == 0: fields[number] = varint()
    elif wire == 2: n = varint(); fields[number] = data[i:i + n]; i += n
    else: sys.exit(f"unexpected wire type {wire} in the reply")
# AuthorizeResponse: decision = 2 (ALLOW is 1), verdict = 13.
if fields.get(2) != 1: sys.exit(f"{sys.argv[2]} is not allowed: {data!r}")
if ("no-verdict" in sys.argv[2]) == bool(fields.get(13)):
    sys.exit(f"{sys.argv[2]}: the verdict is {'there' if fields.get(13) else 'missing'}")
EOF
}

# One load: prints `req/s p50 p99 cpu` (µs) for CONNECTIONS × STREAMS in flight.
load() {
  local body=$1 connections=$2 streams=$3 secs=$4 pid before after
  pid=$(cat "$work/pid")
  rm -f "$work/requests"
  before=$(cpu_ticks "$pid")
  taskset -c 1 h2load -c "$connections" -m "$streams" -D "$secs" -d "$work/$body" \
    -H 'content-type: application/grpc' -H 'te: trailers' --log-file="$work/requests" "$URL" \
    >"$work/h2load.out"
  after=$(cpu_ticks "$pid")
  if grep -q '[1-9][0-9]* failed\|[1-9][0-9]* errored' "$work/h2load.out"; then
    echo "requests failed:" >&2; cat "$work/h2load.out" >&2; exit 1
  fi
  # Columns of h2load's log: start (µs since the epoch), HTTP status, duration (µs).
  cut -f3 "$work/requests" | sort -n | awk -v secs="$secs" -v cpu="$(( (after - before) * TICK_US ))" \
    '{ d[NR] = $1 } END { printf "%.0f %.0f %.0f %.1f\n", NR / secs, d[int(NR * 0.5) + 1], d[int(NR * 0.99) + 1], cpu / NR }'
}

for round in $(seq "$ROUNDS"); do
  for row in "${ROWS[@]}"; do
    IFS='|' read -r label server flags body <<<"$row"
    start "$server" "$flags"
    [ "$server" = floor ] || allowed "$body"
    load "$body" 16 8 2 >/dev/null
    read -r rps p50 p99 cpu <<<"$(load "$body" 16 8 "$SECS")"
    read -r _ one50 one99 _ <<<"$(load "$body" 1 1 "$SECS")"
    kill -INT "$(cat "$work/pid")"; wait "$(cat "$work/pid")" 2>/dev/null || true
    echo "$label|$rps|$p50|$p99|$one50|$one99|$cpu" | tee -a "$results" >&2
  done
  echo "round $round of $ROUNDS done" >&2
done

# The median of each column over the rounds, and each row's throughput against the floor's.
python3 - "$results" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, *figures = line.rstrip("\n").split("|")
    rows.setdefault(label, []).append([float(f) for f in figures])
median = {label: [statistics.median(c) for c in zip(*runs)] for label, runs in rows.items()}
floor = median.get("floor", [0])[0] or 1
print("| server | req/s, 128 in flight | × floor | p50 | p99 | p50 one at a time | p99 one at a time | server CPU/request |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for label, (rps, p50, p99, one50, one99, cpu) in median.items():
    print(f"| {label} | {rps:,.0f} | {rps / floor:.2f} | {p50:,.0f} µs | {p99:,.0f} µs | {one50:,.1f} µs | {one99:,.1f} µs | {cpu:.1f} µs |")
EOF
