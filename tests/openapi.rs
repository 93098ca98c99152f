//! The OpenAPI document (`GET /openapi.json`) against the code: every route is
//! documented, every operation lists the statuses it can answer, every error response
//! has the error schema, and what the router really answers to bad requests is in the
//! document. A route added without its documentation fails here, long before the
//! schemathesis run in CI (`scripts/schemathesis.sh`) would catch it.

mod common;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use serde_json::Value;
use tower::ServiceExt;
use utoipa::OpenApi;

use callhook::http::ApiDoc;
use common::*;

const ERROR_SCHEMA: &str = "#/components/schemas/ErrorBody";
/// Paths whose handlers never reach the store, so never answer its 500 or 503.
const WITHOUT_STORE: &[&str] = &["/healthz", "/metrics", "/openapi.json"];
/// Paths served without waiting for a processing slot, so never shed with 503.
const WITHOUT_SLOT: &[&str] = &["/healthz"];
const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn document() -> Value {
    serde_json::to_value(ApiDoc::openapi()).expect("the document serialises")
}

/// A documented operation.
struct Op {
    method: String,
    path: String,
    spec: Value,
}

impl Op {
    fn name(&self) -> String {
        format!("{} {}", self.method.to_uppercase(), self.path)
    }

    fn statuses(&self) -> BTreeSet<String> {
        self.spec["responses"].as_object().map(|r| r.keys().cloned().collect()).unwrap_or_default()
    }

    fn documents(&self, status: StatusCode) -> bool {
        self.statuses().contains(status.as_str())
    }

    fn secured(&self) -> bool {
        self.spec["security"].as_array().is_some_and(|s| !s.is_empty())
    }

    fn takes(&self, content_type: &str) -> bool {
        self.spec["requestBody"]["content"].get(content_type).is_some()
    }

    fn has_path_parameters(&self) -> bool {
        self.path.contains('{')
    }
}

fn operations(doc: &Value) -> Vec<Op> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for &method in METHODS {
            if let Some(spec) = item.get(method) {
                ops.push(Op { method: method.into(), path: path.clone(), spec: spec.clone() });
            }
        }
    }
    assert!(ops.len() >= 10, "the document lists only {} operations", ops.len());
    ops
}

#[test]
fn every_operation_lists_the_statuses_it_can_answer() {
    let mut missing = Vec::new();
    for op in operations(&document()) {
        let statuses = op.statuses();
        if !statuses.iter().any(|s| s.starts_with('2')) {
            missing.push(format!("{}: no 2xx", op.name()));
        }
        // The layers every route shares (`limits.rs`, the server).
        let mut expected = vec!["400", "408", "413", "414", "415", "431"];
        if !WITHOUT_SLOT.contains(&op.path.as_str()) {
            expected.push("503");
        }
        if !WITHOUT_STORE.contains(&op.path.as_str()) {
            expected.extend(["500", "503"]);
        }
        if op.secured() {
            expected.push("401");
        }
        if op.path.starts_with("/webhooks/") {
            expected.extend(["403", "409"]);
        }
        let absent: Vec<_> = expected.into_iter().filter(|s| !statuses.contains(*s)).collect();
        if !absent.is_empty() {
            missing.push(format!("{}: {}", op.name(), absent.join(", ")));
        }
    }
    assert!(missing.is_empty(), "undocumented statuses:\n{}", missing.join("\n"));
}

