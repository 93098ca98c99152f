-- callhook schema (SPEC §1), SQLite flavour: UUIDs as hyphenated TEXT, timestamps as RFC 3339 TEXT, JSON as TEXT. Table and column names are a contract shared with the
-- dialer and the dialogue orchestrator.

CREATE TABLE campaigns (
    id                     TEXT PRIMARY KEY,
    name                   TEXT NOT NULL,
    max_attempts           INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 5),
    retry_interval_minutes INTEGER NOT NULL DEFAULT 60 CHECK (retry_interval_minutes >= 0),
    created_at             TEXT NOT NULL DEFAULT (CURRENT_TIMESTAMP)
);

CREATE TABLE contacts (
    id              TEXT PRIMARY KEY,
    campaign_id     TEXT NOT NULL REFERENCES campaigns (id),
    phone_number    TEXT NOT NULL,
    external_id     TEXT,
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'in_progress', 'completed', 'refused', 'not_reached', 'excluded')),
    attempts_count  INTEGER NOT NULL DEFAULT 0,
    last_attempt_at TEXT,
    last_outcome    TEXT CHECK (last_outcome IN ('completed', 'refused', 'no_answer', 'busy', 'failed')),
    next_attempt_at TEXT,
    do_not_call     INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL DEFAULT (CURRENT_TIMESTAMP),
    updated_at      TEXT NOT NULL DEFAULT (CURRENT_TIMESTAMP)
);
CREATE INDEX contacts_campaign_due ON contacts (campaign_id, state, next_attempt_at);

CREATE TABLE call_attempts (
    id                  TEXT PRIMARY KEY,
    call_id             TEXT NOT NULL UNIQUE,
    campaign_id         TEXT NOT NULL REFERENCES campaigns (id),
    contact_id          TEXT NOT NULL REFERENCES contacts (id),
    attempt_number      INTEGER NOT NULL CHECK (attempt_number >= 1),
    provider            TEXT NOT NULL,
    provider_call_id    TEXT,
    status              TEXT NOT NULL DEFAULT 'initiated'
                        CHECK (status IN ('initiated', 'ringing', 'answered', 'completed', 'no_answer', 'busy', 'failed')),
    provider_raw_status TEXT,
    answered_by         TEXT,
    started_at          TEXT NOT NULL DEFAULT (CURRENT_TIMESTAMP),
    answered_at         TEXT,
    ended_at            TEXT,
    duration_seconds    INTEGER,
    outcome             TEXT CHECK (outcome IN ('completed', 'refused', 'no_answer', 'busy', 'failed')),
    error_code          TEXT,
    error_message       TEXT,
    metadata            TEXT NOT NULL DEFAULT '{}',
    UNIQUE (provider, provider_call_id),
    UNIQUE (contact_id, attempt_number)
);

-- The inbox: every accepted callback, never deleted by the service. The normalised
-- columns after `payload` let deferred events be applied later without re-parsing.
CREATE TABLE telephony_events (
    id               TEXT PRIMARY KEY,
    provider         TEXT NOT NULL,
    dedupe_key       TEXT NOT NULL UNIQUE,
    call_id          TEXT,
    provider_call_id TEXT NOT NULL,
    event_type       TEXT,
    provider_status  TEXT NOT NULL,
    sequence_number  INTEGER,
    occurred_at      TEXT,
    received_at      TEXT NOT NULL,
    disposition      TEXT NOT NULL CHECK (disposition IN ('applied', 'stale', 'deferred', 'ignored')),
    payload          TEXT NOT NULL,
    campaign_id      TEXT,
    contact_id       TEXT,
    duration_seconds INTEGER,
    answered_by      TEXT,
    error_code       TEXT,
    error_message    TEXT
);
CREATE INDEX telephony_events_call ON telephony_events (call_id, received_at);
CREATE INDEX telephony_events_deferred ON telephony_events (provider, provider_call_id)
    WHERE disposition = 'deferred';

CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_run_at     TEXT NOT NULL DEFAULT (CURRENT_TIMESTAMP),
    locked_until    TEXT,
    last_error      TEXT,
    created_at      TEXT NOT NULL DEFAULT (CURRENT_TIMESTAMP),
    updated_at      TEXT NOT NULL DEFAULT (CURRENT_TIMESTAMP),
    delivered_at    TEXT
);
CREATE INDEX outbox_due ON outbox (next_run_at) WHERE status = 'pending';
