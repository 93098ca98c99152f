//! Telnyx Call Control: "Retrieve a call status".
//!
//! Sources:
//! - Telnyx API reference, "Retrieve a call status"
//!   (<https://developers.telnyx.com/api-reference/call-information/retrieve-a-call-status>,
//!   OpenAPI `call-control/call-information.yml`, operation `RetrieveCallStatus`):
//!   `GET https://api.telnyx.com/v2/calls/{call_control_id}`, bearer auth, "data is
//!   available 10 minutes after call ended"; responses 200 and 422
//!   (`UnprocessableEntityResponse`); the example answer
//!   `{"data": {"call_control_id", "call_leg_id", "call_session_id", "client_state",
//!   "is_alive": false, "call_duration": 50, "start_time", "end_time", "record_type":
//!   "call"}}`.
//! - team-telnyx/telnyx-python `src/telnyx/types/call_retrieve_status_response.py`
//!   (`is_alive: bool` required; `call_duration: int`, `start_time`, `end_time`
//!   (ISO 8601, "only present when the call is not alive") optional) and
//!   `src/telnyx/_client.py` (`Authorization: Bearer {api_key}`, base
//!   `https://api.telnyx.com/v2`).
//! - Telnyx error envelope `{"errors": [{"code", "title", "detail", "source", "meta"}]}`
//!   and codes 10009 "Authentication failed" (401), 10005 "Resource not found"
//!   (404), 90015 "Invalid Call Control ID" ("The call_control_id provided was not
//!   valid") from <https://developers.telnyx.com/development/api-fundamentals/api-errors>
//!   and <https://developers.telnyx.com/api/errors/90015>.
//!
//! What the API cannot tell: it answers only whether the call is alive. A live call
//! (`alive`) may be ringing or answered, so it maps to no event; an ended call
//! (`ended`) carries no hangup cause, so nothing says whether it was answered,
//! busy, unanswered or failed — its `event_type` is `None` and
//! [`CallSnapshot::outcome_unknown`] is true. Once its data has expired, or for an
//! id Telnyx never issued, the documented answer is 422 (90015): [`ApiError::NotFound`].

use std::time::Duration;

use async_trait::async_trait;
use chrono::DateTime;
use serde_json::Value;

use super::{ApiError, CallApi, CallSnapshot};
use crate::domain::Provider;
use crate::secret::Secret;

pub const TELNYX_DEFAULT_BASE: &str = "https://api.telnyx.com";

/// `raw_status` of a call Telnyx says is alive.
pub const ALIVE: &str = "alive";
/// `raw_status` of a call Telnyx says has ended (outcome unknown).
pub const ENDED: &str = "ended";

#[derive(Debug, Clone)]
pub struct TelnyxApiConfig {
    /// `https://api.telnyx.com` (`/v2/calls/…` is appended).
    pub base_url: String,
    pub api_key: Secret,
    pub timeout: Duration,
}

impl TelnyxApiConfig {
    pub fn new(api_key: Secret) -> Self {
        TelnyxApiConfig { base_url: TELNYX_DEFAULT_BASE.to_owned(), api_key, timeout: super::DEFAULT_TIMEOUT }
    }
}

/// Reads one call's status from Telnyx Call Control.
pub struct TelnyxApi {
    calls_url: String,
    api_key: Secret,
    client: reqwest::Client,
}

impl std::fmt::Debug for TelnyxApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelnyxApi").field("calls_url", &self.calls_url).finish()
    }
}

impl TelnyxApi {
    pub fn new(config: TelnyxApiConfig) -> Result<Self, ApiError> {
        let base = super::base_url(&config.base_url, "Telnyx API base URL")?;
        if config.api_key.expose().trim().is_empty() {
            return Err(ApiError::NotConfigured("Telnyx API key"));
        }
        Ok(TelnyxApi {
            calls_url: format!("{base}/v2/calls/"),
            api_key: config.api_key,
            client: super::http_client(config.timeout)?,
        })
    }
}

#[async_trait]
impl CallApi for TelnyxApi {
    fn provider(&self) -> Provider {
        Provider::Telnyx
    }

    async fn fetch_call(&self, provider_call_id: &str) -> Result<CallSnapshot, ApiError> {
        let url = format!("{}{}", self.calls_url, super::path_segment(provider_call_id)?);
        let request = self.client.get(&url).bearer_auth(self.api_key.expose().trim());
        let answer = super::send(request).await?;
        tracing::debug!(provider = "telnyx", call = provider_call_id, status = answer.status.as_u16(), "fetched call");
        if answer.status == http::StatusCode::UNPROCESSABLE_ENTITY {
            // The endpoint's only documented error: the id names no (longer known) call.
            return Err(ApiError::NotFound);
        }
        if !answer.status.is_success() {
            return Err(answer.error(describe_error));
        }
        snapshot(provider_call_id, answer.json_object()?)
    }
}

/// `{"errors": [{"code": "10009", "title": "Authentication failed", …}]}`.
fn describe_error(body: &Value) -> Option<String> {
    let first = body.get("errors")?.as_array()?.first()?;
    let title = super::text(first, "title").or_else(|| super::text(first, "detail"))?;
    Some(match super::text(first, "code") {
        Some(code) => format!("{code} {title}"),
        None => title,
    })
}

/// The call status answer as a snapshot.
pub fn snapshot(asked: &str, raw: Value) -> Result<CallSnapshot, ApiError> {
    let data = raw.get("data").filter(|d| d.is_object()).ok_or_else(|| ApiError::Garbage("no `data` object".into()))?;
    super::check_id(data, "call_control_id", asked)?;
    let alive = data
        .get("is_alive")
        .and_then(Value::as_bool)
        .ok_or_else(|| ApiError::Garbage("no boolean `data.is_alive`".into()))?;
    let time =
        |key: &str| super::text(data, key).and_then(|t| DateTime::parse_from_rfc3339(&t).ok()).map(|t| t.to_utc());
    Ok(CallSnapshot {
        provider: Provider::Telnyx,
        provider_call_id: asked.to_owned(),
        raw_status: if alive { ALIVE } else { ENDED }.to_owned(),
        event_type: None,
        duration_seconds: super::seconds(data, "call_duration"),
        answered_by: None,
        started_at: time("start_time"),
        answered_at: None,
        ended_at: if alive { None } else { time("end_time") },
        error_code: None,
        error_message: None,
        account: None,
        raw,
    })
}
