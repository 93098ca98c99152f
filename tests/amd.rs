//! Answering machines (SPEC §12) through the real HTTP endpoint with signed
//! callbacks, on both stores: Twilio's and SignalWire's asynchronous verdict, the
//! campaign's `amd_mode` (`off`: cancel a started dialogue; `wait`: hold the start
//! for the verdict, on the outbox's own schedule), every order of answer, verdict
//! and end, duplicates and contradictions.

#[macro_use]
mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::Value;

use callhook::domain::{AmdMode, CallStatus, ContactState, Outcome, Provider};
use callhook::store::{NewAttempt, NewCampaign, NewContact, Store};
use common::*;

on_both_stores!(
    an_async_verdict_is_accepted_stored_once_and_recorded,
    off_mode_cancels_a_started_dialogue_once,
    off_mode_withdraws_a_start_not_yet_delivered,
    wait_mode_holds_the_start_until_a_human_verdict,
    wait_mode_starts_nothing_for_a_machine,
    wait_mode_starts_after_the_timeout_without_a_verdict,
    a_verdict_before_the_answer_decides_alone,
    a_late_machine_verdict_settles_a_call_awaiting_its_dialogue,
    a_verdict_for_an_unknown_call_is_deferred,
    odd_verdicts_are_ignored_or_refused_and_the_first_verdict_wins,
    dialogue_start_carries_what_the_orchestrator_needs,
);

/// A registered Twilio call of a campaign in `mode` (wait timeout `wait_ms`).
async fn call(store: &Arc<dyn Store>, mode: AmdMode, wait_ms: i32) -> (String, uuid::Uuid) {
    let new = NewCampaign {
        amd_mode: Some(mode),
        amd_wait_timeout_ms: Some(wait_ms),
        timezone: Some(common::daytime_zone()),
        ..NewCampaign::named("Survey")
    };
    let campaign = store.create_campaign(new).await.unwrap();
    let mut contact = NewContact::phone("+14155550123");
    contact.external_id = Some("crm-7".into());
    let contact = common::add_contacts(store, &campaign, vec![contact]).await.remove(0);
    let mut attempt = NewAttempt::new(contact.id, Provider::Twilio);
    attempt.metadata = Some(serde_json::json!({"survey": "nps-q4"}));
    (store.register_attempt(attempt).await.unwrap().attempt.call_id, contact.id)
}

/// Twilio's `AsyncAmdStatusCallback` request: no `CallStatus`.
fn verdict(call_id: &str, sid: &str, answered_by: &str) -> axum::http::Request<axum::body::Body> {
    let f = fields(&[
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("CallSid", sid),
        ("AnsweredBy", answered_by),
        ("MachineDetectionDuration", "2150"),
    ]);
    signed(&format!("/webhooks/telephony/events?call_id={call_id}"), &f)
}

async fn jobs(store: &Arc<dyn Store>, kind: &str) -> Vec<(String, Value)> {
    let all = store.outbox(100).await.unwrap();
    all.into_iter().filter(|j| j.kind == kind).map(|j| (j.status, j.payload)).collect()
}

/// What a dispatcher could deliver now (the claim is released at once).
async fn deliverable(store: &Arc<dyn Store>) -> Vec<String> {
    let claimed = store.claim_jobs(100, Duration::from_secs(30)).await.unwrap();
    let kinds = claimed.jobs.iter().map(|j| j.kind.clone()).collect();
    for job in &claimed.jobs {
        store.fail_job(claimed.lease, job.id, "released by the test", Some(Duration::ZERO)).await.unwrap();
    }
    kinds
}

async fn deliver_all(store: &Arc<dyn Store>) {
    let claimed = store.claim_jobs(100, Duration::from_secs(30)).await.unwrap();
    let ids: Vec<_> = claimed.jobs.iter().map(|j| j.id).collect();
    store.complete_jobs(claimed.lease, &ids).await.unwrap();
}

