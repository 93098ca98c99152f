-- callhook schema (SPEC §1). Table and column names are a contract shared with the
-- dialer and the dialogue orchestrator.

CREATE TABLE campaigns (
    id                     uuid PRIMARY KEY,
    name                   text NOT NULL,
    max_attempts           integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 5),
    retry_interval_minutes integer NOT NULL DEFAULT 60 CHECK (retry_interval_minutes >= 0),
    created_at             timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE contacts (
    id              uuid PRIMARY KEY,
    campaign_id     uuid NOT NULL REFERENCES campaigns (id),
    phone_number    text NOT NULL,
    external_id     text,
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'in_progress', 'completed', 'refused', 'not_reached', 'excluded')),
    attempts_count  integer NOT NULL DEFAULT 0,
    last_attempt_at timestamptz,
    last_outcome    text CHECK (last_outcome IN ('completed', 'refused', 'no_answer', 'busy', 'failed')),
    next_attempt_at timestamptz,
    do_not_call     boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contacts_campaign_due ON contacts (campaign_id, state, next_attempt_at);

CREATE TABLE call_attempts (
    id                  uuid PRIMARY KEY,
    call_id             text NOT NULL UNIQUE,
    campaign_id         uuid NOT NULL REFERENCES campaigns (id),
    contact_id          uuid NOT NULL REFERENCES contacts (id),
    attempt_number      integer NOT NULL CHECK (attempt_number >= 1),
    provider            text NOT NULL,
    provider_call_id    text,
    status              text NOT NULL DEFAULT 'initiated'
                        CHECK (status IN ('initiated', 'ringing', 'answered', 'completed', 'no_answer', 'busy', 'failed')),
    provider_raw_status text,
    answered_by         text,
    started_at          timestamptz NOT NULL DEFAULT now(),
    answered_at         timestamptz,
    ended_at            timestamptz,
    duration_seconds    integer,
    outcome             text CHECK (outcome IN ('completed', 'refused', 'no_answer', 'busy', 'failed')),
    error_code          text,
    error_message       text,
    metadata            jsonb NOT NULL DEFAULT '{}',
    UNIQUE (provider, provider_call_id),
    UNIQUE (contact_id, attempt_number)
);

-- The inbox: every accepted callback, never deleted by the service. The normalised
-- columns after `payload` let deferred events be applied later without re-parsing.
CREATE TABLE telephony_events (
    id               uuid PRIMARY KEY,
    provider         text NOT NULL,
    dedupe_key       text NOT NULL UNIQUE,
    call_id          text,
    provider_call_id text NOT NULL,
    event_type       text,
    provider_status  text NOT NULL,
    sequence_number  bigint,
    occurred_at      timestamptz,
    received_at      timestamptz NOT NULL,
    disposition      text NOT NULL CHECK (disposition IN ('applied', 'stale', 'deferred', 'ignored')),
    payload          jsonb NOT NULL,
    campaign_id      uuid,
    contact_id       uuid,
    duration_seconds integer,
    answered_by      text,
    error_code       text,
    error_message    text
);
CREATE INDEX telephony_events_call ON telephony_events (call_id, received_at);
CREATE INDEX telephony_events_deferred ON telephony_events (provider, provider_call_id)
    WHERE disposition = 'deferred';

CREATE TABLE outbox (
    id              uuid PRIMARY KEY,
    kind            text NOT NULL,
    idempotency_key text NOT NULL UNIQUE,
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_run_at     timestamptz NOT NULL DEFAULT now(),
    locked_until    timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);
CREATE INDEX outbox_due ON outbox (next_run_at) WHERE status = 'pending';
