#!/usr/bin/env bash
# The benchmark of SPEC §8, one command: bench/run.sh
#
# On the local PostgreSQL (BENCH_PG_URL, default postgres://postgres@127.0.0.1:5432/test):
#   1. callhook serve (release) at peak load, then at half of that rate, with the
#      http sink (answered → dialogue.start receipt latency) and its peak RSS, and
#      PostgreSQL's CPU time per event; group commit on (the default), then the peak
#      again with it off (CALLHOOK_BATCH=false);
#   2. the Python/FastAPI reference (bench/python_ref) under uvicorn, same load;
#   3. pgbench running callhook's per-event SQL (bench/pgbench_event.sql): the ceiling;
#      and the batched SQL, ten callbacks per transaction (bench/pgbench_batch.sql);
#   4. callhook on embedded SQLite, and its start-to-ready time.
# Prints one JSON line per run and a summary. Tunables: BENCH_CALLS,
# BENCH_CONCURRENCY, BENCH_PGBENCH_SECS, BENCH_SKIP_PYTHON=1.
set -euo pipefail
cd "$(dirname "$0")/.."
PG="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
CALLS="${BENCH_CALLS:-3000}"
CONC="${BENCH_CONCURRENCY:-64}"
PGBENCH_SECS="${BENCH_PGBENCH_SECS:-20}"
PORT=18080
SINK_PORT=18099
OUT=bench/last-run.jsonl
: > "$OUT"
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

cargo build --release --bin callhook --example loadgen
psql_() { psql -q -v ON_ERROR_STOP=1 "$PG" "$@"; }
fresh_schema() { psql_ -c "DROP SCHEMA IF EXISTS $1 CASCADE" -c "CREATE SCHEMA $1"; echo "$PG?options=-csearch_path%3D$1"; }
wait_ready() { for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$1${2:-/readyz}" >/dev/null 2>&1 && return 0; sleep 0.05; done; echo "server on $1 not ready" >&2; exit 1; }
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])$2)" "$1"; }
serve_pg() { # serve_pg LABEL_ENV...: callhook on $URL with the http sink
  env DATABASE_URL="$URL" CALLHOOK_LISTEN=127.0.0.1:$PORT CALLHOOK_PUBLIC_BASE_URL=https://hooks.example.com \
    CALLHOOK_TWILIO_AUTH_TOKENS=bench-token CALLHOOK_DB_MAX_CONNECTIONS="${BENCH_POOL:-16}" \
    CALLHOOK_SINK=http CALLHOOK_SINK_HTTP_URL=http://127.0.0.1:$SINK_PORT/dialogue CALLHOOK_SPOOL=off \
    CALLHOOK_SINK_HTTP_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw CALLHOOK_OUTBOX_POLL_MS=100 RUST_LOG=error \
    "$@" ./target/release/callhook serve & server=$!; pids+=("$server")
  wait_ready $PORT
}

# 1. callhook on PostgreSQL
URL=$(fresh_schema bench_callhook)
serve_pg
peak=$(./target/release/examples/loadgen --target http://127.0.0.1:$PORT --database-url "$URL" --calls "$CALLS" \
  --concurrency "$CONC" --sink-port $SINK_PORT --server-pid "$server" --label callhook-postgres-peak)
echo "$peak" | tee -a "$OUT"
half_rate=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['events_per_second']/2)" "$peak")
half=$(./target/release/examples/loadgen --target http://127.0.0.1:$PORT --database-url "$URL" --calls "$((CALLS / 2))" \
  --concurrency "$CONC" --rate "$half_rate" --sink-port $SINK_PORT --server-pid "$server" --label callhook-postgres-half-load)
echo "$half" | tee -a "$OUT"
kill "$server"; wait "$server" 2>/dev/null || true
# The same peak with one transaction per event.
URL=$(fresh_schema bench_callhook_unbatched)
serve_pg CALLHOOK_BATCH=false
single=$(./target/release/examples/loadgen --target http://127.0.0.1:$PORT --database-url "$URL" --calls "$CALLS" \
  --concurrency "$CONC" --sink-port $SINK_PORT --server-pid "$server" --label callhook-postgres-unbatched-peak)
