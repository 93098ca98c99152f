#!/usr/bin/env bash
# The outage spool under load, one command: bench/spool.sh
#
# On the local PostgreSQL (BENCH_PG_URL) and NATS (BENCH_NATS_URL), in one run:
#   1. callhook serve (release) with the store up: peak events/s, for comparison;
#   2. for each spool backend (file, nats): callhook serve whose database is
#      unreachable, so it spools every callback — peak events/s and p99, then p99 at
#      half that rate; then `callhook spool drain` into PostgreSQL: the drain rate.
# Prints one JSON line per run (bench/last-spool.jsonl) and a summary.
# Tunables: BENCH_CALLS, BENCH_CONCURRENCY.
set -euo pipefail
cd "$(dirname "$0")/.."
PG="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
NATS="${BENCH_NATS_URL:-nats://127.0.0.1:4222}"
CALLS="${BENCH_CALLS:-3000}"
CONC="${BENCH_CONCURRENCY:-64}"
PORT=18090
OUT=bench/last-spool.jsonl
: > "$OUT"
pids=()
work=$(mktemp -d)
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

cargo build --release --bin callhook --example loadgen
psql_() { psql -q -v ON_ERROR_STOP=1 "$PG" "$@"; }
psql_ -c "DROP SCHEMA IF EXISTS bench_spool CASCADE" -c "CREATE SCHEMA bench_spool"
URL="$PG?options=-csearch_path%3Dbench_spool"
# Nothing listens on port 1: a database that is away.
DOWN="postgres://postgres@127.0.0.1:1/test"
DATABASE_URL="$URL" ./target/release/callhook migrate >/dev/null
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])$2)" "$1"; }
wait_ready() { for _ in $(seq 1 400); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && return 0; sleep 0.05; done; echo "not ready" >&2; exit 1; }
serve() { # serve DATABASE_URL SPOOL [more env]
  env DATABASE_URL="$1" CALLHOOK_SPOOL="$2" CALLHOOK_SPOOL_DIR="$work/spool" CALLHOOK_SPOOL_NATS_STREAM="$stream" \
    CALLHOOK_NATS_URL="$NATS" CALLHOOK_LISTEN=127.0.0.1:$PORT CALLHOOK_PUBLIC_BASE_URL=https://hooks.example.com \
    CALLHOOK_TWILIO_AUTH_TOKENS=bench-token CALLHOOK_DB_MAX_CONNECTIONS=16 CALLHOOK_NO_RECONCILER=true \
    CALLHOOK_NO_DISPATCHER=true RUST_LOG=error ./target/release/callhook serve & server=$!; pids+=("$server")
  wait_ready
}
load() { # load LABEL [RATE]
  ./target/release/examples/loadgen --target http://127.0.0.1:$PORT --database-url "$URL" --calls "$CALLS" \
    --concurrency "$CONC" --rate "${2:-0}" --server-pid "$server" --label "$1" | tee -a "$OUT"
}

# A stream of its own, left empty by the drain (work-queue retention) for the next run.
stream=CALLHOOK_BENCH_SPOOL
serve "$URL" off
load store-up-peak >/dev/null
kill "$server"; wait "$server" 2>/dev/null || true

for kind in file nats; do
  rm -rf "$work/spool"
  serve "$DOWN" "$kind"
  peak=$(load "spool-$kind-peak")
  load "spool-$kind-half-load" "$(field "$peak" "['events_per_second']/2")" >/dev/null
  kill "$server"; wait "$server" 2>/dev/null || true
  args=(--spool="$kind" --spool-dir="$work/spool" --spool-nats-stream="$stream" --nats-url="$NATS" --database-url="$URL")
  records=$(./target/release/callhook spool status --json "${args[@]}" | python3 -c "import json,sys; print(json.load(sys.stdin)['records'])")
  t0=$(date +%s%N)
  ./target/release/callhook spool drain "${args[@]}" >/dev/null
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  echo "{\"label\":\"spool-$kind-drain\",\"records\":$records,\"ms\":$ms,\"records_per_second\":$(python3 -c "print($records * 1000 / $ms)")}" | tee -a "$OUT"
done

python3 - "$OUT" <<'PY'
import json, sys
runs = {r["label"]: r for r in map(json.loads, open(sys.argv[1]))}
up = runs["store-up-peak"]
print(f"\nstore up (per-event commit): {up['events_per_second']:.0f} events/s, p99 {up['latency_ms']['p99']:.2f} ms")
for kind in ("file", "nats"):
    peak, half, drain = runs[f"spool-{kind}-peak"], runs[f"spool-{kind}-half-load"], runs[f"spool-{kind}-drain"]
    print(f"spooling to {kind}: {peak['events_per_second']:.0f} events/s (p99 {peak['latency_ms']['p99']:.2f} ms, "
          f"errors {peak['errors']}), {peak['events_per_second'] / up['events_per_second']:.1f}x the store-up rate; "
          f"at half load p99 {half['latency_ms']['p99']:.2f} ms; drain {drain['records']} records in "
          f"{drain['ms'] / 1000:.1f} s = {drain['records_per_second']:.0f} records/s")
PY
