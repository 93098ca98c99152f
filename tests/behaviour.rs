//! The behaviour suite: every test runs through the real router against embedded
//! SQLite and against PostgreSQL, and must pass identically on both.

#[macro_use]
mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use chrono::Duration;
use serde_json::json;

use callhook::domain::{CallStatus, ContactState, Disposition, Outcome, Provider};
use callhook::store::{NewAttempt, NewContact, Store};
use common::*;

on_both_stores!(
    answered_call_starts_exactly_one_dialogue,
    redelivered_callback_is_stored_once,
    out_of_order_callback_never_moves_state_back,
    failures_retry_until_max_attempts_then_not_reached,
    machine_answered_call_counts_as_no_answer,
    early_callbacks_are_deferred_then_applied_at_registration,
    callbacks_without_call_id_match_by_provider_call_id,
    unrecognised_status_is_stored_and_ignored,
    correlation_mismatch_is_refused_and_stores_nothing,
    a_callback_recorded_for_another_call_is_a_conflict_not_a_duplicate,
    registration_enforces_contact_rules,
    concurrent_duplicate_deliveries_apply_once,
    concurrent_mixed_callbacks_end_in_one_consistent_state,
    registration_racing_early_callbacks_leaves_nothing_deferred,
);

async fn register(
    store: &Arc<dyn Store>,
    max_attempts: i32,
) -> (callhook::domain::Campaign, callhook::domain::Contact, String) {
    let campaign = campaign(store, max_attempts).await;
    let contact = contact(store, &campaign).await;
    let reg = store.register_attempt(NewAttempt::new(contact.id, Provider::Twilio)).await.unwrap();
    (campaign, contact, reg.attempt.call_id)
}

async fn dialogue_starts(store: &Arc<dyn Store>) -> Vec<serde_json::Value> {
    store.outbox(1000).await.unwrap().into_iter().filter(|j| j.kind == "dialogue.start").map(|j| j.payload).collect()
}

async fn answered_call_starts_exactly_one_dialogue(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let (campaign, contact, call_id) = register(&store, 3).await;
    for status in ["initiated", "ringing", "in-progress", "completed"] {
        let extra: &[(&str, &str)] = if status == "completed" { &[("CallDuration", "37")] } else { &[] };
        let (code, body) = send(&app, callback_with(&call_id, "CA100", status, extra)).await;
        assert_eq!(code, StatusCode::OK, "{status}: {body}");
        assert_eq!(body["status"], "processed", "{status}");
        assert_eq!(body["call_id"], call_id.as_str());
    }
    let attempt = store.attempt(&call_id).await.unwrap().unwrap();
    assert_eq!(attempt.status, CallStatus::Completed);
    assert_eq!(attempt.provider_call_id.as_deref(), Some("CA100"));
    assert_eq!(attempt.duration_seconds, Some(37));
    assert!(attempt.answered_at.is_some() && attempt.ended_at.is_some());
    assert_eq!(attempt.outcome, None, "a human-answered call's outcome belongs to the dialogue");

    let starts = dialogue_starts(&store).await;
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0]["call_id"], call_id.as_str());
    assert_eq!(starts[0]["campaign_id"], json!(campaign.id));
    assert_eq!(starts[0]["contact_id"], json!(contact.id));
    assert_eq!(starts[0]["attempt_number"], 1);
    assert_eq!(starts[0]["provider"], "twilio");
    assert_eq!(starts[0]["provider_call_id"], "CA100");

    let events = store.events_for_call(&call_id).await.unwrap();
    assert_eq!(events.len(), 4);
    assert!(events.iter().all(|e| e.disposition == Disposition::Applied));
    assert_eq!(events[2].event_type.as_deref(), Some("call.answered"));
    assert_eq!(events[2].payload["Direction"], "outbound-api");
    assert_eq!(store.contact(contact.id).await.unwrap().unwrap().state, ContactState::InProgress);
}

