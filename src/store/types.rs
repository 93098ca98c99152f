//! Inputs and outputs of the [`Store`](super::Store) trait.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::StoreError;
use crate::domain::stranded::Timeouts;
use crate::domain::{Attempt, Contact, Disposition, EventSource, Provider};

/// An optional whole number that may be written `4` or `4.0` (JSON has one number
/// type; JSON Schema's `integer` includes `4.0`), within `i32`.
fn whole_i32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
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

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
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
}

impl NewCampaign {
    pub fn named(name: impl Into<String>) -> Self {
        NewCampaign {
            name: name.into(),
            max_attempts: None,
            retry_interval_minutes: None,
            amd_mode: None,
            amd_wait_timeout_ms: None,
        }
    }

    /// `(max_attempts, retry_interval_minutes, amd_wait_timeout_ms)`, defaults applied.
    pub(crate) fn validated(&self) -> Result<(i32, i32, i32), StoreError> {
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
        Ok((max_attempts, interval, amd_wait))
    }
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewContact {
    pub phone_number: String,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub do_not_call: bool,
}

impl NewContact {
    pub fn phone(number: impl Into<String>) -> Self {
        NewContact { phone_number: number.into(), external_id: None, do_not_call: false }
    }

    /// E.164: `+`, a non-zero digit, then at most 14 more digits.
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        let digits = self.phone_number.strip_prefix('+').unwrap_or("");
        let ok =
            (2..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0');
        if !ok {
            // The value may be long or hold anything: name it, don't echo it whole.
            let shown: String = self.phone_number.chars().take(20).filter(|c| !c.is_control()).collect();
            return Err(StoreError::Invalid(format!("phone_number `{shown}` is not E.164")));
        }
        if let Some(id) = &self.external_id {
            if id.chars().count() > MAX_EXTERNAL_ID_CHARS || crate::text::has_control(id) {
                return Err(StoreError::Invalid(format!(
                    "external_id must be at most {MAX_EXTERNAL_ID_CHARS} characters without control characters"
                )));
            }
        }
        Ok(())
    }
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
}

impl NewAttempt {
    pub fn new(contact_id: Uuid, provider: Provider) -> Self {
        NewAttempt { contact_id, campaign_id: None, provider, call_id: None, provider_call_id: None, metadata: None }
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

#[derive(Debug, Clone, Serialize)]
pub struct Registered {
    pub attempt: Attempt,
    pub contact: Contact,
    /// Callbacks that had arrived before the registration and were applied by it.
    pub applied_deferred: usize,
    /// Outbox jobs those callbacks enqueued.
    #[serde(skip)]
    pub enqueued: usize,
}

/// What [`Store::record_event`](super::Store::record_event) did with a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordOutcome {
    /// Stored and moved the call forward.
    Applied,
    /// Stored; out of order, changed no state (a missing timestamp may be filled).
    Stale,
    /// Stored; the provider status is not one callhook recognises.
    Ignored,
    /// Stored; the call attempt is not registered yet.
    Deferred,
    /// Already stored: nothing written.
    Duplicate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub outcome: RecordOutcome,
    pub call_id: Option<String>,
    /// Outbox jobs written by this event's transaction.
    pub enqueued: usize,
}

/// Outbox health, for metrics and `outbox list`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxStats {
    pub pending: i64,
    pub dead: i64,
    pub done: i64,
    /// Answered human calls whose `dialogue.start` was never delivered (expired
    /// because the call ended first, or dead).
    pub dialogue_never_started: i64,
    pub oldest_pending_at: Option<DateTime<Utc>>,
}

/// A row of `telephony_events`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StoredEvent {
    pub id: Uuid,
    pub provider: Provider,
    pub dedupe_key: String,
    pub call_id: Option<String>,
    pub provider_call_id: String,
    pub event_type: Option<String>,
    pub provider_status: String,
    pub sequence_number: Option<i64>,
    pub occurred_at: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
    pub disposition: Disposition,
    #[schema(value_type = Object)]
    pub payload: Value,
    /// `callback`, or `reconcile` for what the provider's API told the reconciler.
    pub source: EventSource,
}

/// A row of `outbox`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct OutboxJob {
    pub id: Uuid,
    pub kind: String,
    pub idempotency_key: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    pub status: String,
    pub attempts: i32,
    pub next_run_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Jobs leased by one claim, all under one lease.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub lease: super::Lease,
    pub jobs: Vec<OutboxJob>,
}

/// An attempt the reconciler holds, and how many look-ups of it failed in a row.
#[derive(Debug, Clone)]
pub struct Quiet {
    pub attempt: Attempt,
    pub failures: i32,
}

/// Attempts leased by one reconciler claim, all under one lease.
#[derive(Debug, Clone)]
pub struct ClaimedAttempts {
    pub lease: super::Lease,
    pub attempts: Vec<Quiet>,
}

/// The reconciler's gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReconcileStats {
    /// Calls not finished and quiet longer than the reconciler waits.
    pub awaiting_reconciliation: i64,
    /// Contacts `in_progress` with no call in flight and no verdict still due: must be 0.
    pub stranded_contacts: i64,
}

/// A rule of `domain::stranded` the store applies to one attempt in a transaction.
#[derive(Debug, Clone, Copy)]
pub enum SettleRule {
    /// The dialogue's verdict did not come in time.
    VerdictTimeout,
    /// The provider never said how the call ended.
    GiveUp,
}

/// The instants the reconciler's rules compare with, computed from "now" and the
/// timeouts (see `domain::stranded::check`).
#[derive(Debug, Clone, Copy)]
pub struct Cutoffs {
    pub now: DateTime<Utc>,
    /// Calls not answered yet and quiet since before this are due.
    pub quiet: DateTime<Utc>,
    /// Answered calls quiet since before this are due.
    pub answered_quiet: DateTime<Utc>,
    /// Calls ended before this without a verdict are overdue.
    pub verdict: DateTime<Utc>,
}

impl Cutoffs {
    pub fn at(now: DateTime<Utc>, t: &Timeouts) -> Self {
        Cutoffs {
            now,
            quiet: now - t.reconcile_after,
            answered_quiet: now - t.max_call_duration,
            verdict: now - t.dialogue_outcome_timeout,
        }
    }
}

/// What `events replay` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    /// Deferred events looked at.
    pub examined: usize,
    /// Of those, events whose attempt now exists and that were applied.
    pub applied: usize,
}
