//! The HTTP contract of SPEC §2 through the real router: every rejection's status
//! code and JSON error body, and proof that a rejected request changes nothing.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

use callhook::domain::{CallStatus, EventType, Provider};
use callhook::http::{router, AppState, ExternalUrl, Limits};
use callhook::providers::simulate::Callback;
use callhook::providers::twilio::{self, Algorithm};
use callhook::store::{NewAttempt, Store};
use common::*;

async fn setup() -> (TestDb, axum::Router, String) {
    let db = sqlite().await;
    let campaign = campaign(&db.store, 3).await;
    let contact = contact(&db.store, &campaign).await;
    let call_id =
        db.store.register_attempt(NewAttempt::new(contact.id, Provider::Twilio)).await.unwrap().attempt.call_id;
    let app = app(db.store.clone());
    (db, app, call_id)
}

/// Nothing stored for the call and its attempt untouched.
async fn assert_untouched(store: &Arc<dyn Store>, call_id: &str) {
    assert!(store.events(100).await.unwrap().is_empty(), "no event may be stored");
    assert!(store.outbox(100).await.unwrap().is_empty());
    let attempt = store.attempt(call_id).await.unwrap().unwrap();
    assert_eq!((attempt.status, attempt.provider_call_id), (CallStatus::Initiated, None));
}

fn form(path: &str, body: impl Into<Body>, signature: Option<&str>, content_type: &str) -> Request<Body> {
    let mut b = Request::post(path).header("host", HOST).header("content-type", content_type);
    if let Some(sig) = signature {
        b = b.header("x-twilio-signature", sig);
    }
    b.body(body.into()).unwrap()
}