echo "$single" | tee -a "$OUT"
kill "$server"; wait "$server" 2>/dev/null || true

# 2. the Python reference
if [ "${BENCH_SKIP_PYTHON:-0}" != 1 ]; then
  [ -x bench/.venv/bin/uvicorn ] || { python3 -m venv bench/.venv && bench/.venv/bin/pip install -q -r bench/python_ref/requirements.txt; }
  URL=$(fresh_schema bench_python)
  DATABASE_URL="$URL" ./target/release/callhook migrate >/dev/null
  ASYNCPG_URL="postgresql+asyncpg://${PG#postgres://}"
  (cd bench/python_ref && DATABASE_URL="$ASYNCPG_URL" DB_SCHEMA=bench_python TWILIO_AUTH_TOKEN=bench-token \
     PUBLIC_BASE_URL=https://hooks.example.com ../.venv/bin/uvicorn app:app --host 127.0.0.1 --port $((PORT + 1)) \
     --workers 2 --log-level warning) & py=$!; pids+=("$py")
  wait_ready $((PORT + 1)) /docs
  python_run=$(./target/release/examples/loadgen --target http://127.0.0.1:$((PORT + 1)) --database-url "$URL" \
    --calls "$((CALLS / 3))" --concurrency "$CONC" --label python-reference)
  echo "$python_run" | tee -a "$OUT"
  kill "$py"; wait "$py" 2>/dev/null || true
fi

# 3. the PostgreSQL ceiling for the same statements
URL=$(fresh_schema bench_pgbench)
DATABASE_URL="$URL" ./target/release/callhook migrate >/dev/null
PGOPTIONS="-csearch_path=bench_pgbench" psql_ -f bench/prefill_attempts.sql
tps=$(PGOPTIONS="-csearch_path=bench_pgbench" pgbench -n -c "${BENCH_PGBENCH_CLIENTS:-16}" -j 2 -T "$PGBENCH_SECS" -D attempts=10000 \
  -f bench/pgbench_event.sql "$PG" | awk '/^tps/ {print $3; exit}')
echo "{\"label\":\"pgbench-ceiling\",\"events_per_second\":$tps}" | tee -a "$OUT"
tps=$(PGOPTIONS="-csearch_path=bench_pgbench" pgbench -n -c "${BENCH_PGBENCH_CLIENTS:-16}" -j 2 -T "$PGBENCH_SECS" -D attempts=10000 \
  -f bench/pgbench_batch.sql "$PG" | awk '/^tps/ {print $3; exit}')
echo "{\"label\":\"pgbench-batched-ceiling\",\"transactions_per_second\":$tps,\"events_per_second\":$(python3 -c "print($tps * 10)")}" | tee -a "$OUT"

# 4. callhook on embedded SQLite
dir=$(mktemp -d)
t0=$(date +%s%N)
DATABASE_URL="sqlite://$dir/bench.db" CALLHOOK_LISTEN=127.0.0.1:$((PORT + 2)) CALLHOOK_PUBLIC_BASE_URL=https://hooks.example.com \
  CALLHOOK_TWILIO_AUTH_TOKENS=bench-token RUST_LOG=error ./target/release/callhook serve & lite=$!; pids+=("$lite")
wait_ready $((PORT + 2))
ready_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "{\"label\":\"sqlite-start-to-ready\",\"ms\":$ready_ms}" | tee -a "$OUT"
lite_run=$(./target/release/examples/loadgen --target http://127.0.0.1:$((PORT + 2)) --database-url "sqlite://$dir/bench.db" \
  --calls "$((CALLS / 3))" --concurrency "$CONC" --server-pid "$lite" --label callhook-sqlite)
echo "$lite_run" | tee -a "$OUT"
kill "$lite"; wait "$lite" 2>/dev/null || true
rm -rf "$dir"

python3 bench/summary.py "$OUT"
