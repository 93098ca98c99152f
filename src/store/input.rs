//! What callers send the store — campaigns, contacts, call registrations, contact
//! changes — and how each is checked before anything is written. Every refusal
//! names the field and carries the error code the API answers.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::StoreError;
use crate::domain::window::{self, CallingWindow, Weekdays};
use crate::domain::{retry, Campaign, CampaignStatus, Contact, Provider};

/// An optional whole number that may be written `4` or `4.0` (JSON has one number
/// type; JSON Schema's `integer` includes `4.0`), within `i32`.
pub fn whole_i32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else { return Ok(None) };
    let whole = n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() <= 9e15).map(|f| f as i64));
    whole
        .and_then(|v| i32::try_from(v).ok())
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("expected a whole number, got {n}")))
}

/// Longest campaign name.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest contact `external_id`.
pub const MAX_EXTERNAL_ID_CHARS: usize = 128;
/// Longest retry interval: 30 days.
pub const MAX_RETRY_INTERVAL_MINUTES: i32 = 43_200;
/// Longest `amd_wait_timeout_ms` (`wait` mode): one minute.
pub const MAX_AMD_WAIT_TIMEOUT_MS: i32 = 60_000;
/// Largest registration `metadata`, serialised.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct NewCampaign {
    pub name: String,
    #[serde(default, deserialize_with = "whole_i32")]
    pub max_attempts: Option<i32>,
    #[serde(default, deserialize_with = "whole_i32")]
    pub retry_interval_minutes: Option<i32>,
    /// `off` (default): start the dialogue on the answer; `wait`: hold it for the
    /// answering-machine verdict, at most `amd_wait_timeout_ms` (SPEC §12).
    #[serde(default)]
    pub amd_mode: Option<crate::domain::AmdMode>,
    /// 0–60,000; default 4,000.
    #[serde(default, deserialize_with = "whole_i32")]
    pub amd_wait_timeout_ms: Option<i32>,
    /// IANA name (default `UTC`): the calling window's zone for contacts without one.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Local `HH:MM`, default `09:00`; not before `08:00`.
    #[serde(default)]
    pub calling_window_start: Option<String>,
    /// Local `HH:MM`, exclusive, default `20:00`; not after `21:00`.
    #[serde(default)]
    pub calling_window_end: Option<String>,
    /// ISO weekdays, 1 = Monday … 7 = Sunday; default all.
    #[serde(default)]
    pub calling_days: Option<Vec<i64>>,
    /// Delays in minutes per outcome, e.g. `{"no_answer": [30, 120], "busy": [10]}`:
    /// one per retry, the last repeating; an outcome absent is not retried.
    /// Omitted: every outcome is retried after `retry_interval_minutes`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub retry_policy: Option<Value>,
    /// Most calls in flight at once (1–10,000); omitted: no cap.
    #[serde(default, deserialize_with = "whole_i32")]
    pub max_concurrent_calls: Option<i32>,
}

/// Largest `max_concurrent_calls`.
pub const MAX_CONCURRENT_CALLS: i32 = 10_000;

impl NewCampaign {
    pub fn named(name: impl Into<String>) -> Self {
        NewCampaign { name: name.into(), ..NewCampaign::default() }
    }