async fn redelivered_callback_is_stored_once(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let (_, _, call_id) = register(&store, 3).await;
    let (code, first) = send(&app, callback(&call_id, "CA200", "in-progress")).await;
    assert_eq!((code, first["status"].as_str()), (StatusCode::OK, Some("processed")));
    let (code, again) = send(&app, callback(&call_id, "CA200", "in-progress")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(again, json!({"status": "duplicate", "call_id": call_id, "event_type": "call.answered"}));
    assert_eq!(store.events_for_call(&call_id).await.unwrap().len(), 1);
    assert_eq!(dialogue_starts(&store).await.len(), 1);
}

async fn out_of_order_callback_never_moves_state_back(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let (_, contact, call_id) = register(&store, 3).await;
    let (_, body) =
        send(&app, callback_with(&call_id, "CA300", "no-answer", &[("Timestamp", "Tue, 24 Nov 2026 10:00:30 +0000")]))
            .await;
    assert_eq!(body["status"], "processed");
    let (code, body) = send(&app, callback(&call_id, "CA300", "ringing")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body, json!({"status": "ignored", "reason": "stale", "call_id": call_id, "event_type": "call.ringing"}));
    let (_, body) = send(
        &app,
        callback_with(&call_id, "CA300", "in-progress", &[("Timestamp", "Tue, 24 Nov 2026 10:00:10 +0000")]),
    )
    .await;
    assert_eq!(body["reason"], "stale");

    let attempt = store.attempt(&call_id).await.unwrap().unwrap();
    assert_eq!(attempt.status, CallStatus::NoAnswer);
    assert_eq!(attempt.provider_raw_status.as_deref(), Some("no-answer"));
    assert_eq!(
        attempt.answered_at.map(|t| t.to_rfc3339()).as_deref(),
        Some("2026-11-24T10:00:10+00:00"),
        "late answer fills the timestamp"
    );
    assert!(dialogue_starts(&store).await.is_empty(), "a late answer starts nothing");
    let dispositions: Vec<_> = store.events_for_call(&call_id).await.unwrap().iter().map(|e| e.disposition).collect();
    assert_eq!(dispositions, vec![Disposition::Applied, Disposition::Stale, Disposition::Stale]);
    assert_eq!(store.contact(contact.id).await.unwrap().unwrap().last_outcome, Some(Outcome::NoAnswer));
}

async fn failures_retry_until_max_attempts_then_not_reached(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let (campaign, contact, first) = register(&store, 2).await;
    // Ended two hours ago: the retry an hour later is due now and falls inside the
    // daytime zone's window (13:xx local) whatever the time of day the test runs
    // at (a fixed date would not).
    let ended = (chrono::Utc::now() - Duration::hours(2)).format("%a, %d %b %Y %H:%M:%S +0000").to_string();
    let ended = ended.as_str();
    send(&app, callback_with(&first, "CA401", "busy", &[("Timestamp", ended)])).await;
    let c = store.contact(contact.id).await.unwrap().unwrap();
    assert_eq!((c.state, c.last_outcome, c.attempts_count), (ContactState::Pending, Some(Outcome::Busy), 1));
    let expected_next = chrono::DateTime::parse_from_rfc2822(ended).unwrap()
        + Duration::minutes(i64::from(campaign.retry_interval_minutes));
    assert_eq!(c.next_attempt_at, Some(expected_next.to_utc()));

    let second = store.register_attempt(NewAttempt::new(contact.id, Provider::Twilio)).await.unwrap();
    assert_eq!(second.attempt.attempt_number, 2);
    assert_eq!(second.contact.next_attempt_at, None);
    let (_, body) = send(
        &app,
        callback_with(
            &second.attempt.call_id,
            "CA402",
            "failed",
            &[("ErrorCode", "32009"), ("ErrorMessage", "carrier rejected")],
        ),
    )
    .await;
    assert_eq!(body["status"], "processed");
    let attempt = store.attempt(&second.attempt.call_id).await.unwrap().unwrap();
    assert_eq!((attempt.outcome, attempt.error_code.as_deref()), (Some(Outcome::Failed), Some("32009")));
    let c = store.contact(contact.id).await.unwrap().unwrap();
    assert_eq!((c.state, c.last_outcome, c.next_attempt_at), (ContactState::NotReached, Some(Outcome::Failed), None));
    let jobs = store.outbox(100).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].kind, "survey.not_reached");
    assert_eq!(jobs[0].payload["contact_id"], json!(contact.id));
    assert_eq!(jobs[0].payload["attempts_count"], 2);

    let refused = store.register_attempt(NewAttempt::new(contact.id, Provider::Twilio)).await.unwrap_err();
    assert!(refused.to_string().contains("not_reached"), "{refused}");
}

