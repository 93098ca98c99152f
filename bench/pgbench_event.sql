-- callhook's per-event transaction for one callback, as plain SQL for pgbench: lock
-- the attempt (with its contact and campaign), insert the inbox row
-- (ON CONFLICT DO NOTHING), move the attempt, commit. Run by bench/run.sh against
-- a schema pre-filled with attempts 'b1'…'b<N>'.
\set id random(1, :attempts)
BEGIN;
SELECT a.id, a.status, c.state, k.max_attempts FROM call_attempts a JOIN contacts c ON c.id = a.contact_id JOIN campaigns k ON k.id = a.campaign_id WHERE a.call_id = 'b' || :id FOR UPDATE OF a, c;
INSERT INTO telephony_events (id, provider, dedupe_key, call_id, provider_call_id, event_type, provider_status, received_at, disposition, payload) VALUES (gen_random_uuid(), 'twilio', 'twilio:' || gen_random_uuid(), 'b' || :id, 'CA' || :id, 'call.ringing', 'ringing', now(), 'applied', '{"AccountSid":"AC0","CallSid":"CA0","CallStatus":"ringing","Direction":"outbound-api","From":"+15005550006","To":"+14155550100"}') ON CONFLICT (dedupe_key) DO NOTHING;
UPDATE call_attempts SET status = 'ringing', provider_raw_status = 'ringing', provider_call_id = 'CA' || :id WHERE call_id = 'b' || :id;
COMMIT;
