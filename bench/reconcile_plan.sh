#!/usr/bin/env bash
# The reconciler's queries on a campaign-sized table: 1,000,000 call attempts
# (0.2 % not finished, 0.1 % awaiting a verdict, the rest settled) in a scratch
# schema of the local PostgreSQL, then EXPLAIN (ANALYZE, BUFFERS) of each query a
# pass runs. Shows that a pass with nothing due is a few index probes, however
# large the table. Usage: bench/reconcile_plan.sh [rows]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
url=${CALLHOOK_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
schema=reconcile_plan
psql() { command psql "$url" -v ON_ERROR_STOP=1 -q "$@"; }

psql -c "DROP SCHEMA IF EXISTS $schema CASCADE; CREATE SCHEMA $schema;"
for m in migrations/postgres/*.sql; do
    PGOPTIONS="-c search_path=$schema" psql -f "$m"
done
PGOPTIONS="-c search_path=$schema" psql <<SQL
INSERT INTO campaigns (id, name) VALUES ('00000000-0000-0000-0000-000000000001', 'bench');
INSERT INTO contacts (id, campaign_id, phone_number, state)
    SELECT md5('c' || i)::uuid, '00000000-0000-0000-0000-000000000001', '+1415' || lpad(i::text, 7, '0'),
           CASE WHEN i % 1000 < 3 THEN 'in_progress' ELSE 'completed' END
    FROM generate_series(1, $rows) i;
INSERT INTO call_attempts (id, call_id, campaign_id, contact_id, attempt_number, provider, provider_call_id,
                           status, started_at, answered_at, ended_at, outcome, last_event_at)
    SELECT md5('a' || i)::uuid, 'call-' || i, '00000000-0000-0000-0000-000000000001', md5('c' || i)::uuid, 1,
           'twilio', 'CA' || md5(i::text),
           CASE WHEN i % 1000 < 2 THEN 'ringing' WHEN i % 1000 = 2 THEN 'completed'
                ELSE (ARRAY['completed', 'no_answer', 'busy', 'failed'])[1 + i % 4] END,
           now() - interval '1 day' + (i % 86400) * interval '1 second',
           CASE WHEN i % 1000 = 2 THEN now() - interval '1 hour' END,
           CASE WHEN i % 1000 >= 2 THEN now() - interval '1 hour' END,
           CASE WHEN i % 1000 >= 3 THEN 'completed' END,
           now() - interval '1 day' + (i % 86400) * interval '1 second'
    FROM generate_series(1, $rows) i;
ANALYZE;
SQL

explain() {
    echo
    echo "## $1"
    PGOPTIONS="-c search_path=$schema" psql -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) $2"
}
# The cutoffs a pass uses: now − reconcile_after (10 min), now − max_call_duration (2 h),
# now − dialogue_outcome_timeout (30 min). "Nothing due" uses cutoffs before every row.
due="(status IN ('initiated', 'ringing') AND last_event_at <= now() - interval '10 minutes') OR (status = 'answered' AND last_event_at <= now() - interval '2 hours')"
none="(status IN ('initiated', 'ringing') AND last_event_at <= now() - interval '2 days') OR (status = 'answered' AND last_event_at <= now() - interval '2 days')"
explain "claim of quiet calls, $((rows / 500)) due (LIMIT 50)" \
    "SELECT id FROM call_attempts WHERE ($due) AND (reconcile_at IS NULL OR reconcile_at <= now()) AND (locked_until IS NULL OR locked_until <= now()) ORDER BY last_event_at LIMIT 50 FOR UPDATE SKIP LOCKED"
explain "claim of quiet calls, nothing due" \
    "SELECT id FROM call_attempts WHERE ($none) AND (reconcile_at IS NULL OR reconcile_at <= now()) AND (locked_until IS NULL OR locked_until <= now()) ORDER BY last_event_at LIMIT 50 FOR UPDATE SKIP LOCKED"
explain "overdue verdicts" \
    "SELECT call_id FROM call_attempts WHERE status = 'completed' AND outcome IS NULL AND answered_at IS NOT NULL AND ended_at <= now() - interval '30 minutes' ORDER BY ended_at LIMIT 500"
explain "dialogue.start expiry" \
    "SELECT id FROM outbox WHERE kind = 'dialogue.start' AND status = 'pending' AND (locked_until IS NULL OR locked_until <= now()) AND EXISTS (SELECT 1 FROM call_attempts a WHERE a.call_id = substr(outbox.idempotency_key, 16) AND a.status IN ('completed', 'no_answer', 'busy', 'failed'))"
explain "gauges (awaiting, stranded)" \
    "SELECT (SELECT COUNT(*) FROM call_attempts WHERE $due) AS awaiting, (SELECT COUNT(*) FROM contacts c WHERE c.state = 'in_progress' AND NOT EXISTS (SELECT 1 FROM call_attempts a WHERE a.contact_id = c.id AND (a.status IN ('initiated', 'ringing', 'answered') OR (a.status = 'completed' AND a.outcome IS NULL AND a.answered_at IS NOT NULL AND a.ended_at > now() - interval '30 minutes')))) AS stranded"
psql -c "DROP SCHEMA $schema CASCADE;"
