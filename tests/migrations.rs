//! Upgrades keep data: a database populated by the previous release (migrations up
//! to 0001) is migrated by this one and every row reads back unchanged, and the
//! work in flight (an answered call, pending and leased jobs) carries on.

mod common;

use std::time::Duration;

use callhook::domain::{CallStatus, ContactState, Disposition, Outcome};
use common::*;
use uuid::Uuid;

const CAMPAIGN: &str = "7c1f3f7e-1f6a-4c55-9d0e-0a4a7d3c1001";
const CONTACT: &str = "7c1f3f7e-1f6a-4c55-9d0e-0a4a7d3c2001";
const ATTEMPT: &str = "7c1f3f7e-1f6a-4c55-9d0e-0a4a7d3c3001";
const JOB_DONE: &str = "7c1f3f7e-1f6a-4c55-9d0e-0a4a7d3c4001";
const JOB_DUE: &str = "7c1f3f7e-1f6a-4c55-9d0e-0a4a7d3c4002";
const JOB_LEASED: &str = "7c1f3f7e-1f6a-4c55-9d0e-0a4a7d3c4003";

/// Rows as release 0001 wrote them. The literals mean the same to both backends.
fn v1_rows() -> String {
    format!(
        "INSERT INTO campaigns (id, name, max_attempts, retry_interval_minutes, created_at) \
           VALUES ('{CAMPAIGN}', 'Spring survey', 3, 45, '2026-11-01T09:00:00+00:00');
         INSERT INTO contacts (id, campaign_id, phone_number, external_id, state, attempts_count, last_attempt_at, \
           do_not_call, created_at, updated_at) \
           VALUES ('{CONTACT}', '{CAMPAIGN}', '+14155550100', 'crm-42', 'in_progress', 1, '2026-11-01T10:00:00+00:00', \
           false, '2026-11-01T09:00:00+00:00', '2026-11-01T10:00:00+00:00');
         INSERT INTO call_attempts (id, call_id, campaign_id, contact_id, attempt_number, provider, provider_call_id, \
           status, provider_raw_status, started_at, answered_at, metadata) \
           VALUES ('{ATTEMPT}', 'call-v1', '{CAMPAIGN}', '{CONTACT}', 1, 'twilio', 'CA-v1', 'answered', 'in-progress', \
           '2026-11-01T10:00:00+00:00', '2026-11-01T10:00:20+00:00', '{{\"dialer\":\"v1\"}}');
         INSERT INTO telephony_events (id, provider, dedupe_key, call_id, provider_call_id, event_type, provider_status, \
           sequence_number, occurred_at, received_at, disposition, payload) VALUES \
           ('7c1f3f7e-1f6a-4c55-9d0e-0a4a7d3c5001', 'twilio', 'twilio:CA-v1:ringing:0', 'call-v1', 'CA-v1', \
            'call.ringing', 'ringing', 0, NULL, '2026-11-01T10:00:05+00:00', 'applied', '{{\"CallStatus\":\"ringing\"}}'), \
           ('7c1f3f7e-1f6a-4c55-9d0e-0a4a7d3c5002', 'twilio', 'twilio:CA-v1:in-progress:1', 'call-v1', 'CA-v1', \
            'call.answered', 'in-progress', 1, NULL, '2026-11-01T10:00:20+00:00', 'applied', \
            '{{\"CallStatus\":\"in-progress\"}}');
         INSERT INTO outbox (id, kind, idempotency_key, payload, status, attempts, next_run_at, locked_until, last_error, \
           created_at, updated_at, delivered_at) VALUES \
           ('{JOB_DONE}', 'survey.completed', 'survey.completed:old', '{{\"call_id\":\"old\"}}', 'done', 1, \
            '2026-11-01T08:00:00+00:00', NULL, NULL, '2026-11-01T08:00:00+00:00', '2026-11-01T08:00:01+00:00', \
            '2026-11-01T08:00:01+00:00'), \
           ('{JOB_DUE}', 'dialogue.start', 'dialogue.start:call-v1', '{{\"call_id\":\"call-v1\"}}', 'pending', 2, \
            '2026-11-01T10:00:20+00:00', '2026-11-01T10:01:00+00:00', 'HTTP 503', '2026-11-01T10:00:20+00:00', \
            '2026-11-01T10:00:30+00:00', NULL), \
           ('{JOB_LEASED}', 'dialogue.start', 'dialogue.start:other', '{{\"call_id\":\"other\"}}', 'pending', 1, \
            '2026-11-01T10:00:20+00:00', '2999-01-01T00:00:00+00:00', NULL, '2026-11-01T10:00:21+00:00', \
            '2026-11-01T10:00:21+00:00', NULL);"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_v1_database_upgrades_without_loss() {
    a_v1_database_upgrades_without_loss(sqlite_unmigrated().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_v1_database_upgrades_without_loss() {
    let Some(db) = postgres_unmigrated().await else { return };
    a_v1_database_upgrades_without_loss(db).await;
}

async fn a_v1_database_upgrades_without_loss(db: TestDb) {
    db.migrate_to(1).await;
    db.execute_script(&v1_rows()).await;
    let store = db.store.clone();
    store.migrate().await.expect("upgrade");
    store.migrate().await.expect("a second run is a no-op");

    let id = |s: &str| Uuid::parse_str(s).unwrap();
    let campaign = store.campaign(id(CAMPAIGN)).await.unwrap().expect("campaign kept");
    assert_eq!(
        (campaign.name.as_str(), campaign.max_attempts, campaign.retry_interval_minutes),
        ("Spring survey", 3, 45)
    );
    let contact = store.contact(id(CONTACT)).await.unwrap().expect("contact kept");
    assert_eq!(
        (contact.phone_number.as_str(), contact.external_id.as_deref(), contact.state, contact.attempts_count),
        ("+14155550100", Some("crm-42"), ContactState::InProgress, 1)
    );
    let attempt = store.attempt("call-v1").await.unwrap().expect("attempt kept");
    assert_eq!((attempt.status, attempt.provider_call_id.as_deref()), (CallStatus::Answered, Some("CA-v1")));
    assert_eq!(attempt.answered_at.unwrap().to_rfc3339(), "2026-11-01T10:00:20+00:00");
    assert_eq!(attempt.metadata, serde_json::json!({"dialer": "v1"}));
    let events = store.events_for_call("call-v1").await.unwrap();
    let kept: Vec<_> = events.iter().map(|e| (e.provider_status.as_str(), e.disposition, e.payload.clone())).collect();
    assert_eq!(
        kept,
        vec![
            ("ringing", Disposition::Applied, serde_json::json!({"CallStatus": "ringing"})),
            ("in-progress", Disposition::Applied, serde_json::json!({"CallStatus": "in-progress"})),
        ]
    );
    let jobs = store.outbox(10).await.unwrap();
    let job = |s: &str| jobs.iter().find(|j| j.id == id(s)).unwrap().clone();
    assert_eq!((job(JOB_DONE).status.as_str(), job(JOB_DONE).delivered_at.is_some()), ("done", true));
    assert_eq!((job(JOB_DUE).attempts, job(JOB_DUE).last_error.as_deref()), (2, Some("HTTP 503")));

    // Work in flight carries on: the due job (its old lease long over) is claimed,
    // the one still leased by a v1 dispatcher is not, and settling works.
    let claimed = store.claim_jobs(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(claimed.jobs.iter().map(|j| j.id).collect::<Vec<_>>(), vec![id(JOB_DUE)]);
    assert_eq!(store.complete_jobs(claimed.lease, &[id(JOB_DUE)]).await.unwrap(), 1);
    let (attempt, contact) = store.record_outcome("call-v1", Outcome::Completed).await.unwrap();
    assert_eq!((attempt.outcome, contact.state), (Some(Outcome::Completed), ContactState::Completed));
    db.cleanup().await;
}

/// Version 4 (before campaign scheduling) with a campaign whose contacts repeat a
/// phone number, as version 1 allowed.
fn v4_rows() -> String {
    format!(
        "INSERT INTO campaigns (id, name, max_attempts, retry_interval_minutes, created_at, amd_mode) \
           VALUES ('{CAMPAIGN}', 'Autumn survey', 2, 30, '2026-11-01T09:00:00+00:00', 'wait');
         INSERT INTO contacts (id, campaign_id, phone_number, state, attempts_count, next_attempt_at, do_not_call, \
           created_at, updated_at) VALUES \
           ('{CONTACT}', '{CAMPAIGN}', '+14155550100', 'pending', 1, '2026-11-02T10:00:00+00:00', false, \
            '2026-11-01T09:00:00+00:00', '2026-11-01T09:00:00+00:00'), \
           ('7c1f3f7e-1f6a-4c55-9d0e-0a4a7d3c2002', '{CAMPAIGN}', '+14155550100', 'pending', 0, NULL, false, \
            '2026-11-01T09:00:01+00:00', '2026-11-01T09:00:01+00:00'), \
           ('7c1f3f7e-1f6a-4c55-9d0e-0a4a7d3c2003', '{CAMPAIGN}', '+14155550199', 'completed', 1, NULL, false, \
            '2026-11-01T09:00:02+00:00', '2026-11-01T09:00:02+00:00');"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_v4_database_gains_scheduling_without_loss() {
    a_v4_database_gains_scheduling_without_loss(sqlite_unmigrated().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_v4_database_gains_scheduling_without_loss() {
    let Some(db) = postgres_unmigrated().await else { return };
    a_v4_database_gains_scheduling_without_loss(db).await;
}

async fn a_v4_database_gains_scheduling_without_loss(db: TestDb) {
    db.migrate_to(4).await;
    db.execute_script(&v4_rows()).await;
    let store = db.store.clone();
    store.migrate().await.expect("upgrade");

    let id = |s: &str| Uuid::parse_str(s).unwrap();
    let campaign = store.campaign(id(CAMPAIGN)).await.unwrap().expect("campaign kept");
    assert_eq!(
        (campaign.name.as_str(), campaign.max_attempts, campaign.retry_interval_minutes),
        ("Autumn survey", 2, 30)
    );
    assert_eq!(campaign.amd_mode, callhook::domain::AmdMode::Wait);
    // The version 2 columns, with the defaults that keep version 1's behaviour.
    assert_eq!(
        (campaign.timezone.as_str(), campaign.calling_window_start.as_str(), campaign.calling_window_end.as_str()),
        ("UTC", "09:00", "20:00")
    );
    assert_eq!(campaign.calling_days, vec![1, 2, 3, 4, 5, 6, 7]);
    assert_eq!((campaign.retry_policy.clone(), campaign.max_concurrent_calls), (None, None));
    assert_eq!(campaign.status, callhook::domain::CampaignStatus::Running);

    // Every contact kept, the repeated number included, unchanged.
    let contacts = store.contacts(id(CAMPAIGN), None, None, 10).await.unwrap();
    assert_eq!(contacts.len(), 3);
    let first = store.contact(id(CONTACT)).await.unwrap().unwrap();
    assert_eq!((first.attempts_count, first.timezone.clone()), (1, None));
    assert_eq!(first.next_attempt_at.unwrap().to_rfc3339(), "2026-11-02T10:00:00+00:00");
    let twin = store.contact(id("7c1f3f7e-1f6a-4c55-9d0e-0a4a7d3c2002")).await.unwrap().unwrap();
    assert_eq!((twin.phone_number.as_str(), twin.state), ("+14155550100", ContactState::Pending));
    // From now on the number is the campaign's once.
    let again = store
        .add_contacts(id(CAMPAIGN), vec![callhook::store::NewContact::phone("+14155550100")], Default::default())
        .await
        .unwrap_err();
    assert!(matches!(again, callhook::store::StoreError::Refused { code: "duplicate_phone_number", .. }), "{again}");
    let stats = store.campaign_stats(id(CAMPAIGN)).await.unwrap();
    assert_eq!((stats.contacts, stats.by_state["completed"]), (3, 1));
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_v5_inbox_is_kept_whole_by_the_retention_migration() {
    a_v5_inbox_is_kept_whole_by_the_retention_migration(sqlite_unmigrated().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_v5_inbox_becomes_partitioned_by_month_without_loss() {
    let Some(db) = postgres_unmigrated().await else { return };
    a_v5_inbox_is_kept_whole_by_the_retention_migration(db).await;
}

/// Version 5's inbox, with events of three months, becomes version 6's: on PostgreSQL partitioned by month with its
/// keys in `telephony_event_keys`. Every row reads back the same, and a
/// redelivery of a migrated event is still a duplicate.
async fn a_v5_inbox_is_kept_whole_by_the_retention_migration(db: TestDb) {
    db.migrate_to(5).await;
    db.execute_script(
        "INSERT INTO telephony_events (id, provider, dedupe_key, call_id, provider_call_id, event_type, \
           provider_status, received_at, disposition, payload, source, account_sid) VALUES \
         ('7c1f3f7e-1f6a-4c55-9d0e-0a4a7d3c5101', 'twilio', 'twilio:CA-aug:completed', 'call-aug', 'CA-aug', \
          'call.completed', 'completed', '2026-08-15T12:00:00+00:00', 'deferred', '{\"CallStatus\":\"completed\"}', \
          'callback', 'AC1'), \
         ('7c1f3f7e-1f6a-4c55-9d0e-0a4a7d3c5102', 'twilio', 'twilio:CA-sep:busy', 'call-sep', 'CA-sep', \
          'call.busy', 'busy', '2026-09-30T23:59:59.999+00:00', 'deferred', '{\"CallStatus\":\"busy\"}', \
          'spool', NULL), \
         ('7c1f3f7e-1f6a-4c55-9d0e-0a4a7d3c5103', 'twilio', 'twilio:CA-nov:ringing', 'call-nov', 'CA-nov', \
          'call.ringing', 'ringing', '2026-11-01T00:00:00+00:00', 'deferred', '{\"CallStatus\":\"ringing\"}', \
          'reconcile', 'AC2');",
    )
    .await;
    let store = db.store.clone();
    let before = store.events(100).await.unwrap();
    assert_eq!(before.len(), 3);
    store.migrate().await.expect("upgrade");
    store.migrate().await.expect("a second run is a no-op");
    let after = store.events(100).await.unwrap();
    assert_eq!(after, before, "every row, every column");

    if db.backend == "postgres" {
        let pool = db.pg_pool();
        let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM telephony_event_keys").fetch_one(pool).await.unwrap();
        assert_eq!(keys, 3);
        let partitions: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'telephony_events'::regclass ORDER BY 1",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        for month in ["telephony_events_y2026m08", "telephony_events_y2026m09", "telephony_events_y2026m11"] {
            assert!(partitions.iter().any(|p| p == month), "{month} in {partitions:?}");
        }
        let in_default: i64 =
            sqlx::query_scalar("SELECT count(*) FROM telephony_events_default").fetch_one(pool).await.unwrap();
        assert_eq!(in_default, 0, "every migrated row is in its month");
        let in_september: i64 =
            sqlx::query_scalar("SELECT count(*) FROM telephony_events_y2026m09").fetch_one(pool).await.unwrap();
        assert_eq!(in_september, 1, "the last millisecond of September is September's");
    }

    // Exactly once across the migration: the same callback again is a duplicate.
    let mut again = call_event("call-sep", "CA-sep", "busy", callhook::domain::EventType::Busy);
    again.received_at = chrono::Utc::now();
    assert_eq!(store.record_event(&again).await.unwrap().outcome, callhook::store::RecordOutcome::Duplicate);
    assert_eq!(store.events(100).await.unwrap().len(), 3);
    db.cleanup().await;
}
