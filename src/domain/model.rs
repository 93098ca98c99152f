//! The records of SPEC §1 as plain values, shared by the state machine, the store and
//! the HTTP layer.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::retry::{Delays, RetryPolicy};
use super::vocab::{
    AmdMode, CallStatus, CampaignStatus, ContactState, EventSource, EventType, JobKind, Outcome, Provider, RetryKey,
};
use super::window::CallingWindow;

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Campaign {
    pub id: Uuid,
    pub name: String,
    pub max_attempts: i32,
    pub retry_interval_minutes: i32,
    pub created_at: DateTime<Utc>,
    pub amd_mode: AmdMode,
    /// `wait` mode: how long a dialogue start waits for a human verdict.
    pub amd_wait_timeout_ms: i32,
    /// IANA name; the calling window's zone for contacts without their own.
    pub timezone: String,
    /// Local `HH:MM`, inclusive.
    pub calling_window_start: String,
    /// Local `HH:MM`, exclusive.
    pub calling_window_end: String,
    /// ISO weekdays (1 = Monday … 7 = Sunday) on which contacts may be called.
    pub calling_days: Vec<u8>,
    /// Delays in minutes per reason (SPEC §11); `None`: every reason is retried
    /// after `retry_interval_minutes`.
    #[schema(value_type = Option<Object>)]
    pub retry_policy: Option<BTreeMap<RetryKey, Vec<i32>>>,
    /// Most calls in flight at once; `None`: no cap.
    pub max_concurrent_calls: Option<i32>,
    pub status: CampaignStatus,
}

impl Campaign {
    pub fn retry_policy(&self) -> RetryPolicy {
        let delays = match &self.retry_policy {
            Some(per_reason) => Delays::PerReason(per_reason.clone()),
            None => Delays::Uniform(Duration::minutes(i64::from(self.retry_interval_minutes))),
        };
        RetryPolicy { max_attempts: self.max_attempts, delays }
    }

    /// The calling window and zone. Both were validated when written, and rows
    /// are checked again when read (`store::rows`): the defaults are unreachable.
    pub fn schedule(&self) -> Schedule {
        Schedule {
            window: CallingWindow::parse(&self.calling_window_start, &self.calling_window_end, &self.calling_days)
                .unwrap_or_default(),
            timezone: self.timezone.parse().unwrap_or(Tz::UTC),
        }
    }

    /// Everything the state machine needs to know about the campaign.
    pub fn rules(&self) -> Rules {
        Rules {
            retry: self.retry_policy(),
            amd: AmdPolicy {
                mode: self.amd_mode,
                wait_timeout: Duration::milliseconds(i64::from(self.amd_wait_timeout_ms)),
            },
            schedule: self.schedule(),
        }
    }
}

/// A campaign's rules, as the state machine reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub retry: RetryPolicy,
    pub amd: AmdPolicy,
    pub schedule: Schedule,
}

/// When a campaign's contacts may be called (SPEC §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub window: CallingWindow,
    /// The campaign's zone, for contacts without their own.
    pub timezone: Tz,
}

impl Schedule {
    /// The zone a contact is called in: its own, else the campaign's.
    pub fn zone_for(&self, contact: &Contact) -> Tz {
        contact.timezone.as_deref().and_then(|z| z.parse().ok()).unwrap_or(self.timezone)
    }

    /// May `contact` be called at `at`?
    pub fn allows(&self, contact: &Contact, at: DateTime<Utc>) -> bool {
        self.window.allows(self.zone_for(contact), at)
    }

    /// The first instant at or after `earliest` when `contact` may be called.
    pub fn next_allowed(&self, contact: &Contact, earliest: DateTime<Utc>) -> DateTime<Utc> {
        self.window.next_allowed(self.zone_for(contact), earliest)
    }
}