    /// The campaign this describes, defaults applied, every field checked.
    pub(crate) fn into_campaign(self, id: Uuid, now: DateTime<Utc>) -> Result<Campaign, StoreError> {
        let max_attempts = self.max_attempts.unwrap_or(3);
        let interval = self.retry_interval_minutes.unwrap_or(60);
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || crate::text::has_control(name) {
            return Err(StoreError::Invalid(format!(
                "campaign name must be 1–{MAX_NAME_CHARS} characters without control characters"
            )));
        }
        if !(1..=5).contains(&max_attempts) {
            return Err(StoreError::Invalid(format!("max_attempts must be 1–5, got {max_attempts}")));
        }
        if !(0..=MAX_RETRY_INTERVAL_MINUTES).contains(&interval) {
            return Err(StoreError::Invalid(format!(
                "retry_interval_minutes must be 0–{MAX_RETRY_INTERVAL_MINUTES} (30 days), got {interval}"
            )));
        }
        let amd_wait = self.amd_wait_timeout_ms.unwrap_or(4000);
        if !(0..=MAX_AMD_WAIT_TIMEOUT_MS).contains(&amd_wait) {
            return Err(StoreError::Invalid(format!(
                "amd_wait_timeout_ms must be 0–{MAX_AMD_WAIT_TIMEOUT_MS}, got {amd_wait}"
            )));
        }
        let timezone = self.timezone.unwrap_or_else(|| "UTC".into());
        window::parse_tz(&timezone)?;
        let default = CallingWindow::default();
        let start = self.calling_window_start.unwrap_or_else(|| window::fmt(default.start));
        let end = self.calling_window_end.unwrap_or_else(|| window::fmt(default.end));
        let days = match self.calling_days {
            None => default.days,
            Some(days) => {
                let iso: Vec<u8> = days.iter().map(|d| u8::try_from(*d).unwrap_or(0)).collect();
                Weekdays::from_iso(&iso)?
            }
        };
        let calling_window = CallingWindow::new(window::parse_time(&start)?, window::parse_time(&end)?, days)?;
        let retry_policy = self.retry_policy.as_ref().map(retry::parse_policy).transpose()?;
        if let Some(cap) = self.max_concurrent_calls {
            if !(1..=MAX_CONCURRENT_CALLS).contains(&cap) {
                return Err(StoreError::invalid(
                    "invalid_max_concurrent_calls",
                    format!("max_concurrent_calls must be 1–{MAX_CONCURRENT_CALLS}, got {cap}"),
                ));
            }
        }
        Ok(Campaign {
            id,
            name: name.to_owned(),
            max_attempts,
            retry_interval_minutes: interval,
            created_at: now,
            amd_mode: self.amd_mode.unwrap_or(crate::domain::AmdMode::Off),
            amd_wait_timeout_ms: amd_wait,
            timezone,
            calling_window_start: window::fmt(calling_window.start),
            calling_window_end: window::fmt(calling_window.end),
            calling_days: calling_window.days.iso(),
            retry_policy,
            max_concurrent_calls: self.max_concurrent_calls,
            status: CampaignStatus::Running,
        })
    }
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewContact {
    /// E.164; spaces, dots, dashes and parentheses are removed (`+1 (415) 555-0100`).
    pub phone_number: String,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub do_not_call: bool,
    /// IANA name of the contact's zone; omitted: the campaign's.
    #[serde(default)]
    pub timezone: Option<String>,
}

impl NewContact {
    pub fn phone(number: impl Into<String>) -> Self {
        NewContact { phone_number: number.into(), external_id: None, do_not_call: false, timezone: None }
    }

    /// Checks every field and normalises the phone number to E.164.
    pub(crate) fn normalised(mut self) -> Result<Self, StoreError> {
        self.phone_number = normalise_phone(&self.phone_number)?;
        check_external_id(self.external_id.as_deref())?;
        if let Some(tz) = &self.timezone {
            window::parse_tz(tz)?;
        }
        Ok(self)
    }
}

/// E.164 (`+`, a non-zero digit, then at most 14 more digits) once the usual
/// separators (space, `.`, `-`, `(`, `)`) are removed; `invalid_phone_number` otherwise.
pub fn normalise_phone(raw: &str) -> Result<String, StoreError> {
    let compact: String = raw.chars().filter(|c| !matches!(c, ' ' | '.' | '-' | '(' | ')')).collect();
    let digits = compact.strip_prefix('+').unwrap_or("");
    let ok = (2..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0');
    if !ok {
        // The value may be long or hold anything: name it, don't echo it whole.
        let shown: String = raw.chars().take(20).filter(|c| !c.is_control()).collect();
        return Err(StoreError::invalid(
            "invalid_phone_number",
            format!("phone_number `{shown}` is not E.164 (`+` and 2–15 digits, e.g. +14155550100)"),
        ));
    }
    Ok(compact)
}

fn check_external_id(id: Option<&str>) -> Result<(), StoreError> {
    match id {
        Some(id) if id.chars().count() > MAX_EXTERNAL_ID_CHARS || crate::text::has_control(id) => {
            Err(StoreError::Invalid(format!(
                "external_id must be at most {MAX_EXTERNAL_ID_CHARS} characters without control characters"
            )))
        }
        _ => Ok(()),
    }
}

/// What an upload does with a phone number the campaign already has (or that
/// appears twice in the upload).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnDuplicate {
    /// Refuse the whole upload (409 `duplicate_phone_number`), listing the rows.
    #[default]
    Reject,
    /// Add the other contacts and list the duplicates as skipped.
    Skip,
}

/// `PATCH /api/v1/contacts/{id}`: the fields given are changed; `null` clears
/// `timezone` (back to the campaign's) and `external_id`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct ContactPatch {
    #[serde(default)]
    pub do_not_call: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub timezone: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub external_id: Option<Option<String>>,
}

