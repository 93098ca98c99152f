//! `POST /webhooks/telephony/events` and `POST /webhooks/telephony/{provider}/events`.
//!
//! Order of work: read the body under the size limit, rebuild the URL the provider
//! signed, verify and parse (providers), record in one transaction (store), and only
//! then answer 2xx. Any failure before the commit is a 4xx or a 503 — except a store
//! outage with a spool configured: then the verified event is appended to the spool
//! durably and answered `202 spooled` (SPEC §10).

use axum::body::Body;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use tracing::Instrument;

use super::{ApiError, AppState};
use crate::domain::Provider;
use crate::providers::{InboundRequest, WebhookError};
use crate::spool::Accepted;
use crate::store::RecordOutcome;
use crate::telemetry;

/// How to rebuild the absolute URL a provider requested (and signed).
#[derive(Debug, Clone, Default)]
pub struct ExternalUrl {
    /// e.g. `https://hooks.example.com`; the request path and query are appended.
    pub public_base_url: Option<String>,
    /// Honour `X-Forwarded-Proto`/`X-Forwarded-Host` from a proxy you trust.
    pub trust_forwarded_headers: bool,
    /// Connection overrides appended as a URL fragment to the `status_callback_url`
    /// handed to the dialer, per provider (Twilio, SignalWire, Plivo read their
    /// webhook retry settings from it). A fragment never reaches the server, and
    /// the providers leave it out of the signed URL: verification is unaffected.
    pub callback_fragments: Vec<(Provider, String)>,
}

impl ExternalUrl {
    /// `url` with `provider`'s connection overrides, if any are configured.
    pub fn with_overrides(&self, provider: Provider, url: String) -> String {
        match self.callback_fragments.iter().find(|(p, f)| *p == provider && !f.is_empty()) {
            Some((_, fragment)) => format!("{url}#{}", fragment.trim_start_matches('#')),
            None => url,
        }
    }
}

impl ExternalUrl {
    pub fn build(&self, headers: &HeaderMap, path_and_query: &str) -> Result<String, ApiError> {
        if let Some(base) = &self.public_base_url {
            return Ok(format!("{}{path_and_query}", base.trim_end_matches('/')));
        }
        let first = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let forwarded = |name| if self.trust_forwarded_headers { first(name) } else { None };
        let scheme = forwarded("x-forwarded-proto").unwrap_or("http");
        let host = forwarded("x-forwarded-host")
            .or_else(|| first("host"))
            .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "missing_host", "request has no Host header"))?;
        Ok(format!("{scheme}://{host}{path_and_query}"))
    }
}

pub async fn default_provider(
    State(app): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let provider = app.default_provider;
    receive(app, provider, uri, headers, body).await
}

pub async fn named_provider(
    State(app): State<AppState>,
    Path(provider): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let provider: Provider =
        provider.parse().map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "unknown_provider", format!("{e}")))?;
    receive(app, provider, uri, headers, body).await
}

