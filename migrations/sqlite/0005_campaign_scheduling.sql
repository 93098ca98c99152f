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
UPDATE contacts SET duplicate_of = d.first_id
FROM (SELECT id, first_value(id) OVER (PARTITION BY campaign_id, phone_number ORDER BY created_at, id) AS first_id
      FROM contacts) AS d
WHERE d.id = contacts.id AND d.first_id <> contacts.id;
CREATE UNIQUE INDEX contacts_campaign_phone ON contacts (campaign_id, phone_number) WHERE duplicate_of IS NULL;

CREATE INDEX contacts_dialable ON contacts (campaign_id, (coalesce(timezone, '')), next_attempt_at)
    WHERE state = 'pending' AND NOT do_not_call;
CREATE INDEX contacts_campaign_id ON contacts (campaign_id, id);
-- Replaced by contacts_dialable (the claim) and contact_counts (the statistics).
DROP INDEX contacts_campaign_due;
DROP INDEX call_attempts_contact;
CREATE INDEX call_attempts_in_flight ON call_attempts (campaign_id)
    WHERE status IN ('initiated', 'ringing', 'answered');

-- Campaign statistics without reading the contacts; see the PostgreSQL migration.
-- SQLite has row triggers only: one delta row per change, folded on read.
CREATE TABLE contact_counts (
    campaign_id    TEXT NOT NULL,
    state          TEXT NOT NULL,
    last_outcome   TEXT NOT NULL,
    attempts_count INTEGER NOT NULL,
    n              INTEGER NOT NULL
);
CREATE INDEX contact_counts_campaign ON contact_counts (campaign_id);
INSERT INTO contact_counts
    SELECT campaign_id, state, coalesce(last_outcome, ''), attempts_count, count(*)
    FROM contacts GROUP BY campaign_id, state, coalesce(last_outcome, ''), attempts_count;
CREATE TRIGGER contacts_counted_insert AFTER INSERT ON contacts BEGIN
    INSERT INTO contact_counts
        VALUES (NEW.campaign_id, NEW.state, coalesce(NEW.last_outcome, ''), NEW.attempts_count, 1);
END;
CREATE TRIGGER contacts_counted_update AFTER UPDATE ON contacts
    WHEN OLD.state IS NOT NEW.state OR OLD.last_outcome IS NOT NEW.last_outcome
      OR OLD.attempts_count IS NOT NEW.attempts_count OR OLD.campaign_id IS NOT NEW.campaign_id
BEGIN
    INSERT INTO contact_counts
        VALUES (OLD.campaign_id, OLD.state, coalesce(OLD.last_outcome, ''), OLD.attempts_count, -1);
    INSERT INTO contact_counts
        VALUES (NEW.campaign_id, NEW.state, coalesce(NEW.last_outcome, ''), NEW.attempts_count, 1);
END;
CREATE TRIGGER contacts_counted_delete AFTER DELETE ON contacts BEGIN
    INSERT INTO contact_counts
        VALUES (OLD.campaign_id, OLD.state, coalesce(OLD.last_outcome, ''), OLD.attempts_count, -1);
END;
