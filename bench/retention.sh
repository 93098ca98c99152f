#!/usr/bin/env bash
# The partitioned inbox (migration 0006) side by side with the inbox before it, in
# one run, on the local PostgreSQL (BENCH_PG_URL): bench/retention.sh
#
#   1. the per-event ceiling (pgbench, callhook's per-event SQL): the inbox of
#      version 5 (one table, `ON CONFLICT (dedupe_key)`) against version 6's
#      (monthly partitions, the key in `telephony_event_keys` first), alternated;
#   2. retention of BENCH_PRUNE_ROWS events two to three months old: `callhook
#      events prune --older-than 30` on version 6 (whole partitions dropped)
#      against the DELETE the same rule needs on version 5's single table, with
#      the tables' size, dead rows and the WAL written by each.
# Tunables: BENCH_PGBENCH_SECS (15), BENCH_ROUNDS (2), BENCH_PRUNE_ROWS (500000).
set -euo pipefail
cd "$(dirname "$0")/.."
PG="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
SECS="${BENCH_PGBENCH_SECS:-15}"
ROUNDS="${BENCH_ROUNDS:-2}"
ROWS="${BENCH_PRUNE_ROWS:-500000}"
OUT=bench/last-retention.jsonl
: > "$OUT"

cargo build --release --bin callhook
psql_() { psql -q -v ON_ERROR_STOP=1 "$PG" "$@"; }
in_schema() { local s=$1; shift; PGOPTIONS="-csearch_path=$s" psql_ "$@"; }

# Version 5: the migrations before 0006, applied as they were released.
psql_ -c "DROP SCHEMA IF EXISTS bench_v5 CASCADE" -c "CREATE SCHEMA bench_v5"
for f in migrations/postgres/000[1-5]_*.sql; do in_schema bench_v5 -f "$f"; done
# Version 6: what `callhook migrate` applies now.
psql_ -c "DROP SCHEMA IF EXISTS bench_v6 CASCADE" -c "CREATE SCHEMA bench_v6"
DATABASE_URL="$PG?options=-csearch_path%3Dbench_v6" ./target/release/callhook migrate >/dev/null

for s in bench_v5 bench_v6; do in_schema "$s" -f bench/prefill_attempts.sql; done

# Version 5's per-event SQL: the inbox row alone, unique on its key.
v5_script=$(mktemp)
trap 'rm -f "$v5_script"' EXIT
cat > "$v5_script" <<'SQL'
\set id random(1, :attempts)
BEGIN;
SELECT a.id, a.status, c.state, k.max_attempts FROM call_attempts a JOIN contacts c ON c.id = a.contact_id JOIN campaigns k ON k.id = a.campaign_id WHERE a.call_id = 'b' || :id FOR UPDATE OF a, c;
INSERT INTO telephony_events (id, provider, dedupe_key, call_id, provider_call_id, event_type, provider_status, received_at, disposition, payload) VALUES (gen_random_uuid(), 'twilio', 'twilio:' || gen_random_uuid(), 'b' || :id, 'CA' || :id, 'call.ringing', 'ringing', now(), 'applied', '{"AccountSid":"AC0","CallSid":"CA0","CallStatus":"ringing","Direction":"outbound-api","From":"+15005550006","To":"+14155550100"}') ON CONFLICT (dedupe_key) DO NOTHING;
UPDATE call_attempts SET status = 'ringing', provider_raw_status = 'ringing', provider_call_id = 'CA' || :id WHERE call_id = 'b' || :id;
COMMIT;
SQL

ceiling() { # ceiling SCHEMA SCRIPT
  PGOPTIONS="-csearch_path=$1" pgbench -n -c "${BENCH_PGBENCH_CLIENTS:-16}" -j 2 -T "$SECS" -D attempts=10000 \
    -f "$2" "$PG" | awk '/^tps/ {print $3; exit}'
}
for round in $(seq 1 "$ROUNDS"); do
  v5=$(ceiling bench_v5 "$v5_script")
  v6=$(ceiling bench_v6 bench/pgbench_event.sql)
  echo "{\"label\":\"ceiling\",\"round\":$round,\"v5_unpartitioned_tps\":$v5,\"v6_partitioned_tps\":$v6}" | tee -a "$OUT"
