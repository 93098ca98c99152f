-- The inbox partitioned by month of `received_at` (SPEC §13), so that retention
-- drops whole partitions instead of deleting rows one by one.
--
-- A unique index on a partitioned table must include the partition key, so
-- `UNIQUE (dedupe_key)` cannot stay on the inbox: a provider's retry that crosses
-- midnight at the end of a month would land in another partition and be stored
-- twice. Exactly-once now rests on `telephony_event_keys`, a narrow unpartitioned
-- table of every stored dedupe key (about 100 bytes a row): an event is inserted
-- only in the statement that inserted its key. Retention deletes a key with its
-- event. See docs/retention.md.
--
-- Replicas of the previous release must be stopped before this runs: their
-- inserts name the unique index on `dedupe_key` that this migration removes.

CREATE TABLE telephony_event_keys (
    dedupe_key  text PRIMARY KEY,
    received_at timestamptz NOT NULL
);

ALTER TABLE telephony_events RENAME TO telephony_events_v5;
ALTER TABLE telephony_events_v5 RENAME CONSTRAINT telephony_events_pkey TO telephony_events_v5_pkey;
ALTER TABLE telephony_events_v5 RENAME CONSTRAINT telephony_events_dedupe_key_key TO telephony_events_v5_dedupe_key_key;
ALTER INDEX telephony_events_call RENAME TO telephony_events_v5_call;
ALTER INDEX telephony_events_deferred RENAME TO telephony_events_v5_deferred;

CREATE TABLE telephony_events (
    id               uuid NOT NULL,
    provider         text NOT NULL,
    dedupe_key       text NOT NULL,
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
    error_message    text,
    source           text NOT NULL DEFAULT 'callback' CHECK (source IN ('callback', 'reconcile', 'spool')),
    account_sid      text,
    PRIMARY KEY (id, received_at)
) PARTITION BY RANGE (received_at);

-- Rows of a month without a partition (one created late, or one whose partition
-- retention dropped while some of its calls were still open) live here.
CREATE TABLE telephony_events_default PARTITION OF telephony_events DEFAULT;

CREATE INDEX telephony_events_call ON telephony_events (call_id, received_at);
CREATE INDEX telephony_events_deferred ON telephony_events (provider, provider_call_id)
    WHERE disposition = 'deferred';
CREATE INDEX telephony_events_dedupe ON telephony_events (dedupe_key);
CREATE INDEX telephony_events_received ON telephony_events (received_at, id);

-- Creates the monthly partitions from `first`'s month through `last`'s, moving
-- any rows of those months out of the default partition first (attaching a
-- partition fails while the default holds rows of its range). Returns how many
-- it created. Run by the migration, and by every replica's retention loop for
-- the current and next two months (serialised by an advisory lock).
CREATE FUNCTION callhook_event_partitions(first timestamptz, last timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    month   timestamptz := date_trunc('month', first AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    next    timestamptz;
    name    text;
    created integer := 0;
BEGIN
    -- Replicas run this at the same time: one at a time, each seeing the others' work.
    PERFORM pg_advisory_xact_lock(hashtext('callhook:event_partitions'));
    WHILE month <= last LOOP
        next := ((month AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
        name := 'telephony_events_' || to_char(month AT TIME ZONE 'UTC', '"y"YYYY"m"MM');
        IF to_regclass(format('%I.%I', current_schema(), name)) IS NULL THEN
            EXECUTE format('CREATE TABLE %I (LIKE telephony_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
            -- Callbacks of this month may be going into the default partition now:
            -- hold them until the partition is attached, and move what is there in
            -- one statement (a DELETE and a separate INSERT could each miss a row
            -- committed between them).
            LOCK TABLE telephony_events_default IN SHARE ROW EXCLUSIVE MODE;
            EXECUTE format('WITH moved AS (DELETE FROM telephony_events_default '
                           'WHERE received_at >= $1 AND received_at < $2 RETURNING *) '
                           'INSERT INTO %I SELECT * FROM moved', name) USING month, next;
            -- Bounds written in UTC, whatever the session's DateStyle and TimeZone.
            EXECUTE format('ALTER TABLE telephony_events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                           name, to_char(month AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00',
                           to_char(next AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00');
            created := created + 1;
        END IF;
        month := next;
    END LOOP;
    RETURN created;
END $$;

-- Partitions for the rows kept (at most ten years back; older rows, if any, go to
-- the default partition) and the months ahead, then every row and its key.
SELECT callhook_event_partitions(
    greatest(coalesce((SELECT min(received_at) FROM telephony_events_v5), now()), now() - interval '10 years'),
    now() + interval '2 months');

INSERT INTO telephony_events (id, provider, dedupe_key, call_id, provider_call_id, event_type, provider_status,
    sequence_number, occurred_at, received_at, disposition, payload, campaign_id, contact_id, duration_seconds,
    answered_by, error_code, error_message, source, account_sid)
SELECT id, provider, dedupe_key, call_id, provider_call_id, event_type, provider_status,
    sequence_number, occurred_at, received_at, disposition, payload, campaign_id, contact_id, duration_seconds,
    answered_by, error_code, error_message, source, account_sid
FROM telephony_events_v5;

INSERT INTO telephony_event_keys (dedupe_key, received_at)
SELECT dedupe_key, received_at FROM telephony_events_v5;

DROP TABLE telephony_events_v5;

-- Retention finds finished jobs by age; the console a call's jobs.
CREATE INDEX outbox_finished ON outbox (updated_at) WHERE status IN ('done', 'expired');
CREATE INDEX outbox_call ON outbox ((payload->>'call_id'));
