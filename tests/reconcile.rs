//! The reconciler against faithful fakes of the providers' REST APIs, on both
//! stores: lost callbacks recovered exactly once, verdict timeouts, give-ups,
//! provider failures that change nothing, replicas that never look up one call
//! twice, and dialogue starts expired when their call has ended. Time is the
//! reconciler's injected clock; nothing sleeps.

#[macro_use]
mod common;
mod fake_providers;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use chrono::Utc;

use callhook::clock::Clock;
use callhook::domain::stranded::{Timeouts, NO_DIALOGUE_OUTCOME, RECONCILE_GAVE_UP};
use callhook::domain::{CallStatus, ContactState, EventSource, EventType, Outcome, Provider};
use callhook::providers::simulate::Callback;
use callhook::reconcile::{to_event, Looked, Reconciler, ReconcilerConfig};
use callhook::store::{Cutoffs, NewAttempt, RecordOutcome, Store};
use common::*;
use fake_providers::{fixture_call_id, Behaviour, FakeHandle, FakeProvider};

/// A reconciler whose clock is `ahead` of now, with the fake's client.
fn reconciler(store: &Arc<dyn Store>, fake: &FakeHandle, ahead: chrono::Duration) -> Reconciler {
    let config = ReconcilerConfig { timeouts: Timeouts::default(), ..ReconcilerConfig::default() };
    Reconciler::new(store.clone(), vec![fake.client_with_timeout(Duration::from_secs(2))], config, Clock::offset(ahead))
}

/// Past `reconcile_after` (10 min), before the give-up (24 h).
fn quiet() -> chrono::Duration {
    chrono::Duration::minutes(11)
}

/// A registered call of `provider` that the provider knows as `pcid`, with its
/// first callback (ringing) received.
async fn ringing_call(store: &Arc<dyn Store>, provider: Provider, pcid: &str) -> (String, uuid::Uuid) {
    let campaign = campaign(store, 3).await;
    let contact = contact(store, &campaign).await;
    let mut new = NewAttempt::new(contact.id, provider);
    new.provider_call_id = Some(pcid.to_owned());
    let call_id = store.register_attempt(new).await.unwrap().attempt.call_id;
    let cb =
        Callback { provider_call_id: pcid, event: Some(EventType::Ringing), answered_by: None, duration_seconds: None };
    let path = format!("/webhooks/telephony/{provider}/events?call_id={call_id}");
    let (code, body) = send(&app(store.clone()), provider_callback(provider, &path, &cb)).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    (call_id, contact.id)
}

on_both_stores!(
    a_lost_final_callback_is_recovered_once_and_the_late_one_is_a_duplicate,
    a_callback_first_makes_the_reconciled_answer_a_duplicate,
    every_provider_api_settles_a_quiet_call,
    an_unknown_call_is_retried_with_backoff_then_given_up,
    a_call_reported_live_for_a_day_is_given_up,
    provider_failures_change_nothing_and_are_retried,
    an_answered_call_without_verdict_times_out_and_is_retried,
    replicas_never_look_up_one_call_twice,
    a_dialogue_start_held_when_its_call_ended_expires_after_its_lease,
    nothing_is_due_before_its_time,
    the_stranded_gauge_counts_what_it_must,
);