async fn an_async_verdict_is_accepted_stored_once_and_recorded(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let (call_id, _) = call(&store, AmdMode::Off, 4000).await;
    send(&app, callback(&call_id, "CA1", "in-progress")).await;
    let (code, body) = send(&app, verdict(&call_id, "CA1", "human")).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (code, body) = send(&app, verdict(&call_id, "CA1", "human")).await;
    assert_eq!((code, body["status"].as_str()), (StatusCode::OK, Some("duplicate")));
    let attempt = store.attempt(&call_id).await.unwrap().unwrap();
    assert_eq!(attempt.answered_by.as_deref(), Some("human"));
    let events = store.events_for_call(&call_id).await.unwrap();
    let keys: Vec<_> = events.iter().map(|e| e.dedupe_key.as_str()).collect();
    assert_eq!(keys, ["twilio:CA1:in-progress", "twilio:CA1:amd:human"], "the verdict has its own key, once");
    assert_eq!(events[1].payload["MachineDetectionDuration"], "2150", "in the call's timeline as sent");

    // SignalWire sends the same verdict, signed with its own scheme.
    let campaign = campaign(&store, 3).await;
    let contact = contact(&store, &campaign).await;
    let sw = store.register_attempt(NewAttempt::new(contact.id, Provider::SignalWire)).await.unwrap().attempt.call_id;
    let path = format!("/webhooks/telephony/signalwire/events?call_id={sw}");
    let body = encode(&fields(&[("CallSid", "sw-1"), ("AccountSid", "p-1"), ("AnsweredBy", "machine_end_beep")]));
    let (code, res) =
        send(&app, provider_raw(Provider::SignalWire, &path, "application/x-www-form-urlencoded", &body)).await;
    assert_eq!(code, StatusCode::OK, "{res}");
    assert_eq!(store.attempt(&sw).await.unwrap().unwrap().answered_by.as_deref(), Some("machine_end_beep"));
}

async fn off_mode_cancels_a_started_dialogue_once(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let (call_id, _) = call(&store, AmdMode::Off, 4000).await;
    send(&app, callback(&call_id, "CA2", "in-progress")).await;
    deliver_all(&store).await; // the dialogue started
    send(&app, verdict(&call_id, "CA2", "machine_end_beep")).await;
    send(&app, verdict(&call_id, "CA2", "machine_end_beep")).await; // redelivered
    send(&app, verdict(&call_id, "CA2", "machine_start")).await; // contradicting, later: stale
    let cancels = jobs(&store, "dialogue.cancel").await;
    assert_eq!(cancels.len(), 1, "exactly one cancel: {cancels:?}");
    assert_eq!(cancels[0].1["call_id"], call_id.as_str());
    assert_eq!(jobs(&store, "dialogue.start").await[0].0, "done");
    send(&app, callback_with(&call_id, "CA2", "completed", &[("CallDuration", "20")])).await;
    let attempt = store.attempt(&call_id).await.unwrap().unwrap();
    assert_eq!((attempt.outcome, attempt.answered_by.as_deref()), (Some(Outcome::NoAnswer), Some("machine_end_beep")));
}

async fn off_mode_withdraws_a_start_not_yet_delivered(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let (call_id, _) = call(&store, AmdMode::Off, 4000).await;
    send(&app, callback(&call_id, "CA3", "in-progress")).await;
    send(&app, verdict(&call_id, "CA3", "fax")).await;
    assert_eq!(jobs(&store, "dialogue.start").await[0].0, "expired", "never delivered");
    assert!(jobs(&store, "dialogue.cancel").await.is_empty(), "nothing to cancel");
    assert!(deliverable(&store).await.is_empty());
}

async fn wait_mode_holds_the_start_until_a_human_verdict(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let (call_id, _) = call(&store, AmdMode::Wait, 60_000).await;
    send(&app, callback(&call_id, "CA4", "in-progress")).await;
    assert_eq!(jobs(&store, "dialogue.start").await.len(), 1, "written on the answer");
    assert!(deliverable(&store).await.is_empty(), "but held for the verdict");
    send(&app, verdict(&call_id, "CA4", "human")).await;
    assert_eq!(deliverable(&store).await, ["dialogue.start"], "deliverable at once");
}

async fn wait_mode_starts_nothing_for_a_machine(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let (call_id, contact_id) = call(&store, AmdMode::Wait, 60_000).await;
    send(&app, callback(&call_id, "CA5", "in-progress")).await;
    send(&app, verdict(&call_id, "CA5", "machine_end_silence")).await;
    assert_eq!(jobs(&store, "dialogue.start").await[0].0, "expired");
    assert!(jobs(&store, "dialogue.cancel").await.is_empty());
    assert_eq!(store.outbox_stats().await.unwrap().dialogue_never_started, 0, "a machine is not a human left waiting");
    send(&app, callback_with(&call_id, "CA5", "completed", &[("CallDuration", "31")])).await;
    let contact = store.contact(contact_id).await.unwrap().unwrap();
    assert_eq!((contact.state, contact.last_outcome), (ContactState::Pending, Some(Outcome::NoAnswer)));
}

async fn wait_mode_starts_after_the_timeout_without_a_verdict(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let (call_id, _) = call(&store, AmdMode::Wait, 200).await;
    send(&app, callback(&call_id, "CA6", "in-progress")).await;
    assert!(deliverable(&store).await.is_empty());
    tokio::time::sleep(Duration::from_millis(400)).await; // the campaign's 200 ms
    assert_eq!(deliverable(&store).await, ["dialogue.start"], "the timeout released it");
}

