//! Twilio's Call resource, and SignalWire's copy of it under `/api/laml`.
//!
//! Sources:
//! - Twilio, "Call resource" (<https://www.twilio.com/docs/voice/api/call-resource>):
//!   `GET https://api.twilio.com/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json`,
//!   the fields and the example answer (`duration` and `queue_time` are strings, the
//!   times RFC 2822, `status` one of `queued ringing in-progress completed busy failed
//!   no-answer canceled`, `answered_by` e.g. `machine_start`). The resource has no
//!   error code or message: those only come with callbacks.
//! - twilio-python `twilio/rest/api/v2010/account/call/__init__.py` (`CallInstance`,
//!   `CallContext._uri = "/Accounts/{account_sid}/Calls/{sid}.json"`, `Accept:
//!   application/json`) and `twilio/base/client_base.py` (basic auth with
//!   `(username, password)`: the account SID and auth token, or an API key SID and
//!   secret while the path keeps the account SID).
//! - Error bodies `{"code", "message", "more_info", "status"}`: 20003 `Authenticate`
//!   (401), 20404 `The requested resource … was not found` (404), as quoted in
//!   twilio-node/twilio-python issues (e.g. twilio/twilio-python#42,
//!   nash-md/twilio-contact-center#31).
//! - SignalWire, "Retrieve a Call"
//!   (<https://signalwire.com/docs/compatibility-api/rest/calls/retrieve-a-call>) and
//!   the TypeSpec in signalwire/docs `specs/compatibility-api/calls/` and
//!   `specs/compatibility-api/_shared/errors.tsp`: the same resource under
//!   `https://{space}.signalwire.com/api/laml/2010-04-01/Accounts/{ProjectId}/Calls/{Sid}.json`,
//!   basic auth project ID + API token, ids are UUIDs, `duration` an integer, `price`
//!   a number; errors `{"code", "message", "more_info", "status"}` (401, 404). Its
//!   examples write dates like `Wed, 19 Sept 2018 20:00:00 +0000`, which RFC 2822
//!   does not allow; they are read as well.
//!
//! The status word maps through [`crate::providers::twilio::event_type`], as the
//! callback parser does (`canceled` → `call.failed`).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::Value;

use super::{ApiError, CallApi, CallSnapshot};
use crate::domain::Provider;
use crate::providers::twilio::event_type;
use crate::secret::Secret;

pub const TWILIO_DEFAULT_BASE: &str = "https://api.twilio.com";

/// Where and as whom to read Twilio's (or SignalWire's) Call resource.
#[derive(Debug, Clone)]
pub struct TwilioApiConfig {
    /// [`Provider::Twilio`] or [`Provider::SignalWire`].
    pub provider: Provider,
    /// Twilio: `https://api.twilio.com`. SignalWire: the space URL
    /// (`https://example.signalwire.com`); `/api/laml` is appended.
    pub base_url: String,
    /// The account SID (`AC…`), or the SignalWire project ID, named in the path.
    pub account_sid: String,
    /// The basic-auth user when it is not the account SID: a Twilio API key SID (`SK…`).
    pub api_key_sid: Option<String>,
    /// The auth token, the API key secret, or the SignalWire API token.
    pub secret: Secret,
    pub timeout: Duration,
}

impl TwilioApiConfig {
    /// Twilio with the account's auth token, at the public API.
    pub fn twilio(account_sid: impl Into<String>, auth_token: Secret) -> Self {
        TwilioApiConfig {
            provider: Provider::Twilio,
            base_url: TWILIO_DEFAULT_BASE.to_owned(),
            account_sid: account_sid.into(),
            api_key_sid: None,
            secret: auth_token,
            timeout: super::DEFAULT_TIMEOUT,
        }
    }

    /// SignalWire's compatibility API of the space at `space_url`.
    pub fn signalwire(space_url: impl Into<String>, project_id: impl Into<String>, api_token: Secret) -> Self {
        TwilioApiConfig {
            provider: Provider::SignalWire,
            base_url: space_url.into(),
            account_sid: project_id.into(),
            api_key_sid: None,
            secret: api_token,
            timeout: super::DEFAULT_TIMEOUT,
        }
    }

    /// Authenticate with a Twilio API key instead of the auth token.
    pub fn with_api_key(mut self, key_sid: impl Into<String>, key_secret: Secret) -> Self {
        self.api_key_sid = Some(key_sid.into());
        self.secret = key_secret;
        self
    }
}

/// Reads one call from Twilio's or SignalWire's Call resource.
pub struct TwilioApi {
    provider: Provider,
    /// The account SID (SignalWire: project id) whose calls this client reads.
    account: String,
    /// Up to and including `/Calls/`.
    calls_url: String,
    username: String,
    secret: Secret,
    client: reqwest::Client,
}

impl std::fmt::Debug for TwilioApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioApi").field("provider", &self.provider).field("calls_url", &self.calls_url).finish()
    }
}