#[tokio::test]
async fn missing_and_forged_signatures_are_403_and_store_nothing() {
    let (db, app, call_id) = setup().await;
    let path = format!("/webhooks/telephony/events?call_id={call_id}");
    let body = "CallSid=CA1&CallStatus=in-progress";

    let (code, res) = send(&app, form(&path, body, None, "application/x-www-form-urlencoded")).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert_eq!(res["error"]["code"], "missing_signature");

    let (code, res) =
        send(&app, form(&path, body, Some("AAAAAAAAAAAAAAAAAAAAAAAAAAA="), "application/x-www-form-urlencoded")).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert_eq!(res["error"]["code"], "invalid_signature");

    // Signed for another call: the query string is covered by the signature.
    let other = signed(
        "/webhooks/telephony/events?call_id=someone-else",
        &fields(&[("CallSid", "CA1"), ("CallStatus", "in-progress")]),
    );
    let sig = other.headers()["x-twilio-signature"].to_str().unwrap().to_owned();
    let (code, _) = send(&app, form(&path, body, Some(&sig), "application/x-www-form-urlencoded")).await;
    assert_eq!(code, StatusCode::FORBIDDEN);

    let unconfigured = app_with(db.store.clone(), Default::default());
    let (code, res) = send(&unconfigured, callback(&call_id, "CA1", "in-progress")).await;
    assert_eq!((code, res["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("provider_not_configured")));
    assert_untouched(&db.store, &call_id).await;
}

#[tokio::test]
async fn malformed_input_is_400_with_a_clear_message() {
    let (db, app, call_id) = setup().await;
    let path = format!("/webhooks/telephony/events?call_id={call_id}");
    // (form fields, error code, a word the message names)
    let cases = [
        (fields(&[("CallStatus", "ringing")]), "missing_field", "CallSid"),
        (fields(&[("CallSid", "CA1")]), "missing_field", "CallStatus"),
        (fields(&[("CallSid", "CA1"), ("CallStatus", "")]), "missing_field", "CallStatus"),
    ];
    for (f, code_word, mentions) in cases {
        let (code, res) = send(&app, signed(&path, &f)).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{res}");
        assert_eq!(res["error"]["code"], code_word);
        assert!(res["error"]["message"].as_str().unwrap().contains(mentions), "{res}");
    }
    let bad_uuid =
        signed(&format!("{path}&campaign_id=not-a-uuid"), &fields(&[("CallSid", "CA1"), ("CallStatus", "ringing")]));
    let (code, res) = send(&app, bad_uuid).await;
    assert_eq!((code, res["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_field")));
    assert!(res["error"]["message"].as_str().unwrap().contains("campaign_id"));

    let (code, res) =
        send(&app, form(&path, &b"CallSid=CA1&CallStatus=%FF%FE"[..], Some("x"), "application/x-www-form-urlencoded"))
            .await;
    assert_eq!((code, res["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("malformed_body")));
    assert!(res["error"]["message"].as_str().unwrap().contains("UTF-8"));

    let (code, res) = send(&app, form(&path, "{not json", Some("x"), "application/json")).await;
    assert_eq!((code, res["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("malformed_body")));
    assert_untouched(&db.store, &call_id).await;
}

#[tokio::test]
async fn wrong_content_type_is_415_and_huge_bodies_413() {
    let (db, app, call_id) = setup().await;
    let path = format!("/webhooks/telephony/events?call_id={call_id}");
    for ct in ["text/plain", "multipart/form-data; boundary=x"] {
        let (code, res) = send(&app, form(&path, "CallSid=CA1", Some("x"), ct)).await;
        assert_eq!(code, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(res["error"]["code"], "unsupported_media_type");
    }
    let no_ct = Request::post(&path).header("host", HOST).body(Body::from("CallSid=CA1")).unwrap();
    assert_eq!(send(&app, no_ct).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let huge = format!("CallSid=CA1&CallStatus=ringing&Pad={}", "x".repeat(70 * 1024));
    let (code, res) = send(&app, form(&path, huge.clone(), Some("x"), "application/x-www-form-urlencoded")).await;
    assert_eq!((code, res["error"]["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")));
    // Without Content-Length (chunked), the limit still holds while reading.
    let stream = Body::from_stream(futures_stream(huge));
    let (code, _) = send(&app, form(&path, stream, Some("x"), "application/x-www-form-urlencoded")).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
    assert_untouched(&db.store, &call_id).await;
}

fn futures_stream(body: String) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send {
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> =
        body.into_bytes().chunks(8 * 1024).map(|c| Ok(bytes::Bytes::copy_from_slice(c))).collect();
    futures_util::stream::iter(chunks)
}

#[tokio::test]
async fn unknown_provider_is_404() {
    let (db, app, call_id) = setup().await;
    let (code, res) = send(&app, signed("/webhooks/telephony/acme/events", &fields(&[("CallSid", "CA1")]))).await;
    assert_eq!((code, res["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_provider")));
    // Telnyx speaks JSON: a form body is refused before anything else.
    let (code, res) = send(&app, signed("/webhooks/telephony/telnyx/events", &fields(&[("CallSid", "CA1")]))).await;
    assert_eq!(
        (code, res["error"]["code"].as_str()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("unsupported_media_type"))
    );
    assert_untouched(&db.store, &call_id).await;
}

#[tokio::test]
async fn store_outage_is_503_with_retry_after_and_never_2xx() {
    let (db, app, call_id) = setup().await;
    db.break_connection().await;
    let res = tower::ServiceExt::oneshot(app.clone(), callback(&call_id, "CA1", "in-progress")).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "5");
    let (code, res) = send(&app, Request::get("/readyz").body(Body::empty()).unwrap()).await;
    assert_eq!((code, res["error"]["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("store_unavailable")));
}

#[tokio::test]
async fn postgres_outage_is_503_too() {
    let Some(db) = postgres().await else { return };
    let app = app(db.store.clone());
    db.break_connection().await;
    let (code, res) = send(&app, callback("c-1", "CA1", "ringing")).await;
    assert_eq!((code, res["error"]["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("store_unavailable")));
    db.cleanup().await;
}

#[tokio::test]
async fn health_and_readiness() {
    let (_db, app, _) = setup().await;
    let (code, res) = send(&app, Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!((code, res), (StatusCode::OK, json!({"status": "ok"})));
    let (code, res) = send(&app, Request::get("/readyz").body(Body::empty()).unwrap()).await;
    assert_eq!((code, res), (StatusCode::OK, json!({"status": "ready", "store": "sqlite"})));
}

fn state(store: Arc<dyn Store>, external_url: ExternalUrl, insecure: bool) -> AppState {
    let mut providers = providers();
    providers.insecure_skip_verification = insecure;
    AppState {
        spool: None,
        batcher: None,
        store,
        providers: Arc::new(providers),
        external_url: Arc::new(external_url),
        default_provider: Provider::Twilio,
        max_body_bytes: 64 * 1024,
        admin_tokens: Arc::new(vec![]),
        timeouts: Default::default(),
    }
}

#[tokio::test]
async fn signature_is_checked_against_the_public_url() {
    let (db, _, call_id) = setup().await;
    let path = format!("/webhooks/telephony/twilio/events?call_id={call_id}");
    let f = fields(&[("CallSid", "CA1"), ("CallStatus", "ringing")]);
    let public = format!("https://hooks.example.com{path}");
    let sig = twilio::sign(Algorithm::HmacSha1, TOKEN, &public, &f);
    let req = || {
        Request::post(&path)
            .header("host", "10.0.0.7:8080")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "hooks.example.com")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", &sig)
            .body(Body::from(encode(&f)))
            .unwrap()
    };
    let plain = router(state(db.store.clone(), ExternalUrl::default(), false), Limits::default());
    let mismatches = || {
        let text = callhook::telemetry::prometheus().render();
        series_value(&text, "callhook_signature_failures_total", &[("provider", "twilio"), ("reason", "url_mismatch")])
            .unwrap_or(0.0)
    };
    let before = mismatches();
    let (code, res) = send(&plain, req()).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "forwarded headers are not trusted by default");
    // The answer names no URL; the log does, and the failure is counted as a URL mismatch.
    assert_eq!(res["error"]["code"], "invalid_signature");
    let message = res["error"]["message"].as_str().unwrap();
    assert!(!message.contains("hooks.example.com") && !message.contains("10.0.0.7"), "{message}");
    assert!(message.contains("another scheme or host"), "{message}");
    assert!(mismatches() >= before + 1.0, "counted as url_mismatch");

    let proxied = ExternalUrl { public_base_url: None, trust_forwarded_headers: true, ..Default::default() };
    let app = router(state(db.store.clone(), proxied, false), Limits::default());
    assert_eq!(send(&app, req()).await.0, StatusCode::OK);

    let configured = ExternalUrl {
        public_base_url: Some("https://hooks.example.com/".into()),
        trust_forwarded_headers: false,
        ..Default::default()
    };
    let app = router(state(db.store.clone(), configured, false), Limits::default());
    let (code, res) = send(&app, req()).await;
    assert_eq!((code, res["status"].as_str()), (StatusCode::OK, Some("duplicate")));
}

#[tokio::test]
async fn json_callbacks_are_verified_by_body_hash() {
    let (db, app, call_id) = setup().await;
    let body = r#"{"CallSid":"CA77","CallStatus":"ringing","SequenceNumber":1}"#;
    let path =
        format!("/webhooks/telephony/events?call_id={call_id}&bodySHA256={}", twilio::body_sha256(body.as_bytes()));
    let sig = twilio::sign(Algorithm::HmacSha1, TOKEN, &format!("http://{HOST}{path}"), &[]);
    let (code, res) = send(&app, form(&path, body, Some(&sig), "application/json")).await;
    assert_eq!((code, res["status"].as_str()), (StatusCode::OK, Some("processed")), "{res}");
    let events = db.store.events_for_call(&call_id).await.unwrap();
    assert_eq!((events[0].sequence_number, &events[0].payload["SequenceNumber"]), (Some(1), &json!(1)));
}

#[tokio::test]
async fn insecure_mode_accepts_unsigned_callbacks() {
    let (db, _, call_id) = setup().await;
    let app = router(state(db.store.clone(), ExternalUrl::default(), true), Limits::default());
    let path = format!("/webhooks/telephony/events?call_id={call_id}");
    let (code, res) =
        send(&app, form(&path, "CallSid=CA9&CallStatus=ringing", None, "application/x-www-form-urlencoded")).await;
    assert_eq!((code, res["status"].as_str()), (StatusCode::OK, Some("processed")));
}

/// Each series asserted on here is one no other test in this binary produces: only
/// this test sends Plivo callbacks, gets a 202 from the named-provider route and
/// scrapes `/metrics` (which sets the outbox gauges). The recorder is process-wide
/// and sibling tests run concurrently, so every series is read before and after and
/// must have moved by exactly what this test did: if the code stops counting, the
/// delta is 0 and the test fails however the other tests ran.
#[tokio::test]
async fn metrics_count_webhooks_signature_failures_latency_and_outbox() {
    let db = sqlite().await;
    let campaign = campaign(&db.store, 3).await;
    let contact = contact(&db.store, &campaign).await;
    let call_id =
        db.store.register_attempt(NewAttempt::new(contact.id, Provider::Plivo)).await.unwrap().attempt.call_id;
    let app = app(db.store.clone());

    let processed = [("provider", "plivo"), ("event_type", "call.answered"), ("outcome", "processed")];
    let deferred = [("provider", "plivo"), ("event_type", "call.ringing"), ("outcome", "deferred")];
    let rejected = [("provider", "plivo"), ("event_type", ""), ("outcome", "rejected")];
    let invalid = [("provider", "plivo"), ("reason", "invalid")];
    let latency_202 = [("route", "/webhooks/telephony/{provider}/events"), ("method", "POST"), ("status", "202")];
    let counters: [(&str, &[(&str, &str)]); 5] = [
        ("callhook_webhooks_total", &processed),
        ("callhook_webhooks_total", &deferred),
        ("callhook_webhooks_total", &rejected),
        ("callhook_signature_failures_total", &invalid),
        ("callhook_http_request_duration_seconds_count", &latency_202),
    ];
    let before = scrape_metrics(&app).await;
    let read = |text: &str| counters.map(|(name, labels)| series_value(text, name, labels).unwrap_or(0.0));
    let counted_before = read(&before);
    assert_eq!(series_value(&before, "callhook_outbox_pending", &[]), Some(0.0), "{before}");

    let path = format!("/webhooks/telephony/plivo/events?call_id={call_id}");
    let answered = Callback { provider_call_id: "pl-metrics", event: Some(EventType::Answered), ..Default::default() };
    let (code, res) = send(&app, provider_callback(Provider::Plivo, &path, &answered)).await;
    assert_eq!((code, res["status"].as_str()), (StatusCode::OK, Some("processed")), "{res}");
    // Signed with the wrong auth token.
    let mut forger = signer();
    forger.plivo_token = "not-the-auth-token".into();
    let forged =
        forger.callback(Provider::Plivo, &format!("http://{HOST}{path}"), &answered, chrono::Utc::now().timestamp());
    let (code, res) = send(&app, to_request(&path, forged)).await;
    assert_eq!((code, res["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("invalid_signature")), "{res}");
    // Named only by a provider call id no attempt has (yet): deferred, 202.
    let early =
        Callback { provider_call_id: "pl-metrics-early", event: Some(EventType::Ringing), ..Default::default() };
    let (code, res) = send(&app, provider_callback(Provider::Plivo, "/webhooks/telephony/plivo/events", &early)).await;
    assert_eq!((code, res["status"].as_str()), (StatusCode::ACCEPTED, Some("deferred")), "{res}");

    let text = scrape_metrics(&app).await;
    let counted = read(&text);
    for (((name, labels), before), after) in counters.iter().zip(counted_before).zip(counted) {
        assert_eq!(after - before, 1.0, "{name}{labels:?} went from {before} to {after}:\n{text}");
    }
    assert!(!text.contains(&call_id) && !text.contains("pl-metrics"), "call ids never become labels");
    assert_eq!(series_value(&text, "callhook_outbox_pending", &[]), Some(1.0), "the dialogue.start job: {text}");
    assert_eq!(series_value(&text, "callhook_dialogue_never_started", &[]), Some(0.0), "{text}");
    assert_eq!(series_value(&text, "callhook_stranded_contacts", &[]), Some(0.0), "{text}");
    let age = series_value(&text, "callhook_outbox_oldest_pending_age_seconds", &[]);
    assert!(age.is_some_and(|v| (0.0..60.0).contains(&v)), "{text}");
}
