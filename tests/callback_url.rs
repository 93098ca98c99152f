//! The `status_callback_url` handed to the dialer carries each provider's
//! connection overrides (Twilio, SignalWire, Plivo read their webhook retry
//! settings from the URL fragment), and callbacks to it still verify: a fragment
//! never reaches the server, and the providers leave it out of what they sign.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

use callhook::domain::{EventType, Provider};
use callhook::http::{router, AppState, ExternalUrl, Limits};
use callhook::providers::simulate::Callback;
use callhook::secret::Secret;
use callhook::store::Store;
use common::*;

fn app_with_overrides(store: Arc<dyn Store>) -> axum::Router {
    let external_url = ExternalUrl {
        public_base_url: Some(format!("https://{HOST}")),
        trust_forwarded_headers: false,
        callback_fragments: vec![
            (Provider::Twilio, "rc=5&rp=ct,rt,5xx&ct=2000&rt=5000&tt=15000".into()),
            (Provider::Plivo, "rc=5&rp=ct,rt,5xx&tt=55000".into()),
            (Provider::Telnyx, String::new()),
        ],
    };
    let state = AppState {
        spool: None,
        batcher: None,
        store,
        providers: Arc::new(providers()),
        external_url: Arc::new(external_url),
        default_provider: Provider::Twilio,
        max_body_bytes: 64 * 1024,
        admin_tokens: Arc::new(vec![Secret::new(ADMIN_TOKEN)]),
        timeouts: Default::default(),
    };
    router(state, Limits::default())
}

#[tokio::test]
async fn the_callback_url_carries_the_overrides_and_callbacks_to_it_verify() {
    let db = sqlite().await;
    let app = app_with_overrides(db.store.clone());
    let campaign = campaign(&db.store, 3).await;
    for (provider, fragment) in [
        (Provider::Twilio, Some("#rc=5&rp=ct,rt,5xx&ct=2000&rt=5000&tt=15000")),
        (Provider::Plivo, Some("#rc=5&rp=ct,rt,5xx&tt=55000")),
        (Provider::Telnyx, None),
    ] {
        let contact = contact(&db.store, &campaign).await;
        let req = Request::post("/api/v1/calls")
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .header("content-type", "application/json")
            .body(Body::from(json!({"contact_id": contact.id, "provider": provider}).to_string()))
            .unwrap();
        let (code, body) = send(&app, req).await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
        let url = body["status_callback_url"].as_str().unwrap().to_owned();
        let (requested, found) = match url.split_once('#') {
            Some((requested, f)) => (requested.to_owned(), Some(format!("#{f}"))),
            None => (url.clone(), None),
        };
        assert_eq!(found.as_deref(), fragment, "{provider}: {url}");

        // The provider requests (and signs) the URL without its fragment.
        let path_and_query = requested.strip_prefix(&format!("https://{HOST}")).unwrap().to_owned();
        let pcid = format!("pc-{provider}-1");
        let cb = Callback {
            provider_call_id: &pcid,
            event: Some(EventType::Ringing),
            answered_by: None,
            duration_seconds: None,
        };
        let signed = signer().callback(provider, &requested, &cb, chrono::Utc::now().timestamp());
        let (code, res) = send(&app, to_request(&path_and_query, signed)).await;
        assert_eq!((code, res["status"].as_str()), (StatusCode::OK, Some("processed")), "{provider}: {res}");
    }
}
