//! Liveness and readiness probes, and Prometheus metrics.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::Json;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};
use crate::secret::Secret;

/// The process is up.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `ready` when the store answers; `spooling` (still 200: callbacks are accepted)
/// when it does not but the outage spool takes them; 503 otherwise, so a load
/// balancer stops sending callbacks that could not be kept.
pub async fn readyz(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let backend = app.store.backend();
    let Some(spool) = &app.spool else {
        app.store.ping().await?;
        return Ok(Json(json!({ "status": "ready", "store": backend })));
    };
    let status = spool.last_status();
    let summary = json!({
        "backend": spool.kind(),
        "records": status.as_ref().map(|s| s.records),
        "bytes": status.as_ref().map(|s| s.bytes),
        "oldest_at": status.as_ref().and_then(|s| s.oldest_at),
    });
    let pinged = if spool.store_down() {
        Err(crate::store::StoreError::Unavailable("marked down by the spool".into()))
    } else {
        app.store.ping().await
    };
    match pinged {
        Ok(()) => Ok(Json(json!({ "status": "ready", "store": backend, "spool": summary }))),
        Err(e) if e.is_unavailable() => {
            let full = status.as_ref().is_some_and(|s| s.bytes >= s.max_bytes);
            if full || !spool.healthy() {
                let (code, what) = if full { ("spool_full", "full") } else { ("spool_unavailable", "unavailable") };
                let message = format!("the store is unavailable and the outage spool is {what}");
                return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message));
            }
            Ok(Json(json!({ "status": "spooling", "store": backend, "store_available": false, "spool": summary })))
        }
        Err(e) => Err(e.into()),
    }
}

/// Prometheus text exposition. Outbox and reconciler gauges are read from the store
/// now; if it is unreachable they keep their last values and the scrape still succeeds.
pub async fn metrics(State(app): State<AppState>) -> impl axum::response::IntoResponse {
    use crate::telemetry::*;
    // With the store known away, a scrape does not wait for it (twice) to find out.
    if app.spool.as_ref().is_some_and(|s| s.store_down()) {
        return ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], prometheus().render());
    }
    if let Ok(stats) = app.store.outbox_stats().await {
        metrics::gauge!(OUTBOX_PENDING).set(stats.pending as f64);
        metrics::gauge!(OUTBOX_DEAD).set(stats.dead as f64);
        metrics::gauge!(DIALOGUE_NEVER_STARTED).set(stats.dialogue_never_started as f64);
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

/// With `CALLHOOK_METRICS_TOKEN`, a scrape must present it as a bearer token (401).
pub async fn require_metrics_token(
    State(token): State<Arc<Secret>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = super::extract::bearer_token(request.headers()).unwrap_or("");
    if !bool::from(token.expose().as_bytes().ct_eq(presented.as_bytes())) {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "missing or invalid metrics bearer token"));
    }
    Ok(next.run(request).await)
}