async fn machine_answered_call_counts_as_no_answer(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let (_, contact, call_id) = register(&store, 3).await;
    send(&app, callback_with(&call_id, "CA500", "in-progress", &[("AnsweredBy", "machine_end_beep")])).await;
    send(
        &app,
        callback_with(&call_id, "CA500", "completed", &[("AnsweredBy", "machine_end_beep"), ("CallDuration", "12")]),
    )
    .await;
    let attempt = store.attempt(&call_id).await.unwrap().unwrap();
    assert_eq!((attempt.status, attempt.outcome), (CallStatus::Completed, Some(Outcome::NoAnswer)));
    assert_eq!(attempt.answered_by.as_deref(), Some("machine_end_beep"));
    assert!(dialogue_starts(&store).await.is_empty());
    assert_eq!(store.contact(contact.id).await.unwrap().unwrap().state, ContactState::Pending);
}

async fn early_callbacks_are_deferred_then_applied_at_registration(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let campaign = campaign(&store, 3).await;
    let contact = contact(&store, &campaign).await;
    let call_id = "dialer-call-600";
    for status in ["ringing", "in-progress"] {
        let (code, body) = send(&app, callback(call_id, "CA600", status)).await;
        assert_eq!(code, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["status"], "deferred");
        assert_eq!(body["provider_call_id"], "CA600");
    }
    let (code, body) = send(&app, callback(call_id, "CA600", "ringing")).await;
    assert_eq!((code, body["status"].as_str()), (StatusCode::OK, Some("duplicate")));
    assert!(store.outbox(10).await.unwrap().is_empty());

    let mut new = NewAttempt::new(contact.id, Provider::Twilio);
    new.call_id = Some(call_id.into());
    let reg = store.register_attempt(new).await.unwrap();
    assert_eq!(reg.applied_deferred, 2);
    assert_eq!(reg.attempt.status, CallStatus::Answered);
    assert_eq!(store.attempt(call_id).await.unwrap().unwrap().status, CallStatus::Answered);
    assert_eq!(dialogue_starts(&store).await.len(), 1);
    let events = store.events_for_call(call_id).await.unwrap();
    assert_eq!(events.iter().map(|e| e.disposition).collect::<Vec<_>>(), vec![Disposition::Applied; 2]);
}

async fn callbacks_without_call_id_match_by_provider_call_id(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let (_, _, call_id) = register(&store, 3).await;
    // Only the provider's id: unknown yet, so deferred until the call's first correlated callback.
    let bare = |status: &str| {
        signed("/webhooks/telephony/twilio/events", &fields(&[("CallSid", "CA700"), ("CallStatus", status)]))
    };
    let (code, _) = send(&app, bare("ringing")).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    let (_, body) = send(&app, callback(&call_id, "CA700", "initiated")).await;
    assert_eq!(body["status"], "processed");
    assert_eq!(store.attempt(&call_id).await.unwrap().unwrap().status, CallStatus::Ringing, "deferred ringing applied");
    let (code, body) = send(&app, bare("completed")).await;
    assert_eq!(
        (code, body["status"].as_str(), body["call_id"].as_str()),
        (StatusCode::OK, Some("processed"), Some(call_id.as_str()))
    );
    assert_eq!(store.attempt(&call_id).await.unwrap().unwrap().status, CallStatus::Completed);
    assert_eq!(store.events_for_call(&call_id).await.unwrap().len(), 3);
}

async fn unrecognised_status_is_stored_and_ignored(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let (_, _, call_id) = register(&store, 3).await;
    let (code, body) = send(&app, callback(&call_id, "CA800", "transferred")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body["status"], "ignored");
    assert_eq!(body["reason"], "unrecognised_status");
    let events = store.events_for_call(&call_id).await.unwrap();
    assert_eq!((events.len(), events[0].disposition, events[0].event_type.as_deref()), (1, Disposition::Ignored, None));
    assert_eq!(store.attempt(&call_id).await.unwrap().unwrap().status, CallStatus::Initiated);
}

