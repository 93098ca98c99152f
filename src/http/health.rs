//! Liveness and readiness probes.

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