impl TwilioApi {
    pub fn new(config: TwilioApiConfig) -> Result<Self, ApiError> {
        let prefix = match config.provider {
            Provider::Twilio => "",
            Provider::SignalWire => "/api/laml",
            _ => return Err(ApiError::NotConfigured("the Twilio client serves Twilio and SignalWire only")),
        };
        let base = super::base_url(&config.base_url, "Twilio/SignalWire API base URL")?;
        let account = config.account_sid.trim();
        if account.is_empty() {
            return Err(ApiError::NotConfigured("Twilio account SID / SignalWire project ID"));
        }
        if config.secret.expose().is_empty() {
            return Err(ApiError::NotConfigured("Twilio auth token / API key secret / SignalWire API token"));
        }
        let username = match config.api_key_sid.as_deref().map(str::trim) {
            Some("") => return Err(ApiError::NotConfigured("Twilio API key SID")),
            Some(key) => key.to_owned(),
            None => account.to_owned(),
        };
        Ok(TwilioApi {
            provider: config.provider,
            account: account.to_owned(),
            calls_url: format!("{base}{prefix}/2010-04-01/Accounts/{}/Calls/", super::escape(account)),
            username,
            secret: config.secret,
            client: super::http_client(config.timeout)?,
        })
    }
}

#[async_trait]
impl CallApi for TwilioApi {
    fn provider(&self) -> Provider {
        self.provider
    }

    fn account(&self) -> Option<&str> {
        Some(&self.account)
    }

    async fn fetch_call(&self, provider_call_id: &str) -> Result<CallSnapshot, ApiError> {
        let url = format!("{}{}.json", self.calls_url, super::path_segment(provider_call_id)?);
        let request = self.client.get(&url).basic_auth(&self.username, Some(self.secret.expose()));
        let answer = super::send(request).await?;
        tracing::debug!(provider = %self.provider, call = provider_call_id, status = answer.status.as_u16(), "fetched call");
        if !answer.status.is_success() {
            return Err(answer.error(describe_error));
        }
        snapshot(self.provider, provider_call_id, answer.json_object()?)
    }
}

/// `{"code": 20003, "message": "Authenticate", …}` → `20003 Authenticate`.
fn describe_error(body: &Value) -> Option<String> {
    let message = super::text(body, "message")?;
    Some(match body.get("code").filter(|c| !c.is_null()) {
        Some(code) => format!("{} {message}", code.as_str().map_or_else(|| code.to_string(), str::to_owned)),
        None => message,
    })
}

/// The Call resource as a snapshot.
pub fn snapshot(provider: Provider, asked: &str, raw: Value) -> Result<CallSnapshot, ApiError> {
    super::check_id(&raw, "sid", asked)?;
    let status = super::required_text(&raw, "status")?;
    let time = |key: &str| super::text(&raw, key).and_then(|t| parse_rfc2822(&t));
    Ok(CallSnapshot {
        provider,
        provider_call_id: asked.to_owned(),
        event_type: event_type(&status),
        raw_status: status,
        duration_seconds: super::seconds(&raw, "duration"),
        answered_by: super::text(&raw, "answered_by"),
        started_at: time("start_time"),
        answered_at: None,
        ended_at: time("end_time"),
        error_code: None,
        error_message: None,
        account: super::text(&raw, "account_sid"),
        raw,
    })
}

/// RFC 2822, or the looser form of SignalWire's examples (`Thur, 20 Sept 2018 …`).
pub fn parse_rfc2822(value: &str) -> Option<DateTime<Utc>> {
    let value = value.trim();
    if let Ok(t) = DateTime::parse_from_rfc2822(value) {
        return Some(t.to_utc());
    }
    let without_day = value.split_once(',').map_or(value, |(_, rest)| rest).trim();
    let normalised = without_day.replacen(" Sept ", " Sep ", 1);
    if let Ok(t) = DateTime::parse_from_str(&normalised, "%d %b %Y %H:%M:%S %z") {
        return Some(t.to_utc());
    }
    NaiveDateTime::parse_from_str(normalised.trim_end_matches(" GMT"), "%d %b %Y %H:%M:%S").ok().map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rfc2822_and_signalwires_spelling() {
        let expected = DateTime::parse_from_rfc3339("2019-10-18T17:02:00Z").unwrap().to_utc();
        assert_eq!(parse_rfc2822("Fri, 18 Oct 2019 17:02:00 +0000"), Some(expected));
        let sw = DateTime::parse_from_rfc3339("2018-09-20T10:00:00Z").unwrap().to_utc();
        assert_eq!(parse_rfc2822("Thur, 20 Sept 2018 10:00:00 +0000"), Some(sw));
        assert_eq!(parse_rfc2822("Thu, 20 Sep 2018 12:00:00 +0200"), Some(sw));
        assert_eq!(parse_rfc2822("yesterday"), None);
    }

    #[test]
    fn refuses_other_providers_and_missing_credentials() {
        let mut config = TwilioApiConfig::twilio("AC1", Secret::new("t"));
        config.provider = Provider::Plivo;
        assert!(matches!(TwilioApi::new(config), Err(ApiError::NotConfigured(_))));
        assert!(matches!(
            TwilioApi::new(TwilioApiConfig::twilio("", Secret::new("t"))),
            Err(ApiError::NotConfigured(_))
        ));
        assert!(matches!(
            TwilioApi::new(TwilioApiConfig::twilio("AC1", Secret::new(""))),
            Err(ApiError::NotConfigured(_))
        ));
        let debug = format!("{:?}", TwilioApi::new(TwilioApiConfig::twilio("AC1", Secret::new("hunter2"))).unwrap());
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}
