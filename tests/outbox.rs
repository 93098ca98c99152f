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

use callhook::clock::Clock;
use callhook::outbox::{standard_webhooks, Dispatcher, DispatcherConfig, HttpSink, NatsSink, Sink, SinkError};
use callhook::secret::Secret;
use callhook::store::{OutboxJob, PgStore, SqliteStore, Store};
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

/// Polls so rarely that a test's deadline passes long before the first poll: any
/// delivery within it was woken by a signal, or made by an explicit round.
fn fast_config(max_attempts: i32) -> DispatcherConfig {
    DispatcherConfig {
        max_attempts,
        backoff_base: Duration::ZERO,
        poll_interval: Duration::from_secs(3600),
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
    an_expired_lease_cannot_settle,
    each_job_is_settled_as_its_delivery_finishes,
    a_panicking_delivery_is_counted_and_spares_the_round,
    two_dispatchers_never_deliver_one_job_twice,
    a_commit_wakes_the_dispatcher_without_polling,
);

/// The value of one Prometheus series (name and exact label set), 0 when absent.
fn series(name: &str, labels: &[(&str, &str)]) -> f64 {
    series_value(&callhook::telemetry::prometheus().render(), name, labels).unwrap_or(0.0)
}

/// A sink name of this test's own per backend: the two versions of a test run
/// side by side, and each must read only the series it produced.
fn own_name(store: &Arc<dyn Store>, sqlite: &'static str, postgres: &'static str) -> &'static str {
    if store.backend() == "sqlite" {
        sqlite
    } else {
        postgres
    }
}

/// Delegates to a sink under a name no other test uses, so the metrics series it
/// produces are this test's alone.
struct Renamed<S>(&'static str, S);

#[async_trait]
impl<S: Sink> Sink for Renamed<S> {
    fn name(&self) -> &'static str {
        self.0
    }

    async fn deliver(&self, job: &OutboxJob) -> Result<(), SinkError> {
        self.1.deliver(job).await
    }
}

async fn http_sink_delivers_signed_jobs_once_and_marks_them_done(store: Arc<dyn Store>) {
    let receiver = Receiver::default();
    let url = spawn_receiver(receiver.clone()).await;
    let call_id = answered_call(&store).await;
    let http = HttpSink::new(url, &Secret::new(SECRET), Duration::from_secs(5)).unwrap();
    let name = own_name(&store, "http-probe-sqlite", "http-probe-postgres");
    let labels = [("sink", name), ("kind", "dialogue.start"), ("result", "delivered")];
    let lag = [("sink", name), ("kind", "dialogue.start")];
    let waited = [("sink", name)];
    let answer_to_start = || series("callhook_answer_to_dialogue_start_seconds_count", &waited);
    let waited_before = answer_to_start();
    let before = (
        series("callhook_outbox_dispatch_total", &labels),
        series("callhook_outbox_commit_to_delivery_seconds_count", &lag),
    );
    let dispatcher = Dispatcher::new(store.clone(), Arc::new(Renamed(name, http)), fast_config(5));
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
    let after = (
        series("callhook_outbox_dispatch_total", &labels),
        series("callhook_outbox_commit_to_delivery_seconds_count", &lag),
    );
    assert_eq!(after, (before.0 + 1.0, before.1 + 1.0), "one delivery counted, one commit-to-delivery observation");
    assert_eq!(answer_to_start(), waited_before + 1.0, "the answer-to-dialogue wait observed");
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
    assert_eq!((job.status.as_str(), job.attempts, job.last_error), ("done", 3, None));
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
    let claimed = store.claim_jobs(10, Duration::from_millis(300)).await.unwrap().jobs;
    assert_eq!(claimed.len(), 1);
    assert!(
        store.claim_jobs(10, Duration::from_secs(30)).await.unwrap().jobs.is_empty(),
        "leased to the first claimer"
    );
    // The first claimer "crashed": after the lease the job is claimable again.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let again = store.claim_jobs(10, Duration::from_secs(30)).await.unwrap().jobs;
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id, again[0].attempts), (claimed[0].id, 2));
}