async fn a_verdict_before_the_answer_decides_alone(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let (call_id, contact_id) = call(&store, AmdMode::Wait, 60_000).await;
    let (code, body) = send(&app, verdict(&call_id, "CA7", "machine_start")).await;
    assert_eq!((code, body["status"].as_str()), (StatusCode::OK, Some("processed")));
    let (_, body) = send(&app, callback(&call_id, "CA7", "in-progress")).await;
    assert_eq!(body["status"], "ignored", "the answer came second: stale");
    assert!(jobs(&store, "dialogue.start").await.is_empty(), "a machine: nothing started");
    send(&app, callback_with(&call_id, "CA7", "completed", &[("CallDuration", "12")])).await;
    let attempt = store.attempt(&call_id).await.unwrap().unwrap();
    assert_eq!((attempt.status, attempt.outcome), (CallStatus::Completed, Some(Outcome::NoAnswer)));
    assert_eq!(store.contact(contact_id).await.unwrap().unwrap().state, ContactState::Pending);

    // A human verdict first, in `wait` mode: the start is deliverable at once.
    let (human, _) = call(&store, AmdMode::Wait, 60_000).await;
    send(&app, verdict(&human, "CA7h", "human")).await;
    assert_eq!(deliverable(&store).await, ["dialogue.start"]);
}

async fn a_late_machine_verdict_settles_a_call_awaiting_its_dialogue(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let (call_id, contact_id) = call(&store, AmdMode::Off, 4000).await;
    send(&app, callback(&call_id, "CA8", "in-progress")).await;
    deliver_all(&store).await;
    send(&app, callback_with(&call_id, "CA8", "completed", &[("CallDuration", "25")])).await;
    assert_eq!(store.contact(contact_id).await.unwrap().unwrap().state, ContactState::InProgress, "awaits a verdict");
    send(&app, verdict(&call_id, "CA8", "machine_end_other")).await;
    let contact = store.contact(contact_id).await.unwrap().unwrap();
    assert_eq!((contact.state, contact.last_outcome), (ContactState::Pending, Some(Outcome::NoAnswer)));
    assert_eq!(jobs(&store, "dialogue.cancel").await.len(), 1);
}

async fn a_verdict_for_an_unknown_call_is_deferred(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let campaign = campaign(&store, 3).await;
    let contact = contact(&store, &campaign).await;
    let (code, body) = send(&app, verdict("later-1", "CA9", "machine_start")).await;
    assert_eq!((code, body["status"].as_str()), (StatusCode::ACCEPTED, Some("deferred")));
    let mut new = NewAttempt::new(contact.id, Provider::Twilio);
    new.call_id = Some("later-1".into());
    let registered = store.register_attempt(new).await.unwrap();
    assert_eq!(registered.applied_deferred, 1);
    assert_eq!(registered.attempt.answered_by.as_deref(), Some("machine_start"));
}

async fn odd_verdicts_are_ignored_or_refused_and_the_first_verdict_wins(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let (call_id, _) = call(&store, AmdMode::Off, 4000).await;
    send(&app, callback(&call_id, "CA10", "in-progress")).await;
    let (code, body) = send(&app, verdict(&call_id, "CA10", "robot")).await;
    assert_eq!((code, body["status"].as_str()), (StatusCode::OK, Some("ignored")), "{body}");
    let no_sid = fields(&[("AccountSid", "AC0123456789abcdef0123456789abcdef"), ("AnsweredBy", "human")]);
    let (code, body) = send(&app, signed(&format!("/webhooks/telephony/events?call_id={call_id}"), &no_sid)).await;
    assert_eq!((code, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("missing_field")));
    send(&app, verdict(&call_id, "CA10", "human")).await;
    let (_, body) = send(&app, verdict(&call_id, "CA10", "machine_start")).await;
    assert_eq!(body["status"], "ignored", "stored, stale: {body}");
    let attempt = store.attempt(&call_id).await.unwrap().unwrap();
    assert_eq!(attempt.answered_by.as_deref(), Some("human"), "the first verdict wins");
    assert_eq!(store.events_for_call(&call_id).await.unwrap().len(), 4, "every verdict kept");
    assert!(jobs(&store, "dialogue.cancel").await.is_empty());
}

async fn dialogue_start_carries_what_the_orchestrator_needs(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let (call_id, contact_id) = call(&store, AmdMode::Off, 4000).await;
    send(&app, callback_with(&call_id, "CA11", "in-progress", &[("AnsweredBy", "human")])).await;
    let starts = jobs(&store, "dialogue.start").await;
    let payload = &starts[0].1;
    assert_eq!(payload["phone_number"], "+14155550123");
    assert_eq!(payload["external_id"], "crm-7");
    assert_eq!(payload["campaign_name"], "Survey");
    assert_eq!(payload["metadata"], serde_json::json!({"survey": "nps-q4"}));
    assert_eq!(payload["answered_by"], "human");
    assert_eq!(payload["contact_id"], contact_id.to_string());
}
