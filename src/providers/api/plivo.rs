//! Plivo Voice API: "Retrieve a call" (the call detail record) and "Retrieve a live
//! call".
//!
//! Sources:
//! - plivo/plivo-python `plivo/resources/calls.py` (`Calls.get`: `GET
//!   /v1/Account/{auth_id}/Call/{call_uuid}/`), `plivo/resources/live_calls.py`
//!   (`LiveCalls.get`: the same path with `?status=live`), `plivo/rest/client.py`
//!   (base `https://api.plivo.com/v1/Account`, basic auth `(auth_id, auth_token)`,
//!   trailing `/`; errors are `{"api_id", "error"}`, 401 → `AuthenticationError`,
//!   404 → `ResourceNotFoundError`), and its fixtures
//!   `tests/resources/fixtures/callGetResponse.json` (a CDR: `answer_time: null`,
//!   `call_duration` a number, times `2017-05-22 17:49:40+05:30`) and
//!   `liveCallGetResponse.json` (`call_status: "in-progress"`, `session_start`).
//! - Plivo, "The Call object" (<https://www.plivo.com/docs/voice/api/call/the-call-object/>):
//!   `answer_time`, `bill_duration`, `call_duration`, `end_time`, `initiation_time`
//!   (`yyyy-MM-dd HH:mm:ss`, "local timezone as set in the Plivo console"),
//!   `hangup_cause_name`, `hangup_cause_code`, `hangup_source`, `resource_uri`, …
//! - Plivo, "Hangup causes" (<https://www.plivo.com/docs/voice/troubleshooting/hangup-causes/>):
//!   `4000 Normal Hangup`, `4010 End Of XML Instructions`, `1000 Canceled`,
//!   `1010 Canceled (Out Of Credits)`, `2000 Invalid Destination Address`, …; the
//!   names "Busy Line", "Ring Timeout Reached" and "Rejected" (3000-series) are read
//!   by name, their numeric codes are only copied into `error_code`.
//!
//! The record of a call exists once it has ended, the live resource while it is
//! up; so the client asks for the record and, on 404, for the live call, and a call
//! that is in neither is [`ApiError::NotFound`]. A live call's `call_status` maps
//! through [`crate::providers::plivo::event_type`]. A record has no status word:
//! the client derives the `CallStatus` Plivo's hangup callback would carry —
//! `completed` when `answer_time` is set; otherwise from the hangup cause: busy
//! (`Busy Line`, `Rejected`) → `busy`, ring timeout / no answer → `no-answer`,
//! canceled (name, or codes 1000–1999) → `cancel`, anything else → `failed` — and
//! maps that word the same way. Unanswered calls carry `hangup_cause_code` as the
//! error code and `hangup_cause_name` as the message, as in callbacks. Times
//! without an offset are read in [`PlivoApiConfig::utc_offset`].

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use serde_json::Value;

use super::{ApiError, CallApi, CallSnapshot};
use crate::domain::{EventType, Provider};
use crate::providers::plivo::event_type;
use crate::secret::Secret;

pub const PLIVO_DEFAULT_BASE: &str = "https://api.plivo.com";

#[derive(Debug, Clone)]
pub struct PlivoApiConfig {
    /// `https://api.plivo.com`; `/v1/Account/{auth_id}/Call/…/` is appended.
    pub base_url: String,
    pub auth_id: String,
    pub auth_token: Secret,
    /// The account's console timezone, for record times written without an offset.
    pub utc_offset: FixedOffset,
    pub timeout: Duration,
}

impl PlivoApiConfig {
    pub fn new(auth_id: impl Into<String>, auth_token: Secret) -> Self {
        PlivoApiConfig {
            base_url: PLIVO_DEFAULT_BASE.to_owned(),
            auth_id: auth_id.into(),
            auth_token,
            utc_offset: FixedOffset::east_opt(0).expect("UTC"),
            timeout: super::DEFAULT_TIMEOUT,
        }
    }
}

/// Reads one call from Plivo: its record, else the live call.
pub struct PlivoApi {
    calls_url: String,
    auth_id: String,
    auth_token: Secret,
    utc_offset: FixedOffset,
    client: reqwest::Client,
}

impl std::fmt::Debug for PlivoApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlivoApi").field("calls_url", &self.calls_url).finish()
    }
}