async fn a_lost_final_callback_is_recovered_once_and_the_late_one_is_a_duplicate(store: Arc<dyn Store>) {
    let (_, fake) = FakeProvider::start(Provider::Twilio).await;
    let sid = "CA00000000000000000000000000000001";
    let (call_id, contact_id) = ringing_call(&store, Provider::Twilio, sid).await;
    fake.set_call(sid, Behaviour::Fixture("no-answer"));

    let pass = reconciler(&store, &fake, quiet()).pass().await.unwrap();
    assert_eq!(pass.looked(Looked::Applied), 1, "{pass:?}");
    let attempt = store.attempt(&call_id).await.unwrap().unwrap();
    assert_eq!((attempt.status, attempt.outcome), (CallStatus::NoAnswer, Some(Outcome::NoAnswer)));
    let contact = store.contact(contact_id).await.unwrap().unwrap();
    assert_eq!((contact.state, contact.last_outcome), (ContactState::Pending, Some(Outcome::NoAnswer)));
    let events = store.events_for_call(&call_id).await.unwrap();
    let reconciled: Vec<_> = events.iter().filter(|e| e.source == EventSource::Reconcile).collect();
    assert_eq!(reconciled.len(), 1);
    assert_eq!(reconciled[0].dedupe_key, format!("twilio:{sid}:no-answer"), "the callback's own key");
    assert_eq!(reconciled[0].payload["status"], "no-answer", "the API's answer is kept");

    // The real callback, late: stored once between the two.
    let path = format!("/webhooks/telephony/twilio/events?call_id={call_id}");
    let (code, body) = send(&app(store.clone()), callback_with(&call_id, sid, "no-answer", &[])).await;
    assert_eq!((code, body["status"].as_str()), (StatusCode::OK, Some("duplicate")), "{path}: {body}");
    assert_eq!(store.events_for_call(&call_id).await.unwrap().len(), events.len());
    // Settled: a second pass asks nothing.
    fake.clear_requests();
    let pass = reconciler(&store, &fake, quiet()).pass().await.unwrap();
    assert!(pass.looked.is_empty() && fake.requests().is_empty(), "{pass:?}");
}

async fn a_callback_first_makes_the_reconciled_answer_a_duplicate(store: Arc<dyn Store>) {
    let (_, fake) = FakeProvider::start(Provider::Twilio).await;
    let sid = "CA00000000000000000000000000000002";
    let (call_id, _) = ringing_call(&store, Provider::Twilio, sid).await;
    let attempt = store.attempt(&call_id).await.unwrap().unwrap();
    fake.set_call(sid, Behaviour::Fixture("busy"));
    let snapshot = fake.client().fetch_call(sid).await.unwrap();
    // The callback wins the race against the reconciler's write.
    let (code, _) = send(&app(store.clone()), callback_with(&call_id, sid, "busy", &[])).await;
    assert_eq!(code, StatusCode::OK);
    let recorded = store.record_event(&to_event(&attempt, snapshot, Utc::now())).await.unwrap();
    assert_eq!(recorded.outcome, RecordOutcome::Duplicate);
    assert_eq!(store.events_for_call(&call_id).await.unwrap().len(), 2, "ringing and busy, once each");
}

async fn every_provider_api_settles_a_quiet_call(store: Arc<dyn Store>) {
    for (provider, fixture, status) in [
        (Provider::Twilio, "busy", CallStatus::Busy),
        (Provider::SignalWire, "busy", CallStatus::Busy),
        (Provider::Telnyx, "ended", CallStatus::Completed),
        (Provider::Vonage, "busy", CallStatus::Busy),
        (Provider::Plivo, "cdr-busy", CallStatus::Busy),
    ] {
        let (_, fake) = FakeProvider::start(provider).await;
        let pcid = fixture_call_id(provider);
        let (call_id, contact_id) = ringing_call(&store, provider, pcid).await;
        fake.set_call(pcid, Behaviour::Fixture(fixture));
        let pass = reconciler(&store, &fake, quiet()).pass().await.unwrap();
        assert_eq!(pass.looked(Looked::Applied), 1, "{provider}: {pass:?}");
        let attempt = store.attempt(&call_id).await.unwrap().unwrap();
        assert_eq!(attempt.status, status, "{provider}");
        // Telnyx says only that the call ended: never answered, so not reached this time.
        let expected = if provider == Provider::Telnyx { Outcome::NoAnswer } else { Outcome::Busy };
        assert_eq!(attempt.outcome, Some(expected), "{provider}");
        let contact = store.contact(contact_id).await.unwrap().unwrap();
        assert_eq!(contact.state, ContactState::Pending, "{provider}: retried later, not stranded");
        assert_eq!(fake.requests_for(pcid).len(), 1, "{provider}");
    }
}

