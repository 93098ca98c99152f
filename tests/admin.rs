//! The admin API (SPEC §6) through the real router, on both stores.

#[macro_use]
mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

use callhook::store::Store;
use common::*;

on_both_stores!(a_campaign_is_run_end_to_end_through_the_api, invalid_input_gets_json_errors, outcome_rules,);

#[tokio::test]
async fn requests_without_the_bearer_token_are_401() {
    let db = sqlite().await;
    let app = app(db.store.clone());
    let no_token = Request::post("/api/v1/campaigns")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"name":"x"}"#))
        .unwrap();
    let (code, body) = send(&app, no_token).await;
    assert_eq!((code, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));
    let wrong = Request::get("/api/v1/contacts/00000000-0000-0000-0000-000000000000")
        .header("authorization", "Bearer nope")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, wrong).await.0, StatusCode::UNAUTHORIZED);

    let disabled = app_with_admin(db.store.clone(), vec![]);
    let (code, body) = send(&disabled, admin("POST", "/api/v1/campaigns", Some(json!({"name": "x"})))).await;
    assert_eq!((code, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("admin_api_disabled")));
    assert!(db.store.outbox(1).await.unwrap().is_empty());
}

#[tokio::test]
async fn openapi_document_describes_the_api() {
    let db = sqlite().await;
    let (code, doc) = send(&app(db.store.clone()), Request::get("/openapi.json").body(Body::empty()).unwrap()).await;
    assert_eq!(code, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in
        ["/api/v1/campaigns", "/api/v1/calls", "/api/v1/calls/{call_id}/outcome", "/webhooks/telephony/twilio/events"]
    {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    assert!(doc["components"]["schemas"]["Attempt"]["properties"]["status"].is_object());
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
}

#[tokio::test]
async fn unknown_routes_are_json_404s() {
    let db = sqlite().await;
    let (code, body) = send(&app(db.store.clone()), Request::get("/nope").body(Body::empty()).unwrap()).await;
    assert_eq!((code, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
}

async fn a_campaign_is_run_end_to_end_through_the_api(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let (code, campaign) = send(
        &app,
        admin(
            "POST",
            "/api/v1/campaigns",
            Some(json!({"name": "NPS", "max_attempts": 2, "retry_interval_minutes": 30})),
        ),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{campaign}");
    assert_eq!((campaign["max_attempts"].as_i64(), campaign["retry_interval_minutes"].as_i64()), (Some(2), Some(30)));
    let cid = campaign["id"].as_str().unwrap();

    let contacts = json!({"contacts": [{"phone_number": "+14155550100", "external_id": "crm-1"}, {"phone_number": "+14155550101"}]});
    let (code, body) = send(&app, admin("POST", &format!("/api/v1/campaigns/{cid}/contacts"), Some(contacts))).await;
    assert_eq!(code, StatusCode::CREATED);
    let contact_id = body["contacts"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(body["contacts"][0]["external_id"], "crm-1");
    assert_eq!(body["contacts"][1]["state"], "pending");

    let (code, reg) =
        send(&app, admin("POST", "/api/v1/calls", Some(json!({"contact_id": contact_id, "call_id": "api-call-1"}))))
            .await;
    assert_eq!(code, StatusCode::CREATED, "{reg}");
    assert_eq!(reg["call_id"], "api-call-1");
    assert_eq!(reg["attempt"]["attempt_number"], 1);
    assert_eq!(reg["contact"]["state"], "in_progress");
    let url = reg["status_callback_url"].as_str().unwrap();
    assert_eq!(url, format!("http://{HOST}/webhooks/telephony/twilio/events?call_id=api-call-1&campaign_id={cid}&contact_id={contact_id}"));

    // The provider calls back on exactly that URL.
    let path = url.strip_prefix(&format!("http://{HOST}")).unwrap();
    for status in ["ringing", "in-progress"] {
        let (code, body) = send(&app, signed(path, &fields(&[("CallSid", "CA-api"), ("CallStatus", status)]))).await;
        assert_eq!((code, body["status"].as_str()), (StatusCode::OK, Some("processed")));
    }
    let (code, again) = send(&app, admin("POST", "/api/v1/calls", Some(json!({"contact_id": contact_id})))).await;
    assert_eq!((code, again["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("attempt_in_flight")));

    let (code, detail) = send(&app, admin("GET", "/api/v1/calls/api-call-1", None)).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(detail["attempt"]["status"], "answered");
    assert_eq!(detail["events"].as_array().unwrap().len(), 2);
    assert_eq!(detail["events"][1]["event_type"], "call.answered");
    assert_eq!(detail["events"][1]["payload"]["CallSid"], "CA-api");

    let (code, done) =
        send(&app, admin("POST", "/api/v1/calls/api-call-1/outcome", Some(json!({"outcome": "completed"})))).await;
    assert_eq!(code, StatusCode::OK, "{done}");
    assert_eq!(
        (done["attempt"]["outcome"].as_str(), done["contact"]["state"].as_str()),
        (Some("completed"), Some("completed"))
    );
    let (code, contact) = send(&app, admin("GET", &format!("/api/v1/contacts/{contact_id}"), None)).await;
    assert_eq!(
        (code, contact["state"].as_str(), contact["last_outcome"].as_str()),
        (StatusCode::OK, Some("completed"), Some("completed"))
    );

    let kinds: Vec<String> = store.outbox(10).await.unwrap().into_iter().map(|j| j.kind).collect();
    assert_eq!(kinds, vec!["dialogue.start", "survey.completed"]);
}

async fn invalid_input_gets_json_errors(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let cases = [
        admin("POST", "/api/v1/campaigns", Some(json!({"name": "x", "max_attempts": 9}))),
        admin("POST", "/api/v1/campaigns", Some(json!({"max_attempts": 2}))),
        admin("POST", "/api/v1/campaigns/not-a-uuid/contacts", Some(json!({"contacts": []}))),
        admin("GET", "/api/v1/contacts/42", None),
        admin("POST", "/api/v1/calls", Some(json!({"contact_id": "nope"}))),
    ];
    for req in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let (code, body) = send(&app, req).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{what}: {body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {body}");
    }
    let syntax = Request::post("/api/v1/campaigns")
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from("{\"name\": "))
        .unwrap();
    let (code, body) = send(&app, syntax).await;
    assert_eq!((code, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("malformed_body")));
    let no_ct = Request::post("/api/v1/campaigns")
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .body(Body::from("{}"))
        .unwrap();
    assert_eq!(send(&app, no_ct).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let campaign = campaign(&store, 3).await;
    let (code, body) = send(
        &app,
        admin(
            "POST",
            &format!("/api/v1/campaigns/{}/contacts", campaign.id),
            Some(json!({"contacts": [{"phone_number": "+14155550100"}, {"phone_number": "0044 20"}]})),
        ),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().unwrap().contains("E.164"));
    assert!(store.events(10).await.unwrap().is_empty());
    let missing = uuid::Uuid::new_v4();
    assert_eq!(send(&app, admin("GET", &format!("/api/v1/contacts/{missing}"), None)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        send(&app, admin("POST", &format!("/api/v1/campaigns/{missing}/contacts"), Some(json!({"contacts": []}))))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&app, admin("POST", "/api/v1/calls", Some(json!({"contact_id": missing})))).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(send(&app, admin("GET", "/api/v1/calls/nope", None)).await.0, StatusCode::NOT_FOUND);
}

async fn outcome_rules(store: Arc<dyn Store>) {
    let app = app(store.clone());
    let campaign = campaign(&store, 3).await;
    let contact = contact(&store, &campaign).await;
    let (_, reg) = send(&app, admin("POST", "/api/v1/calls", Some(json!({"contact_id": contact.id})))).await;
    let call_id = reg["call_id"].as_str().unwrap().to_owned();
    let outcome = |o: &str| admin("POST", &format!("/api/v1/calls/{call_id}/outcome"), Some(json!({"outcome": o})));

    let (code, body) = send(&app, outcome("completed")).await;
    assert_eq!((code, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("conflict")), "never answered");
    send(&app, callback(&call_id, "CA-o", "in-progress")).await;
    let (code, _) = send(&app, outcome("busy")).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "only completed or refused");
    assert_eq!(send(&app, outcome("refused")).await.0, StatusCode::OK);
    assert_eq!(send(&app, outcome("refused")).await.0, StatusCode::OK, "repeating the verdict is harmless");
    assert_eq!(send(&app, outcome("completed")).await.0, StatusCode::CONFLICT);
    let kinds: Vec<String> = store.outbox(10).await.unwrap().into_iter().map(|j| j.kind).collect();
    assert_eq!(kinds, vec!["dialogue.start", "survey.refused"]);
    // A late completed callback does not reopen or change the refused contact.
    send(&app, callback(&call_id, "CA-o", "completed")).await;
    let c = store.contact(contact.id).await.unwrap().unwrap();
    assert_eq!((c.state.as_str(), c.last_outcome.map(|o| o.as_str())), ("refused", Some("refused")));
}
