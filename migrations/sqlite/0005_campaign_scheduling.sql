-- Campaign scheduling (SPEC §11); see the PostgreSQL migration of the same number.
ALTER TABLE campaigns ADD COLUMN timezone TEXT NOT NULL DEFAULT 'UTC';
ALTER TABLE campaigns ADD COLUMN calling_window_start TEXT NOT NULL DEFAULT '09:00';
ALTER TABLE campaigns ADD COLUMN calling_window_end TEXT NOT NULL DEFAULT '20:00';
ALTER TABLE campaigns ADD COLUMN calling_days TEXT NOT NULL DEFAULT '1,2,3,4,5,6,7';
ALTER TABLE campaigns ADD COLUMN retry_policy TEXT;
ALTER TABLE campaigns ADD COLUMN max_concurrent_calls INTEGER CHECK (max_concurrent_calls >= 1);
ALTER TABLE campaigns ADD COLUMN status TEXT NOT NULL DEFAULT 'running'
    CHECK (status IN ('running', 'paused', 'stopped'));

ALTER TABLE contacts ADD COLUMN timezone TEXT;

ALTER TABLE contacts ADD COLUMN duplicate_of TEXT;
UPDATE contacts SET duplicate_of = (
    SELECT f.id FROM contacts f
    WHERE f.campaign_id = contacts.campaign_id AND f.phone_number = contacts.phone_number
    ORDER BY f.created_at, f.id LIMIT 1)
WHERE id <> (
    SELECT f.id FROM contacts f
    WHERE f.campaign_id = contacts.campaign_id AND f.phone_number = contacts.phone_number
    ORDER BY f.created_at, f.id LIMIT 1);
CREATE UNIQUE INDEX contacts_campaign_phone ON contacts (campaign_id, phone_number) WHERE duplicate_of IS NULL;

CREATE INDEX contacts_dialable ON contacts (campaign_id, timezone, next_attempt_at)
    WHERE state = 'pending' AND NOT do_not_call;
CREATE INDEX contacts_campaign_id ON contacts (campaign_id, id);
DROP INDEX contacts_campaign_due;
CREATE INDEX contacts_campaign_stats ON contacts (campaign_id, state, last_outcome, attempts_count);
CREATE INDEX call_attempts_in_flight ON call_attempts (campaign_id)
    WHERE status IN ('initiated', 'ringing', 'answered');
