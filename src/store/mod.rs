//! Durable state: one [`Store`] trait with a PostgreSQL and an embedded SQLite
//! implementation, and the embedded migrations for each.
//!
//! The transactional rules (inbox insert, state transition, outbox rows, deferred
//! events) are written once in `flow`, over the small set of per-backend
//! statements in [`flow::TxOps`]; each backend only supplies its SQL.

mod batch;
mod dialect;
mod dialing;
mod error;
mod flow;
mod input;
pub mod lease;
mod postgres;
mod rows;
mod sql;
mod sql_store;
mod sqlite;
mod tx;
mod types;
mod upload;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::domain::{Attempt, CallEvent, Campaign, CampaignStatus, Contact, ContactState, Outcome, Provider};

pub use error::{StoreError, StoreResult};
pub use input::{
    normalise_phone, whole_i32, ContactPatch, NewAttempt, NewCampaign, NewContact, OnDuplicate,
    MAX_AMD_WAIT_TIMEOUT_MS, MAX_CONCURRENT_CALLS, MAX_EXTERNAL_ID_CHARS, MAX_METADATA_BYTES, MAX_NAME_CHARS,
    MAX_RETRY_INTERVAL_MINUTES,
};
pub use lease::Lease;
pub use postgres::PgStore;
pub use sql_store::SqlStore;
pub use sqlite::SqliteStore;
pub use types::{
    CampaignStats, Claimed, ClaimedAttempts, ContactResult, Cutoffs, OutboxJob, OutboxStats, PruneReport, Quiet,
    ReconcileStats, RecordOutcome, Recorded, Registered, ReplayReport, SettleRule, StoredEvent, Uploaded,
};

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `postgres` or `sqlite`.
    fn backend(&self) -> &'static str;
    /// Applies the embedded migrations.
    async fn migrate(&self) -> StoreResult<()>;
    /// Cheap reachability check for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;
    /// The application clock this store writes "now" with; the webhook reads it
    /// too, so a test or the demo can run the whole service on another clock.
    fn clock(&self) -> crate::clock::Clock;

    /// Records one callback in one transaction: inbox row (deduplicated), state
    /// transition and outbox jobs; or the inbox row alone as `deferred` when its
    /// call attempt is not registered yet.
    async fn record_event(&self, event: &CallEvent) -> StoreResult<Recorded>;
    /// Records several callbacks in one transaction where the backend can (group
    /// commit, PostgreSQL): per callback, what [`Store::record_event`] would have
    /// answered. `Err` when the transaction failed and nothing was committed: the
    /// caller then records each alone. Elsewhere, one transaction per callback.
    async fn record_events(&self, events: &[CallEvent]) -> StoreResult<Vec<StoreResult<Recorded>>> {
        Ok(record_one_by_one(self, events).await)
    }

    async fn create_campaign(&self, new: NewCampaign) -> StoreResult<Campaign>;
    /// Adds contacts, all or none: every row is checked (phone numbers normalised
    /// to E.164) and a phone number the campaign has already is refused with the
    /// rows listed, or skipped with `OnDuplicate::Skip`.
    async fn add_contacts(
        &self,
        campaign_id: Uuid,
        contacts: Vec<NewContact>,
        on_duplicate: OnDuplicate,
    ) -> StoreResult<Uploaded>;
    /// The dialer's step: creates an attempt for a contact (SPEC §1, §11 rules) and
    /// applies any callbacks that arrived before it, in the same transaction.
    async fn register_attempt(&self, new: NewAttempt) -> StoreResult<Registered>;
    /// Claims up to `limit` due contacts and registers an attempt for each (SPEC
    /// §11); concurrent claimers never receive the same contact.
    async fn claim_due(
        &self,
        campaign_id: Uuid,
        limit: usize,
        provider: Provider,
    ) -> StoreResult<(Campaign, Vec<Registered>)>;

    async fn campaign(&self, id: Uuid) -> StoreResult<Option<Campaign>>;
    /// Campaigns in creation order after the cursor (`created_at`, `id`).
    async fn campaigns(
        &self,
        status: Option<CampaignStatus>,
        after: Option<(chrono::DateTime<chrono::Utc>, Uuid)>,
        limit: i64,
    ) -> StoreResult<Vec<Campaign>>;
    /// Pauses, resumes or stops a campaign; `stopped` is final.
    async fn set_campaign_status(&self, id: Uuid, status: CampaignStatus) -> StoreResult<Campaign>;
    async fn campaign_stats(&self, id: Uuid) -> StoreResult<CampaignStats>;
    async fn contact(&self, id: Uuid) -> StoreResult<Option<Contact>>;
    /// A campaign's contacts in id order after `after`; optionally one state.
    async fn contacts(
        &self,
        campaign_id: Uuid,
        state: Option<ContactState>,
        after: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<Contact>>;
    /// Changes a contact's `do_not_call`, `timezone` or `external_id`.
    async fn update_contact(&self, id: Uuid, patch: ContactPatch) -> StoreResult<Contact>;
    /// Sets a contact `excluded`: never dialled again, never changed by a callback.
    async fn exclude_contact(&self, id: Uuid) -> StoreResult<Contact>;
    /// Contacts with their latest call, in id order after `after`.
    async fn results(&self, campaign_id: Uuid, after: Option<Uuid>, limit: i64) -> StoreResult<Vec<ContactResult>>;
    async fn attempt(&self, call_id: &str) -> StoreResult<Option<Attempt>>;
    /// A call's events in arrival order.
    async fn events_for_call(&self, call_id: &str) -> StoreResult<Vec<StoredEvent>>;
    /// Every stored event, newest last (bounded by `limit`).
    async fn events(&self, limit: i64) -> StoreResult<Vec<StoredEvent>>;
    /// Events received in `[since, until)` after `after` (received_at, id), oldest
    /// first: a page of `events export`.
    async fn events_between(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> StoreResult<Vec<StoredEvent>>;
    /// A contact's calls, first attempt first.
    async fn attempts_of_contact(&self, contact_id: Uuid) -> StoreResult<Vec<Attempt>>;
    /// The outbox jobs a call enqueued, oldest first.
    async fn jobs_of_call(&self, call_id: &str) -> StoreResult<Vec<OutboxJob>>;
    /// Calls quiet longer than the reconciler waits, quietest first.
    async fn quiet_calls(&self, cutoffs: Cutoffs, limit: i64) -> StoreResult<Vec<Attempt>>;
    /// Removes inbox rows and finished outbox jobs of calls that ended before
    /// `cutoff` (never of calls still open), in short transactions.
    async fn prune(&self, cutoff: DateTime<Utc>) -> StoreResult<PruneReport>;
    /// Creates the inbox partitions of this month and the next two (PostgreSQL;
    /// nothing on SQLite); how many were created.
    async fn ensure_partitions(&self) -> StoreResult<i64>;
    /// Outbox jobs, oldest first (bounded by `limit`).
    async fn outbox(&self, limit: i64) -> StoreResult<Vec<OutboxJob>>;
    /// The outbox jobs in `status`, oldest first (the limit applies after the filter).
    async fn outbox_in(&self, status: &str, limit: i64) -> StoreResult<Vec<OutboxJob>>;
    async fn outbox_stats(&self) -> StoreResult<OutboxStats>;

    /// The dialogue's verdict (`completed`/`refused`) on an answered call: sets the
    /// call outcome and contact state and enqueues `survey.completed`/`survey.refused`.
    /// Repeating the same verdict changes nothing.
    async fn record_outcome(&self, call_id: &str, outcome: Outcome) -> StoreResult<(Attempt, Contact)>;
    /// The dialer could not place a registered call: the attempt fails with the
    /// provider's `error_code`, the contact is retried (or not, for an invalid
    /// number). Refused once the provider has reported on the call.
    async fn dial_failed(
        &self,
        call_id: &str,
        error_code: &str,
        error_message: Option<&str>,
    ) -> StoreResult<(Attempt, Contact)>;
    /// Applies deferred events whose call attempt exists now.
    async fn replay_deferred(&self, limit: i64) -> StoreResult<ReplayReport>;

    /// Notified after every local commit that enqueued outbox jobs.
    fn jobs_signal(&self) -> Arc<Notify>;
    /// Also forward other replicas' commits to [`Store::jobs_signal`] (PostgreSQL
    /// `LISTEN`); a no-op where there are no other replicas.
    async fn listen_for_jobs(&self) -> StoreResult<()>;
    /// Leases up to `limit` due jobs for `lease` (measured by the database's clock);
    /// each claim counts as an attempt. A job whose lease ends (its dispatcher died
    /// or stalled) becomes claimable again.
    async fn claim_jobs(&self, limit: i64, lease: std::time::Duration) -> StoreResult<Claimed>;
    /// Marks delivered jobs done — those whose `lease` is still held (one statement
    /// for the batch); returns how many were. A job missing from the count was
    /// re-leased or settled by someone else, and is not touched.
    async fn complete_jobs(&self, lease: Lease, ids: &[Uuid]) -> StoreResult<usize>;
    /// Records a failed delivery under a held lease: due again after `retry_in`, or
    /// dead when `None`. `false` (and nothing written) when the lease was lost.
    async fn fail_job(
        &self,
        lease: Lease,
        id: Uuid,
        error: &str,
        retry_in: Option<std::time::Duration>,
    ) -> StoreResult<bool>;
    /// Makes a dead (or pending) job due now with a fresh attempt budget.
    async fn retry_job(&self, id: Uuid) -> StoreResult<bool>;

    // The reconciler (SPEC §9; `crate::reconcile`).

    /// Leases up to `limit` calls that are not finished and have been quiet since
    /// before the cutoffs, and are not backing off.
    async fn claim_quiet_attempts(
        &self,
        cutoffs: Cutoffs,
        limit: i64,
        lease: std::time::Duration,
    ) -> StoreResult<ClaimedAttempts>;
    /// Leases one call that is not finished, whatever its times.
    async fn claim_attempt(&self, call_id: &str, lease: std::time::Duration) -> StoreResult<Option<(Lease, Quiet)>>;
    /// Ends a reconciler's lease: not looked at again before `not_before`;
    /// `failed` counts a failed look-up. `false` when the lease was lost.
    async fn release_attempt(
        &self,
        lease: Lease,
        attempt_id: Uuid,
        not_before: Option<chrono::DateTime<chrono::Utc>>,
        failed: bool,
    ) -> StoreResult<bool>;
    /// Applies a verdict timeout or a give-up to a call, if it (still) applies at
    /// `now` (the reconciler's clock).
    async fn settle_attempt(
        &self,
        call_id: &str,
        rule: SettleRule,
        timeouts: crate::domain::stranded::Timeouts,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Option<(Attempt, Contact)>>;
    /// Calls whose verdict is overdue at `cutoffs`, oldest first.
    async fn verdict_overdue(&self, cutoffs: Cutoffs, limit: i64) -> StoreResult<Vec<String>>;
    /// Expires the pending `dialogue.start` jobs of calls that have ended.
    async fn expire_dialogue_starts(&self) -> StoreResult<u64>;
    /// Folds the statistics' delta rows of campaigns that have many (`sql::counts`).
    async fn fold_contact_counts(&self) -> StoreResult<usize>;
    /// Calls awaiting reconciliation and stranded contacts, at `cutoffs`.
    async fn reconcile_stats(&self, cutoffs: Cutoffs) -> StoreResult<ReconcileStats>;
}

/// Opens the store a database URL names: `postgres://…` or `sqlite:…`.
/// Each callback in a transaction of its own, in order.
pub(crate) async fn record_one_by_one<S: Store + ?Sized>(
    store: &S,
    events: &[CallEvent],
) -> Vec<StoreResult<Recorded>> {
    let mut answers = Vec::with_capacity(events.len());
    for event in events {
        answers.push(store.record_event(event).await);
    }
    answers
}

/// As [`connect`], without connecting yet (PostgreSQL only): for a service that
/// must start while its database is away.
pub fn connect_lazy(url: &str, max_connections: u32) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect_lazy(url, max_connections)?))
    } else {
        Err(StoreError::Invalid("only a PostgreSQL store can be opened before it answers".into()))
    }
}

pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url, max_connections).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else {
        Err(StoreError::Invalid(format!(
            "unsupported database URL `{}`: use postgres://… or sqlite:…",
            url.split("://").next().unwrap_or(url)
        )))
    }
}
