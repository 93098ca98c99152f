//! Telnyx, Vonage, Plivo and SignalWire beside Twilio: realistic fixtures signed with
//! test keys, through the real router, on both stores; and every forgery refused.

#[macro_use]
mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};

use callhook::domain::{CallStatus, ContactState, EventType, Outcome, Provider};
use callhook::providers::simulate::Callback;
use callhook::store::{NewAttempt, Store};
use common::*;

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// (provider, content type, fixtures in provider order, provider call id in them)
fn sequences() -> Vec<(Provider, &'static str, [&'static str; 3], &'static str)> {
    vec![
        (
            Provider::Telnyx,
            JSON,
            ["telnyx_call_initiated.json", "telnyx_call_answered.json", "telnyx_call_hangup.json"],
            "v3:QlVGUcbgGLx2xqTjv8Y1dW7zwhy8HFPHFx",
        ),
        (
            Provider::Vonage,
            JSON,
            ["vonage_started.json", "vonage_answered.json", "vonage_completed.json"],
            "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
        ),
        (
            Provider::Plivo,
            FORM,
            ["plivo_ringing.form", "plivo_answered.form", "plivo_hangup.form"],
            "5c8a4b9e-821d-11e4-9a73-498d468c930b",
        ),
        (
            Provider::SignalWire,
            FORM,
            ["signalwire_ringing.form", "signalwire_answered.form", "signalwire_completed.form"],
            "8ad8f7b1-0d3f-4c5a-9a4c-6b7f0c1d2e3f",
        ),
    ]
}

async fn register(store: &Arc<dyn Store>, provider: Provider, provider_call_id: Option<&str>) -> (uuid::Uuid, String) {
    let campaign = campaign(store, 2).await;
    let contact = contact(store, &campaign).await;
    let mut new = NewAttempt::new(contact.id, provider);
    new.provider_call_id = provider_call_id.map(str::to_owned);
    (contact.id, store.register_attempt(new).await.unwrap().attempt.call_id)
}

on_both_stores!(
    realistic_fixtures_of_every_provider_drive_one_call_each,
    callbacks_correlate_by_provider_call_id,
    a_separate_machine_detection_event_counts_the_call_as_no_answer,
    signalwire_json_call_states_drive_a_call,
);

async fn realistic_fixtures_of_every_provider_drive_one_call_each(store: Arc<dyn Store>) {
    let app = app(store.clone());
    for (provider, content_type, files, pcid) in sequences() {
        let (_, call_id) = register(&store, provider, None).await;
        let path = format!("/webhooks/telephony/{provider}/events?call_id={call_id}");
        for file in files {
            let (code, body) = send(&app, provider_raw(provider, &path, content_type, &fixture(file))).await;
            assert_eq!(
                (code, body["status"].as_str()),
                (StatusCode::OK, Some("processed")),
                "{provider} {file}: {body}"
            );
        }
        let (code, body) = send(&app, provider_raw(provider, &path, content_type, &fixture(files[1]))).await;
        assert_eq!(
            (code, body["status"].as_str()),
            (StatusCode::OK, Some("duplicate")),
            "{provider} redelivery: {body}"
        );

        let attempt = store.attempt(&call_id).await.unwrap().unwrap();
        assert_eq!(
            (attempt.status, attempt.provider_call_id.as_deref()),
            (CallStatus::Completed, Some(pcid)),
            "{provider}"
        );
        assert!(attempt.answered_at.is_some() && attempt.ended_at.is_some(), "{provider}");
        assert!(attempt.duration_seconds.unwrap_or(0) > 0, "{provider} duration");
        let starts: Vec<_> = store
            .outbox(100)
            .await
            .unwrap()
            .into_iter()
            .filter(|j| j.kind == "dialogue.start" && j.payload["call_id"] == call_id.as_str())
            .collect();
        assert_eq!(starts.len(), 1, "{provider}");
        assert_eq!(starts[0].payload["provider"], provider.as_str());
        let events = store.events_for_call(&call_id).await.unwrap();
        assert_eq!(events.len(), 3, "{provider}");
        assert!(events.iter().all(|e| e.provider == provider));
    }
}