async fn an_expired_lease_cannot_settle(store: Arc<dyn Store>) {
    answered_call(&store).await;
    let first = store.claim_jobs(10, Duration::from_millis(200)).await.unwrap();
    let id = first.jobs[0].id;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Expired and not yet taken by anyone: still no settle under the old lease.
    assert_eq!(store.complete_jobs(first.lease, &[id]).await.unwrap(), 0);
    assert!(!store.fail_job(first.lease, id, "late", None).await.unwrap(), "an expired lease cannot kill the job");
    assert_eq!(store.outbox(10).await.unwrap()[0].status, "pending");

    // Taken by a second claimer: the first one's late settles change nothing…
    let second = store.claim_jobs(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(second.jobs[0].id, id);
    assert_eq!(store.complete_jobs(first.lease, &[id]).await.unwrap(), 0);
    assert!(!store.fail_job(first.lease, id, "late", Some(Duration::ZERO)).await.unwrap());
    let job = store.outbox(10).await.unwrap().remove(0);
    assert_eq!((job.status.as_str(), job.last_error), ("pending", None));
    assert!(store.claim_jobs(10, Duration::from_secs(30)).await.unwrap().jobs.is_empty(), "still leased to the second");
    // …and the holder's settle does.
    assert_eq!(store.complete_jobs(second.lease, &[id]).await.unwrap(), 1);
    assert_eq!(store.outbox(10).await.unwrap()[0].status, "done");
    assert_eq!(store.complete_jobs(second.lease, &[id]).await.unwrap(), 0, "a settle releases the lease");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_replica_clock_ahead_cannot_shorten_a_lease() {
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
    store.migrate().await.unwrap();
    let skewed = store.with_clock(Clock::offset(chrono::Duration::hours(1)));
    a_replica_clock_ahead_cannot_shorten_a_lease(Arc::new(store), Arc::new(skewed)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_replica_clock_ahead_cannot_shorten_a_lease() {
    let Some(db) = postgres().await else { return };
    let skewed = PgStore::from_pool(db.pg_pool().clone()).with_clock(Clock::offset(chrono::Duration::hours(1)));
    a_replica_clock_ahead_cannot_shorten_a_lease(db.store.clone(), Arc::new(skewed)).await;
    db.cleanup().await;
}

/// `skewed` is another replica over the same database whose clock runs an hour ahead.
async fn a_replica_clock_ahead_cannot_shorten_a_lease(store: Arc<dyn Store>, skewed: Arc<dyn Store>) {
    answered_call(&store).await;
    let held = store.claim_jobs(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(held.jobs.len(), 1);
    // The replica whose clock runs an hour ahead judges leases by the database's clock.
    assert!(skewed.claim_jobs(10, Duration::from_secs(30)).await.unwrap().jobs.is_empty(), "lease stolen by skew");
    // Its retry schedule is the database's too: due after the delay, not an hour off.
    let lease = held.lease;
    assert!(store.fail_job(lease, held.jobs[0].id, "boom", Some(Duration::from_millis(100))).await.unwrap());
    tokio::time::sleep(Duration::from_millis(250)).await;
    let again = skewed.claim_jobs(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(again.jobs.len(), 1, "due by the database's clock");
}

/// Holds deliveries of the jobs in `held` until released; delivers the rest at once.
#[derive(Default)]
struct GateSink {
    name: &'static str,
    held: Mutex<Vec<uuid::Uuid>>,
    release: tokio::sync::Notify,
    panic_on: Mutex<Option<uuid::Uuid>>,
    delivered: Mutex<Vec<uuid::Uuid>>,
}

#[async_trait]
impl Sink for GateSink {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn deliver(&self, job: &OutboxJob) -> Result<(), SinkError> {
        if *self.panic_on.lock().unwrap() == Some(job.id) {
            panic!("sink bug while delivering {}", job.id);
        }
        if self.held.lock().unwrap().contains(&job.id) {
            self.release.notified().await;
        }
        self.delivered.lock().unwrap().push(job.id);
        Ok(())
    }
}

async fn each_job_is_settled_as_its_delivery_finishes(store: Arc<dyn Store>) {
    answered_call(&store).await;
    answered_call(&store).await;
    let jobs = store.outbox(10).await.unwrap();
    let (slow, fast) = (jobs[0].id, jobs[1].id);
    let sink = Arc::new(GateSink { held: Mutex::new(vec![slow]), ..GateSink::default() });
    let dispatcher = Dispatcher::new(store.clone(), sink.clone(), fast_config(5));
    let round = tokio::spawn(async move { dispatcher.run_once().await });
    let status = |jobs: Vec<OutboxJob>, id| jobs.into_iter().find(|j| j.id == id).unwrap().status;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while status(store.outbox(10).await.unwrap(), fast) != "done" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fast job was not settled while the slow one was in flight"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(status(store.outbox(10).await.unwrap(), slow), "pending", "the slow one is still being delivered");
    sink.release.notify_one();
    let round = round.await.unwrap().unwrap();
    assert_eq!((round.delivered, round.claimed()), (2, 2));
    assert_eq!(store.outbox_stats().await.unwrap().done, 2);
}

async fn a_panicking_delivery_is_counted_and_spares_the_round(store: Arc<dyn Store>) {
    answered_call(&store).await;
    answered_call(&store).await;
    let jobs = store.outbox(10).await.unwrap();
    let (bad, good) = (jobs[0].id, jobs[1].id);
    let name = own_name(&store, "gate-sqlite", "gate-postgres");
    let sink = Arc::new(GateSink { name, panic_on: Mutex::new(Some(bad)), ..GateSink::default() });
    let counted = || {
        let labels = [("sink", name), ("kind", "dialogue.start")];
        let panics = series("callhook_outbox_delivery_panics_total", &labels);
        let dispatch = series("callhook_outbox_dispatch_total", &[labels[0], labels[1], ("result", "panicked")]);
        (panics, dispatch)
    };
    let before = counted();
    let dispatcher = Dispatcher::new(store.clone(), sink.clone(), fast_config(5));
    let round = dispatcher.run_once().await.unwrap();
    assert_eq!((round.delivered, round.panicked), (1, 1));
    assert_eq!(counted(), (before.0 + 1.0, before.1 + 1.0), "the panic is counted once");
    let jobs = store.outbox(10).await.unwrap();
    let find = |id| jobs.iter().find(|j| j.id == id).unwrap();
    assert_eq!(find(good).status, "done");
    // The panicked job keeps its lease (and its counted attempt) and is retried after it.
    assert_eq!((find(bad).status.as_str(), find(bad).attempts), ("pending", 1));
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
    let delivered = sink.delivered.lock().unwrap().clone();
    assert_eq!(delivered.len(), 40);
    assert!(delivered.values().all(|n| *n == 1));
    assert_eq!(store.outbox_stats().await.unwrap().done, 40);
}

async fn a_commit_wakes_the_dispatcher_without_polling(store: Arc<dyn Store>) {
    let sink = Arc::new(CountingSink::default());
    let dispatcher = Dispatcher::new(store.clone(), sink.clone(), fast_config(5)); // polls once a minute
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(dispatcher.run(stop_rx));
    // Once a first job is delivered, the dispatcher has finished a round and waits;
    // only a wake-up can deliver the second before the hourly poll.
    answered_call(&store).await;
    wait_for_deliveries(&sink, 1).await;
    answered_call(&store).await;
    wait_for_deliveries(&sink, 2).await;
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_another_replicas_commit_wakes_the_dispatcher_through_notify() {
    let Some(db) = postgres().await else { return };
    // A second store over the same schema stands for another replica.
    let other = callhook::store::PgStore::from_pool(db.pg_pool().clone());
    let other: Arc<dyn Store> = Arc::new(other);
    let sink = Arc::new(CountingSink::default());
    let dispatcher = Dispatcher::new(db.store.clone(), sink.clone(), fast_config(5));
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(dispatcher.run(stop_rx));
    // As above; both jobs are committed by the other replica, whose in-process
    // signal this dispatcher never sees: only NOTIFY can wake it for the second.
    answered_call(&other).await;
    wait_for_deliveries(&sink, 1).await;
    answered_call(&other).await;
    wait_for_deliveries(&sink, 2).await;
    stop.send(true).unwrap();
    task.await.unwrap();
    db.cleanup().await;
}

/// Waits (at most 10 s, far below the dispatcher's hourly poll) for `n` deliveries.
async fn wait_for_deliveries(sink: &CountingSink, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sink.delivered.lock().unwrap().len() < n {
        assert!(tokio::time::Instant::now() < deadline, "delivery {n} was not woken (the poll is hourly)");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn nats_sink_publishes_to_jetstream_deduplicated_by_job_id() {
    let stream = format!("CALLHOOK_TEST_{}", uuid::Uuid::new_v4().simple());
    let prefix = format!("test{}", uuid::Uuid::new_v4().simple());
    let sink = match NatsSink::connect(&common::nats_url(), &stream, &prefix).await {
        Ok(sink) => sink,
        Err(e) if common::nats_optional(&e) => return,
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

    let client = async_nats::connect(common::nats_url()).await.unwrap();
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