/// What a campaign does about answering machines (SPEC §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmdPolicy {
    pub mode: AmdMode,
    pub wait_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Contact {
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub phone_number: String,
    pub external_id: Option<String>,
    pub state: ContactState,
    pub attempts_count: i32,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_outcome: Option<Outcome>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub do_not_call: bool,
    /// IANA name; `None`: the campaign's.
    pub timezone: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One dial of one contact: a row of `call_attempts`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    pub id: Uuid,
    pub call_id: String,
    pub campaign_id: Uuid,
    pub contact_id: Uuid,
    pub attempt_number: i32,
    pub provider: Provider,
    pub provider_call_id: Option<String>,
    pub status: CallStatus,
    /// The provider's own status word of the last applied event; `None` until the
    /// first callback, which is how a first `call.initiated` is told from a repeat.
    pub provider_raw_status: Option<String>,
    pub answered_by: Option<String>,
    pub started_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<i32>,
    pub outcome: Option<Outcome>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// When callhook last heard of the call: its registration or its latest
    /// callback. The reconciler looks up calls that stay quiet too long.
    pub last_event_at: DateTime<Utc>,
    /// The provider account the call was placed from (Twilio `AccountSid`), when known.
    pub account_sid: Option<String>,
}

/// One provider callback, verified and normalised by its adapter. It is written
/// to the outage spool as JSON and read back from it (`spool::Record`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallEvent {
    pub provider: Provider,
    /// Unique per distinct callback; a redelivery carries the same key.
    pub dedupe_key: String,
    /// `None` when the provider's status is not one callhook recognises: the event
    /// is stored and answered `ignored`, never applied.
    pub event_type: Option<EventType>,
    pub provider_status: String,
    pub provider_call_id: String,
    /// Correlation from the callback URL's query string.
    pub call_id: Option<String>,
    pub campaign_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub sequence_number: Option<i64>,
    pub occurred_at: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
    pub duration_seconds: Option<i32>,
    pub answered_by: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// Every field the provider sent, as received.
    pub payload: serde_json::Value,
    /// A callback, or what the reconciler learnt from the provider's API.
    pub source: EventSource,
    /// The provider account the callback came from: the account whose key verified
    /// it, or the account the body names (Twilio `AccountSid`, SignalWire project).
    /// Absent from records spooled before accounts were stored.
    #[serde(default)]
    pub account_sid: Option<String>,
    /// Accounts are configured for this callback's provider, so a callback of no
    /// account (verified by a key of no account) is not any account's: it cannot
    /// drive a call that has one. `false` in the single-account configuration.
    #[serde(default)]
    pub account_checked: bool,
}

impl CallEvent {
    /// When the event happened: the provider's timestamp, else when we received it.
    pub fn at(&self) -> DateTime<Utc> {
        self.occurred_at.unwrap_or(self.received_at)
    }

    /// Answering machine detection said a machine or fax picked up.
    pub fn answered_by_machine(&self) -> bool {
        self.answered_by.as_deref().is_some_and(is_machine)
    }
}

/// Twilio's AMD values (`machine_start`, `machine_end_beep`, …, `fax`); the other
/// providers' adapters normalise to the same words.
pub fn is_machine(answered_by: &str) -> bool {
    answered_by.starts_with("machine") || answered_by == "fax"
}

/// An outbox job to be written in the same transaction as the state change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewJob {
    pub kind: JobKind,
    /// Unique in the outbox, so a job can never be enqueued twice for one fact.
    pub idempotency_key: String,
    pub payload: serde_json::Value,
    /// Not deliverable before this much time has passed (the outbox's own
    /// scheduling: a dialogue start waiting for the answering-machine verdict).
    pub delay: Option<Duration>,
}

/// A change to a job written earlier, named by its idempotency key, made in the
/// same transaction as the state change. Only a pending job that no dispatcher
/// holds is changed; a job delivered (or being delivered) stays as it is.
#[derive(Debug, Clone, PartialEq)]
pub enum JobChange {
    /// Deliverable now (the human verdict a dialogue start waited for came).
    DueNow { idempotency_key: String },
    /// Never delivered: nothing left to do it for (`outbox.status = expired`).
    Expire { idempotency_key: String, reason: &'static str },
    /// Expire the job if it is still pending; if it was delivered (or is being
    /// delivered), enqueue `undo` instead — a dialogue started on an answering
    /// machine is cancelled exactly once, a dialogue not started yet never starts.
    Withdraw { idempotency_key: String, reason: &'static str, undo: NewJob },
}
