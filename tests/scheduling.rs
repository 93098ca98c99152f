//! Campaign scheduling and the dialer's interface (SPEC §11) through the real
//! router, on both stores: calling windows, retry policy per outcome, permanent
//! failures, registration refusals, the claim of due contacts, contacts and
//! campaigns as an operator manages them, statistics and the CSV export.

#[macro_use]
mod common;

use std::collections::HashSet;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::Router;
use serde_json::{json, Value};

use callhook::domain::ContactState;
use callhook::store::Store;
use common::*;

on_both_stores!(
    retries_follow_the_policy_and_land_in_each_contacts_window,
    invalid_numbers_are_never_retried,
    machines_and_missing_verdicts_have_policy_keys_of_their_own,
    registration_is_refused_outside_the_window_before_due_when_not_running_and_over_the_cap,
    the_claim_returns_due_contacts_in_open_zones_once_under_the_cap,
    concurrent_claims_never_share_a_contact_nor_exceed_the_cap,
    contacts_are_listed_paged_patched_and_excluded,
    uploads_normalise_numbers_and_report_duplicates_and_bad_rows,
    stats_and_results_csv_match_the_contacts,
    statistics_stay_exact_through_many_changes_and_folds,
    a_call_the_provider_refused_to_place_is_reported_by_the_dialer,
    bad_settings_are_refused_with_precise_codes_and_nothing_is_written,
    campaigns_are_paused_resumed_and_stopped,
);

/// Several replicas (each a store with its own pool) claim concurrently on one
/// PostgreSQL database: no contact is returned twice and the cap holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replicas_claiming_concurrently_never_share_a_contact() {
    let Some(db) = postgres().await else { return };
    let replicas = [db.store.clone(), db.replica().await, db.replica().await];
    let apps: Vec<Router> = replicas.iter().map(admin_app).collect();
    let campaign = new_campaign(&apps[0], json!({"max_concurrent_calls": 60})).await;
    let rows: Vec<Value> = (0..100).map(|i| json!({"phone_number": format!("+1415558{i:04}")})).collect();
    upload(&apps[0], &campaign, Value::Array(rows)).await;
    let dial = format!("/api/v1/campaigns/{campaign}/dial");
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let (app, dial) = (apps[i % apps.len()].clone(), dial.clone());
            tokio::spawn(async move { ok(&app, "POST", &dial, Some(json!({"limit": 3}))).await })
        })
        .collect();
    let mut seen = HashSet::new();
    for task in tasks {
        for call in task.await.unwrap()["calls"].as_array().unwrap() {
            assert!(seen.insert(call["contact_id"].as_str().unwrap().to_owned()), "a contact claimed twice");
        }
    }
    assert_eq!(seen.len(), 60, "30 claims of 3 against a cap of 60");
    let stats = ok(&apps[2], "GET", &format!("/api/v1/campaigns/{campaign}/stats"), None).await;
    assert_eq!((stats["calls_in_flight"].as_i64(), stats["by_state"]["pending"].as_i64()), (Some(60), Some(40)));
    db.cleanup().await;
}

async fn ok(app: &Router, method: &str, path: &str, body: Option<Value>) -> Value {
    let (code, reply) = send(app, admin(method, path, body)).await;
    assert!(code.is_success(), "{method} {path}: {code} {reply}");
    reply
}

async fn refused(app: &Router, method: &str, path: &str, body: Option<Value>) -> (StatusCode, String) {
    let (code, reply) = send(app, admin(method, path, body)).await;
    assert!(code.is_client_error(), "{method} {path}: {code} {reply}");
    (code, reply["error"]["code"].as_str().unwrap_or_default().to_owned())
}

async fn new_campaign(app: &Router, settings: Value) -> String {
    let mut body = json!({"name": "Scheduling", "timezone": daytime_zone()});
    body.as_object_mut().unwrap().extend(settings.as_object().unwrap().clone());
    ok(app, "POST", "/api/v1/campaigns", Some(body)).await["id"].as_str().unwrap().to_owned()
}

async fn upload(app: &Router, campaign: &str, contacts: Value) -> Vec<Value> {
    let reply =
        ok(app, "POST", &format!("/api/v1/campaigns/{campaign}/contacts"), Some(json!({"contacts": contacts}))).await;
    reply["contacts"].as_array().unwrap().clone()
}

async fn register(app: &Router, contact: &Value) -> Value {
    ok(app, "POST", "/api/v1/calls", Some(json!({"contact_id": contact["id"]}))).await
}

