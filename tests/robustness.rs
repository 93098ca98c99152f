//! Arbitrary input never panics and never yields a server error: random bodies,
//! headers and query strings through every provider's verifier and parser, and
//! through the real router (where only 4xx may come back for garbage).

mod common;

use axum::body::Body;
use axum::http::Request;
use proptest::prelude::*;

use callhook::domain::Provider;
use callhook::providers::{InboundRequest, WebhookError};
use common::*;

fn content_types() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("application/x-www-form-urlencoded"),
        Just("application/json"),
        Just("text/plain"),
        Just("application/json; charset=utf-8"),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn verifiers_and_parsers_reject_garbage_without_panicking(
        body in proptest::collection::vec(any::<u8>(), 0..512),
        query in "[a-z_=&%0-9A-F+]{0,64}",
        signature in "[A-Za-z0-9+/=,. ]{0,96}",
        content_type in content_types(),
        provider in proptest::sample::select(Provider::ALL.to_vec()),
        insecure in any::<bool>(),
    ) {
        let mut providers = providers();
        providers.insecure_skip_verification = insecure;
        let mut headers = http::HeaderMap::new();
        headers.insert("content-type", content_type.parse().unwrap());
        for h in ["x-twilio-signature", "x-signalwire-signature", "telnyx-signature-ed25519", "x-plivo-signature-v3", "x-plivo-signature-v3-nonce"] {
            headers.insert(h, signature.parse().unwrap());
        }
        headers.insert("telnyx-timestamp", chrono::Utc::now().timestamp().to_string().parse().unwrap());
        headers.insert("authorization", format!("Bearer {signature}").parse().unwrap());
        let request = InboundRequest { url: format!("http://{HOST}/webhooks/telephony/{provider}/events?{query}"), headers, body: body.into() };
        match providers.handle(provider, request, chrono::Utc::now()) {
            Ok(event) => prop_assert!(insecure, "garbage verified without the insecure switch: {event:?}"),
            Err(WebhookError::UnsupportedProvider(_)) => prop_assert!(false, "every provider is supported"),
            Err(_) => {}
        }
    }

    #[test]
    fn signed_but_malformed_callbacks_are_client_errors(
        fields in proptest::collection::vec(("[A-Za-z]{1,12}", "\\PC{0,24}"), 0..8),
        query in "(call_id=[a-z0-9-]{0,12}|campaign_id=[a-z0-9-]{0,40}|contact_id=[a-zA-Z0-9._~%-]{0,10}|x=y)?",
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let db = sqlite().await;
            let app = app(db.store.clone());
            let fields: Vec<(String, String)> = fields;
            let path = format!("/webhooks/telephony/events?{query}");
            let (code, body) = send(&app, signed(&path, &fields)).await;
            assert!(code.is_success() || code.is_client_error(), "{code}: {body}");
            if code.is_client_error() {
                assert!(body["error"]["code"].is_string(), "{body}");
            }
        });
    }
}

#[tokio::test]
async fn raw_garbage_through_the_router_is_never_a_server_error() {
    let db = sqlite().await;
    let app = app(db.store.clone());
    let bodies: [&[u8]; 5] = [b"", b"\xff\xfe\x00", b"CallSid=%zz&CallStatus=ringing", b"{\"data\":[]}", b"&&&==&="];
    for provider in ["twilio", "telnyx", "vonage", "plivo", "signalwire"] {
        for body in bodies {
            for ct in ["application/x-www-form-urlencoded", "application/json"] {
                let req = Request::post(format!("/webhooks/telephony/{provider}/events?call_id=%FF"))
                    .header("host", HOST)
                    .header("content-type", ct)
                    .body(Body::from(body.to_vec()))
                    .unwrap();
                let (code, res) = send(&app, req).await;
                assert!(code.is_client_error(), "{provider} {ct} {body:?}: {code} {res}");
            }
        }
    }
    assert!(db.store.events(10).await.unwrap().is_empty());
}
