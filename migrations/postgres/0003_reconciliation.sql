-- Reconciliation (SPEC §4 "No stranded contact", §9).
--
-- call_attempts: when callhook last heard of the call (the reconciler looks up
-- calls quiet for too long), the provider account, and a fenced lease with a
-- backoff for the reconciler (see src/store/lease.rs).
ALTER TABLE call_attempts ADD COLUMN last_event_at timestamptz;
UPDATE call_attempts SET last_event_at = COALESCE(ended_at, answered_at, started_at);
ALTER TABLE call_attempts ALTER COLUMN last_event_at SET NOT NULL;
ALTER TABLE call_attempts ADD COLUMN account_sid text;
ALTER TABLE call_attempts ADD COLUMN reconcile_at timestamptz;
ALTER TABLE call_attempts ADD COLUMN reconcile_failures integer NOT NULL DEFAULT 0;
ALTER TABLE call_attempts ADD COLUMN locked_until timestamptz;
ALTER TABLE call_attempts ADD COLUMN lease_token uuid;
-- The reconciler's two questions, each answered from a small partial index: calls
-- not finished, by how long they have been quiet; finished calls awaiting a verdict.
CREATE INDEX call_attempts_open ON call_attempts (status, last_event_at)
    WHERE status IN ('initiated', 'ringing', 'answered');
CREATE INDEX call_attempts_awaiting_verdict ON call_attempts (ended_at)
    WHERE status = 'completed' AND outcome IS NULL;
CREATE INDEX call_attempts_contact ON call_attempts (contact_id);
CREATE INDEX contacts_in_progress ON contacts (id) WHERE state = 'in_progress';

-- The inbox says where an event came from.
ALTER TABLE telephony_events ADD COLUMN source text NOT NULL DEFAULT 'callback'
    CHECK (source IN ('callback', 'reconcile', 'spool'));
ALTER TABLE telephony_events ADD COLUMN account_sid text;

-- A dialogue.start whose call ended before delivery is expired, not delivered.
ALTER TABLE outbox DROP CONSTRAINT outbox_status_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_status_check CHECK (status IN ('pending', 'done', 'dead', 'expired'));