impl PlivoApi {
    pub fn new(config: PlivoApiConfig) -> Result<Self, ApiError> {
        let base = super::base_url(&config.base_url, "Plivo API base URL")?;
        let auth_id = config.auth_id.trim().to_owned();
        if auth_id.is_empty() {
            return Err(ApiError::NotConfigured("Plivo auth ID"));
        }
        if config.auth_token.expose().is_empty() {
            return Err(ApiError::NotConfigured("Plivo auth token"));
        }
        Ok(PlivoApi {
            calls_url: format!("{base}/v1/Account/{}/Call/", super::escape(&auth_id)),
            auth_id,
            auth_token: config.auth_token,
            utc_offset: config.utc_offset,
            client: super::http_client(config.timeout)?,
        })
    }

    async fn get(&self, url: &str, live: bool) -> Result<super::Answer, ApiError> {
        let mut request = self.client.get(url).basic_auth(&self.auth_id, Some(self.auth_token.expose()));
        if live {
            request = request.query(&[("status", "live")]);
        }
        super::send(request).await
    }
}

#[async_trait]
impl CallApi for PlivoApi {
    fn provider(&self) -> Provider {
        Provider::Plivo
    }

    fn account(&self) -> Option<&str> {
        Some(&self.auth_id)
    }

    async fn fetch_call(&self, provider_call_id: &str) -> Result<CallSnapshot, ApiError> {
        let url = format!("{}{}/", self.calls_url, super::path_segment(provider_call_id)?);
        let record = self.get(&url, false).await?;
        tracing::debug!(provider = "plivo", call = provider_call_id, status = record.status.as_u16(), "fetched record");
        if record.status.is_success() {
            return cdr_snapshot(provider_call_id, record.json_object()?, self.utc_offset);
        }
        if record.status != http::StatusCode::NOT_FOUND {
            return Err(record.error(describe_error));
        }
        // No record yet: the call may still be up.
        let live = self.get(&url, true).await?;
        tracing::debug!(
            provider = "plivo",
            call = provider_call_id,
            status = live.status.as_u16(),
            "fetched live call"
        );
        if !live.status.is_success() {
            return Err(live.error(describe_error));
        }
        live_snapshot(provider_call_id, live.json_object()?, self.utc_offset)
    }
}

/// `{"api_id": "…", "error": "…"}`.
fn describe_error(body: &Value) -> Option<String> {
    super::text(body, "error")
}

/// The `CallStatus` Plivo's hangup callback carries for a call with this record.
pub fn cdr_status(record: &Value) -> &'static str {
    if super::text(record, "answer_time").is_some() {
        return "completed";
    }
    let name = super::text(record, "hangup_cause_name").unwrap_or_default().to_ascii_lowercase();
    let code = record.get("hangup_cause_code").and_then(|c| c.as_i64().or_else(|| c.as_str()?.trim().parse().ok()));
    if name.contains("busy") || name.contains("rejected") {
        "busy"
    } else if name.contains("timeout") || name.contains("no answer") {
        "no-answer"
    } else if name.starts_with("cancel") || code.is_some_and(|c| (1000..2000).contains(&c)) {
        "cancel"
    } else {
        "failed"
    }
}

/// A call detail record as a snapshot.
pub fn cdr_snapshot(asked: &str, raw: Value, utc_offset: FixedOffset) -> Result<CallSnapshot, ApiError> {
    super::check_id(&raw, "call_uuid", asked)?;
    // A record always says how the call ended; without that it is not one.
    if raw.get("end_time").is_none() && raw.get("hangup_cause_name").is_none() {
        return Err(ApiError::Garbage("a call record without `end_time` or `hangup_cause_name`".into()));
    }
    let status = cdr_status(&raw);
    let event = event_type(status);
    let failed = matches!(event, Some(EventType::Failed | EventType::Busy | EventType::NoAnswer));
    let cause_code = raw.get("hangup_cause_code").filter(|c| !c.is_null()).map(|c| match c.as_str() {
        Some(s) => s.to_owned(),
        None => c.to_string(),
    });
    let cause_name = super::text(&raw, "hangup_cause_name");
    let time = |key: &str| super::text(&raw, key).and_then(|t| parse_time(&t, utc_offset));
    Ok(CallSnapshot {
        provider: Provider::Plivo,
        provider_call_id: asked.to_owned(),
        raw_status: status.to_owned(),
        event_type: event,
        duration_seconds: super::seconds(&raw, "call_duration"),
        answered_by: None,
        started_at: time("initiation_time"),
        answered_at: time("answer_time"),
        ended_at: time("end_time"),
        error_code: if failed { cause_code.or_else(|| cause_name.clone()) } else { None },
        error_message: if failed { cause_name } else { None },
        account: super::text(&raw, "resource_uri").and_then(|uri| account_of(&uri)),
        raw,
    })
}