/// A Twilio callback ending `call_id` with `status` at `timestamp` (RFC 2822).
async fn end_call(app: &Router, call_id: &str, sid: &str, status: &str, extra: &[(&str, &str)]) {
    let (code, body) = send(app, callback_with(call_id, sid, status, extra)).await;
    assert_eq!(code, StatusCode::OK, "{body}");
}

fn admin_app(store: &Arc<dyn Store>) -> Router {
    app_with_admin(store.clone(), vec![callhook::secret::Secret::new(ADMIN_TOKEN.to_owned())])
}

async fn retries_follow_the_policy_and_land_in_each_contacts_window(store: Arc<dyn Store>) {
    let app = admin_app(&store);
    let campaign = new_campaign(
        &app,
        json!({"max_attempts": 5, "retry_policy": {"no_answer": [60, 240], "busy": [15]}, "calling_window_start": "09:00",
               "calling_window_end": "20:00"}),
    )
    .await;
    // Both contacts are called now (the campaign's zone is in the afternoon); their
    // own zones decide when a retry may ring.
    let contacts = upload(
        &app,
        &campaign,
        json!([{"phone_number": "+12125550100", "timezone": "America/New_York"},
               {"phone_number": "+919812345678", "timezone": "Asia/Kolkata"}]),
    )
    .await;
    for c in &contacts {
        let id = c["id"].as_str().unwrap();
        ok(&app, "PATCH", &format!("/api/v1/contacts/{id}"), Some(json!({"timezone": daytime_zone()}))).await;
    }
    let ny = register(&app, &contacts[0]).await;
    let india = register(&app, &contacts[1]).await;
    for c in &contacts {
        let id = c["id"].as_str().unwrap();
        let zone = if c["phone_number"] == "+12125550100" { "America/New_York" } else { "Asia/Kolkata" };
        ok(&app, "PATCH", &format!("/api/v1/contacts/{id}"), Some(json!({"timezone": zone}))).await;
    }
    // 20:30 in New York (EST) on 2026-01-13: +60 min is 21:30, after the window.
    let ny_call = ny["call_id"].as_str().unwrap();
    end_call(&app, ny_call, "CAny1", "no-answer", &[("Timestamp", "Wed, 14 Jan 2026 01:30:00 +0000")]).await;
    // 10:00 in Kolkata (+05:30): +15 min (busy) is inside the window.
    let in_call = india["call_id"].as_str().unwrap();
    end_call(&app, in_call, "CAin1", "busy", &[("Timestamp", "Wed, 14 Jan 2026 04:30:00 +0000")]).await;

    let ny = store.contact(contacts[0]["id"].as_str().unwrap().parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(ny.state, ContactState::Pending);
    assert_eq!(ny.next_attempt_at.unwrap().to_rfc3339(), "2026-01-14T14:00:00+00:00", "09:00 EST the next day");
    let india = store.contact(contacts[1]["id"].as_str().unwrap().parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(india.next_attempt_at.unwrap().to_rfc3339(), "2026-01-14T04:45:00+00:00", "10:15 IST");
}

async fn invalid_numbers_are_never_retried(store: Arc<dyn Store>) {
    let app = admin_app(&store);
    let campaign = new_campaign(&app, json!({"max_attempts": 3})).await;
    let contacts =
        upload(&app, &campaign, json!([{"phone_number": "+14155550111"}, {"phone_number": "+14155550112"}])).await;
    let call = register(&app, &contacts[0]).await;
    let call_id = call["call_id"].as_str().unwrap();
    end_call(&app, call_id, "CAbad1", "failed", &[("ErrorCode", "13224")]).await;
    let c = store.contact(contacts[0]["id"].as_str().unwrap().parse().unwrap()).await.unwrap().unwrap();
    assert_eq!((c.state, c.attempts_count, c.next_attempt_at), (ContactState::NotReached, 1, None));
    let jobs = store.outbox(10).await.unwrap();
    let not_reached = jobs.iter().find(|j| j.kind == "survey.not_reached").expect("survey.not_reached");
    assert_eq!(not_reached.payload["reason"], "permanent_failure");

    // A SIP 486 (busy) is not permanent: retried.
    let call = register(&app, &contacts[1]).await;
    end_call(&app, call["call_id"].as_str().unwrap(), "CAbusy1", "busy", &[("SipResponseCode", "486")]).await;
    let c = store.contact(contacts[1]["id"].as_str().unwrap().parse().unwrap()).await.unwrap().unwrap();
    assert_eq!((c.state, c.attempts_count), (ContactState::Pending, 1));
    assert!(c.next_attempt_at.is_some());
}

async fn machines_and_missing_verdicts_have_policy_keys_of_their_own(store: Arc<dyn Store>) {
    let app = admin_app(&store);
    // Answering machines are not retried; a busy line is.
    let campaign = new_campaign(&app, json!({"retry_policy": {"busy": [10]}})).await;
    let contacts = upload(&app, &campaign, json!([{"phone_number": "+14155550121"}])).await;
    let call = register(&app, &contacts[0]).await;
    let call_id = call["call_id"].as_str().unwrap();
    end_call(&app, call_id, "CAm1", "in-progress", &[("AnsweredBy", "machine_end_beep")]).await;
    end_call(&app, call_id, "CAm1", "completed", &[("CallDuration", "12")]).await;
    let c = store.contact(contacts[0]["id"].as_str().unwrap().parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(c.state, ContactState::NotReached, "no `machine` key: not retried");
    let job = store.outbox(10).await.unwrap().into_iter().find(|j| j.kind == "survey.not_reached").unwrap();
    assert_eq!(job.payload["reason"], "machine");

    let campaign = new_campaign(&app, json!({"retry_policy": {"machine": [120]}})).await;
    let contacts = upload(&app, &campaign, json!([{"phone_number": "+14155550122"}])).await;
    let call = register(&app, &contacts[0]).await;
    let call_id = call["call_id"].as_str().unwrap();
    let ended = "Wed, 14 Jan 2026 15:00:00 +0000";
    end_call(&app, call_id, "CAm2", "in-progress", &[("AnsweredBy", "machine_start")]).await;
    end_call(&app, call_id, "CAm2", "completed", &[("CallDuration", "12"), ("Timestamp", ended)]).await;
    let c = store.contact(contacts[0]["id"].as_str().unwrap().parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(c.state, ContactState::Pending);
    let tz: chrono_tz::Tz = daytime_zone().parse().unwrap();
    let at = chrono::DateTime::parse_from_rfc2822(ended).unwrap().to_utc() + chrono::Duration::minutes(120);
    let window = callhook::domain::window::CallingWindow::default();
    assert_eq!(c.next_attempt_at, Some(window.next_allowed(tz, at)), "the `machine` delay, in the window");
}

async fn registration_is_refused_outside_the_window_before_due_when_not_running_and_over_the_cap(
    store: Arc<dyn Store>,
) {
    let app = admin_app(&store);
    let night = new_campaign(&app, json!({"timezone": night_zone()})).await;
    let sleeping = upload(&app, &night, json!([{"phone_number": "+14155550131"}])).await;
    let (code, reason) = refused(&app, "POST", "/api/v1/calls", Some(json!({"contact_id": sleeping[0]["id"]}))).await;
    assert_eq!((code, reason.as_str()), (StatusCode::CONFLICT, "outside_calling_window"));

    let campaign = new_campaign(&app, json!({"max_concurrent_calls": 1, "retry_policy": {"no_answer": [600]}})).await;
    let contacts =
        upload(&app, &campaign, json!([{"phone_number": "+14155550132"}, {"phone_number": "+14155550133"}])).await;
    let first = register(&app, &contacts[0]).await;
    let (code, reason) = refused(&app, "POST", "/api/v1/calls", Some(json!({"contact_id": contacts[1]["id"]}))).await;
    assert_eq!((code, reason.as_str()), (StatusCode::CONFLICT, "concurrency_limit"));
    // The call ends: a retry is due in 10 hours; registering now is early.
    end_call(&app, first["call_id"].as_str().unwrap(), "CAc1", "no-answer", &[]).await;
    let (_, reason) = refused(&app, "POST", "/api/v1/calls", Some(json!({"contact_id": contacts[0]["id"]}))).await;
    assert!(reason == "not_due" || reason == "outside_calling_window", "{reason}");
    ok(&app, "POST", &format!("/api/v1/campaigns/{campaign}/pause"), None).await;
    let (_, reason) = refused(&app, "POST", "/api/v1/calls", Some(json!({"contact_id": contacts[1]["id"]}))).await;
    assert_eq!(reason, "campaign_not_running");
    let c = store.contact(contacts[1]["id"].as_str().unwrap().parse().unwrap()).await.unwrap().unwrap();
    assert_eq!((c.state, c.attempts_count), (ContactState::Pending, 0), "refusals change nothing");
}

async fn the_claim_returns_due_contacts_in_open_zones_once_under_the_cap(store: Arc<dyn Store>) {
    let app = admin_app(&store);
    let campaign = new_campaign(&app, json!({"max_concurrent_calls": 3})).await;
    let mut rows: Vec<Value> = (0..4).map(|i| json!({"phone_number": format!("+1415555014{i}")})).collect();
    rows.push(json!({"phone_number": "+14155550150", "timezone": night_zone()}));
    rows.push(json!({"phone_number": "+14155550151", "do_not_call": true}));
    upload(&app, &campaign, Value::Array(rows)).await;

    let dial = format!("/api/v1/campaigns/{campaign}/dial");
    let first = ok(&app, "POST", &dial, Some(json!({"limit": 2}))).await;
    let calls = first["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    for call in calls {
        assert!(call["status_callback_url"].as_str().unwrap().contains(call["call_id"].as_str().unwrap()));
        assert_eq!(call["attempt_number"], 1);
        assert_eq!(call["timezone"], daytime_zone());
    }
    // The cap (3) leaves room for one more; the night zone and do-not-call never come.
    let second = ok(&app, "POST", &dial, Some(json!({"limit": 10}))).await;
    assert_eq!(second["calls"].as_array().unwrap().len(), 1);
    let third = ok(&app, "POST", &dial, Some(json!({"limit": 10}))).await;
    assert!(third["calls"].as_array().unwrap().is_empty(), "at the cap");
    let phones: HashSet<String> = [&first, &second]
        .iter()
        .flat_map(|r| r["calls"].as_array().unwrap().iter().map(|c| c["phone_number"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(phones.len(), 3);
    assert!(!phones.contains("+14155550150") && !phones.contains("+14155550151"));

    // A call ends: room for one, and the last daytime contact is claimed.
    let call_id = first["calls"][0]["call_id"].as_str().unwrap();
    end_call(&app, call_id, "CAcl1", "completed", &[("CallDuration", "30")]).await;
    ok(&app, "POST", &format!("/api/v1/calls/{call_id}/outcome"), Some(json!({"outcome": "completed"}))).await;
    let fourth = ok(&app, "POST", &dial, Some(json!({"limit": 10}))).await;
    assert_eq!(fourth["calls"].as_array().unwrap().len(), 1);
    assert!(!phones.contains(fourth["calls"][0]["phone_number"].as_str().unwrap()));

    let (code, reason) = refused(&app, "POST", &dial, Some(json!({"limit": 1001}))).await;
    assert_eq!((code, reason.as_str()), (StatusCode::BAD_REQUEST, "limit_too_large"));
    let (_, reason) = refused(&app, "POST", &dial, Some(json!({"limit": 0}))).await;
    assert_eq!(reason, "invalid_limit");
    ok(&app, "POST", &format!("/api/v1/campaigns/{campaign}/pause"), None).await;
    let (code, reason) = refused(&app, "POST", &dial, Some(json!({"limit": 1}))).await;
    assert_eq!((code, reason.as_str()), (StatusCode::CONFLICT, "campaign_not_running"));
}

async fn concurrent_claims_never_share_a_contact_nor_exceed_the_cap(store: Arc<dyn Store>) {
    let app = admin_app(&store);
    let campaign = new_campaign(&app, json!({"max_concurrent_calls": 25})).await;
    let rows: Vec<Value> = (0..40).map(|i| json!({"phone_number": format!("+1415556{i:04}")})).collect();
    upload(&app, &campaign, Value::Array(rows)).await;
    let dial = format!("/api/v1/campaigns/{campaign}/dial");
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let (app, dial) = (app.clone(), dial.clone());
            tokio::spawn(async move { ok(&app, "POST", &dial, Some(json!({"limit": 4}))).await })
        })
        .collect();
    let mut seen = HashSet::new();
    for task in tasks {
        for call in task.await.unwrap()["calls"].as_array().unwrap() {
            assert!(seen.insert(call["contact_id"].as_str().unwrap().to_owned()), "a contact claimed twice");
        }
    }
    assert_eq!(seen.len(), 25, "12 × 4 asked, the cap is 25");
    let stats = ok(&app, "GET", &format!("/api/v1/campaigns/{campaign}/stats"), None).await;
    assert_eq!((stats["calls_in_flight"].as_i64(), stats["by_state"]["in_progress"].as_i64()), (Some(25), Some(25)));
}

async fn contacts_are_listed_paged_patched_and_excluded(store: Arc<dyn Store>) {
    let app = admin_app(&store);
    let campaign = new_campaign(&app, json!({})).await;
    let rows: Vec<Value> = (0..5).map(|i| json!({"phone_number": format!("+1415557000{i}")})).collect();
    let contacts = upload(&app, &campaign, Value::Array(rows)).await;
    let list = format!("/api/v1/campaigns/{campaign}/contacts");
    let mut seen = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("{list}?limit=2&cursor={c}"),
            None => format!("{list}?limit=2"),
        };
        let page = ok(&app, "GET", &path, None).await;
        seen.extend(page["contacts"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 5, "no contact twice across pages");

    let page = ok(&app, "GET", &format!("{list}?limit=2"), None).await;
    let mut tampered = page["next_cursor"].as_str().unwrap().to_owned();
    tampered.replace_range(2..3, if &tampered[2..3] == "A" { "B" } else { "A" });
    let (_, reason) = refused(&app, "GET", &format!("{list}?cursor={tampered}"), None).await;
    assert_eq!(reason, "invalid_cursor");
    let other = format!("{list}?state=pending&cursor={}", page["next_cursor"].as_str().unwrap());
    assert_eq!(refused(&app, "GET", &other, None).await.1, "invalid_cursor", "a cursor of another filter");
    assert_eq!(refused(&app, "GET", &format!("{list}?state=asleep"), None).await.1, "invalid_filter");
    assert_eq!(refused(&app, "GET", &format!("{list}?limit=5000"), None).await.1, "limit_too_large");

    let id = contacts[0]["id"].as_str().unwrap();
    let patched = ok(
        &app,
        "PATCH",
        &format!("/api/v1/contacts/{id}"),
        Some(json!({"do_not_call": true, "timezone": "Europe/Paris", "external_id": "crm-9"})),
    )
    .await;
    assert_eq!(
        (&patched["do_not_call"], &patched["timezone"], &patched["external_id"]),
        (&json!(true), &json!("Europe/Paris"), &json!("crm-9"))
    );
    let cleared = ok(&app, "PATCH", &format!("/api/v1/contacts/{id}"), Some(json!({"timezone": null}))).await;
    assert_eq!((&cleared["timezone"], &cleared["external_id"]), (&Value::Null, &json!("crm-9")));
    let (_, reason) =
        refused(&app, "PATCH", &format!("/api/v1/contacts/{id}"), Some(json!({"timezone": "Mars/Base"}))).await;
    assert_eq!(reason, "invalid_timezone");

    let other = contacts[1]["id"].as_str().unwrap();
    let excluded = ok(&app, "POST", &format!("/api/v1/contacts/{other}/exclude"), None).await;
    assert_eq!(excluded["state"], "excluded");
    let (_, reason) = refused(&app, "POST", "/api/v1/calls", Some(json!({"contact_id": other}))).await;
    assert_eq!(reason, "contact_closed");
    let only = ok(&app, "GET", &format!("{list}?state=excluded"), None).await;
    assert_eq!(only["contacts"].as_array().unwrap().len(), 1);
}

async fn uploads_normalise_numbers_and_report_duplicates_and_bad_rows(store: Arc<dyn Store>) {
    let app = admin_app(&store);
    let campaign = new_campaign(&app, json!({})).await;
    let path = format!("/api/v1/campaigns/{campaign}/contacts");
    let added = upload(&app, &campaign, json!([{"phone_number": "+1 (415) 555-0160"}])).await;
    assert_eq!(added[0]["phone_number"], "+14155550160", "normalised to E.164");

    let rows = json!([{"phone_number": "+14155550161"}, {"phone_number": "+1.415.555.0160"}, {"phone_number": "+14155550161"}]);
    let (code, body) = send(&app, admin("POST", &path, Some(json!({"contacts": rows})))).await;
    assert_eq!((code, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("duplicate_phone_number")));
    let details = body["error"]["details"].as_array().unwrap();
    assert_eq!(details.len(), 2);
    assert_eq!((details[0]["row"].as_i64(), &details[0]["duplicate_of_contact"]), (Some(1), &added[0]["id"]));
    assert_eq!((details[1]["row"].as_i64(), details[1]["duplicate_of_row"].as_i64()), (Some(2), Some(0)));
    let all = ok(&app, "GET", &path, None).await;
    assert_eq!(all["contacts"].as_array().unwrap().len(), 1, "nothing was added");

    let (code, body) = send(&app, admin("POST", &path, Some(json!({"contacts": rows, "on_duplicate": "skip"})))).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!((body["contacts"].as_array().unwrap().len(), body["skipped"].as_array().unwrap().len()), (1, 2));

    let bad = json!([{"phone_number": "+14155550170"}, {"phone_number": "555-0100"}, {"phone_number": "+14155550171", "timezone": "Nowhere/Land"}]);
    let (code, body) = send(&app, admin("POST", &path, Some(json!({"contacts": bad})))).await;
    assert_eq!((code, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_phone_number")));
    let details = body["error"]["details"].as_array().unwrap();
    let rows: Vec<_> = details.iter().map(|d| (d["row"].as_i64().unwrap(), d["code"].as_str().unwrap())).collect();
    assert_eq!(rows, vec![(1, "invalid_phone_number"), (2, "invalid_timezone")]);
    let all = ok(&app, "GET", &path, None).await;
    assert_eq!(all["contacts"].as_array().unwrap().len(), 2, "nothing partially written");
}

async fn stats_and_results_csv_match_the_contacts(store: Arc<dyn Store>) {
    let app = admin_app(&store);
    let campaign = new_campaign(&app, json!({"max_attempts": 2})).await;
    let rows = json!([{"phone_number": "+14155550180", "external_id": "=cmd()"}, {"phone_number": "+14155550181"},
                      {"phone_number": "+14155550182"}]);
    let contacts = upload(&app, &campaign, rows).await;
    let done = register(&app, &contacts[0]).await;
    let done_id = done["call_id"].as_str().unwrap();
    end_call(&app, done_id, "CAs1", "completed", &[("CallDuration", "40")]).await;
    ok(&app, "POST", &format!("/api/v1/calls/{done_id}/outcome"), Some(json!({"outcome": "completed"}))).await;
    let busy = register(&app, &contacts[1]).await;
    end_call(&app, busy["call_id"].as_str().unwrap(), "CAs2", "busy", &[]).await;

    let stats = ok(&app, "GET", &format!("/api/v1/campaigns/{campaign}/stats"), None).await;
    assert_eq!(stats["contacts"], 3);
    assert_eq!((stats["by_state"]["completed"].as_i64(), stats["by_state"]["pending"].as_i64()), (Some(1), Some(2)));
    assert_eq!(stats["by_state"]["refused"], 0, "every state listed");
    assert_eq!(
        (stats["by_last_outcome"]["busy"].as_i64(), stats["by_last_outcome"]["none"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        (stats["attempts_histogram"]["0"].as_i64(), stats["attempts_histogram"]["1"].as_i64()),
        (Some(1), Some(2))
    );
    assert_eq!(stats["calls_in_flight"], 0);
    assert!((stats["completion_rate"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9);

    let res = app.clone().oneshot_csv(&format!("/api/v1/campaigns/{campaign}/results.csv")).await;
    let mut reader = csv::Reader::from_reader(res.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(&header[..3], ["contact_id", "external_id", "phone_number"]);
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 3);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let first = records.iter().find(|r| r[col("phone_number")] == *"+14155550180").unwrap();
    assert_eq!(&first[col("external_id")], "'=cmd()", "a formula is made inert");
    assert_eq!((&first[col("state")], &first[col("last_call_id")]), ("completed", done_id));
    assert_eq!(&first[col("last_call_duration_seconds")], "40");
}

trait CsvGet {
    async fn oneshot_csv(self, path: &str) -> String;
}

impl CsvGet for Router {
    async fn oneshot_csv(self, path: &str) -> String {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let res = self.oneshot(admin("GET", path, None)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }
}

async fn bad_settings_are_refused_with_precise_codes_and_nothing_is_written(store: Arc<dyn Store>) {
    let app = admin_app(&store);
    let cases = [
        (json!({"timezone": "Mars/Olympus_Mons"}), "invalid_timezone"),
        (json!({"calling_window_start": "18:00", "calling_window_end": "10:00"}), "invalid_calling_window"),
        (json!({"calling_window_start": "07:00"}), "invalid_calling_window"),
        (json!({"calling_window_end": "22:00"}), "invalid_calling_window"),
        (json!({"calling_window_start": "9am"}), "invalid_calling_window"),
        (json!({"calling_days": []}), "invalid_calling_days"),
        (json!({"calling_days": [0, 8]}), "invalid_calling_days"),
        (json!({"retry_policy": {"no_answer": []}}), "invalid_retry_policy"),
        (json!({"retry_policy": {"no_answer": [-5]}}), "invalid_retry_policy"),
        (json!({"retry_policy": {"voicemail": [5]}}), "invalid_retry_policy"),
        (json!({"max_concurrent_calls": 0}), "invalid_max_concurrent_calls"),
    ];
    for (settings, expected) in cases {
        let mut body = json!({"name": "bad"});
        body.as_object_mut().unwrap().extend(settings.as_object().unwrap().clone());
        let (code, reason) = refused(&app, "POST", "/api/v1/campaigns", Some(body)).await;
        assert_eq!((code, reason.as_str()), (StatusCode::BAD_REQUEST, expected), "{settings}");
    }
    let list = ok(&app, "GET", "/api/v1/campaigns", None).await;
    assert!(list["campaigns"].as_array().unwrap().is_empty(), "nothing was written");

    let campaign = new_campaign(&app, json!({})).await;
    let dial = format!("/api/v1/campaigns/{campaign}/dial");
    assert_eq!(refused(&app, "POST", &dial, Some(json!({}))).await.1, "invalid_limit");
    ok(&app, "POST", &dial, Some(json!({"limit": 2.0}))).await;
    let contact = upload(&app, &campaign, json!([{"phone_number": "+14155550190"}])).await.remove(0);
    let id = contact["id"].as_str().unwrap().parse().unwrap();
    let before = store.contact(id).await.unwrap().unwrap();
    let path = format!("/api/v1/contacts/{id}");
    assert_eq!(refused(&app, "PATCH", &path, Some(json!([null, null]))).await.1, "invalid_request");
    assert_eq!(store.contact(id).await.unwrap().unwrap(), before, "nothing changed");
}

async fn campaigns_are_paused_resumed_and_stopped(store: Arc<dyn Store>) {
    let app = admin_app(&store);
    let ids =
        [new_campaign(&app, json!({})).await, new_campaign(&app, json!({})).await, new_campaign(&app, json!({})).await];
    let path = |id: &str, action: &str| format!("/api/v1/campaigns/{id}/{action}");
    assert_eq!(ok(&app, "POST", &path(&ids[0], "pause"), None).await["status"], "paused");
    assert_eq!(ok(&app, "POST", &path(&ids[0], "resume"), None).await["status"], "running");
    assert_eq!(ok(&app, "POST", &path(&ids[1], "stop"), None).await["status"], "stopped");
    let (code, reason) = refused(&app, "POST", &path(&ids[1], "resume"), None).await;
    assert_eq!((code, reason.as_str()), (StatusCode::CONFLICT, "campaign_stopped"));
    let got = ok(&app, "GET", &format!("/api/v1/campaigns/{}", ids[1]), None).await;
    assert_eq!(got["status"], "stopped");

    let stopped = ok(&app, "GET", "/api/v1/campaigns?status=stopped", None).await;
    let listed: Vec<&str> =
        stopped["campaigns"].as_array().unwrap().iter().map(|k| k["id"].as_str().unwrap()).collect();
    assert_eq!(listed, vec![ids[1].as_str()]);
    let first = ok(&app, "GET", "/api/v1/campaigns?limit=2", None).await;
    let next = first["next_cursor"].as_str().unwrap();
    let rest = ok(&app, "GET", &format!("/api/v1/campaigns?limit=2&cursor={next}"), None).await;
    let all: Vec<&str> = first["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["campaigns"].as_array().unwrap())
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(all.len(), 3);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 3);
    let (code, _) = refused(&app, "POST", &path(&uuid::Uuid::new_v4().to_string(), "pause"), None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

/// The statistics are kept as delta rows and folded: after hundreds of changes of
/// every kind, and after folds, they equal a count of the contacts themselves.
async fn statistics_stay_exact_through_many_changes_and_folds(store: Arc<dyn Store>) {
    let app = admin_app(&store);
    let campaign = new_campaign(&app, json!({"max_attempts": 2})).await;
    let rows: Vec<Value> = (0..700).map(|i| json!({"phone_number": format!("+1415559{i:04}")})).collect();
    upload(&app, &campaign, Value::Array(rows)).await;
    let dial = format!("/api/v1/campaigns/{campaign}/dial");
    let mut calls = vec![];
    for _ in 0..3 {
        calls.extend(ok(&app, "POST", &dial, Some(json!({"limit": 200}))).await["calls"].as_array().unwrap().clone());
    }
    for (i, call) in calls.iter().enumerate().take(150) {
        let status = ["busy", "no-answer", "failed"][i % 3];
        end_call(&app, call["call_id"].as_str().unwrap(), &format!("CAst{i}"), status, &[]).await;
    }
    for call in calls.iter().skip(590) {
        ok(&app, "POST", &format!("/api/v1/contacts/{}/exclude", call["contact_id"].as_str().unwrap()), None).await;
    }
    let id: uuid::Uuid = campaign.parse().unwrap();
    let counted = || async {
        let mut by_state = std::collections::BTreeMap::<String, i64>::new();
        let mut after = None;
        loop {
            let page = store.contacts(id, None, after, 1000).await.unwrap();
            for c in &page {
                *by_state.entry(c.state.to_string()).or_default() += 1;
            }
            match page.last() {
                Some(c) if page.len() == 1000 => after = Some(c.id),
                _ => break,
            }
        }
        by_state
    };
    let expected = counted().await;
    assert_eq!(expected.values().sum::<i64>(), 700);
    let stats = store.campaign_stats(id).await.unwrap();
    let got: std::collections::BTreeMap<String, i64> = stats.by_state.into_iter().filter(|(_, n)| *n > 0).collect();
    assert_eq!(got, expected);
    store.fold_contact_counts().await.unwrap();
    let again = store.campaign_stats(id).await.unwrap();
    let got: std::collections::BTreeMap<String, i64> = again.by_state.into_iter().filter(|(_, n)| *n > 0).collect();
    assert_eq!(got, expected, "the same after folding");
    assert_eq!(again.attempts_histogram.values().sum::<i64>(), 700);
}

/// The dialer claimed calls, and the provider refused to create some: an invalid
/// number is final at once, another refusal is retried, and a call the provider
/// has reported on cannot be reported as never placed.
async fn a_call_the_provider_refused_to_place_is_reported_by_the_dialer(store: Arc<dyn Store>) {
    let app = admin_app(&store);
    let campaign = new_campaign(&app, json!({"max_attempts": 3, "max_concurrent_calls": 3})).await;
    let rows: Vec<Value> = (0..3).map(|i| json!({"phone_number": format!("+1415556100{i}")})).collect();
    upload(&app, &campaign, Value::Array(rows)).await;
    let claimed = ok(&app, "POST", &format!("/api/v1/campaigns/{campaign}/dial"), Some(json!({"limit": 3}))).await;
    let calls = claimed["calls"].as_array().unwrap();
    let path = |i: usize| format!("/api/v1/calls/{}/dial-failed", calls[i]["call_id"].as_str().unwrap());
    let contact = |i: usize| calls[i]["contact_id"].as_str().unwrap().parse::<uuid::Uuid>().unwrap();

    let invalid = json!({"error_code": "21211", "error_message": "Invalid 'To' Phone Number"});
    let reply = ok(&app, "POST", &path(0), Some(invalid.clone())).await;
    assert_eq!((&reply["attempt"]["status"], &reply["contact"]["state"]), (&json!("failed"), &json!("not_reached")));
    let call_id = calls[0]["call_id"].as_str().unwrap();
    let stored = store.attempt(call_id).await.unwrap().unwrap();
    let again = ok(&app, "POST", &path(0), Some(invalid)).await;
    assert_eq!(again["attempt"]["status"], "failed");
    assert_eq!(store.attempt(call_id).await.unwrap().unwrap(), stored, "a repeat changes nothing");
    let job = store.outbox(10).await.unwrap().into_iter().find(|j| j.kind == "survey.not_reached").unwrap();
    assert_eq!(job.payload["reason"], "permanent_failure");

    let reply = ok(&app, "POST", &path(1), Some(json!({"error_code": "20429"}))).await;
    assert_eq!(reply["contact"]["state"], "pending");
    let c = store.contact(contact(1)).await.unwrap().unwrap();
    assert_eq!((c.attempts_count, c.state), (1, callhook::domain::ContactState::Pending));
    assert!(c.next_attempt_at.is_some());
    // Two slots of the cap are free again: the failed calls are not in flight.
    let stats = ok(&app, "GET", &format!("/api/v1/campaigns/{campaign}/stats"), None).await;
    assert_eq!(stats["calls_in_flight"], 1);

    let placed = calls[2]["call_id"].as_str().unwrap();
    end_call(&app, placed, "CAplaced", "ringing", &[]).await;
    let (code, reason) = refused(&app, "POST", &path(2), Some(json!({"error_code": "21211"}))).await;
    assert_eq!((code, reason.as_str()), (StatusCode::CONFLICT, "call_already_reported"));
    assert_eq!(store.contact(contact(2)).await.unwrap().unwrap().state, callhook::domain::ContactState::InProgress);
    let (_, reason) = refused(&app, "POST", &path(2), Some(json!({"error_code": "has space"}))).await;
    assert_eq!(reason, "invalid_request");
    let (code, _) =
        refused(&app, "POST", "/api/v1/calls/no-such-call/dial-failed", Some(json!({"error_code": "1"}))).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}
