//! The thin HTTP layer: routing, request limits and tracing. Handlers turn requests
//! into calls on [`Providers`] and [`Store`] and their results into JSON.

mod admin;
mod error;
mod extract;
mod health;
mod openapi;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use admin::{CallDetail, RegisteredCall};
pub use error::ApiError;
pub use openapi::ApiDoc;
pub use webhook::ExternalUrl;

use crate::domain::Provider;
use crate::providers::Providers;
use crate::secret::Secret;
use crate::store::Store;

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub providers: Arc<Providers>,
    pub external_url: Arc<ExternalUrl>,
    /// The provider of `POST /webhooks/telephony/events`.
    pub default_provider: Provider,
    pub max_body_bytes: usize,
    /// Bearer tokens of the admin API; empty disables it.
    pub admin_tokens: Arc<Vec<Secret>>,
    /// The reconciler's timings, for the gauges read at scrape time.
    pub timeouts: crate::domain::stranded::Timeouts,
}

pub struct Limits {
    pub request_timeout: Duration,
    /// Requests handled at once; more wait for a slot (and for the timeout).
    pub max_concurrent_requests: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { request_timeout: Duration::from_secs(10), max_concurrent_requests: 1024 }
    }
}

pub fn router(state: AppState, limits: Limits) -> Router {
    crate::telemetry::prometheus();
    let request_id = HeaderName::from_static("x-request-id");
    let admin = Router::new()
        .route("/campaigns", post(admin::create_campaign))
        .route("/campaigns/{id}/contacts", post(admin::add_contacts))
        .route("/contacts/{id}", get(admin::get_contact))
        .route("/calls", post(admin::register_call))
        .route("/calls/{call_id}", get(admin::get_call))
        .route("/calls/{call_id}/outcome", post(admin::record_outcome))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), admin::require_token));
    Router::new()
        .route("/webhooks/telephony/events", post(webhook::default_provider))
        .route("/webhooks/telephony/{provider}/events", post(webhook::named_provider))
        .nest("/api/v1", admin)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/metrics", get(health::metrics))
        .fallback(not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn(record_latency))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limits.request_timeout))
        .layer(tower::limit::ConcurrencyLimitLayer::new(limits.max_concurrent_requests.max(1)))
        .layer(TraceLayer::new_for_http().make_span_with(move |req: &axum::http::Request<_>| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no route for {}", uri.path()))
}

/// Records every request's latency under its route template (not its raw path, so
/// call ids never become label values).
async fn record_latency(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    crate::telemetry::observe_http(route, method, response.status().as_u16(), started.elapsed());
    response
}
