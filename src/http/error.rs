//! The one place errors become HTTP responses: every failure is answered with a
//! status code and `{"error": {"code": "...", "message": "..."}}`. Messages may
//! quote what the client sent; [`clip_message`] bounds every quoted value, so a
//! 64 KiB field never comes back in a 400 body nor goes into a log line.

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
    /// Per-item problems (e.g. the rows of an upload), as `error.details`.
    pub details: Option<serde_json::Value>,
}

/// Longest quoted value (between backticks or double quotes) echoed in a message.
const MAX_ECHOED_CHARS: usize = 64;
/// Longest message sent or logged.
const MAX_MESSAGE_CHARS: usize = 300;

impl ApiError {
    /// An error whose message is [clipped](clip_message).
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: clip_message(&message.into()), details: None }
    }

    /// The error a bare `status` from the HTTP stack stands for (hyper, tower, axum).
    pub fn for_status(status: StatusCode) -> Self {
        let (code, message) = match status.as_u16() {
            400 => ("bad_request", "the request is not valid HTTP/1.1 (e.g. conflicting Content-Length headers)"),
            401 => ("unauthorized", "missing or invalid credentials"),
            404 => ("not_found", "no such resource"),
            405 => ("method_not_allowed", "this route does not accept that method; see the Allow header"),
            408 => ("request_timeout", "the request took too long"),
            413 => ("payload_too_large", "the request body is too large"),
            414 => ("uri_too_long", "the request URI is too long"),
            415 => ("unsupported_media_type", "unsupported request content"),
            431 => ("header_fields_too_large", "the request's header fields are too large"),
            503 => ("unavailable", "the service cannot take this request now; retry later"),
            s if s >= 500 => ("internal_error", "an internal error occurred"),
            _ => ("error", status.canonical_reason().unwrap_or("the request failed")),
        };
        ApiError::new(status, code, message)
    }
}

/// `value` cut to `max` characters, with an ellipsis when cut.
pub fn clip(value: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match value.char_indices().nth(max) {
        None => value.into(),
        Some((end, _)) => format!("{}…", &value[..end]).into(),
    }
}

/// `message` with every value quoted in backticks or double quotes cut to 64
/// characters, and the whole cut to 300: messages built from client input (a
/// malformed field, a content type, a path) stay short in responses and logs.
pub fn clip_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE_CHARS + 8));
    let mut rest = message;
    while let Some(open) = rest.find(['`', '"']) {
        let quote = rest[open..].chars().next().unwrap_or('`');
        let after = &rest[open + 1..];
        let Some(len) = after.find(quote) else { break };
        out.push_str(&rest[..=open]);
        out.push_str(&clip(&after[..len], MAX_ECHOED_CHARS));
        out.push(quote);
        rest = &after[len + 1..];
    }
    out.push_str(rest);
    clip(&out, MAX_MESSAGE_CHARS).into_owned()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(details) = self.details {
            error["details"] = details;
        }
        let body = Json(json!({ "error": error }));
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
            InvalidSignature(_) | UrlMismatch => (StatusCode::FORBIDDEN, "invalid_signature"),
            NotConfigured(_) => (StatusCode::FORBIDDEN, "provider_not_configured"),
            UnknownAccount(_) => (StatusCode::FORBIDDEN, "unknown_account"),
            UnsupportedProvider(_) => (StatusCode::NOT_FOUND, "unsupported_provider"),
            UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Malformed(_) => (StatusCode::BAD_REQUEST, "malformed_body"),
            MissingField(_) => (StatusCode::BAD_REQUEST, "missing_field"),
            InvalidField { .. } => (StatusCode::BAD_REQUEST, "invalid_field"),
        };
        ApiError::new(status, code, err.to_string())
    }
}

impl From<crate::spool::SpoolOrStore> for ApiError {
    fn from(err: crate::spool::SpoolOrStore) -> Self {
        use crate::spool::{SpoolError, SpoolOrStore};
        match err {
            SpoolOrStore::Store(e) => e.into(),
            SpoolOrStore::Spool(e) => {
                tracing::error!(error = %e, "the store is unavailable and the callback could not be spooled");
                let code = if matches!(e, SpoolError::Full(_)) { "spool_full" } else { "spool_unavailable" };
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    code,
                    "the store is unavailable and the outage spool cannot take the callback; retry later",
                )
            }
        }
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
            StoreError::Refused { conflict, code, message, details } => {
                let status = if conflict { StatusCode::CONFLICT } else { StatusCode::BAD_REQUEST };
                ApiError { details, ..ApiError::new(status, code, message) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_and_whole_messages_are_clipped() {
        let long = "v".repeat(70_000);
        let message = clip_message(&format!("invalid `CallStatus`: `{long}` is not \"{long}\" nor `x`"));
        assert_eq!(message, format!("invalid `CallStatus`: `{}…` is not \"{}…\" nor `x`", &long[..64], &long[..64]));
        let unquoted = clip_message(&format!("no quote {long}"));
        assert_eq!(unquoted.chars().count(), 301, "300 and the ellipsis");
        assert_eq!(clip_message("an `unclosed quote"), "an `unclosed quote");
        assert_eq!(clip("é".repeat(5).as_str(), 3), "ééé…");
        assert_eq!(clip("short", 64), "short");
    }
}
