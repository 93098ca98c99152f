//! The one place errors become HTTP responses: every failure is answered with a
//! status code and `{"error": {"code": "...", "message": "..."}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::providers::WebhookError;
use crate::store::StoreError;

/// Seconds a provider should wait before retrying while the store is down.
const RETRY_AFTER_SECS: u64 = 5;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": { "code": self.code, "message": self.message } }));
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}

impl From<WebhookError> for ApiError {
    fn from(err: WebhookError) -> Self {
        use WebhookError::*;
        let (status, code) = match &err {
            MissingSignature(_) => (StatusCode::FORBIDDEN, "missing_signature"),
            InvalidSignature(_) => (StatusCode::FORBIDDEN, "invalid_signature"),
            NotConfigured(_) => (StatusCode::FORBIDDEN, "provider_not_configured"),
            UnsupportedProvider(_) => (StatusCode::NOT_FOUND, "unsupported_provider"),
            UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Malformed(_) => (StatusCode::BAD_REQUEST, "malformed_body"),
            MissingField(_) => (StatusCode::BAD_REQUEST, "missing_field"),
            InvalidField { .. } => (StatusCode::BAD_REQUEST, "invalid_field"),
        };
        ApiError::new(status, code, err.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(detail) => {
                // The detail may name hosts or statements: log it, don't send it.
                tracing::error!(error = %detail, "store unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the store is unavailable; retry later",
                )
            }
            StoreError::Internal(detail) => {
                // A fault retrying will not fix: a 500 (providers do not hammer it as
                // an outage), the detail in the log, and a counter to alert on.
                tracing::error!(error = %detail, "internal store error");
                metrics::counter!(crate::telemetry::INTERNAL_ERRORS, "source" => "store").increment(1);
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "an internal error occurred; it has been logged",
                )
            }
            StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            StoreError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m),
            StoreError::Invalid(m) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", m),
        }
    }
}
