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

-- The claim of due contacts reads, per zone, the pending contacts in due order.
CREATE INDEX contacts_dialable ON contacts (campaign_id, timezone, next_attempt_at)
    WHERE state = 'pending' AND NOT do_not_call;
-- Listing a campaign's contacts in a stable order (cursor pagination).
CREATE INDEX contacts_campaign_id ON contacts (campaign_id, id);
-- Statistics by state, outcome and attempts without reading the table.
DROP INDEX contacts_campaign_due;
CREATE INDEX contacts_campaign_stats ON contacts (campaign_id, state, last_outcome, attempts_count);
-- Calls in flight per campaign (the concurrency cap).
CREATE INDEX call_attempts_in_flight ON call_attempts (campaign_id)
    WHERE status IN ('initiated', 'ringing', 'answered');
