-- callhook's per-event transaction for one callback, as plain SQL for pgbench: lock
-- the attempt (with its contact and campaign), insert the inbox row
-- (its dedupe key first, in telephony_event_keys, as on partitioned PostgreSQL), move the attempt, commit. Run by bench/run.sh against
-- a schema pre-filled with attempts 'b1'…'b<N>'.
\set id random(1, :attempts)
BEGIN;
SELECT a.id, a.status, c.state, k.max_attempts FROM call_attempts a JOIN contacts c ON c.id = a.contact_id JOIN campaigns k ON k.id = a.campaign_id WHERE a.call_id = 'b' || :id FOR UPDATE OF a, c;
WITH k AS (INSERT INTO telephony_event_keys (dedupe_key, received_at) VALUES ('twilio:' || gen_random_uuid(), now()) ON CONFLICT (dedupe_key) DO NOTHING RETURNING dedupe_key) INSERT INTO telephony_events (id, provider, dedupe_key, call_id, provider_call_id, event_type, provider_status, received_at, disposition, payload) SELECT gen_random_uuid(), 'twilio', k.dedupe_key, 'b' || :id, 'CA' || :id, 'call.ringing', 'ringing', now(), 'applied', '{"AccountSid":"AC0","CallSid":"CA0","CallStatus":"ringing","Direction":"outbound-api","From":"+15005550006","To":"+14155550100"}' FROM k;
UPDATE call_attempts SET status = 'ringing', provider_raw_status = 'ringing', provider_call_id = 'CA' || :id WHERE call_id = 'b' || :id;
COMMIT;
