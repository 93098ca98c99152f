#!/usr/bin/env bash
# The dialer's interface on a campaign of 1,000,000 contacts (SPEC §11 targets:
# a claim of 100 due contacts p99 under 20 ms while webhooks run at half load;
# statistics under 100 ms). One command: bench/dial.sh [contacts]
#
# On the local PostgreSQL (BENCH_PG_URL): a fresh schema with one campaign of
# [contacts] contacts in three zones (40 % in the campaign's zone, whose window is
# open whenever this runs; 30 % New York; 30 % Kolkata), 65 % never called, 20 %
# retries due, 5 % retries later, 10 % finished; callhook serve (release) on it;
# then, at the same time, loadgen at half of its measured peak (its own campaign)
# and dial_bench's sequential claims of 100 and stats reads. Ends with the query
# plans (EXPLAIN ANALYZE) of a claim's statements and of the statistics (read from
# contact_counts; the GROUP BY over the contacts it replaces, for comparison).
set -euo pipefail
cd "$(dirname "$0")/.."
PG="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
N=${1:-1000000}
CALLS="${BENCH_CALLS:-3000}"
PORT=18090
schema=bench_dial
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
psql_() { PGOPTIONS="-csearch_path=$schema" psql -q -v ON_ERROR_STOP=1 "$PG" "$@"; }

cargo build --release --bin callhook --example loadgen --example dial_bench
psql -q -v ON_ERROR_STOP=1 "$PG" -c "DROP SCHEMA IF EXISTS $schema CASCADE" -c "CREATE SCHEMA $schema"
URL="$PG?options=-csearch_path%3D$schema"
DATABASE_URL="$URL" ./target/release/callhook migrate >/dev/null
# A zone where it is 14:xx now: the campaign's window (09:00–20:00) is open.
zone=$(python3 -c 'import datetime as d; o = 14 - d.datetime.now(d.timezone.utc).hour; print("Etc/GMT" if o == 0 else (f"Etc/GMT-{o}" if o > 0 else f"Etc/GMT+{-o}"))')
campaign=00000000-0000-4000-8000-0000000000d1
t0=$(date +%s%N)
psql_ <<SQL
INSERT INTO campaigns (id, name, timezone) VALUES ('$campaign', 'dial bench', '$zone');
INSERT INTO contacts (id, campaign_id, phone_number, timezone, state, attempts_count, last_outcome, next_attempt_at,
                      created_at, updated_at)
SELECT md5('d' || i)::uuid, '$campaign', '+1' || (2000000000 + i)::text,
       CASE WHEN i % 10 < 4 THEN NULL WHEN i % 10 < 7 THEN 'America/New_York' ELSE 'Asia/Kolkata' END,
       CASE WHEN i % 20 < 18 THEN 'pending' WHEN i % 20 = 18 THEN 'completed' ELSE 'not_reached' END,
       CASE WHEN i % 20 < 13 THEN 0 ELSE 1 + i % 3 END,
       CASE WHEN i % 20 < 13 THEN NULL WHEN i % 20 = 18 THEN 'completed' ELSE 'no_answer' END,
       CASE WHEN i % 20 < 13 OR i % 20 >= 18 THEN NULL
            WHEN i % 20 < 17 THEN now() - (i % 3600) * interval '1 second'
            ELSE now() + interval '1 day' END,
       now() - interval '2 days', now() - interval '2 days'
FROM generate_series(1, $N) i;
ANALYZE;
SQL
echo "{\"label\":\"dial-bench-setup\",\"contacts\":$N,\"seconds\":$(( ($(date +%s%N) - t0) / 1000000000 ))}"

DATABASE_URL="$URL" CALLHOOK_LISTEN=127.0.0.1:$PORT CALLHOOK_PUBLIC_BASE_URL=https://hooks.example.com \
  CALLHOOK_TWILIO_AUTH_TOKENS=bench-token CALLHOOK_ADMIN_TOKENS=bench-admin CALLHOOK_DB_MAX_CONNECTIONS=16 \
  CALLHOOK_NO_RECONCILER=1 RUST_LOG=error ./target/release/callhook serve & server=$!; pids+=("$server")
for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.05; done

peak=$(./target/release/examples/loadgen --target http://127.0.0.1:$PORT --database-url "$URL" --calls "$CALLS" \
  --label webhooks-peak)
echo "$peak"
# The claims alone, then under half load.
./target/release/examples/dial_bench --target http://127.0.0.1:$PORT --campaign "$campaign" --claims 100 \
  --stats-runs 10 --label dial-and-stats-idle
half_rate=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['events_per_second']/2)" "$peak")
# Half load for longer than the claims take; the claims start once its calls are registered.
./target/release/examples/loadgen --target http://127.0.0.1:$PORT --database-url "$URL" --calls "$((CALLS * 2))" \
  --rate "$half_rate" --label webhooks-half-load > bench/.dial-half.json & load=$!; pids+=("$load")
sleep "${BENCH_DIAL_WARMUP_SECS:-15}"
./target/release/examples/dial_bench --target http://127.0.0.1:$PORT --campaign "$campaign" --claims "${BENCH_CLAIMS:-300}" \
  --label dial-and-stats-half-load
wait "$load"; cat bench/.dial-half.json; rm -f bench/.dial-half.json
kill "$server"; wait "$server" 2>/dev/null || true

explain() { echo; echo "## $1"; psql_ -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) $2"; }
dialable="campaign_id = '$campaign' AND state = 'pending' AND NOT do_not_call"
zone="coalesce(timezone, '')"
explain "zones of the dialable contacts (skip scan)" \
  "WITH RECURSIVE z(tz) AS (SELECT MIN($zone) FROM contacts WHERE $dialable AND $zone > '' UNION ALL SELECT (SELECT MIN($zone) FROM contacts WHERE $dialable AND $zone > z.tz) FROM z WHERE z.tz IS NOT NULL) SELECT tz FROM z WHERE tz IS NOT NULL"
explain "due retries in the campaign's zone (LIMIT 100)" \
  "SELECT id FROM contacts c WHERE c.$dialable AND coalesce(c.timezone, '') = '' AND c.next_attempt_at <= now() ORDER BY c.next_attempt_at LIMIT 100 FOR UPDATE SKIP LOCKED"
explain "never-called contacts of one zone (LIMIT 100)" \
  "SELECT id FROM contacts c WHERE c.$dialable AND coalesce(c.timezone, '') = 'America/New_York' AND c.next_attempt_at IS NULL LIMIT 100 FOR UPDATE SKIP LOCKED"
explain "calls in flight" \
  "SELECT COUNT(*) FROM call_attempts WHERE campaign_id = '$campaign' AND status IN ('initiated', 'ringing', 'answered')"
psql_ -c "SELECT COUNT(*) AS contact_counts_rows FROM contact_counts"
explain "statistics (contact_counts)" \
  "SELECT state, last_outcome, attempts_count, CAST(SUM(n) AS BIGINT), COUNT(*) FROM contact_counts WHERE campaign_id = '$campaign' GROUP BY state, last_outcome, attempts_count"
explain "statistics the old way, for comparison (GROUP BY over the contacts)" \
  "SELECT state, last_outcome, attempts_count, COUNT(*) FROM contacts WHERE campaign_id = '$campaign' GROUP BY state, last_outcome, attempts_count"
psql -q "$PG" -c "DROP SCHEMA $schema CASCADE"