/// A live call as a snapshot.
pub fn live_snapshot(asked: &str, raw: Value, utc_offset: FixedOffset) -> Result<CallSnapshot, ApiError> {
    super::check_id(&raw, "call_uuid", asked)?;
    let status = super::required_text(&raw, "call_status")?;
    Ok(CallSnapshot {
        provider: Provider::Plivo,
        provider_call_id: asked.to_owned(),
        event_type: event_type(&status),
        raw_status: status,
        duration_seconds: None,
        answered_by: None,
        started_at: super::text(&raw, "session_start").and_then(|t| parse_time(&t, utc_offset)),
        answered_at: None,
        ended_at: None,
        error_code: None,
        error_message: None,
        account: None,
        raw,
    })
}

/// `/v1/Account/{auth_id}/Call/{uuid}/` → `auth_id`.
fn account_of(resource_uri: &str) -> Option<String> {
    let mut parts = resource_uri.split('/').skip_while(|p| *p != "Account");
    parts.next()?;
    parts.next().filter(|a| !a.is_empty()).map(str::to_owned)
}

/// `2017-05-22 17:49:40+05:30`, or without an offset (then in `utc_offset`), with
/// optional fractional seconds (`session_start`).
pub fn parse_time(value: &str, utc_offset: FixedOffset) -> Option<DateTime<Utc>> {
    let value = value.trim();
    for format in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(t) = DateTime::parse_from_str(value, format) {
            return Some(t.to_utc());
        }
    }
    let naive = NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S%.f").ok()?;
    utc_offset.from_local_datetime(&naive).single().map(|t| t.to_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_times_with_and_without_offsets() {
        let utc = FixedOffset::east_opt(0).unwrap();
        let ist = FixedOffset::east_opt(5 * 3600 + 1800).unwrap();
        let t = DateTime::parse_from_rfc3339("2017-05-22T12:19:40Z").unwrap().to_utc();
        assert_eq!(parse_time("2017-05-22 17:49:40+05:30", utc), Some(t));
        assert_eq!(parse_time("2017-05-22 17:49:40", ist), Some(t));
        assert_eq!(parse_time("2017-05-22 12:19:40", utc), Some(t));
        let live = parse_time("2017-05-22 13:17:49.050872", utc).unwrap();
        assert_eq!(live.timestamp_subsec_micros(), 50872);
        assert_eq!(parse_time("22/05/2017", utc), None);
    }

    #[test]
    fn derives_the_callback_status_from_a_record() {
        let cases = [
            (
                serde_json::json!({"answer_time": "2020-12-05 18:02:32+05:30", "hangup_cause_name": "Normal Hangup"}),
                "completed",
            ),
            (
                serde_json::json!({"answer_time": "2020-12-05 18:02:32", "hangup_cause_name": "Network Error"}),
                "completed",
            ),
            (serde_json::json!({"answer_time": null, "hangup_cause_name": "Busy Line"}), "busy"),
            (serde_json::json!({"answer_time": null, "hangup_cause_name": "Rejected"}), "busy"),
            (serde_json::json!({"answer_time": null, "hangup_cause_name": "Ring Timeout Reached"}), "no-answer"),
            (serde_json::json!({"answer_time": "", "hangup_cause_name": "Canceled"}), "cancel"),
            (
                serde_json::json!({"hangup_cause_name": "Canceled (Out Of Credits)", "hangup_cause_code": 1010}),
                "cancel",
            ),
            (serde_json::json!({"hangup_cause_code": 1020}), "cancel"),
            (
                serde_json::json!({"hangup_cause_name": "Invalid Destination Address", "hangup_cause_code": 2000}),
                "failed",
            ),
            (serde_json::json!({}), "failed"),
        ];
        for (record, expected) in cases {
            assert_eq!(cdr_status(&record), expected, "{record}");
        }
        assert_eq!(account_of("/v1/Account/MAXXX/Call/u-1/"), Some("MAXXX".into()));
        assert_eq!(account_of("/v1/Call/u-1/"), None);
    }
}
