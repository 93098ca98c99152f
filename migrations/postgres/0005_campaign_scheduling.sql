-- Campaign scheduling and the dialer's interface (SPEC §1 version 2 columns, §11).
-- Existing campaigns keep their behaviour: UTC, 09:00–20:00 every day, no
-- per-outcome policy (every outcome retried after retry_interval_minutes), no
-- concurrency cap, running.
ALTER TABLE campaigns
    ADD COLUMN timezone             text NOT NULL DEFAULT 'UTC',
    ADD COLUMN calling_window_start text NOT NULL DEFAULT '09:00',
    ADD COLUMN calling_window_end   text NOT NULL DEFAULT '20:00',
    ADD COLUMN calling_days         text NOT NULL DEFAULT '1,2,3,4,5,6,7',
    ADD COLUMN retry_policy         jsonb,
    ADD COLUMN max_concurrent_calls integer CHECK (max_concurrent_calls >= 1),
    ADD COLUMN status               text NOT NULL DEFAULT 'running'
                                    CHECK (status IN ('running', 'paused', 'stopped'));

-- A contact's own zone (NULL: the campaign's).
ALTER TABLE contacts ADD COLUMN timezone text;

-- One contact per phone number and campaign. Version 1 accepted duplicates: they
-- are kept, unchanged, and marked with the first contact of the same number
-- (`duplicate_of`), so the uniqueness holds for every other row.
ALTER TABLE contacts ADD COLUMN duplicate_of uuid;
UPDATE contacts c SET duplicate_of = d.first_id
FROM (SELECT id, first_value(id) OVER (PARTITION BY campaign_id, phone_number ORDER BY created_at, id) AS first_id
      FROM contacts) d
WHERE d.id = c.id AND d.first_id <> c.id;
CREATE UNIQUE INDEX contacts_campaign_phone ON contacts (campaign_id, phone_number) WHERE duplicate_of IS NULL;

-- The claim of due contacts reads, per zone, the pending contacts in due order
-- ('' stands for the campaign's zone, so that it is one equality like the others
-- and the index gives the due order).
CREATE INDEX contacts_dialable ON contacts (campaign_id, (coalesce(timezone, '')), next_attempt_at)
    WHERE state = 'pending' AND NOT do_not_call;
-- Listing a campaign's contacts in a stable order (cursor pagination).
CREATE INDEX contacts_campaign_id ON contacts (campaign_id, id);
-- Replaced by contacts_dialable (the claim) and contact_counts (the statistics).
DROP INDEX contacts_campaign_due;
-- The unique (contact_id, attempt_number) index serves every look-up by contact: one
-- index less to write on each registration.
DROP INDEX call_attempts_contact;
-- Calls in flight per campaign (the concurrency cap).
CREATE INDEX call_attempts_in_flight ON call_attempts (campaign_id)
    WHERE status IN ('initiated', 'ringing', 'answered');

-- Campaign statistics without reading the contacts: every change of a contact's
-- state, last outcome or attempts count appends its delta here (a trigger, so no
-- writer can forget it); rows are only inserted, so concurrent writers never wait
-- on each other. `callhook` folds a campaign's rows into one per group when it
-- reads its statistics and in the reconciler's passes.
CREATE TABLE contact_counts (
    campaign_id    uuid NOT NULL,
    state          text NOT NULL,
    last_outcome   text NOT NULL,  -- '' for none
    attempts_count integer NOT NULL,
    n              bigint NOT NULL
);
CREATE INDEX contact_counts_campaign ON contact_counts (campaign_id);
INSERT INTO contact_counts
    SELECT campaign_id, state, coalesce(last_outcome, ''), attempts_count, count(*)
    FROM contacts GROUP BY campaign_id, state, coalesce(last_outcome, ''), attempts_count;

CREATE FUNCTION contact_counts_delta() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO contact_counts
            SELECT campaign_id, state, coalesce(last_outcome, ''), attempts_count, count(*)
            FROM new_rows GROUP BY 1, 2, 3, 4;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO contact_counts
            SELECT campaign_id, state, coalesce(last_outcome, ''), attempts_count, -count(*)
            FROM old_rows GROUP BY 1, 2, 3, 4;
    ELSE
        INSERT INTO contact_counts
            SELECT campaign_id, state, last_outcome, attempts_count, sum(n) FROM (
                SELECT campaign_id, state, coalesce(last_outcome, '') AS last_outcome, attempts_count, -1 AS n
                FROM old_rows
                UNION ALL
                SELECT campaign_id, state, coalesce(last_outcome, ''), attempts_count, 1 FROM new_rows
            ) delta
            GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER contacts_counted_insert AFTER INSERT ON contacts
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION contact_counts_delta();
CREATE TRIGGER contacts_counted_update AFTER UPDATE ON contacts
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION contact_counts_delta();
CREATE TRIGGER contacts_counted_delete AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION contact_counts_delta();
