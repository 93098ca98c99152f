-- Fenced leases: a claim writes a token beside `locked_until`, and every settle
-- must present it while the lease lasts (see src/store/lease.rs). Existing rows
-- keep their data; a lease taken before this migration simply expires.
ALTER TABLE outbox ADD COLUMN lease_token text;
