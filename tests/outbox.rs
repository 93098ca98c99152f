//! The outbox dispatcher and its sinks against real receivers: a local HTTP server
//! that checks Standard Webhooks signatures, and the JetStream server on
//! 127.0.0.1:4222. Store-level tests run on SQLite and PostgreSQL.

#[macro_use]
mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use futures_util::StreamExt;
use tokio::net::TcpListener;

use callhook::outbox::{standard_webhooks, Dispatcher, DispatcherConfig, HttpSink, NatsSink, Sink, SinkError};
use callhook::secret::Secret;
use callhook::store::{OutboxJob, Store};
use common::*;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A receiver that fails its first `fail_first` requests with 500, then accepts
/// correctly signed ones. It records every accepted (webhook-id, body).
#[derive(Clone, Default)]
struct Receiver {
    fail_first: usize,
    calls: Arc<AtomicUsize>,
    accepted: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
    bad_signatures: Arc<AtomicUsize>,
}

async fn spawn_receiver(receiver: Receiver) -> String {
    let state = receiver.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let r = state.clone();
            async move {
                let n = r.calls.fetch_add(1, Ordering::SeqCst);
                if n < r.fail_first {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                let ts: i64 = h("webhook-timestamp").parse().unwrap_or(0);
                let key = standard_webhooks::secret_bytes(SECRET);
                if !standard_webhooks::verify(
                    &key,
                    &h("webhook-id"),
                    ts,
                    &body,
                    &h("webhook-signature"),
                    chrono::Utc::now().timestamp(),
                    60,
                ) {
                    r.bad_signatures.fetch_add(1, Ordering::SeqCst);
                    return StatusCode::UNAUTHORIZED;
                }
                r.accepted.lock().unwrap().push((h("webhook-id"), serde_json::from_slice(&body).unwrap()));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn fast_config(max_attempts: i32) -> DispatcherConfig {
    DispatcherConfig {
        max_attempts,
        backoff_base: Duration::ZERO,
        poll_interval: Duration::from_secs(60),
        ..DispatcherConfig::default()
    }
}

/// Registers a call and answers it: one `dialogue.start` job in the outbox.
async fn answered_call(store: &Arc<dyn Store>) -> String {
    let campaign = campaign(store, 3).await;
    let contact = contact(store, &campaign).await;
    let call_id = store
        .register_attempt(callhook::store::NewAttempt::new(contact.id, callhook::domain::Provider::Twilio))
        .await
        .unwrap()
        .attempt
        .call_id;
    let (code, _) = send(&app(store.clone()), callback(&call_id, &format!("CA-{call_id}"), "in-progress")).await;
    assert_eq!(code, StatusCode::OK);
    call_id
}

on_both_stores!(
    http_sink_delivers_signed_jobs_once_and_marks_them_done,
    failing_receiver_gets_the_job_once_it_recovers,
    job_is_dead_after_max_attempts_and_can_be_retried,
    an_expired_lease_makes_a_job_claimable_again,
    two_dispatchers_never_deliver_one_job_twice,
    a_commit_wakes_the_dispatcher_without_polling,
);

async fn http_sink_delivers_signed_jobs_once_and_marks_them_done(store: Arc<dyn Store>) {
    let receiver = Receiver::default();
    let url = spawn_receiver(receiver.clone()).await;
    let call_id = answered_call(&store).await;
    let sink = HttpSink::new(url, &Secret::new(SECRET), Duration::from_secs(5)).unwrap();
    let dispatcher = Dispatcher::new(store.clone(), Arc::new(sink), fast_config(5));
    let round = dispatcher.run_once().await.unwrap();
    assert_eq!(round.delivered, 1);
    assert_eq!(dispatcher.run_once().await.unwrap().claimed(), 0, "nothing left to deliver");

    let accepted = receiver.accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), 1);
    let jobs = store.outbox(10).await.unwrap();
    let (id, body) = &accepted[0];
    assert_eq!(id, &jobs[0].id.to_string(), "webhook-id is the job id");
    assert_eq!(body["type"], "dialogue.start");
    assert_eq!(body["data"]["call_id"], call_id.as_str());
    assert_eq!((jobs[0].status.as_str(), jobs[0].attempts), ("done", 1));
    assert!(jobs[0].delivered_at.is_some());
    assert_eq!(receiver.bad_signatures.load(Ordering::SeqCst), 0);
    let metrics = callhook::telemetry::prometheus().render();
    assert!(
        metrics.lines().any(|l| l.starts_with("callhook_outbox_dispatch_total")
            && l.contains(r#"sink="http""#)
            && l.contains(r#"result="delivered""#)),
        "{metrics}"
    );
    assert!(metrics.contains("callhook_outbox_commit_to_delivery_seconds_bucket"), "{metrics}");
}

async fn failing_receiver_gets_the_job_once_it_recovers(store: Arc<dyn Store>) {
    let receiver = Receiver { fail_first: 2, ..Receiver::default() };
    let url = spawn_receiver(receiver.clone()).await;
    answered_call(&store).await;
    let sink = HttpSink::new(url, &Secret::new(SECRET), Duration::from_secs(5)).unwrap();
    let dispatcher = Dispatcher::new(store.clone(), Arc::new(sink), fast_config(5));

    assert_eq!(dispatcher.run_once().await.unwrap().retried, 1);
    let job = store.outbox(10).await.unwrap().remove(0);
    assert_eq!((job.status.as_str(), job.attempts), ("pending", 1));
    assert!(job.last_error.as_deref().unwrap().contains("500"), "{:?}", job.last_error);
    assert_eq!(dispatcher.run_once().await.unwrap().retried, 1);
    assert_eq!(dispatcher.run_once().await.unwrap().delivered, 1);
    let job = store.outbox(10).await.unwrap().remove(0);
    assert_eq!((job.status.as_str(), job.attempts, job.last_error), ("done".into(), 3, None));
    assert_eq!(receiver.accepted.lock().unwrap().len(), 1);
}

async fn job_is_dead_after_max_attempts_and_can_be_retried(store: Arc<dyn Store>) {
    let receiver = Receiver { fail_first: usize::MAX, ..Receiver::default() };
    let url = spawn_receiver(receiver.clone()).await;
    answered_call(&store).await;
    let sink = HttpSink::new(url, &Secret::new(SECRET), Duration::from_secs(5)).unwrap();
    let dispatcher = Dispatcher::new(store.clone(), Arc::new(sink), fast_config(3));
    let rounds: Vec<_> = [(); 4].iter().map(|_| ()).collect();
    let mut dead = 0;
    for _ in rounds {
        dead += dispatcher.run_once().await.unwrap().dead;
    }
    assert_eq!(dead, 1);
    assert_eq!(receiver.calls.load(Ordering::SeqCst), 3, "no delivery after the job died");
    let job = store.outbox(10).await.unwrap().remove(0);
    assert_eq!((job.status.as_str(), job.attempts), ("dead", 3));
    assert_eq!(store.outbox_stats().await.unwrap().dead, 1);

    assert!(store.retry_job(job.id).await.unwrap());
    let job = store.outbox(10).await.unwrap().remove(0);
    assert_eq!((job.status.as_str(), job.attempts), ("pending", 0));
    assert!(!store.retry_job(uuid::Uuid::new_v4()).await.unwrap());
}

async fn an_expired_lease_makes_a_job_claimable_again(store: Arc<dyn Store>) {
    answered_call(&store).await;
    let claimed = store.claim_jobs(10, chrono::Duration::milliseconds(300)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(
        store.claim_jobs(10, chrono::Duration::seconds(30)).await.unwrap().is_empty(),
        "leased to the first claimer"
    );
    // The first claimer "crashed": after the lease the job is claimable again.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let again = store.claim_jobs(10, chrono::Duration::seconds(30)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id, again[0].attempts), (claimed[0].id, 2));
}

/// Records deliveries and fails the test if a job is ever in two deliveries at once.
#[derive(Default)]
struct CountingSink {
    in_flight: Mutex<HashMap<uuid::Uuid, usize>>,
    delivered: Mutex<HashMap<uuid::Uuid, usize>>,
    overlaps: AtomicUsize,
}

#[async_trait]
impl Sink for CountingSink {
    fn name(&self) -> &'static str {
        "counting"
    }

    async fn deliver(&self, job: &OutboxJob) -> Result<(), SinkError> {
        {
            let mut in_flight = self.in_flight.lock().unwrap();
            let n = in_flight.entry(job.id).or_default();
            *n += 1;
            if *n > 1 {
                self.overlaps.fetch_add(1, Ordering::SeqCst);
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        *self.in_flight.lock().unwrap().get_mut(&job.id).unwrap() -= 1;
        *self.delivered.lock().unwrap().entry(job.id).or_default() += 1;
        Ok(())
    }
}

async fn two_dispatchers_never_deliver_one_job_twice(store: Arc<dyn Store>) {
    for _ in 0..40 {
        answered_call(&store).await;
    }
    let sink = Arc::new(CountingSink::default());
    let config = DispatcherConfig { batch: 4, ..fast_config(5) };
    let a = Dispatcher::new(store.clone(), sink.clone(), config.clone());
    let b = Dispatcher::new(store.clone(), sink.clone(), config);
    let drain = |d: Dispatcher| async move {
        let mut n = 0;
        loop {
            let round = d.run_once().await.unwrap();
            if round.claimed() == 0 {
                return n;
            }
            n += round.delivered;
        }
    };
    let (na, nb) = tokio::join!(tokio::spawn(drain(a)), tokio::spawn(drain(b)));
    let (na, nb) = (na.unwrap(), nb.unwrap());
    assert_eq!(na + nb, 40);
    assert!(na > 0 && nb > 0, "both dispatchers took part ({na}/{nb})");
    assert_eq!(sink.overlaps.load(Ordering::SeqCst), 0);
    let delivered = sink.delivered.lock().unwrap();
    assert_eq!(delivered.len(), 40);
    assert!(delivered.values().all(|n| *n == 1));
    assert_eq!(store.outbox_stats().await.unwrap().done, 40);
}

async fn a_commit_wakes_the_dispatcher_without_polling(store: Arc<dyn Store>) {
    let sink = Arc::new(CountingSink::default());
    let dispatcher = Dispatcher::new(store.clone(), sink.clone(), fast_config(5)); // polls once a minute
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(dispatcher.run(stop_rx));
    tokio::time::sleep(Duration::from_millis(200)).await; // past its first (empty) round
    answered_call(&store).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sink.delivered.lock().unwrap().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sink.delivered.lock().unwrap().len(), 1, "woken by the commit, not the 60 s poll");
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_replicas_commit_wakes_the_dispatcher_through_notify() {
    let Some(db) = postgres().await else { return };
    // A second store over the same schema stands for another replica.
    let other = callhook::store::PgStore::from_pool(db.pg_pool().clone());
    let other: Arc<dyn Store> = Arc::new(other);
    let sink = Arc::new(CountingSink::default());
    let dispatcher = Dispatcher::new(db.store.clone(), sink.clone(), fast_config(5));
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(dispatcher.run(stop_rx));
    tokio::time::sleep(Duration::from_millis(300)).await;
    answered_call(&other).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sink.delivered.lock().unwrap().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sink.delivered.lock().unwrap().len(), 1, "NOTIFY from the other replica woke this dispatcher");
    stop.send(true).unwrap();
    task.await.unwrap();
    db.cleanup().await;
}

fn nats_url() -> String {
    std::env::var("CALLHOOK_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

#[tokio::test]
async fn nats_sink_publishes_to_jetstream_deduplicated_by_job_id() {
    let stream = format!("CALLHOOK_TEST_{}", uuid::Uuid::new_v4().simple());
    let prefix = format!("test{}", uuid::Uuid::new_v4().simple());
    let sink = match NatsSink::connect(&nats_url(), &stream, &prefix).await {
        Ok(sink) => sink,
        Err(e) if std::env::var("CALLHOOK_REQUIRE_NATS").is_err() => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "NOTICE: NATS test SKIPPED: {e}");
            return;
        }
        Err(e) => panic!("NATS is required (CALLHOOK_REQUIRE_NATS) but unavailable: {e}"),
    };
    let job = OutboxJob {
        id: uuid::Uuid::new_v4(),
        kind: "dialogue.start".into(),
        idempotency_key: "dialogue.start:c-1".into(),
        payload: serde_json::json!({"call_id": "c-1"}),
        status: "pending".into(),
        attempts: 1,
        next_run_at: chrono::Utc::now(),
        last_error: None,
        created_at: chrono::Utc::now(),
        delivered_at: None,
    };
    sink.deliver(&job).await.unwrap();
    sink.deliver(&job).await.unwrap(); // a retry after a lost ack

    let client = async_nats::connect(nats_url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut s = js.get_stream(&stream).await.unwrap();
    assert_eq!(s.info().await.unwrap().state.messages, 1, "JetStream dropped the duplicate by Nats-Msg-Id");
    let consumer = s
        .create_consumer(async_nats::jetstream::consumer::pull::Config { durable_name: None, ..Default::default() })
        .await
        .unwrap();
    let mut messages = consumer.fetch().max_messages(1).messages().await.unwrap();
    let msg = messages.next().await.unwrap().unwrap();
    assert_eq!(msg.subject.as_str(), format!("{prefix}.dialogue.start"));
    let msg_id = msg.headers.as_ref().unwrap().get(async_nats::header::NATS_MESSAGE_ID).unwrap();
    assert_eq!(msg_id.as_str(), job.id.to_string());
    let body: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!((body["type"].as_str(), body["data"]["call_id"].as_str()), (Some("dialogue.start"), Some("c-1")));
    js.delete_stream(&stream).await.unwrap();
}
