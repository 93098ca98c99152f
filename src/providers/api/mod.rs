//! REST clients that fetch one call's current state from a provider (SPEC §9), for
//! the reconciler that recovers lost callbacks.
//!
//! Every client answers a [`CallSnapshot`]: the provider's own status word, mapped to
//! an [`EventType`] by the very function the provider's callback parser uses, so a
//! reconciled event and the callback it replaces agree. What a provider's API cannot
//! tell (Telnyx does not say how an ended call ended) is left out, never guessed:
//! see [`CallSnapshot::outcome_unknown`].
//!
//! | provider   | request                                                                 | auth                                 |
//! |------------|-------------------------------------------------------------------------|--------------------------------------|
//! | Twilio     | `GET {base}/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`        | basic: account SID or API key SID    |
//! | SignalWire | `GET {space}/api/laml/2010-04-01/Accounts/{ProjectId}/Calls/{Sid}.json`   | basic: project ID + API token        |
//! | Telnyx     | `GET {base}/v2/calls/{call_control_id}`                                  | `Authorization: Bearer {api key}`    |
//! | Vonage     | `GET {base}/v1/calls/{uuid}`                                             | `Bearer` JWT, RS256, application key |
//! | Plivo      | `GET {base}/v1/Account/{auth_id}/Call/{call_uuid}/` (then `?status=live`) | basic: auth ID + auth token          |
//!
//! The sources of each shape are cited at the top of each client's file and in
//! `tests/fixtures/provider_api/README.md`. The local fakes that the tests run these
//! clients against live in `tests/fake_providers/`.
//!
//! Failures come back as an [`ApiError`]: HTTP 401/403 → `Unauthorized`, 404 (and
//! the provider's own "no such call" answers) → `NotFound`, 429 → `RateLimited`
//! with `Retry-After` (seconds or an HTTP date), other statuses → `Server`, no
//! answer within the configured timeout → `Timeout`, a 200 that is not the
//! documented JSON → `Garbage`. Secrets never reach an error or a log line.

pub mod plivo;
pub mod telnyx;
pub mod twilio;
pub mod vonage;

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use http::{HeaderMap, StatusCode};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

use super::MAX_IDENTIFIER_BYTES;
use crate::domain::{EventType, Provider};

pub use plivo::{PlivoApi, PlivoApiConfig};
pub use telnyx::{TelnyxApi, TelnyxApiConfig};
pub use twilio::{TwilioApi, TwilioApiConfig};
pub use vonage::{VonageApi, VonageApiConfig};

/// What a provider's REST API says about one call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallSnapshot {
    pub provider: Provider,
    pub provider_call_id: String,
    /// The provider's own status word (e.g. Twilio `no-answer`, Vonage `unanswered`,
    /// Telnyx `alive`/`ended`, Plivo the `CallStatus` its hangup callback carries).
    pub raw_status: String,
    /// Mapped exactly as the provider's callback parser maps the same status. `None`
    /// = a status callhook does not recognise, the call is still live with nothing to
    /// apply, or it ended in a way the API does not tell ([`Self::outcome_unknown`]).
    pub event_type: Option<EventType>,
    pub duration_seconds: Option<i32>,
    pub answered_by: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub account: Option<String>,
    /// The whole JSON the API answered, kept as the stored event's payload.
    pub raw: serde_json::Value,
}

impl CallSnapshot {
    /// The provider says the call is over (a terminal event, or an ended call whose
    /// outcome it does not tell).
    pub fn is_ended(&self) -> bool {
        self.event_type.is_some_and(|e| e.status().is_terminal()) || self.outcome_unknown()
    }

    /// The provider says the call has ended but not how: Telnyx's call status API
    /// answers only `is_alive: false`, with no hangup cause. `event_type` is `None`;
    /// the caller decides (e.g. from whether the attempt was answered).
    pub fn outcome_unknown(&self) -> bool {
        self.provider == Provider::Telnyx && self.raw_status == telnyx::ENDED
    }
}

/// Why a call could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The provider does not know the call (HTTP 404, Telnyx's 422 "invalid call
    /// control id", Plivo's 404 for both the record and the live call), or the id
    /// cannot name a call at all (empty, `.`, `..`, longer than
    /// [`MAX_IDENTIFIER_BYTES`]).
    #[error("the provider does not know this call")]
    NotFound,
    /// HTTP 401 or 403: the credentials are wrong, revoked or lack the permission.
    #[error("the provider refused the credentials: {0}")]
    Unauthorized(String),
    /// HTTP 429, with `Retry-After` when the provider sent one.
    #[error("rate limited by the provider (retry after {retry_after:?})")]
    RateLimited { retry_after: Option<Duration> },
    /// Any other unexpected HTTP status (5xx, or a 4xx not listed above).
    #[error("the provider answered HTTP {0}")]
    Server(u16),
    /// No complete answer within the configured timeout.
    #[error("the provider did not answer in time")]
    Timeout,
    /// Connection refused, reset, TLS failure, …
    #[error("transport error: {0}")]
    Transport(String),
    /// 200 with a body that is not the documented JSON (HTML, garbage, missing fields)
    #[error("the provider answered something that is not the documented JSON: {0}")]
    Garbage(String),
    /// The client lacks a setting it needs (the text names it).
    #[error("not configured: {0}")]
    NotConfigured(&'static str),
}