async fn receive(
    app: AppState,
    provider: Provider,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let span = tracing::info_span!(
        "webhook",
        provider = %provider,
        call_id = tracing::field::Empty,
        event_type = tracing::field::Empty,
    );
    async move {
        if app.providers.insecure_skip_verification {
            tracing::warn!("signature verification is DISABLED (insecure mode): accepting an unverified callback");
        }
        let body = read_body(body, &headers, app.max_body_bytes).await?;
        let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
        let url = app.external_url.build(&headers, path_and_query)?;
        let request = InboundRequest { url, headers, body };

        // Signature freshness is checked against the real time; the event is
        // recorded as received on the application clock (the demo's, a test's).
        let mut event = app.providers.handle(provider, request, chrono::Utc::now()).map_err(|e| {
            tracing::warn!(error = %super::clip_message(&e.to_string()), "callback rejected");
            telemetry::count_webhook(provider, "", "rejected");
            if let Some(reason) = signature_failure(&e) {
                metrics::counter!(telemetry::SIGNATURE_FAILURES, "provider" => provider.as_str(), "reason" => reason)
                    .increment(1);
            }
            ApiError::from(e)
        })?;
        event.received_at = app.store.clock().now();
        let event_type = event.event_type.map(|t| t.as_str());
        let span = tracing::Span::current();
        span.record("event_type", &*super::error::clip(event_type.unwrap_or(&event.provider_status), 64));
        if let Some(call_id) = &event.call_id {
            span.record("call_id", call_id.as_str());
        }

        let attempt = async {
            match &app.batcher {
                Some(batcher) => batcher.record(&event).await,
                None => app.store.record_event(&event).await,
            }
        };
        let accepted = match &app.spool {
            Some(spool) => spool.record_or_spool(attempt, &event).await.map_err(ApiError::from),
            None => attempt.await.map(Accepted::Recorded).map_err(ApiError::from),
        };
        let accepted = accepted.inspect_err(|_| {
            telemetry::count_webhook(provider, event_type.unwrap_or(""), "rejected");
        })?;
        let recorded = match accepted {
            Accepted::Recorded(recorded) => recorded,
            Accepted::Spooled => {
                let spool = app.spool.as_ref().map_or("", |s| s.kind());
                tracing::info!(spool, "callback spooled");
                telemetry::count_webhook(provider, event_type.unwrap_or("unrecognised"), "spooled");
                let body = json!({"status": "spooled", "call_id": event.call_id, "event_type": event_type,
                                  "provider_call_id": event.provider_call_id, "spool": spool});
                return Ok((StatusCode::ACCEPTED, Json(body)));
            }
        };
        let call_id = recorded.call_id.as_deref();
        tracing::info!(outcome = ?recorded.outcome, call_id, "callback recorded");
        let outcome = match recorded.outcome {
            RecordOutcome::Applied => "processed",
            RecordOutcome::Duplicate => "duplicate",
            RecordOutcome::Stale | RecordOutcome::Ignored => "ignored",
            RecordOutcome::Deferred => "deferred",
        };
        telemetry::count_webhook(provider, event_type.unwrap_or("unrecognised"), outcome);
        let (status, body) = match recorded.outcome {
            RecordOutcome::Applied => {
                (StatusCode::OK, json!({"status": "processed", "call_id": call_id, "event_type": event_type}))
            }
            RecordOutcome::Duplicate => {
                (StatusCode::OK, json!({"status": "duplicate", "call_id": call_id, "event_type": event_type}))
            }
            RecordOutcome::Stale => (
                StatusCode::OK,
                json!({"status": "ignored", "reason": "stale", "call_id": call_id, "event_type": event_type}),
            ),
            RecordOutcome::Ignored => (
                StatusCode::OK,
                json!({"status": "ignored", "reason": "unrecognised_status", "call_id": call_id,
                       "provider_status": event.provider_status}),
            ),
            RecordOutcome::Deferred => (
                StatusCode::ACCEPTED,
                json!({"status": "deferred", "call_id": call_id, "provider_call_id": event.provider_call_id,
                       "event_type": event_type}),
            ),
        };
        Ok((status, Json(body)))
    }
    .instrument(span)
    .await
}

/// The whole body, refusing more than `limit` bytes (413). In the service the body
/// is already in memory (read under this limit and the body-read timeout before a
/// processing slot was taken, see `limits.rs`), so this only takes the bytes.
async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<bytes::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", format!("request body exceeds {limit} bytes"))
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|err| {
        let is_limit = std::error::Error::source(&err).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if is_limit {
            too_large()
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "unreadable_body", format!("could not read request body: {err}"))
        }
    })
}

/// The label of a signature failure, or `None` for other rejections.
fn signature_failure(err: &WebhookError) -> Option<&'static str> {
    match err {
        WebhookError::MissingSignature(_) => Some("missing"),
        WebhookError::InvalidSignature(_) => Some("invalid"),
        WebhookError::UrlMismatch => Some("url_mismatch"),
        WebhookError::NotConfigured(_) => Some("not_configured"),
        WebhookError::UnknownAccount(_) => Some("unknown_account"),
        _ => None,
    }
}