#[test]
fn every_error_response_has_the_error_schema() {
    let doc = document();
    let detail = &doc["components"]["schemas"]["ErrorDetail"];
    assert_eq!(
        doc["components"]["schemas"]["ErrorBody"]["properties"]["error"]["$ref"],
        "#/components/schemas/ErrorDetail"
    );
    assert_eq!(detail["required"], serde_json::json!(["code", "message"]));
    let mut wrong = Vec::new();
    for op in operations(&doc) {
        for (status, response) in op.spec["responses"].as_object().unwrap() {
            if !status.starts_with(['4', '5']) {
                continue;
            }
            if response["content"]["application/json"]["schema"]["$ref"] != ERROR_SCHEMA {
                wrong.push(format!("{} {status}: not the error schema", op.name()));
            }
            if status == "503" && response["headers"]["Retry-After"].is_null() {
                wrong.push(format!("{} 503: no Retry-After", op.name()));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_admin_inputs_carry_their_limits() {
    let doc = document();
    let schema = |name: &str, property: &str| doc["components"]["schemas"][name]["properties"][property].clone();
    assert_eq!(schema("NewCampaign", "max_attempts")["maximum"], 5);
    assert!(schema("NewCampaign", "retry_interval_minutes")["maximum"].as_i64().is_some());
    assert!(schema("NewCampaign", "name")["pattern"].is_string());
    assert!(schema("NewContact", "phone_number")["pattern"].is_string());
    assert!(schema("NewContact", "external_id")["maxLength"].as_u64().is_some());
    assert_eq!(schema("RegisterCall", "call_id")["minLength"], 1);
    assert!(schema("RegisterCall", "call_id")["maxLength"].as_u64().is_some());
    assert!(schema("RegisterCall", "provider_call_id")["maxLength"].as_u64().is_some());
    assert_eq!(schema("DialogueOutcome", "outcome")["enum"], serde_json::json!(["completed", "refused"]));
}

/// The `.route("path", get(…).post(…))` calls in `src/http`, as (method, path), and
/// the `.nest("prefix", …)` prefixes: axum cannot list a router's routes, so its
/// source is read instead.
fn routes() -> (Vec<(String, String)>, Vec<String>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let (mut routes, mut prefixes) = (Vec::new(), vec![String::new()]);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let source = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for (call, is_nest) in [(".route(", false), (".nest(", true)] {
            for (at, _) in source.match_indices(call) {
                let args = balanced(&source[at + call.len()..]);
                let Some(path) = args.trim_start().strip_prefix('"').and_then(|r| r.split('"').next()) else {
                    continue;
                };
                if is_nest {
                    prefixes.push(path.to_owned());
                    continue;
                }
                // `.route("/p", get(h))`, or `.route("/p", some_fn(…))` where `fn some_fn`
                // builds the method router.
                let mut handlers = args.to_owned();
                let called = args.split_once(',').map_or("", |(_, rest)| rest.trim_start());
                let called = called.split('(').next().unwrap_or("");
                if !called.is_empty() && called.chars().all(|c| c.is_alphanumeric() || c == '_') {
                    if let Some(at) = source.find(&format!("fn {called}(")) {
                        handlers.push_str(balanced_block(&source[at..]));
                    }
                }
                for &method in METHODS {
                    let calls = handlers
                        .match_indices(&format!("{method}("))
                        .any(|(i, _)| !handlers[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':'));
                    if calls {
                        routes.push((method.to_owned(), path.to_owned()));
                    }
                }
            }
        }
    }
    assert!(routes.len() >= 10, "found only {} routes in {}", routes.len(), dir.display());
    (routes, prefixes)
}

/// The text up to the parenthesis that closes the one just opened.
fn balanced(text: &str) -> &str {
    let mut depth = 1;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 1 => return &text[..i],
            ')' => depth -= 1,
            _ => {}
        }
    }
    text
}

/// A function's text, from `fn` to the brace that closes its body.
fn balanced_block(text: &str) -> &str {
    let Some(open) = text.find('{') else { return text };
    let mut depth = 0;
    for (i, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 1 => return &text[..open + i],
            '}' => depth -= 1,
            _ => {}
        }
    }
    text
}

/// A route's template matches a documented path: `{…}` segments match any segment
/// (the webhook route's `{provider}` is documented once per provider).
fn matches(route: &str, documented: &str) -> bool {
    let (r, d): (Vec<_>, Vec<_>) = (route.split('/').collect(), documented.split('/').collect());
    r.len() == d.len() && r.iter().zip(&d).all(|(r, d)| r == d || r.starts_with('{') || d.starts_with('{'))
}

#[test]
fn every_route_is_documented_and_every_documented_operation_routed() {
    let ops = operations(&document());
    let (routes, prefixes) = routes();
    let documented = |method: &str, path: &str| {
        prefixes
            .iter()
            .any(|prefix| ops.iter().any(|op| op.method == method && matches(&format!("{prefix}{path}"), &op.path)))
    };
    let undocumented: BTreeSet<_> = routes
        .iter()
        .filter(|(method, path)| !documented(method, path))
        .map(|(method, path)| format!("{} {path}", method.to_uppercase()))
        .collect();
    assert!(undocumented.is_empty(), "routes missing from the OpenAPI document: {undocumented:?}");
    let routed = |op: &Op| {
        routes.iter().any(|(method, path)| {
            *method == op.method && prefixes.iter().any(|prefix| matches(&format!("{prefix}{path}"), &op.path))
        })
    };
    let unrouted: Vec<_> = ops.iter().filter(|op| !routed(op)).map(Op::name).collect();
    assert!(unrouted.is_empty(), "documented operations with no route: {unrouted:?}");
}

/// The documented path with its parameters filled in.
fn concrete(path: &str) -> String {
    path.replace("{id}", "00000000-0000-4000-8000-000000000000").replace("{call_id}", "no-such-call")
}