/// A client for one provider's call resource.
#[async_trait::async_trait]
pub trait CallApi: Send + Sync {
    fn provider(&self) -> Provider;
    /// The account these credentials belong to (Twilio account SID, SignalWire
    /// project, Plivo auth id), where a provider has several.
    fn account(&self) -> Option<&str> {
        None
    }
    async fn fetch_call(&self, provider_call_id: &str) -> Result<CallSnapshot, ApiError>;
}

/// Default request timeout of every client.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest response body read, in bytes; one call's JSON is a few kB.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The longest provider error text kept in an [`ApiError`].
const MAX_ERROR_TEXT: usize = 200;

/// Characters escaped in a path segment: everything but RFC 3986 unreserved and `:`
/// (Telnyx ids look like `v3:…`).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b':');

/// A provider call id as one escaped path segment, or `NotFound` for an id no call
/// can have (dot segments would be resolved away by the URL parser).
pub(crate) fn path_segment(id: &str) -> Result<String, ApiError> {
    if id.is_empty() || id == "." || id == ".." || id.len() > MAX_IDENTIFIER_BYTES {
        return Err(ApiError::NotFound);
    }
    Ok(utf8_percent_encode(id, SEGMENT).to_string())
}

/// Any other path segment (account ids): escaped the same way.
pub(crate) fn escape(value: &str) -> String {
    utf8_percent_encode(value, SEGMENT).to_string()
}

/// `base` without trailing slashes, checked to be an absolute http(s) URL.
pub(crate) fn base_url(base: &str, what: &'static str) -> Result<String, ApiError> {
    let trimmed = base.trim().trim_end_matches('/');
    match reqwest::Url::parse(trimmed) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(trimmed.to_owned()),
        _ => Err(ApiError::NotConfigured(what)),
    }
}

/// The HTTP client every provider client shares the settings of.
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, ApiError> {
    if timeout.is_zero() {
        return Err(ApiError::NotConfigured("request timeout must be positive"));
    }
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        // Credentials are sent to the configured host only.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("callhook/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ApiError::Transport(format!("building the HTTP client: {e}")))
}

/// An answer: status, headers and (bounded) body.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as a JSON object, or `Garbage`.
    pub fn json_object(&self) -> Result<Value, ApiError> {
        let media = self
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
        if let Some(media) = media.as_deref() {
            if media != "application/json" && !media.ends_with("+json") {
                return Err(ApiError::Garbage(format!("content type `{media}`, not JSON: {}", excerpt(&self.body))));
            }
        }
        let value: Value = serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::Garbage(format!("invalid JSON ({e}): {}", excerpt(&self.body))))?;
        if value.is_object() {
            Ok(value)
        } else {
            Err(ApiError::Garbage(format!("JSON is not an object: {}", excerpt(&self.body))))
        }
    }

    /// The error a non-2xx answer stands for; `describe` pulls the provider's own
    /// error text out of its JSON body.
    pub fn error(&self, describe: fn(&Value) -> Option<String>) -> ApiError {
        let text = || {
            let detail = serde_json::from_slice::<Value>(&self.body).ok().as_ref().and_then(describe);
            let detail = detail.map(|d| truncate(&d)).unwrap_or_else(|| excerpt(&self.body));
            format!("HTTP {}: {detail}", self.status.as_u16())
        };
        match self.status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ApiError::Unauthorized(text()),
            StatusCode::NOT_FOUND => ApiError::NotFound,
            StatusCode::TOO_MANY_REQUESTS => {
                ApiError::RateLimited { retry_after: retry_after(&self.headers, Utc::now()) }
            }
            other => ApiError::Server(other.as_u16()),
        }
    }
}