async fn an_unknown_call_is_retried_with_backoff_then_given_up(store: Arc<dyn Store>) {
    let (_, fake) = FakeProvider::start(Provider::Twilio).await;
    let sid = "CA00000000000000000000000000000003";
    let (call_id, contact_id) = ringing_call(&store, Provider::Twilio, sid).await;
    // The fake knows no such call: Twilio's 404.
    let pass = reconciler(&store, &fake, quiet()).pass().await.unwrap();
    assert_eq!(pass.looked(Looked::Failed), 1);
    assert_eq!(store.attempt(&call_id).await.unwrap().unwrap().status, CallStatus::Ringing, "nothing guessed");
    // Backing off: the next pass at the same time asks nothing.
    let pass = reconciler(&store, &fake, quiet()).pass().await.unwrap();
    assert!(pass.looked.is_empty(), "{pass:?}");
    assert_eq!(fake.requests_for(sid).len(), 1);
    // A day later the call is given up: failed, and the contact retried.
    let pass = reconciler(&store, &fake, chrono::Duration::hours(25)).pass().await.unwrap();
    assert_eq!(pass.looked(Looked::GaveUp), 1, "{pass:?}");
    let attempt = store.attempt(&call_id).await.unwrap().unwrap();
    assert_eq!((attempt.status, attempt.error_code.as_deref()), (CallStatus::Failed, Some(RECONCILE_GAVE_UP)));
    assert_eq!(store.contact(contact_id).await.unwrap().unwrap().state, ContactState::Pending);
}

async fn provider_failures_change_nothing_and_are_retried(store: Arc<dyn Store>) {
    let (_, fake) = FakeProvider::start(Provider::Twilio).await;
    let behaviours = [
        Behaviour::Error(401),
        Behaviour::Error(500),
        Behaviour::Error(503),
        Behaviour::RateLimited { retry_after: Some("30".into()) },
        Behaviour::Html,
        Behaviour::Raw { status: 200, content_type: "application/json", body: "{\"sid\": 42".into() },
        Behaviour::Hang,
    ];
    let mut calls = vec![];
    for (i, behaviour) in behaviours.iter().enumerate() {
        let sid = format!("CA1000000000000000000000000000000{i}");
        let (call_id, _) = ringing_call(&store, Provider::Twilio, &sid).await;
        fake.set_call(&sid, behaviour.clone());
        calls.push(call_id);
    }
    // An unknown status on a 200 is stored but applies nothing: asked again later.
    let sid = "CA20000000000000000000000000000000";
    let (unknown, _) = ringing_call(&store, Provider::Twilio, sid).await;
    fake.set_call(sid, Behaviour::Fixture("unknown-status"));

    let pass = reconciler(&store, &fake, quiet()).pass().await.unwrap();
    assert_eq!(pass.looked(Looked::Failed), behaviours.len(), "{pass:?}");
    assert_eq!(pass.looked(Looked::Live), 1, "{pass:?}");
    for call_id in calls.iter().chain([&unknown]) {
        let attempt = store.attempt(call_id).await.unwrap().unwrap();
        assert_eq!((attempt.status, attempt.outcome), (CallStatus::Ringing, None), "{call_id}");
    }
    let unknown_events = store.events_for_call(&unknown).await.unwrap();
    assert!(unknown_events.iter().any(|e| e.source == EventSource::Reconcile), "the odd answer is kept");
}

