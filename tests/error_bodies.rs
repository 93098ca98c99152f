//! SPEC §7 through the router: every error has the JSON body, echoed input is
//! clipped, client request ids are kept only when sane, and the processing limit is
//! one global, bounded wait. (Over TCP, against the real server: `hardening.rs`.)

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use callhook::domain::Provider;
use callhook::http::{router, AppState, ExternalUrl, Limits};
use callhook::secret::Secret;
use callhook::store::{SqliteStore, Store};
use common::*;

fn state(store: Arc<dyn Store>) -> AppState {
    AppState {
        spool: None,
        batcher: None,
        store,
        providers: Arc::new(providers()),
        external_url: Arc::new(ExternalUrl::default()),
        default_provider: Provider::Twilio,
        max_body_bytes: 64 * 1024,
        admin_tokens: Arc::new(vec![Secret::new(ADMIN_TOKEN)]),
        timeouts: Default::default(),
    }
}

async fn call(app: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {:?}", String::from_utf8_lossy(&bytes)));
    (status, headers, json)
}

fn code(json: &Value) -> &str {
    json["error"]["code"].as_str().unwrap_or_else(|| panic!("no error code: {json}"))
}

#[tokio::test]
async fn errors_the_router_and_its_layers_produce_have_the_json_body() {
    let app = app(sqlite().await.store);
    let delete = Request::delete("/healthz").header("x-request-id", "trace-405").body(Body::empty()).unwrap();
    let (status, headers, json) = call(&app, delete).await;
    assert_eq!((status, code(&json)), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
    assert!(headers["allow"].to_str().unwrap().contains("GET"), "{headers:?}");
    assert_eq!(headers["x-request-id"], "trace-405");

    let gzip = Request::post("/webhooks/telephony/events")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("content-encoding", "identity, gzip")
        .body(Body::from("x"))
        .unwrap();
    let (status, headers, json) = call(&app, gzip).await;
    assert_eq!((status, code(&json)), (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_content_encoding"));
    assert_eq!(headers["accept-encoding"], "identity");

    // An admin body over the limit, streamed without a Content-Length.
    let big = Request::post("/api/v1/campaigns")
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from_stream(futures_util::stream::iter(
            // 17 MiB: past the default 16 MiB admin limit.
            (0..17 * 16).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 64 * 1024]))),
        )))
        .unwrap();
    let (status, _, json) = call(&app, big).await;
    assert_eq!((status, code(&json)), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
}

#[tokio::test]
async fn client_request_ids_are_kept_only_when_short_and_printable() {
    let app = app(sqlite().await.store);
    let echoed = |headers: &HeaderMap| headers["x-request-id"].to_str().unwrap().to_owned();
    for kept in ["req-42_abc.DEF~", &"a".repeat(64)] {
        let request = Request::get("/healthz").header("x-request-id", kept).body(Body::empty()).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(echoed(response.headers()), kept);
    }
    let (just_too_long, long) = ("a".repeat(65), "r".repeat(300 * 1024));
    let replaced: [&[u8]; 4] = [just_too_long.as_bytes(), b"has space", "caf\u{e9}".as_bytes(), long.as_bytes()];
    for sent in replaced {
        let request = Request::get("/healthz").header("x-request-id", sent).body(Body::empty()).unwrap();
        let id = echoed(app.clone().oneshot(request).await.unwrap().headers());
        assert!(
            id.len() == 36 && uuid::Uuid::parse_str(&id).is_ok(),
            "{:.80} → {id:.80}",
            String::from_utf8_lossy(sent)
        );
    }
    let two = Request::get("/healthz").header("x-request-id", "one").header("x-request-id", "two");
    let id = echoed(app.clone().oneshot(two.body(Body::empty()).unwrap()).await.unwrap().headers());
    assert_eq!(id.len(), 36, "{id}");
}

#[tokio::test]
async fn input_echoed_in_error_messages_is_clipped() {
    let app = app(sqlite().await.store);
    let form = |path: &str, content_type: &str, body: Vec<u8>| {
        Request::post(path)
            .header("host", HOST)
            .header("content-type", content_type)
            .header("x-twilio-signature", "x")
            .body(Body::from(body))
            .unwrap()
    };
    let huge_type = format!("text/{}", "t".repeat(60 * 1024));
    let bad_utf8_name = [&[0xff][..], &[b'n'; 60 * 1024], b"=1"].concat();
    let cases = [
        (form("/webhooks/telephony/events", &huge_type, b"a=1".to_vec()), "unsupported_media_type", "ttttt"),
        (
            form("/webhooks/telephony/events", "application/x-www-form-urlencoded", bad_utf8_name),
            "malformed_body",
            "nnnnn",
        ),
        (
            signed(
                &format!("/webhooks/telephony/events?contact_id={}", "u".repeat(7000)),
                &fields(&[("CallSid", "CA-clip"), ("CallStatus", "ringing")]),
            ),
            "invalid_field",
            "uuuuu",
        ),
        (Request::get(format!("/{}", "p".repeat(7000))).body(Body::empty()).unwrap(), "not_found", "ppppp"),
    ];
    for (request, expected, echoed) in cases {
        let (_, _, json) = call(&app, request).await;
        assert_eq!(code(&json), expected, "{json:.300}");
        let message = json["error"]["message"].as_str().unwrap();
        assert!(message.chars().count() <= 301, "{} chars: {message:.400}", message.len());
        assert!(message.contains(echoed) && !message.contains(&echoed.repeat(20)), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_processing_limit_is_one_global_bounded_wait() {
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
    store.migrate().await.unwrap();
    let limits = Limits {
        max_concurrent_requests: 2,
        queue_timeout: Duration::from_millis(200),
        request_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let app = router(state(Arc::new(store.clone())), limits);
    // The store's only connection held: a handler that needs it waits.
    let held = store.pool().acquire().await.unwrap();
    let blocked: Vec<_> = (0..2)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { call(&app, Request::get("/readyz").body(Body::empty()).unwrap()).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Another route: shed quickly, not queued behind the slots.
    let started = Instant::now();
    let (status, headers, json) = call(&app, callback("shed-1", "CA-shed", "ringing")).await;
    assert_eq!((status, code(&json)), (StatusCode::SERVICE_UNAVAILABLE, "overloaded"), "{json}");
    assert!(headers.contains_key("retry-after"));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(150) && waited < Duration::from_millis(900), "{waited:?}");
    let (status, _, _) = call(&app, Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "liveness never waits for a slot");

    // The request timeout's 408 has the JSON body too.
    for task in blocked {
        let (status, _, json) = task.await.unwrap();
        assert_eq!((status, code(&json)), (StatusCode::REQUEST_TIMEOUT, "request_timeout"));
    }
    drop(held);
    let (status, _, json) = call(&app, callback("shed-2", "CA-shed-2", "ringing")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "slots are free again: {json}");
}