/// Sends `request` and reads the answer, the body capped at [`MAX_BODY_BYTES`].
pub(crate) async fn send(request: reqwest::RequestBuilder) -> Result<Answer, ApiError> {
    let mut response = request.header(http::header::ACCEPT, "application/json").send().await.map_err(transport)?;
    let status = response.status();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ApiError::Garbage(format!("response body larger than {MAX_BODY_BYTES} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer { status, headers, body })
}

fn transport(e: reqwest::Error) -> ApiError {
    if e.is_timeout() {
        return ApiError::Timeout;
    }
    // reqwest's text names the URL (no secret is ever in one) and the cause chain.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    ApiError::Transport(text)
}

/// `Retry-After`: delay-seconds or an HTTP date (IMF-fixdate, and the obsolete
/// RFC 850 and asctime forms RFC 9110 §5.6.7 says recipients must accept). A date in
/// the past means now.
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if value.bytes().all(|b| b.is_ascii_digit()) && !value.is_empty() {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = parse_http_date(value)?;
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// An HTTP date in any of the three forms of RFC 9110 §5.6.7.
pub fn parse_http_date(value: &str) -> Option<DateTime<Utc>> {
    let value = value.trim();
    if let Ok(t) = DateTime::parse_from_rfc2822(value) {
        return Some(t.to_utc());
    }
    // RFC 850: `Sunday, 06-Nov-94 08:49:37 GMT`.
    if let Some((_, rest)) = value.split_once(", ") {
        if let Some(rest) = rest.strip_suffix(" GMT") {
            if let Ok(t) = NaiveDateTime::parse_from_str(rest, "%d-%b-%y %H:%M:%S") {
                return Some(t.and_utc());
            }
        }
    }
    // asctime: `Sun Nov  6 08:49:37 1994`.
    let words: Vec<&str> = value.split_whitespace().collect();
    if words.len() == 5 {
        let normalised = format!("{} {} {} {}", words[1], words[2], words[3], words[4]);
        if let Ok(t) = NaiveDateTime::parse_from_str(&normalised, "%b %d %H:%M:%S %Y") {
            return Some(t.and_utc());
        }
    }
    None
}

/// The start of a body, printable, for an error message.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let text = text.trim();
    if text.is_empty() {
        "(empty body)".to_owned()
    } else {
        truncate(text)
    }
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_ERROR_TEXT) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// A string field, `None` when absent, null or empty.
pub(crate) fn text(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// A whole number of seconds that providers send as a number or a string.
pub(crate) fn seconds(value: &Value, key: &str) -> Option<i32> {
    let v = value.get(key)?;
    let n = v.as_i64().or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)).or_else(|| {
        let s = v.as_str()?.trim();
        s.parse::<i64>().ok()
    })?;
    i32::try_from(n).ok().filter(|n| *n >= 0)
}

/// The required status word, or `Garbage`.
pub(crate) fn required_text(value: &Value, key: &'static str) -> Result<String, ApiError> {
    text(value, key).ok_or_else(|| ApiError::Garbage(format!("no `{key}` in the answer")))
}

/// The resource's own id must be the one asked for (a proxy or cache answering for
/// another call is garbage, not truth).
pub(crate) fn check_id(value: &Value, key: &str, asked: &str) -> Result<(), ApiError> {
    match value.get(key).and_then(Value::as_str) {
        Some(id) if id != asked => Err(ApiError::Garbage(format!("answered for call `{id}`, not `{asked}`"))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn retry_after_takes_seconds_and_all_three_http_date_forms() {
        let now = DateTime::parse_from_rfc3339("1994-11-06T08:49:00Z").unwrap().to_utc();
        assert_eq!(retry_after(&headers("120"), now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(&headers("0"), now), Some(Duration::ZERO));
        for date in ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"] {
            assert_eq!(retry_after(&headers(date), now), Some(Duration::from_secs(37)), "{date}");
        }
        // A date already past means "now"; nonsense means nothing.
        let later = DateTime::parse_from_rfc3339("1994-11-06T09:00:00Z").unwrap().to_utc();
        assert_eq!(retry_after(&headers("Sun, 06 Nov 1994 08:49:37 GMT"), later), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers("soon"), now), None);
        assert_eq!(retry_after(&headers("-5"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn call_ids_become_one_escaped_segment() {
        assert_eq!(path_segment("v3:Md-I9_1.x~").unwrap(), "v3:Md-I9_1.x~");
        assert_eq!(path_segment("a/b?c#d e").unwrap(), "a%2Fb%3Fc%23d%20e");
        for bad in ["", ".", ".."] {
            assert!(matches!(path_segment(bad), Err(ApiError::NotFound)), "{bad:?}");
        }
        assert!(matches!(path_segment(&"x".repeat(MAX_IDENTIFIER_BYTES + 1)), Err(ApiError::NotFound)));
    }

    #[test]
    fn durations_come_as_numbers_or_strings() {
        let v = serde_json::json!({"a": "23", "b": 23, "c": 23.0, "d": "", "e": null, "f": -1, "g": 2.5});
        assert_eq!((seconds(&v, "a"), seconds(&v, "b"), seconds(&v, "c")), (Some(23), Some(23), Some(23)));
        assert_eq!((seconds(&v, "d"), seconds(&v, "e"), seconds(&v, "f")), (None, None, None));
        assert_eq!((seconds(&v, "g"), seconds(&v, "missing")), (None, None));
    }

    #[test]
    fn base_urls_must_be_absolute_http() {
        assert_eq!(base_url("https://api.twilio.com/", "x").unwrap(), "https://api.twilio.com");
        assert!(matches!(base_url("api.twilio.com", "x"), Err(ApiError::NotConfigured("x"))));
        assert!(matches!(base_url("ftp://h", "x"), Err(ApiError::NotConfigured("x"))));
    }
}
