//! What every route shares, outermost first: a sane request id, the request span,
//! JSON bodies on every error, latency metrics, refusal of what cannot be served
//! (an over-long URI, a compressed body), the body read in full under its own
//! size limit and timeout, then one slot of the global processing limit (waited
//! for briefly, else 503), then the request timeout around the handler.
//!
//! The order is the point (SPEC §7): a client still sending its body is waited for
//! *before* it takes a processing slot, so stalled uploads, however many, never
//! delay nor refuse a signed webhook; and the slots are one semaphore for the whole
//! service, not one per route.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::sync::Semaphore;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use super::error::clip;
use super::ApiError;

/// The longest path and query accepted (414 beyond).
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// The longest client `x-request-id` kept; longer or non-printable ones are replaced.
pub const MAX_REQUEST_ID_CHARS: usize = 64;

pub struct Limits {
    /// Handler time, from taking a processing slot to the response (408 beyond).
    pub request_timeout: Duration,
    /// Requests processed at once, over the whole service.
    pub max_concurrent_requests: usize,
    /// How long a request whose body has arrived waits for a slot (503 beyond).
    pub queue_timeout: Duration,
    /// Time to receive the whole body once the head has arrived (408 beyond).
    pub body_read_timeout: Duration,
    /// Largest body of a request outside `/webhooks/` (413 beyond); webhooks use
    /// [`AppState::max_body_bytes`](super::AppState).
    pub max_admin_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_timeout: Duration::from_secs(10),
            max_concurrent_requests: 1024,
            queue_timeout: Duration::from_secs(1),
            body_read_timeout: Duration::from_secs(5),
            max_admin_body_bytes: 16 * 1024 * 1024,
        }
    }
}

#[derive(Clone)]
struct BodyLimits {
    webhook: usize,
    other: usize,
    timeout: Duration,
}

#[derive(Clone)]
struct Slots {
    semaphore: Arc<Semaphore>,
    wait: Duration,
}

/// `router` (all routes and the fallback added) wrapped in the shared layers. Each
/// call makes its own processing slots: one per listener.
pub(super) fn wrap(router: Router, limits: &Limits, webhook_body_bytes: usize) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let slots = Slots {
        semaphore: Arc::new(Semaphore::new(limits.max_concurrent_requests.max(1))),
        wait: limits.queue_timeout,
    };
    let bodies = BodyLimits {
        webhook: webhook_body_bytes,
        other: limits.max_admin_body_bytes,
        timeout: limits.body_read_timeout,
    };
    router
        .layer(axum::extract::DefaultBodyLimit::max(limits.max_admin_body_bytes.max(webhook_body_bytes)))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limits.request_timeout))
        .layer(from_fn_with_state(slots, processing_slot))
        .layer(from_fn_with_state(bodies, read_body))
        .layer(from_fn(refuse_unservable))
        .layer(from_fn(super::record_latency))
        .layer(from_fn(json_errors))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            let (method, path) = (clip(req.method().as_str(), 16), clip(req.uri().path(), 128));
            tracing::info_span!("request", method = %method, path = %path, request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(from_fn(drop_unacceptable_request_id))
}

/// A client's `x-request-id` is kept (and echoed, and logged) only if it is short
/// printable ASCII; otherwise it is dropped and one is generated.
async fn drop_unacceptable_request_id(mut request: Request, next: Next) -> Response {
    let ids = request.headers().get_all("x-request-id");
    let mut ids = ids.iter();
    let acceptable = match (ids.next(), ids.next()) {
        (Some(id), None) => {
            let id = id.as_bytes();
            !id.is_empty() && id.len() <= MAX_REQUEST_ID_CHARS && id.iter().all(|b| b.is_ascii_graphic())
        }
        (None, _) => true,
        _ => false, // several: none is trusted
    };
    if !acceptable {
        request.headers_mut().remove("x-request-id");
    }
    next.run(request).await
}

/// Refuses what no route can serve before reading the body: a URI over
/// [`MAX_URI_BYTES`] (414) and a compressed body (415: callbacks are never
/// compressed, and inflating them would defeat the body limit).
async fn refuse_unservable(request: Request, next: Next) -> Response {
    let uri_len = request.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri_len > MAX_URI_BYTES {
        let message = format!("the request URI is longer than {MAX_URI_BYTES} bytes");
        return close(ApiError::new(StatusCode::URI_TOO_LONG, "uri_too_long", message));
    }
    let encoded = request
        .headers()
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("?").split(','))
        .map(str::trim)
        .any(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("identity"));
    if encoded {
        let error = ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_content_encoding",
            "request bodies must not be compressed (Content-Encoding other than identity)",
        );
        let mut response = close(error);
        response.headers_mut().insert(header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        return response;
    }
    next.run(request).await
}

/// Reads the whole body under its size limit and timeout, without holding a
/// processing slot, and hands the handler a body already in memory.
async fn read_body(State(limits): State<BodyLimits>, request: Request, next: Next) -> Response {
    let limit = if request.uri().path().starts_with("/webhooks/") { limits.webhook } else { limits.other };
    let too_large = || {
        let message = format!("request body exceeds {limit} bytes");
        close(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message))
    };
    let declared =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let (parts, body) = request.into_parts();
    let bytes = match tokio::time::timeout(limits.timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(err)) => {
            let is_limit = std::error::Error::source(&err).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if is_limit {
                return too_large();
            }
            let message = format!("could not read request body: {err}");
            return close(ApiError::new(StatusCode::BAD_REQUEST, "unreadable_body", message));
        }
        Err(_) => {
            let message = format!("the request body did not arrive within {} s", limits.timeout.as_secs_f32());
            return close(ApiError::new(StatusCode::REQUEST_TIMEOUT, "body_read_timeout", message));
        }
    };
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await
}

/// One slot of the global limit for the handler's run; a request that cannot get
/// one within the queue timeout is shed (503, `Retry-After`) so the provider
/// retries instead of timing out. `/healthz` never waits: liveness is not load.
async fn processing_slot(State(slots): State<Slots>, request: Request, next: Next) -> Response {
    if request.uri().path() == "/healthz" {
        return next.run(request).await;
    }
    let acquired = tokio::time::timeout(slots.wait, slots.semaphore.acquire()).await;
    let Ok(Ok(_permit)) = acquired else {
        let message = "the service is at its concurrency limit; retry shortly";
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message).into_response();
    };
    next.run(request).await
}

/// Gives every 4xx/5xx that is not JSON yet (405 from routing, 408 from the
/// timeout, an extractor's plain-text rejection) the JSON error body, keeping its
/// status and headers (`Allow`, `Retry-After`, the request id). The console's
/// error pages (HTML, for a browser) are left as they are.
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let is_json = content_type.is_some_and(|v| v.starts_with("application/json"));
    let is_page = content_type.is_some_and(|v| v.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_json || is_page {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let mut error = ApiError::for_status(status);
    match std::str::from_utf8(&text).map(str::trim) {
        Ok(text) if !text.is_empty() => error = ApiError::new(status, error.code, text),
        _ => {}
    }
    let filled = error.into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts.headers.extend(filled.headers().clone());
    Response::from_parts(parts, filled.into_body())
}

/// `error` with `Connection: close`: the rest of the request may never come, so
/// the connection is not reused.
fn close(error: ApiError) -> Response {
    let mut response = error.into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