async fn callbacks_correlate_by_provider_call_id(store: Arc<dyn Store>) {
    let app = app(store.clone());
    for provider in Provider::ALL {
        let pcid = format!("pc-{provider}");
        let (contact_id, call_id) = register(&store, *provider, Some(&pcid)).await;
        let path = format!("/webhooks/telephony/{provider}/events");
        let cb = Callback { provider_call_id: &pcid, event: Some(EventType::Busy), ..Default::default() };
        let (code, body) = send(&app, provider_callback(*provider, &path, &cb)).await;
        assert_eq!((code, body["call_id"].as_str()), (StatusCode::OK, Some(call_id.as_str())), "{provider}: {body}");
        assert_eq!(store.attempt(&call_id).await.unwrap().unwrap().outcome, Some(Outcome::Busy), "{provider}");
        assert_eq!(store.contact(contact_id).await.unwrap().unwrap().state, ContactState::Pending, "{provider}");
    }
}

async fn a_separate_machine_detection_event_counts_the_call_as_no_answer(store: Arc<dyn Store>) {
    let app = app(store.clone());
    for provider in [Provider::Telnyx, Provider::Vonage] {
        let (contact_id, call_id) = register(&store, provider, None).await;
        let path = format!("/webhooks/telephony/{provider}/events?call_id={call_id}");
        let pcid = format!("amd-{provider}");
        let steps = [
            Callback { provider_call_id: &pcid, event: Some(EventType::Answered), ..Default::default() },
            Callback {
                provider_call_id: &pcid,
                event: Some(EventType::Answered),
                answered_by: Some("machine"),
                ..Default::default()
            },
            Callback {
                provider_call_id: &pcid,
                event: Some(EventType::Completed),
                duration_seconds: Some(9),
                ..Default::default()
            },
        ];
        let mut statuses = vec![];
        for cb in &steps {
            let (code, body) = send(&app, provider_callback(provider, &path, cb)).await;
            assert_eq!(code, StatusCode::OK, "{provider}: {body}");
            statuses.push(body["status"].as_str().unwrap().to_owned());
        }
        assert_eq!(statuses, ["processed", "ignored", "processed"], "{provider}");
        let attempt = store.attempt(&call_id).await.unwrap().unwrap();
        assert_eq!(
            (attempt.answered_by.as_deref(), attempt.outcome),
            (Some("machine"), Some(Outcome::NoAnswer)),
            "{provider}"
        );
        assert_eq!(store.contact(contact_id).await.unwrap().unwrap().state, ContactState::Pending, "{provider}");
    }
}

/// Corrupts a request: `what` is "signature" (flip a header), "body" (change a
/// byte after signing) or "missing" (drop the provider's headers).
async fn tampered(provider: Provider, path: &str, what: &str) -> Request<Body> {
    let cb = Callback { provider_call_id: "pc-forged", event: Some(EventType::Answered), ..Default::default() };
    let req = provider_callback(provider, path, &cb);
    let (mut parts, body) = req.into_parts();
    let mut bytes = http_body_util::BodyExt::collect(body).await.unwrap().to_bytes().to_vec();
    let auth_headers = [
        "x-twilio-signature",
        "x-signalwire-signature",
        "telnyx-signature-ed25519",
        "authorization",
        "x-plivo-signature-v3",
    ];
    match what {
        "signature" => {
            for h in auth_headers {
                if let Some(v) = parts.headers.get(h).cloned() {
                    let mut s = v.to_str().unwrap().to_owned();
                    let last = s.pop().unwrap();
                    s.push(if last == 'A' { 'B' } else { 'A' });
                    parts.headers.insert(h, s.parse().unwrap());
                }
            }
        }
        "body" => {
            let text = String::from_utf8(bytes).unwrap().replace("pc-forged", "pc-f0rged");
            bytes = text.into_bytes();
            parts.headers.remove("content-length");
        }
        _ => {
            for h in auth_headers {
                parts.headers.remove(h);
            }
        }
    }
    Request::from_parts(parts, Body::from(bytes))
}