async fn an_answered_call_without_verdict_times_out_and_is_retried(store: Arc<dyn Store>) {
    let (_, fake) = FakeProvider::start(Provider::Twilio).await;
    let sid = "CA00000000000000000000000000000004";
    let (call_id, contact_id) = ringing_call(&store, Provider::Twilio, sid).await;
    let app = app(store.clone());
    for status in ["in-progress", "completed"] {
        let (code, _) = send(&app, callback_with(&call_id, sid, status, &[("CallDuration", "60")])).await;
        assert_eq!(code, StatusCode::OK);
    }
    assert_eq!(store.contact(contact_id).await.unwrap().unwrap().state, ContactState::InProgress);
    let early = reconciler(&store, &fake, chrono::Duration::minutes(29)).pass().await.unwrap();
    assert_eq!(early.verdict_timeouts, 0, "the dialogue still has time");
    let pass = reconciler(&store, &fake, chrono::Duration::minutes(31)).pass().await.unwrap();
    assert_eq!(pass.verdict_timeouts, 1);
    let attempt = store.attempt(&call_id).await.unwrap().unwrap();
    assert_eq!((attempt.outcome, attempt.error_code.as_deref()), (Some(Outcome::Failed), Some(NO_DIALOGUE_OUTCOME)));
    let contact = store.contact(contact_id).await.unwrap().unwrap();
    assert_eq!((contact.state, contact.last_outcome), (ContactState::Pending, Some(Outcome::Failed)));
    assert!(fake.requests().is_empty(), "a finished call needs no provider");
    // A verdict arriving now is refused: the call is settled.
    assert!(store.record_outcome(&call_id, Outcome::Completed).await.is_err());
}

async fn replicas_never_look_up_one_call_twice(store: Arc<dyn Store>) {
    let (_, fake) = FakeProvider::start(Provider::Twilio).await;
    let mut sids = vec![];
    for i in 0..12 {
        let sid = format!("CA3000000000000000000000000000{i:04}");
        ringing_call(&store, Provider::Twilio, &sid).await;
        fake.set_call(&sid, Behaviour::Fixture("completed"));
        sids.push(sid);
    }
    let config = ReconcilerConfig { batch: 3, ..ReconcilerConfig::default() };
    let replica = || {
        let r = Reconciler::new(store.clone(), vec![fake.client()], config.clone(), Clock::offset(quiet()));
        tokio::spawn(async move { r.pass().await.unwrap() })
    };
    let (a, b) = tokio::join!(replica(), replica());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.looked(Looked::Applied) + b.looked(Looked::Applied), 12, "{a:?} {b:?}");
    for sid in &sids {
        assert_eq!(fake.requests_for(sid).len(), 1, "{sid} looked up by both replicas");
    }
}

async fn a_dialogue_start_held_when_its_call_ended_expires_after_its_lease(store: Arc<dyn Store>) {
    let (_, fake) = FakeProvider::start(Provider::Twilio).await;
    let sid = "CA00000000000000000000000000000005";
    let (call_id, _) = ringing_call(&store, Provider::Twilio, sid).await;
    let app = app(store.clone());
    send(&app, callback(&call_id, sid, "in-progress")).await;
    // A dispatcher holds the start (its delivery stalls) when the call ends: the
    // end's own transaction cannot expire it, the reconciler's pass does once the
    // lease is over.
    let held = store.claim_jobs(10, Duration::from_millis(200)).await.unwrap();
    assert_eq!(held.jobs.len(), 1);
    send(&app, callback_with(&call_id, sid, "completed", &[("CallDuration", "5")])).await;
    assert_eq!(store.outbox(10).await.unwrap()[0].status, "pending", "held, so not expired by the callback");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pass = reconciler(&store, &fake, chrono::Duration::zero()).pass().await.unwrap();
    assert_eq!(pass.expired_starts, 1);
    assert_eq!(store.outbox_stats().await.unwrap().dialogue_never_started, 1, "a human never reached by the dialogue");
    let jobs = store.outbox(10).await.unwrap();
    assert_eq!((jobs[0].kind.as_str(), jobs[0].status.as_str()), ("dialogue.start", "expired"));
    assert!(store.claim_jobs(10, Duration::from_secs(30)).await.unwrap().jobs.is_empty(), "never delivered");
}

