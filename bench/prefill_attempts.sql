-- 10,000 contacts, each with an attempt 'b1'…'b10000' in flight: what the pgbench
-- scripts (pgbench_event.sql, pgbench_batch.sql) record callbacks against.
INSERT INTO campaigns (id, name) VALUES ('00000000-0000-0000-0000-000000000001', 'pgbench');
INSERT INTO contacts (id, campaign_id, phone_number, state, attempts_count)
  SELECT gen_random_uuid(), '00000000-0000-0000-0000-000000000001', '+1415' || lpad(i::text, 7, '0'), 'in_progress', 1
  FROM generate_series(1, 10000) i;
INSERT INTO call_attempts (id, call_id, campaign_id, contact_id, attempt_number, provider, status, last_event_at)
  SELECT gen_random_uuid(), 'b' || row_number() OVER (), campaign_id, id, 1, 'twilio', 'initiated', now() FROM contacts;