async fn correlation_mismatch_is_refused_and_stores_nothing(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let (campaign, contact, call_id) = register(&store, 3).await;
    let other = uuid::Uuid::new_v4();
    let f = fields(&[("CallSid", "CA900"), ("CallStatus", "ringing")]);
    for query in [format!("call_id={call_id}&campaign_id={other}"), format!("call_id={call_id}&contact_id={other}")] {
        let (code, body) = send(&app, signed(&format!("/webhooks/telephony/events?{query}"), &f)).await;
        assert_eq!(code, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"]["code"], "conflict");
    }
    let ok =
        format!("/webhooks/telephony/events?call_id={call_id}&campaign_id={}&contact_id={}", campaign.id, contact.id);
    assert_eq!(send(&app, signed(&ok, &f)).await.1["status"], "processed");
    // Once the call has a provider id, another CallSid on the same call_id is refused.
    let (code, _) = send(&app, callback(&call_id, "CA-OTHER", "completed")).await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_eq!(store.events_for_call(&call_id).await.unwrap().len(), 1);
    assert_eq!(store.attempt(&call_id).await.unwrap().unwrap().status, CallStatus::Ringing);
}

async fn registration_enforces_contact_rules(store: Arc<dyn Store>) {
    let campaign = campaign(&store, 3).await;
    let mut dnc = NewContact::phone("+14155550101");
    dnc.do_not_call = true;
    let contacts = common::add_contacts(&store, &campaign, vec![NewContact::phone("+14155550100"), dnc]).await;
    let first = store.register_attempt(NewAttempt::new(contacts[0].id, Provider::Twilio)).await.unwrap();
    assert_eq!((first.attempt.attempt_number, first.contact.attempts_count), (1, 1));
    assert_eq!(first.contact.state, ContactState::InProgress);
    assert!(first.contact.last_attempt_at.is_some());

    let in_flight = store.register_attempt(NewAttempt::new(contacts[0].id, Provider::Twilio)).await.unwrap_err();
    assert!(in_flight.to_string().contains("in flight"), "{in_flight}");
    let barred = store.register_attempt(NewAttempt::new(contacts[1].id, Provider::Twilio)).await.unwrap_err();
    assert!(barred.to_string().contains("do_not_call"), "{barred}");
    let missing = store.register_attempt(NewAttempt::new(uuid::Uuid::new_v4(), Provider::Twilio)).await.unwrap_err();
    assert!(matches!(missing, callhook::store::StoreError::NotFound(_)));
    let mut wrong = NewAttempt::new(contacts[1].id, Provider::Twilio);
    wrong.campaign_id = Some(uuid::Uuid::new_v4());
    assert!(matches!(store.register_attempt(wrong).await, Err(callhook::store::StoreError::Conflict(_))));
    let c = store.contact(contacts[1].id).await.unwrap().unwrap();
    assert_eq!((c.attempts_count, c.state), (0, ContactState::Pending), "refusals change nothing");

    assert!(matches!(
        store.add_contacts(campaign.id, vec![NewContact::phone("555-0100")], Default::default()).await,
        Err(callhook::store::StoreError::Refused { code: "invalid_phone_number", .. })
    ));
    let mut bad = callhook::store::NewCampaign::named("x");
    bad.max_attempts = Some(6);
    assert!(matches!(store.create_campaign(bad).await, Err(callhook::store::StoreError::Invalid(_))));
}

async fn concurrent_duplicate_deliveries_apply_once(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let (_, _, call_id) = register(&store, 3).await;
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let app = app.clone();
            let call_id = call_id.clone();
            tokio::spawn(async move { send(&app, callback(&call_id, "CA1000", "in-progress")).await })
        })
        .collect();
    let mut processed = 0;
    for t in tasks {
        let (code, body) = t.await.unwrap();
        assert_eq!(code, StatusCode::OK, "{body}");
        match body["status"].as_str() {
            Some("processed") => processed += 1,
            Some("duplicate") => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(processed, 1);
    assert_eq!(store.events_for_call(&call_id).await.unwrap().len(), 1);
    assert_eq!(dialogue_starts(&store).await.len(), 1);
}

async fn concurrent_mixed_callbacks_end_in_one_consistent_state(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let mut calls = vec![];
    for _ in 0..8 {
        calls.push(register(&store, 3).await);
    }
    let mut tasks = vec![];
    for (i, (_, _, call_id)) in calls.iter().enumerate() {
        let sid = format!("CA11{i:02}");
        for status in ["initiated", "ringing", "in-progress", "completed", "in-progress", "ringing", "completed"] {
            let (app, call_id, sid) = (app.clone(), call_id.clone(), sid.clone());
            // As Twilio sends it: a `completed` carries the talk time.
            let extra: &[(&str, &str)] = if status == "completed" { &[("CallDuration", "30")] } else { &[] };
            let req = callback_with(&call_id, &sid, status, extra);
            tasks.push(tokio::spawn(async move { send(&app, req).await }));
        }
    }
    for t in tasks {
        let (code, body) = t.await.unwrap();
        assert_eq!(code, StatusCode::OK, "{body}");
    }
    let starts = dialogue_starts(&store).await;
    assert!(starts.len() <= calls.len());
    for (_, contact, call_id) in &calls {
        let attempt = store.attempt(call_id).await.unwrap().unwrap();
        assert_eq!(attempt.status, CallStatus::Completed);
        assert!(attempt.answered_at.is_some(), "answered_at filled whatever the order");
        assert_eq!(store.events_for_call(call_id).await.unwrap().len(), 4, "one row per distinct callback");
        assert!(starts.iter().filter(|s| s["call_id"] == call_id.as_str()).count() <= 1);
        assert_eq!(store.contact(contact.id).await.unwrap().unwrap().state, ContactState::InProgress);
    }
}

async fn registration_racing_early_callbacks_leaves_nothing_deferred(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let campaign = campaign(&store, 3).await;
    let contacts =
        common::add_contacts(&store, &campaign, (0..6).map(|i| NewContact::phone(format!("+1415555020{i}"))).collect())
            .await;
    let mut tasks = vec![];
    for (i, contact) in contacts.iter().enumerate() {
        let call_id = format!("race-{i}");
        let (store, contact_id, cid) = (store.clone(), contact.id, call_id.clone());
        tasks.push(tokio::spawn(async move {
            let mut new = NewAttempt::new(contact_id, Provider::Twilio);
            new.call_id = Some(cid);
            store.register_attempt(new).await.map(|_| ()).unwrap();
            (StatusCode::OK, json!(null))
        }));
        for status in ["ringing", "in-progress"] {
            let (app, call_id) = (app.clone(), call_id.clone());
            let sid = format!("CA12{i:02}");
            // As Twilio sends it: a `completed` carries the talk time.
            let extra: &[(&str, &str)] = if status == "completed" { &[("CallDuration", "30")] } else { &[] };
            let req = callback_with(&call_id, &sid, status, extra);
            tasks.push(tokio::spawn(async move { send(&app, req).await }));
        }
    }
    for t in tasks {
        let (code, body) = t.await.unwrap();
        assert!(code == StatusCode::OK || code == StatusCode::ACCEPTED, "{code} {body}");
    }
    for i in 0..contacts.len() {
        let call_id = format!("race-{i}");
        let events = store.events_for_call(&call_id).await.unwrap();
        assert_eq!(events.len(), 2);
        assert!(events.iter().all(|e| e.disposition != Disposition::Deferred), "{call_id}: {events:?}");
        assert_eq!(store.attempt(&call_id).await.unwrap().unwrap().status, CallStatus::Answered);
    }
    assert_eq!(dialogue_starts(&store).await.len(), contacts.len());
}

async fn a_callback_recorded_for_another_call_is_a_conflict_not_a_duplicate(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let (_, _, first) = register(&store, 3).await;
    let (_, _, second) = register(&store, 3).await;
    let (code, _) = send(&app, callback(&first, "CA-shared", "ringing")).await;
    assert_eq!(code, StatusCode::OK);
    // The same provider call id and status, claimed by another call's URL.
    let (code, body) = send(&app, callback(&second, "CA-shared", "ringing")).await;
    assert_eq!((code, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("conflict")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains(&first), "{body}");
    assert!(store.events_for_call(&second).await.unwrap().is_empty());
    let attempt = store.attempt(&second).await.unwrap().unwrap();
    assert_eq!((attempt.provider_call_id, attempt.status), (None, CallStatus::Initiated), "nothing written");
    // A true redelivery to the right call is still a duplicate.
    let (code, body) = send(&app, callback(&first, "CA-shared", "ringing")).await;
    assert_eq!((code, body["status"].as_str()), (StatusCode::OK, Some("duplicate")));
}
