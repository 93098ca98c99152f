//! Admin inputs are bounded and refused identically on both stores, before any
//! write: NUL and control characters, over-long names and identifiers, odd
//! metadata. (Callbacks get the same treatment in `robustness.rs`.)

#[macro_use]
mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};

use callhook::secret::Secret;
use callhook::store::Store;
use common::*;

fn post(path: &str, body: Value) -> Request<Body> {
    Request::post(path)
        .header("host", HOST)
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

on_both_stores!(admin_inputs_are_bounded_and_refused_before_any_write);

async fn admin_inputs_are_bounded_and_refused_before_any_write(store: Arc<dyn Store>) {
    let app = app_with_admin(store.clone(), vec![Secret::new(ADMIN_TOKEN)]);
    let refused = |(code, body): (StatusCode, Value), what: &str| {
        assert_eq!(code, StatusCode::BAD_REQUEST, "{what}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.len() < 200, "{what}: the input is not echoed whole: {message}");
    };
    for (name, body) in [
        ("NUL in a campaign name", json!({"name": "spring\u{0}survey"})),
        ("a campaign name of 201 characters", json!({"name": "x".repeat(201)})),
        ("an escape sequence in a name", json!({"name": "\u{1b}[31mred"})),
        ("a retry interval over 30 days", json!({"name": "ok", "retry_interval_minutes": 50_000})),
    ] {
        refused(send(&app, post("/api/v1/campaigns", body)).await, name);
    }
    refused(send(&app, post("/api/v1/campaigns", json!({"name": "ok", "max_attempts": 2.5}))).await, "a fraction");
    // JSON has one number type: a whole number may be written 4.0.
    let (code, body) = send(&app, post("/api/v1/campaigns", json!({"name": "ok", "max_attempts": 4.0}))).await;
    assert_eq!((code, body["max_attempts"].as_i64()), (StatusCode::CREATED, Some(4)), "{body}");
    let campaign = campaign(&store, 3).await;
    let contacts = format!("/api/v1/campaigns/{}/contacts", campaign.id);
    for (name, body) in [
        ("NUL in an external id", json!([{"phone_number": "+14155550100", "external_id": "a\u{0}b"}])),
        ("an external id of 129 characters", json!([{"phone_number": "+14155550100", "external_id": "x".repeat(129)}])),
        ("a 64 KiB phone number", json!([{"phone_number": "9".repeat(65_536)}])),
    ] {
        refused(send(&app, post(&contacts, body)).await, name);
    }
    let contact = contact(&store, &campaign).await;
    for (name, body) in [
        ("a call id with a space", json!({"contact_id": contact.id, "call_id": "a b"})),
        ("a call id with NUL", json!({"contact_id": contact.id, "call_id": "a\u{0}"})),
        ("a provider call id of 300 bytes", json!({"contact_id": contact.id, "provider_call_id": "C".repeat(300)})),
        ("an empty provider call id", json!({"contact_id": contact.id, "provider_call_id": ""})),
        ("NUL in metadata", json!({"contact_id": contact.id, "metadata": {"note": "x\u{0}"}})),
        ("metadata that is not an object", json!({"contact_id": contact.id, "metadata": [1, 2]})),
        ("20 KiB of metadata", json!({"contact_id": contact.id, "metadata": {"note": "x".repeat(20_480)}})),
    ] {
        refused(send(&app, post("/api/v1/calls", body)).await, name);
    }
    let unchanged = store.contact(contact.id).await.unwrap().unwrap();
    assert_eq!((unchanged.attempts_count, unchanged.state.as_str()), (0, "pending"), "nothing was written");
    // Within the bounds, all is accepted.
    let (code, body) =
        send(&app, post("/api/v1/calls", json!({"contact_id": contact.id, "call_id": "ok-1", "metadata": {"n": 1}})))
            .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
}
