//! The thin HTTP layer: routing, request limits (`limits.rs`), the server and its
//! connection limits ([`server`]) and tracing. Handlers turn requests into calls on
//! [`Providers`] and [`Store`] and their results into JSON.

mod admin;
pub mod campaigns;
mod error;
mod extract;
mod health;
mod limits;
mod openapi;
mod page;
pub mod server;
mod webhook;
mod wire;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;

pub use admin::{CallDetail, RegisteredCall};
pub use error::{clip_message, ApiError};
pub use limits::{Limits, MAX_REQUEST_ID_CHARS, MAX_URI_BYTES};
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
    /// Where callbacks go while the store is unavailable (SPEC §10); `None`: 503.
    pub spool: Option<Arc<crate::spool::Spool>>,
    /// Group commit: webhooks recorded in shared transactions; `None`: one each.
    pub batcher: Option<Arc<crate::batcher::Batcher>>,
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

/// Where `GET /metrics` is served and who may read it.
#[derive(Clone, Default)]
pub struct MetricsAccess {
    /// Served on a listener of its own (`CALLHOOK_METRICS_LISTEN`): the main
    /// router answers 404 for it.
    pub separate_listener: bool,
    /// A bearer token every scrape must present (`CALLHOOK_METRICS_TOKEN`).
    pub token: Option<Secret>,
}

/// The service's routes, `/metrics` included and open.
pub fn router(state: AppState, limits: Limits) -> Router {
    router_with(state, &limits, &MetricsAccess::default())
}

/// The service's routes, with `/metrics` as `metrics` says.
pub fn router_with(state: AppState, limits: &Limits, metrics: &MetricsAccess) -> Router {
    crate::telemetry::prometheus();
    let admin = Router::new()
        .route("/campaigns", post(admin::create_campaign).get(campaigns::list))
        .route("/campaigns/{id}", get(campaigns::get))
        .route("/campaigns/{id}/contacts", post(admin::add_contacts).get(campaigns::contacts))
        .route("/campaigns/{id}/dial", post(campaigns::dial))
        .route("/campaigns/{id}/pause", post(campaigns::pause))
        .route("/campaigns/{id}/resume", post(campaigns::resume))
        .route("/campaigns/{id}/stop", post(campaigns::stop))
        .route("/campaigns/{id}/stats", get(campaigns::stats))
        .route("/campaigns/{id}/results.csv", get(campaigns::results_csv))
        .route("/contacts/{id}", get(admin::get_contact).patch(admin::patch_contact))
        .route("/contacts/{id}/exclude", post(admin::exclude_contact))
        .route("/calls", post(admin::register_call))
        .route("/calls/{call_id}", get(admin::get_call))
        .route("/calls/{call_id}/outcome", post(admin::record_outcome))
        .route("/calls/{call_id}/dial-failed", post(admin::dial_failed))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), admin::require_token));
    let mut app = Router::new()
        .route("/webhooks/telephony/events", post(webhook::default_provider))
        .route("/webhooks/telephony/{provider}/events", post(webhook::named_provider))
        .nest("/api/v1", admin)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(openapi::openapi_json))
        .merge(crate::console::router(state.clone()));
    if !metrics.separate_listener {
        app = app.route("/metrics", metrics_route(metrics));
    }
    let max_body_bytes = state.max_body_bytes;
    let app = app.method_not_allowed_fallback(method_not_allowed).fallback(not_found).with_state(state);
    limits::wrap(app, limits, max_body_bytes)
}

/// `GET /metrics` alone, for its own listener.
pub fn metrics_router(state: AppState, limits: &Limits, metrics: &MetricsAccess) -> Router {
    crate::telemetry::prometheus();
    let max_body_bytes = state.max_body_bytes;
    let app = Router::new()
        .route("/metrics", metrics_route(metrics))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .with_state(state);
    limits::wrap(app, limits, max_body_bytes)
}

fn metrics_route(metrics: &MetricsAccess) -> axum::routing::MethodRouter<AppState> {
    let route = get(health::metrics);
    match &metrics.token {
        Some(token) => route
            .route_layer(axum::middleware::from_fn_with_state(Arc::new(token.clone()), health::require_metrics_token)),
        None => route,
    }
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    let message = format!("`{}` is not allowed on `{}`; see the Allow header", method.as_str(), uri.path());
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", message)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no route for `{}`", uri.path()))
}

/// Records every request's latency under its route template (not its raw path, so
/// call ids never become label values) and its method mapped to a closed set.
async fn record_latency(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = crate::telemetry::method_label(request.method());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    crate::telemetry::observe_http(route, method, response.status().as_u16(), started.elapsed());
    response
}
