-- Retention (SPEC §13); see the PostgreSQL migration of the same number, which
-- partitions the inbox by month. SQLite keeps one table and deletes rows.
CREATE INDEX telephony_events_received ON telephony_events (received_at, id);
CREATE INDEX outbox_finished ON outbox (updated_at) WHERE status IN ('done', 'expired');
CREATE INDEX outbox_call ON outbox (json_extract(payload, '$.call_id'));