async fn nothing_is_due_before_its_time(store: Arc<dyn Store>) {
    let (_, fake) = FakeProvider::start(Provider::Twilio).await;
    let sid = "CA00000000000000000000000000000006";
    let (call_id, _) = ringing_call(&store, Provider::Twilio, sid).await;
    fake.set_call(sid, Behaviour::Fixture("completed"));
    let pass = reconciler(&store, &fake, chrono::Duration::minutes(9)).pass().await.unwrap();
    assert!(pass.looked.is_empty() && fake.requests().is_empty(), "{pass:?}");
    let cutoffs = Cutoffs::at(Utc::now() + chrono::Duration::minutes(9), &Timeouts::default());
    assert_eq!(store.reconcile_stats(cutoffs).await.unwrap().awaiting_reconciliation, 0);
    let cutoffs = Cutoffs::at(Utc::now() + quiet(), &Timeouts::default());
    assert_eq!(store.reconcile_stats(cutoffs).await.unwrap().awaiting_reconciliation, 1);
    // `reconcile --call` looks a call up now, whatever its times.
    let looked = reconciler(&store, &fake, chrono::Duration::zero()).reconcile_call(&call_id).await.unwrap();
    assert_eq!(looked, Some(Looked::Applied));
    assert_eq!(reconciler(&store, &fake, chrono::Duration::zero()).reconcile_call(&call_id).await.unwrap(), None);
}

async fn the_stranded_gauge_counts_what_it_must(store: Arc<dyn Store>) {
    let cutoffs = || Cutoffs::at(Utc::now(), &Timeouts::default());
    let (_call_id, _) = ringing_call(&store, Provider::Twilio, "CA00000000000000000000000000000007").await;
    assert_eq!(store.reconcile_stats(cutoffs()).await.unwrap().stranded_contacts, 0, "a call in flight");
    // A contact marked in progress with no call at all is stranded.
    let campaign = campaign(&store, 3).await;
    let lone = contact(&store, &campaign).await;
    let mut new = NewAttempt::new(lone.id, Provider::Twilio);
    new.provider_call_id = Some("CA00000000000000000000000000000008".into());
    let call_id = store.register_attempt(new).await.unwrap().attempt.call_id;
    let app = app(store.clone());
    send(&app, callback(&call_id, "CA00000000000000000000000000000008", "in-progress")).await;
    send(&app, callback_with(&call_id, "CA00000000000000000000000000000008", "completed", &[("CallDuration", "9")]))
        .await;
    assert_eq!(store.reconcile_stats(cutoffs()).await.unwrap().stranded_contacts, 0, "awaiting its verdict in time");
    let late = Cutoffs::at(Utc::now() + chrono::Duration::minutes(31), &Timeouts::default());
    assert_eq!(store.reconcile_stats(late).await.unwrap().stranded_contacts, 1, "the verdict is overdue");
}

async fn a_call_reported_live_for_a_day_is_given_up(store: Arc<dyn Store>) {
    let (_, fake) = FakeProvider::start(Provider::Twilio).await;
    let sid = "CA00000000000000000000000000000009";
    let (call_id, _) = ringing_call(&store, Provider::Twilio, sid).await;
    fake.set_call(sid, Behaviour::Fixture("in-progress"));
    let pass = reconciler(&store, &fake, quiet()).pass().await.unwrap();
    assert_eq!(pass.looked(Looked::Live), 1, "{pass:?}");
    assert_eq!(store.attempt(&call_id).await.unwrap().unwrap().status, CallStatus::Answered);
    // The provider still says in progress a day later: no survey call lasts that long.
    let pass = reconciler(&store, &fake, chrono::Duration::hours(25)).pass().await.unwrap();
    assert_eq!(pass.looked(Looked::GaveUp), 1, "{pass:?}");
    let attempt = store.attempt(&call_id).await.unwrap().unwrap();
    assert_eq!((attempt.status, attempt.error_code.as_deref()), (CallStatus::Failed, Some(RECONCILE_GAVE_UP)));
}
