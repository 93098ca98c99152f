//! Inputs and outputs of the [`Store`](super::Store) trait.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::domain::stranded::Timeouts;
use crate::domain::{
    Attempt, Campaign, CampaignStatus, Contact, ContactState, Disposition, EventSource, Outcome, Provider,
};

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
    /// The provider account the callback came from, when known.
    pub account_sid: Option<String>,
}

/// What one retention run removed (`events prune`, `retention_days`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Inbox rows removed.
    pub events: i64,
    /// Monthly inbox partitions dropped whole (PostgreSQL).
    pub partitions_dropped: i64,
    /// Finished outbox jobs (`done`, `expired`) removed.
    pub jobs: i64,
    /// Inbox rows older than the cutoff kept because their call is still open
    /// or ended after the cutoff.
    pub kept_open: i64,
    /// Another replica was pruning: this run removed nothing.
    pub busy: bool,
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

/// `GET /api/v1/campaigns/{id}/stats`: where a campaign stands.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CampaignStats {
    pub campaign_id: Uuid,
    pub status: CampaignStatus,
    pub contacts: i64,
    /// Contacts per state; every state is present.
    pub by_state: std::collections::BTreeMap<String, i64>,
    /// Contacts per last outcome (`none`: no attempt finished yet).
    pub by_last_outcome: std::collections::BTreeMap<String, i64>,
    /// Contacts per number of attempts made (`"0"`, `"1"`, …).
    pub attempts_histogram: std::collections::BTreeMap<String, i64>,
    pub calls_in_flight: i64,
    pub max_concurrent_calls: Option<i32>,
    /// Contacts `completed` (the survey done) per contact, 0–1.
    pub completion_rate: f64,
    /// Contacts in a final state (`completed`, `refused`, `not_reached`,
    /// `excluded`) per contact, 0–1.
    pub finished_rate: f64,
}

impl CampaignStats {
    pub(crate) fn new(k: &Campaign) -> Self {
        CampaignStats {
            campaign_id: k.id,
            status: k.status,
            contacts: 0,
            by_state: ContactState::ALL.iter().map(|s| (s.as_str().to_owned(), 0)).collect(),
            by_last_outcome: std::collections::BTreeMap::new(),
            attempts_histogram: std::collections::BTreeMap::new(),
            calls_in_flight: 0,
            max_concurrent_calls: k.max_concurrent_calls,
            completion_rate: 0.0,
            finished_rate: 0.0,
        }
    }

    /// Folds in one group of `n` contacts.
    pub(crate) fn add(&mut self, state: ContactState, last_outcome: Option<Outcome>, attempts: i32, n: i64) {
        self.contacts += n;
        *self.by_state.entry(state.as_str().to_owned()).or_default() += n;
        *self.by_last_outcome.entry(last_outcome.map_or("none", Outcome::as_str).to_owned()).or_default() += n;
        *self.attempts_histogram.entry(attempts.to_string()).or_default() += n;
    }

    pub(crate) fn finish(&mut self) {
        if self.contacts == 0 {
            return;
        }
        let count = |s: ContactState| self.by_state.get(s.as_str()).copied().unwrap_or(0);
        let total = self.contacts as f64;
        self.completion_rate = count(ContactState::Completed) as f64 / total;
        let finished =
            [ContactState::Completed, ContactState::Refused, ContactState::NotReached, ContactState::Excluded];
        self.finished_rate = finished.into_iter().map(count).sum::<i64>() as f64 / total;
    }
}

/// A contact and its latest call, as the results export writes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContactResult {
    pub contact: Contact,
    pub last_call: Option<Attempt>,
}

/// What an upload of contacts did.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Uploaded {
    /// The contacts added, in the order given.
    pub contacts: Vec<Contact>,
    /// Rows not added because their phone number is in the campaign already (or
    /// earlier in the upload), with `on_duplicate: skip`.
    #[schema(value_type = Vec<Object>)]
    pub skipped: Vec<Value>,
}