done

# Old events of calls no one registered (deferred, so retention may remove them),
# received 95 to 65 days ago: whole months before a 30-day cutoff's month.
fill() { # fill SCHEMA WITH_KEYS
  in_schema "$1" -c "TRUNCATE telephony_events" >/dev/null
  local keys=""
  [ "$2" = yes ] && keys="INSERT INTO telephony_event_keys (dedupe_key, received_at) SELECT dedupe_key, received_at FROM telephony_events;"
  in_schema "$1" <<SQL
$( [ "$2" = yes ] && echo "TRUNCATE telephony_event_keys; SELECT callhook_event_partitions(now() - interval '100 days', now());" )
INSERT INTO telephony_events (id, provider, dedupe_key, call_id, provider_call_id, event_type, provider_status,
    received_at, disposition, payload)
  SELECT gen_random_uuid(), 'twilio', 'twilio:old-' || i, NULL, 'CAold' || i, 'call.completed', 'completed',
    now() - interval '95 days' + (i::float / $ROWS) * interval '30 days', 'deferred',
    '{"AccountSid":"AC0","CallSid":"CA0","CallStatus":"completed","Direction":"outbound-api"}'
  FROM generate_series(1, $ROWS) i;
$keys
VACUUM ANALYZE telephony_events;
SQL
}
size() { in_schema "$1" -Atc "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c WHERE c.relname LIKE 'telephony_event%' AND c.relkind IN ('r', 'p') AND c.relnamespace = '$1'::regnamespace"; }
lsn() { psql_ -Atc "SELECT pg_current_wal_lsn()"; }
wal_since() { psql_ -Atc "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$1')::bigint"; }
dead() { in_schema "$1" -Atc "SELECT coalesce(sum(n_dead_tup), 0) FROM pg_stat_user_tables WHERE schemaname = '$1' AND relname LIKE 'telephony_event%'"; }

fill bench_v6 yes
before=$(size bench_v6)
wal0=$(lsn)
t0=$(date +%s%N)
report=$(DATABASE_URL="$PG?options=-csearch_path%3Dbench_v6" ./target/release/callhook events prune --older-than 30 --json)
v6_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "{\"label\":\"prune\",\"schema\":\"v6_partitioned\",\"rows\":$ROWS,\"ms\":$v6_ms,\"bytes_before\":$before,\"bytes_after\":$(size bench_v6),\"dead_rows_after\":$(dead bench_v6),\"wal_bytes\":$(wal_since "$wal0"),\"report\":$report}" | tee -a "$OUT"

fill bench_v5 no
before=$(size bench_v5)
wal0=$(lsn)
t0=$(date +%s%N)
deleted=$(in_schema bench_v5 -Atc "WITH gone AS (DELETE FROM telephony_events e WHERE e.received_at < now() - interval '30 days'
  AND NOT EXISTS (SELECT 1 FROM call_attempts a WHERE (a.call_id = e.call_id OR (a.provider = e.provider AND a.provider_call_id = e.provider_call_id))
  AND (a.status IN ('initiated', 'ringing', 'answered') OR coalesce(a.ended_at, a.last_event_at) >= now() - interval '30 days')) RETURNING 1)
  SELECT count(*) FROM gone")
v5_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "{\"label\":\"prune\",\"schema\":\"v5_single_table\",\"rows\":$ROWS,\"deleted\":$deleted,\"ms\":$v5_ms,\"bytes_before\":$before,\"bytes_after\":$(size bench_v5),\"dead_rows_after\":$(dead bench_v5),\"wal_bytes\":$(wal_since "$wal0")}" | tee -a "$OUT"

psql_ -c "DROP SCHEMA bench_v5 CASCADE" -c "DROP SCHEMA bench_v6 CASCADE" >/dev/null
