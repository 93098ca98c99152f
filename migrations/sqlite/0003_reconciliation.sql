-- Reconciliation (SPEC §4 "No stranded contact", §9). See the PostgreSQL
-- migration of the same number for what each column is for.
ALTER TABLE call_attempts ADD COLUMN last_event_at TEXT;
UPDATE call_attempts SET last_event_at = COALESCE(ended_at, answered_at, started_at);
ALTER TABLE call_attempts ADD COLUMN account_sid TEXT;
ALTER TABLE call_attempts ADD COLUMN reconcile_at TEXT;
ALTER TABLE call_attempts ADD COLUMN reconcile_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE call_attempts ADD COLUMN locked_until TEXT;
ALTER TABLE call_attempts ADD COLUMN lease_token TEXT;
CREATE INDEX call_attempts_open ON call_attempts (status, last_event_at)
    WHERE status IN ('initiated', 'ringing', 'answered');
CREATE INDEX call_attempts_awaiting_verdict ON call_attempts (ended_at)
    WHERE status = 'completed' AND outcome IS NULL;
CREATE INDEX call_attempts_contact ON call_attempts (contact_id);
CREATE INDEX contacts_in_progress ON contacts (id) WHERE state = 'in_progress';

ALTER TABLE telephony_events ADD COLUMN source TEXT NOT NULL DEFAULT 'callback'
    CHECK (source IN ('callback', 'reconcile', 'spool'));
ALTER TABLE telephony_events ADD COLUMN account_sid TEXT;

-- SQLite cannot change a CHECK constraint in place: the outbox is rebuilt, every
-- row and column kept, to allow the `expired` status.
CREATE TABLE outbox_v3 (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'dead', 'expired')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_run_at     TEXT NOT NULL DEFAULT (CURRENT_TIMESTAMP),
    locked_until    TEXT,
    last_error      TEXT,
    created_at      TEXT NOT NULL DEFAULT (CURRENT_TIMESTAMP),
    updated_at      TEXT NOT NULL DEFAULT (CURRENT_TIMESTAMP),
    delivered_at    TEXT,
    lease_token     TEXT
);
INSERT INTO outbox_v3 (id, kind, idempotency_key, payload, status, attempts, next_run_at, locked_until, last_error,
                       created_at, updated_at, delivered_at, lease_token)
    SELECT id, kind, idempotency_key, payload, status, attempts, next_run_at, locked_until, last_error,
           created_at, updated_at, delivered_at, lease_token FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_v3 RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (next_run_at) WHERE status = 'pending';
