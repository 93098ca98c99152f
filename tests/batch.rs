//! Group commit keeps every answer and every row as they are without it: the same
//! mixed good and bad callbacks, fired concurrently through a batching router and
//! one by one through a plain one, give the same responses and the same stored rows.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;

use callhook::batcher::{BatchConfig, Batcher};
use callhook::domain::Provider;
use callhook::http::{router, AppState, Limits};
use callhook::store::{NewAttempt, Store};
use common::{callback, callback_with, send};

const CALLS: usize = 24;

/// The script of call `n`: its callbacks in order, some repeated, some refused.
fn script(n: usize) -> Vec<Request<Body>> {
    let (call, sid) = (format!("batch-call-{n}"), format!("CAbatch{n:026}"));
    let human = [("AnsweredBy", "human")];
    let mut requests = vec![callback(&call, &sid, "initiated"), callback(&call, &sid, "ringing")];
    match n % 4 {
        // answered by a person: one dialogue.start, the completion repeated
        0 => requests.extend([
            callback_with(&call, &sid, "in-progress", &human),
            callback_with(&call, &sid, "completed", &[("CallDuration", "30"), ("AnsweredBy", "human")]),
            callback_with(&call, &sid, "completed", &[("CallDuration", "30"), ("AnsweredBy", "human")]),
        ]),
        // a redelivery, then a callback whose campaign contradicts the call (409)
        1 => {
            let wrong = format!("/webhooks/telephony/events?call_id={call}&campaign_id={}", uuid::Uuid::new_v4());
            let fields = common::fields(&[
                ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
                ("CallSid", &sid),
                ("CallStatus", "busy"),
            ]);
            requests.extend([
                callback(&call, &sid, "ringing"),
                common::signed(&wrong, &fields),
                callback(&call, &sid, "no-answer"),
            ]);
        }
        // out of order: the end first, then a stale ringing; and a malformed one
        2 => requests.extend([
            callback(&call, &sid, "busy"),
            callback(&call, &sid, "ringing"),
            common::signed(
                &format!("/webhooks/telephony/events?call_id={call}"),
                &common::fields(&[("CallSid", &sid)]),
            ),
        ]),
        // a call never registered: deferred, twice
        _ => {
            let (ghost, ghost_sid) = (format!("batch-ghost-{n}"), format!("CAghost{n}"));
            requests.extend([callback(&ghost, &ghost_sid, "completed"), callback(&ghost, &ghost_sid, "completed")]);
        }
    }
    requests
}

async fn register(db: &common::TestDb) {
    let campaign = common::campaign(&db.store, 3).await;
    for n in 0..CALLS {
        let contact = common::contact(&db.store, &campaign).await;
        let new =
            NewAttempt { call_id: Some(format!("batch-call-{n}")), ..NewAttempt::new(contact.id, Provider::Twilio) };
        db.store.register_attempt(new).await.unwrap();
    }
}

fn app(store: Arc<dyn Store>, batcher: Option<Arc<Batcher>>) -> Router {
    let state = AppState { batcher, ..common::state(store) };
    router(state, Limits::default())
}

/// What a run leaves behind, without ids and times.
async fn rows(db: &common::TestDb) -> (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>) {
    let events = db.store.events(10_000).await.unwrap();
    let events =
        events.iter().map(|e| format!("{} {:?} {:?} {:?}", e.dedupe_key, e.call_id, e.disposition, e.event_type));
    let mut attempts = BTreeSet::new();
    for n in 0..CALLS {
        let a = db.store.attempt(&format!("batch-call-{n}")).await.unwrap().unwrap();
        let c = db.store.contact(a.contact_id).await.unwrap().unwrap();
        attempts.insert(format!(
            "{} {:?} {:?} {:?} {:?} {:?} | {:?} {} {:?}",
            a.call_id,
            a.status,
            a.outcome,
            a.answered_by,
            a.duration_seconds,
            a.error_code,
            c.state,
            c.attempts_count,
            c.last_outcome
        ));
    }
    let jobs = db.store.outbox(10_000).await.unwrap();
    let jobs = jobs.iter().map(|j| format!("{} {} {}", j.kind, j.idempotency_key, j.status));
    (events.collect(), attempts, jobs.collect())
}

type Answers = Vec<Vec<(StatusCode, String)>>;

fn answer((status, body): (StatusCode, serde_json::Value)) -> (StatusCode, String) {
    let word = body["status"].as_str().or(body["error"]["code"].as_str()).unwrap_or("").to_owned();
    (status, word)
}

