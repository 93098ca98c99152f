//! Liveness and readiness probes, and Prometheus metrics.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::{ApiError, AppState};

/// The process is up.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The store answers; 503 otherwise, so a load balancer stops sending callbacks
/// that could not be committed.
pub async fn readyz(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    app.store.ping().await?;
    Ok(Json(json!({ "status": "ready", "store": app.store.backend() })))
}

/// Prometheus text exposition. Outbox and reconciler gauges are read from the store
/// now; if it is unreachable they keep their last values and the scrape still succeeds.
pub async fn metrics(State(app): State<AppState>) -> impl axum::response::IntoResponse {
    use crate::telemetry::*;
    if let Ok(stats) = app.store.outbox_stats().await {
        metrics::gauge!(OUTBOX_PENDING).set(stats.pending as f64);
        metrics::gauge!(OUTBOX_DEAD).set(stats.dead as f64);
        let age =
            stats.oldest_pending_at.map_or(0.0, |t| (chrono::Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0);
        metrics::gauge!(OUTBOX_OLDEST_AGE).set(age);
    }
    let cutoffs = crate::store::Cutoffs::at(chrono::Utc::now(), &app.timeouts);
    if let Ok(stats) = app.store.reconcile_stats(cutoffs).await {
        metrics::gauge!(RECONCILE_AWAITING).set(stats.awaiting_reconciliation as f64);
        metrics::gauge!(STRANDED_CONTACTS).set(stats.stranded_contacts as f64);
    }
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], prometheus().render())
}