async fn answer(app: &Router, request: Request<Body>) -> (StatusCode, Option<String>, Value) {
    let response = app.clone().oneshot(request).await.expect("the router never fails");
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = (response.status(), response.into_body());
    let bytes = http_body_util::BodyExt::collect(body).await.unwrap().to_bytes();
    (status, retry_after, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Sends `request` for `op` and checks the answer is documented, with the error body
/// on failures; returns the status.
async fn probe(app: &Router, op: &Op, request: Request<Body>, failures: &mut Vec<String>) -> StatusCode {
    let (status, retry_after, body) = answer(app, request).await;
    if !op.documents(status) {
        failures.push(format!("{}: answered {status}, undocumented ({body})", op.name()));
    }
    if status.as_u16() >= 400 && !(body["error"]["code"].is_string() && body["error"]["message"].is_string()) {
        failures.push(format!("{}: {status} without the error body: {body}", op.name()));
    }
    if status == StatusCode::SERVICE_UNAVAILABLE && retry_after.is_none() {
        failures.push(format!("{}: 503 without Retry-After", op.name()));
    }
    status
}

fn request(op: &Op, token: Option<&str>, content_type: Option<&str>, body: &str) -> Request<Body> {
    let mut builder = Request::builder().method(op.method.to_uppercase().as_str()).uri(concrete(&op.path));
    builder = builder.header("host", HOST);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    if let Some(content_type) = content_type {
        builder = builder.header("content-type", content_type);
    }
    builder.body(Body::from(body.to_owned())).unwrap()
}

#[tokio::test]
async fn what_the_router_answers_to_bad_requests_is_documented() {
    let db = sqlite().await;
    let app = app(db.store.clone());
    let mut failures = Vec::new();
    for op in operations(&document()) {
        let json = op.takes("application/json");
        let body_type = if json { Some("application/json") } else { None };
        // A well-formed request that names nothing that exists.
        probe(&app, &op, request(&op, Some(ADMIN_TOKEN), body_type, "{}"), &mut failures).await;
        if op.secured() {
            let status = probe(&app, &op, request(&op, None, body_type, "{}"), &mut failures).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{} without a token", op.name());
            let status = probe(&app, &op, request(&op, Some("wrong"), body_type, "{}"), &mut failures).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{} with a wrong token", op.name());
        }
        if op.spec["requestBody"].is_object() {
            probe(&app, &op, request(&op, Some(ADMIN_TOKEN), Some("text/plain"), "{}"), &mut failures).await;
            probe(&app, &op, request(&op, Some(ADMIN_TOKEN), None, ""), &mut failures).await;
            probe(&app, &op, request(&op, Some(ADMIN_TOKEN), body_type, "{not json"), &mut failures).await;
            probe(&app, &op, request(&op, Some(ADMIN_TOKEN), body_type, "[]"), &mut failures).await;
        }
        if op.has_path_parameters() {
            let bad = op.path.replace("{id}", "not-a-uuid").replace("{call_id}", "%FF");
            let request = Request::builder()
                .method(op.method.to_uppercase().as_str())
                .uri(bad)
                .header("host", HOST)
                .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
                .header("content-type", "application/json")
                .body(Body::from(r#"{"outcome":"completed","contacts":[]}"#))
                .unwrap();
            probe(&app, &op, request, &mut failures).await;
        }
    }
    // Then with the store gone: 503 wherever the store is needed.
    db.break_connection().await;
    for op in operations(&document()) {
        let body = r#"{"name":"x","contacts":[],"contact_id":"00000000-0000-4000-8000-000000000000","outcome":"completed","limit":1,"error_code":"x"}"#;
        let body_type = op.takes("application/json").then_some("application/json");
        let status = probe(&app, &op, request(&op, Some(ADMIN_TOKEN), body_type, body), &mut failures).await;
        if op.path.starts_with("/api/") || op.path == "/readyz" {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{} with the store down", op.name());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn an_unknown_provider_is_a_json_404() {
    let db = sqlite().await;
    let request = Request::post("/webhooks/telephony/acme/events")
        .header("host", HOST)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("CallSid=CA1&CallStatus=completed"))
        .unwrap();
    let (status, body) = send(&app(db.store.clone()), request).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_provider")));
}

/// The documented `bearer` scheme is matched as RFC 9110 says: case-insensitively.
#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let db = sqlite().await;
    let app = app(db.store.clone());
    let contact = |authorization: String| {
        Request::get("/api/v1/contacts/00000000-0000-4000-8000-000000000000")
            .header("authorization", authorization)
            .body(Body::empty())
            .unwrap()
    };
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR", "Bearer  "] {
        let (status, body) = send(&app, contact(format!("{scheme} {ADMIN_TOKEN}"))).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{scheme}");
    }
    for authorization in [format!("Basic {ADMIN_TOKEN}"), format!("Bearer{ADMIN_TOKEN}"), ADMIN_TOKEN.to_owned()] {
        let (status, body) = send(&app, contact(authorization.clone())).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));
    }
}