impl ContactPatch {
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        if let Some(Some(tz)) = &self.timezone {
            window::parse_tz(tz)?;
        }
        check_external_id(self.external_id.as_ref().and_then(|e| e.as_deref()))
    }

    /// Applies the patch; `true` when the contact's zone changed.
    pub(crate) fn apply_to(&self, contact: &mut Contact) -> bool {
        if let Some(dnc) = self.do_not_call {
            contact.do_not_call = dnc;
        }
        if let Some(id) = &self.external_id {
            contact.external_id.clone_from(id);
        }
        match &self.timezone {
            Some(tz) if *tz != contact.timezone => {
                contact.timezone.clone_from(tz);
                true
            }
            _ => false,
        }
    }
}

/// A field that is present, possibly `null`: `Some(None)`; absent: `None` (by `default`).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

#[derive(Debug, Clone, Deserialize)]
pub struct NewAttempt {
    pub contact_id: Uuid,
    /// Checked against the contact's campaign when given.
    #[serde(default)]
    pub campaign_id: Option<Uuid>,
    pub provider: Provider,
    /// Generated (a UUID) when not given.
    #[serde(default)]
    pub call_id: Option<String>,
    #[serde(default)]
    pub provider_call_id: Option<String>,
    #[serde(default)]
    pub metadata: Option<Value>,
    /// The provider account placing the call; only its callbacks may drive it.
    #[serde(default)]
    pub account_sid: Option<String>,
}

impl NewAttempt {
    pub fn new(contact_id: Uuid, provider: Provider) -> Self {
        NewAttempt {
            contact_id,
            campaign_id: None,
            provider,
            call_id: None,
            provider_call_id: None,
            metadata: None,
            account_sid: None,
        }
    }

    /// The bounds a callback would be held to, so that every registered call can be
    /// reached by its callbacks: `call_id` printable (it travels in a URL),
    /// `provider_call_id` as long as a callback's may be (an index entry has a size
    /// limit), `metadata` a JSON object of bounded size that both stores can hold.
    pub(crate) fn validate(&self, call_id: &str) -> Result<(), StoreError> {
        use crate::providers::{MAX_CALL_ID_BYTES, MAX_IDENTIFIER_BYTES};
        if !crate::text::is_token(call_id, MAX_CALL_ID_BYTES) {
            return Err(StoreError::Invalid(format!(
                "call_id must be 1–{MAX_CALL_ID_BYTES} bytes, without spaces or control characters"
            )));
        }
        let bad_pcid = |p: &String| p.is_empty() || p.len() > MAX_IDENTIFIER_BYTES || crate::text::has_control(p);
        if self.provider_call_id.as_ref().is_some_and(bad_pcid) {
            return Err(StoreError::Invalid(format!(
                "provider_call_id must be 1–{MAX_IDENTIFIER_BYTES} bytes without control characters"
            )));
        }
        if self.account_sid.as_deref().is_some_and(|a| !crate::text::is_token(a, 128)) {
            return Err(StoreError::invalid(
                "invalid_request",
                "account_sid must be 1–128 bytes, without spaces or control characters",
            ));
        }
        if let Some(metadata) = &self.metadata {
            if !metadata.is_object() {
                return Err(StoreError::Invalid("metadata must be a JSON object".into()));
            }
            if crate::text::json_has_nul(metadata) {
                return Err(StoreError::Invalid("metadata must not contain U+0000 (NUL)".into()));
            }
            if metadata.to_string().len() > MAX_METADATA_BYTES {
                return Err(StoreError::Invalid(format!(
                    "metadata must be at most {MAX_METADATA_BYTES} bytes of JSON"
                )));
            }
        }
        Ok(())
    }
}