#[tokio::test]
async fn forged_tampered_and_unsigned_callbacks_of_every_provider_are_403() {
    let db = sqlite().await;
    let app = app(db.store.clone());
    for provider in Provider::ALL {
        let path = format!("/webhooks/telephony/{provider}/events?call_id=forged");
        for what in ["signature", "body", "missing"] {
            let (code, body) = send(&app, tampered(*provider, &path, what).await).await;
            assert_eq!(code, StatusCode::FORBIDDEN, "{provider} {what}: {body}");
            let expected = if what == "missing" { "missing_signature" } else { "invalid_signature" };
            assert_eq!(body["error"]["code"], expected, "{provider} {what}");
        }
        let unconfigured = app_with(db.store.clone(), Default::default());
        let cb = Callback { provider_call_id: "pc", event: Some(EventType::Ringing), ..Default::default() };
        let (code, body) = send(&unconfigured, provider_callback(*provider, &path, &cb)).await;
        assert_eq!(
            (code, body["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("provider_not_configured")),
            "{provider}"
        );
    }
    assert!(db.store.events(10).await.unwrap().is_empty(), "nothing stored");
}

#[tokio::test]
async fn expired_telnyx_and_vonage_signatures_are_403() {
    let db = sqlite().await;
    let app = app(db.store.clone());
    let old = chrono::Utc::now().timestamp() - 3600;
    for provider in [Provider::Telnyx, Provider::Vonage] {
        let path = format!("/webhooks/telephony/{provider}/events?call_id=c");
        let cb = Callback { provider_call_id: "pc", event: Some(EventType::Ringing), ..Default::default() };
        let signed = signer().callback(provider, &format!("http://{HOST}{path}"), &cb, old);
        let (code, body) = send(&app, to_request(&path, signed)).await;
        assert_eq!(
            (code, body["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("invalid_signature")),
            "{provider}: {body}"
        );
    }
}

/// SignalWire's RELAY `calling.call.state` callbacks: JSON signed with a hex HMAC-SHA1
/// over the URL and the raw body, through the real router.
async fn signalwire_json_call_states_drive_a_call(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let (_, call_id) = register(&store, Provider::SignalWire, None).await;
    let path = format!("/webhooks/telephony/signalwire/events?call_id={call_id}");
    let url = format!("http://{HOST}{path}");
    let key = signer().signalwire_key;
    let request = |body: &str, signature: &str| {
        Request::post(&path)
            .header("host", HOST)
            .header("content-type", JSON)
            .header("x-signalwire-signature", signature)
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    let answered = fixture("signalwire_relay_answered.json").trim().to_owned();
    let ended = fixture("signalwire_relay_ended.json").trim().to_owned();
    let sign = |body: &str| callhook::providers::twilio::raw_body_signature(&key, &url, body.as_bytes());

    let (code, body) = send(&app, request(&answered, &sign(&answered))).await;
    assert_eq!((code, body["status"].as_str()), (StatusCode::OK, Some("processed")), "{body}");
    let (code, body) = send(&app, request(&answered, &sign(&answered))).await;
    assert_eq!((code, body["status"].as_str()), (StatusCode::OK, Some("duplicate")), "{body}");
    let attempt = store.attempt(&call_id).await.unwrap().unwrap();
    assert_eq!(
        (attempt.status, attempt.provider_call_id.as_deref()),
        (CallStatus::Answered, Some("3f1c2b7e-5a4d-4e8f-9b6a-2c1d0e9f8a7b"))
    );

    // Signed for another body, or not signed as SignalWire signs: refused.
    let (code, _) = send(&app, request(&ended, &sign(&answered))).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, _) = send(&app, request(&ended, &sign(&ended).to_ascii_uppercase())).await;
    assert_eq!(code, StatusCode::FORBIDDEN);

    let (code, body) = send(&app, request(&ended, &sign(&ended))).await;
    assert_eq!((code, body["status"].as_str()), (StatusCode::OK, Some("processed")), "{body}");
    let attempt = store.attempt(&call_id).await.unwrap().unwrap();
    assert!(attempt.ended_at.is_some(), "{attempt:?}");
    let events = store.events_for_call(&call_id).await.unwrap();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.provider == Provider::SignalWire));
}