#[tokio::test]
async fn postgres_batched_concurrent_answers_and_rows_equal_one_by_one() {
    let (Some(alone), Some(batched)) = (common::postgres().await, common::postgres().await) else { return };
    register(&alone).await;
    register(&batched).await;

    // One by one, without batching.
    let plain = app(alone.store.clone(), None);
    let mut expected: Answers = vec![];
    for n in 0..CALLS {
        let mut answers = vec![];
        for request in script(n) {
            answers.push(answer(send(&plain, request).await));
        }
        expected.push(answers);
    }

    // Every call at once (each call's callbacks in order), batched.
    let config = BatchConfig { max_events: 16, max_wait: std::time::Duration::from_millis(5), workers: 2 };
    let batcher = Arc::new(Batcher::start(batched.store.clone(), config));
    let batching = app(batched.store.clone(), Some(batcher));
    let tasks: Vec<_> = (0..CALLS)
        .map(|n| {
            let app = batching.clone();
            tokio::spawn(async move {
                let mut answers = vec![];
                for request in script(n) {
                    answers.push(answer(send(&app, request).await));
                }
                answers
            })
        })
        .collect();
    let mut got: Answers = vec![];
    for task in tasks {
        got.push(task.await.unwrap());
    }

    for n in 0..CALLS {
        assert_eq!(got[n], expected[n], "call {n}: batched answers differ from one by one");
    }
    assert!(expected.iter().flatten().any(|(s, _)| *s == StatusCode::CONFLICT), "the script has a 409");
    assert!(expected.iter().flatten().any(|(_, w)| w == "duplicate"), "the script has duplicates");
    assert_eq!(rows(&batched).await, rows(&alone).await, "stored rows differ");

    // Batching happened: some transactions held more than one callback.
    let metrics = common::scrape_metrics(&batching).await;
    let count = common::series_value(&metrics, "callhook_batch_events_count", &[]).unwrap_or(0.0);
    let sum = common::series_value(&metrics, "callhook_batch_events_sum", &[]).unwrap_or(0.0);
    assert!(sum > count, "no batch held two callbacks (sum {sum}, count {count})");
    alone.cleanup().await;
    batched.cleanup().await;
}

/// A database error in one callback aborts the batch's whole transaction (nothing of
/// it is committed); the batcher then records each alone, so the good ones are
/// stored and only the bad one fails, as without batching.
#[tokio::test]
async fn postgres_a_failed_batch_is_split_and_each_callback_answered_as_alone() {
    use callhook::domain::EventType::Ringing;
    use callhook::store::{RecordOutcome, StoreError};
    let Some(db) = common::postgres().await else { return };
    let campaign = common::campaign(&db.store, 3).await;
    for n in 0..3 {
        let contact = common::contact(&db.store, &campaign).await;
        let new = NewAttempt { call_id: Some(format!("split-{n}")), ..NewAttempt::new(contact.id, Provider::Twilio) };
        db.store.register_attempt(new).await.unwrap();
    }
    let good0 = common::call_event("split-0", "CAsplit0", "ringing", Ringing);
    // PostgreSQL text cannot hold NUL: a data exception inside the transaction.
    let bad = common::call_event("split-1", "CAsplit1", "ring\0ing", Ringing);
    let good2 = common::call_event("split-2", "CAsplit2", "ringing", Ringing);

    let whole = db.store.record_events(&[good0.clone(), bad.clone(), good2.clone()]).await;
    assert!(whole.is_err(), "the failed callback's error aborts the batch: {whole:?}");
    assert!(db.store.events(10).await.unwrap().is_empty(), "nothing of a failed batch is committed");

    let config = BatchConfig { max_events: 8, max_wait: std::time::Duration::from_millis(20), workers: 1 };
    let batcher = Batcher::start(db.store.clone(), config);
    let (a, b, c) = tokio::join!(batcher.record(&good0), batcher.record(&bad), batcher.record(&good2));
    assert_eq!(a.unwrap().outcome, RecordOutcome::Applied);
    assert!(matches!(b, Err(StoreError::Invalid(_))), "{b:?}");
    assert_eq!(c.unwrap().outcome, RecordOutcome::Applied);
    let stored: BTreeSet<_> = db.store.events(10).await.unwrap().into_iter().map(|e| e.dedupe_key).collect();
    assert_eq!(stored, BTreeSet::from([good0.dedupe_key, good2.dedupe_key]));
    db.cleanup().await;
}

/// A store that is away: the callback is answered unavailable, and for a moment the
/// next ones are too without being queued (503 at once, not after a connection
/// timeout each, which would keep requests past their own timeout).
#[tokio::test]
async fn an_away_store_is_answered_at_once() {
    use callhook::store::{PgStore, StoreError};
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_millis(200))
        .connect_lazy("postgres://postgres@127.0.0.1:1/none") // nothing listens on port 1
        .unwrap();
    let store: Arc<dyn Store> = Arc::new(PgStore::from_pool(pool));
    let config = BatchConfig { max_events: 8, max_wait: std::time::Duration::from_millis(20), workers: 1 };
    let batcher = Batcher::start(store, config);
    let event = common::call_event("away-1", "CAaway1", "ringing", callhook::domain::EventType::Ringing);
    let first = batcher.record(&event).await;
    assert!(matches!(&first, Err(StoreError::Unavailable(m)) if !m.contains("a moment ago")), "{first:?}");
    let next = batcher.record(&event).await;
    assert!(matches!(&next, Err(StoreError::Unavailable(m)) if m.contains("did not answer a moment ago")), "{next:?}");
}
