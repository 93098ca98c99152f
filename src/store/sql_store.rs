//! [`SqlStore`]: the [`Store`] both backends share. A backend is a pool of
//! [`Dialect`] `D` plus the process's job signal and application clock; every
//! method is a transactional rule from [`flow`] or a statement from [`sql`].

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use uuid::Uuid;

use super::dialect::Dialect;
use super::dialing;
use super::flow;
use super::input::{ContactPatch, NewAttempt, NewCampaign, NewContact, OnDuplicate};
use super::lease::Lease;
use super::sql::{attempts, campaigns, contacts, events, outbox, reconcile, retention, views};
use super::tx::Tx;
use super::types::{
    CampaignStats, Claimed, ClaimedAttempts, ContactResult, Cutoffs, OutboxJob, OutboxStats, PruneReport, Quiet,
    ReconcileStats, Recorded, Registered, ReplayReport, SettleRule, StoredEvent, Uploaded,
};
use super::{Store, StoreError, StoreResult};
use crate::clock::Clock;
use crate::domain::stranded::Timeouts;
use crate::domain::{Attempt, CallEvent, Campaign, CampaignStatus, Contact, ContactState, Outcome, Provider};

/// A store over a pool of backend `D` ([`super::PgStore`], [`super::SqliteStore`]).
pub struct SqlStore<D: sqlx::Database> {
    pub(super) pool: sqlx::Pool<D>,
    /// Woken after every local commit that enqueued jobs.
    jobs: Arc<Notify>,
    clock: Clock,
}

impl<D: sqlx::Database> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        SqlStore { pool: self.pool.clone(), jobs: self.jobs.clone(), clock: self.clock.clone() }
    }
}

impl<D: sqlx::Database> SqlStore<D> {
    pub(super) fn new(pool: sqlx::Pool<D>) -> Self {
        SqlStore { pool, jobs: Arc::new(Notify::new()), clock: Clock::system() }
    }

    pub fn pool(&self) -> &sqlx::Pool<D> {
        &self.pool
    }

    /// The same store (pool and job signal) reading another application clock:
    /// tests simulate time passing, or a replica whose clock is wrong.
    pub fn with_clock(&self, clock: Clock) -> Self {
        SqlStore { clock, ..self.clone() }
    }
}

impl<D: Dialect> SqlStore<D> {
    async fn begin(&self) -> StoreResult<Tx<D>> {
        Tx::begin(&self.pool, self.clock.now()).await
    }

    async fn conn(&self) -> StoreResult<sqlx::pool::PoolConnection<D>> {
        Ok(self.pool.acquire().await?)
    }

    /// Wakes this process's dispatcher after a commit that enqueued jobs.
    fn signal_jobs(&self, enqueued: usize) {
        if enqueued > 0 {
            self.jobs.notify_one();
        }
    }
}

#[async_trait]
impl<D: Dialect> Store for SqlStore<D> {
    fn backend(&self) -> &'static str {
        D::BACKEND
    }

    async fn migrate(&self) -> StoreResult<()> {
        D::migrate(&self.pool).await
    }

    fn clock(&self) -> Clock {
        self.clock.clone()
    }

    async fn ping(&self) -> StoreResult<()> {
        match super::sql::fetch_optional::<D>(&mut *self.conn().await?, D::PING, []).await? {
            Some(_) => Ok(()),
            None => Err(super::StoreError::Unavailable("the database is a read-only standby (in recovery)".into())),
        }
    }

    async fn record_event(&self, event: &CallEvent) -> StoreResult<Recorded> {
        let recorded = flow::record_event(self.begin().await?, event).await?;
        self.signal_jobs(recorded.enqueued);
        Ok(recorded)
    }

    async fn record_events(&self, events: &[CallEvent]) -> StoreResult<Vec<StoreResult<Recorded>>> {
        if !D::TRANSACTION_ABORTS_ON_ERROR {
            return Ok(super::record_one_by_one(self, events).await);
        }
        let batched = super::batch::record_batch(self.begin().await?, events).await?;
        let mut answers = Vec::with_capacity(events.len());
        for (event, answer) in events.iter().zip(batched) {
            // Left out of the batch (see `record_batch`): alone, after its commit.
            answers.push(match answer {
                Some(answer) => answer,
                None => self.record_event(event).await,
            });
        }
        self.signal_jobs(answers.iter().flatten().map(|r| r.enqueued).sum());
        Ok(answers)
    }

    async fn create_campaign(&self, new: NewCampaign) -> StoreResult<Campaign> {
        let campaign = new.into_campaign(Uuid::new_v4(), self.clock.now())?;
        campaigns::insert::<D>(&mut *self.conn().await?, &campaign).await?;
        Ok(campaign)
    }

    async fn add_contacts(
        &self,
        campaign_id: Uuid,
        new: Vec<NewContact>,
        on_duplicate: OnDuplicate,
    ) -> StoreResult<Uploaded> {
        let mut rows = Vec::with_capacity(new.len());
        let mut problems = Vec::new();
        for (row, contact) in new.into_iter().enumerate() {
            match contact.normalised() {
                Ok(contact) => rows.push((row, contact)),
                Err(e) => problems.push(super::upload::problem(row, e)),
            }
        }
        if !problems.is_empty() {
            return Err(super::upload::refused(problems));
        }
        let mut tx = self.begin().await?;
        if campaigns::get::<D>(tx.conn(), campaign_id).await?.is_none() {
            return Err(StoreError::NotFound(format!("campaign `{campaign_id}` not found")));
        }
        let phones: Vec<&str> = rows.iter().map(|(_, c)| c.phone_number.as_str()).collect();
        let stored = contacts::existing_phones::<D>(tx.conn(), campaign_id, &phones).await?;
        let (rows, skipped) = super::upload::without_duplicates(rows, stored, on_duplicate)?;
        let now = flow::TxOps::now(&tx);
        let created: Vec<Contact> = rows
            .into_iter()
            .map(|c| Contact {
                id: Uuid::new_v4(),
                campaign_id,
                phone_number: c.phone_number,
                external_id: c.external_id,
                state: ContactState::Pending,
                attempts_count: 0,
                last_attempt_at: None,
                last_outcome: None,
                next_attempt_at: None,
                do_not_call: c.do_not_call,
                timezone: c.timezone,
                created_at: now,
                updated_at: now,
            })
            .collect();
        contacts::insert_many::<D>(tx.conn(), &created).await.map_err(super::upload::raced)?;
        flow::TxOps::commit(tx).await?;
        Ok(Uploaded { contacts: created, skipped })
    }

    async fn register_attempt(&self, new: NewAttempt) -> StoreResult<Registered> {
        let registered = dialing::register_attempt(self.begin().await?, new).await?;
        self.signal_jobs(registered.enqueued);
        Ok(registered)
    }

    async fn claim_due(
        &self,
        campaign_id: Uuid,
        limit: usize,
        provider: Provider,
    ) -> StoreResult<(Campaign, Vec<Registered>)> {
        dialing::claim(self.begin().await?, campaign_id, limit, provider).await
    }

    async fn campaign(&self, id: Uuid) -> StoreResult<Option<Campaign>> {
        campaigns::get::<D>(&mut *self.conn().await?, id).await
    }

    async fn campaigns(
        &self,
        status: Option<CampaignStatus>,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> StoreResult<Vec<Campaign>> {
        campaigns::list::<D>(&mut *self.conn().await?, status, after, limit).await
    }

    async fn set_campaign_status(&self, id: Uuid, status: CampaignStatus) -> StoreResult<Campaign> {
        let mut tx = self.begin().await?;
        flow::TxOps::lock(&mut tx, &contacts::campaign_lock(id)).await?;
        let mut campaign = campaigns::get::<D>(tx.conn(), id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("campaign `{id}` not found")))?;
        if campaign.status == status {
            return Ok(campaign);
        }
        if campaign.status == CampaignStatus::Stopped {
            return Err(StoreError::conflict("campaign_stopped", format!("campaign `{id}` is stopped for good")));
        }
        campaigns::set_status::<D>(tx.conn(), id, status).await?;
        flow::TxOps::commit(tx).await?;
        campaign.status = status;
        Ok(campaign)
    }

    async fn campaign_stats(&self, id: Uuid) -> StoreResult<CampaignStats> {
        let mut conn = self.conn().await?;
        let campaign = campaigns::get::<D>(&mut conn, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("campaign `{id}` not found")))?;
        campaigns::stats::<D>(&mut conn, &campaign).await
    }

    async fn contact(&self, id: Uuid) -> StoreResult<Option<Contact>> {
        contacts::by_id::<D>(&mut *self.conn().await?, id).await
    }

    async fn contacts(
        &self,
        campaign_id: Uuid,
        state: Option<ContactState>,
        after: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<Contact>> {
        contacts::list::<D>(&mut *self.conn().await?, campaign_id, state, after, limit).await
    }

    async fn update_contact(&self, id: Uuid, patch: ContactPatch) -> StoreResult<Contact> {
        patch.check()?;
        let mut tx = self.begin().await?;
        let (mut contact, campaign) = contacts::with_campaign::<D>(tx.conn(), id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("contact `{id}` not found")))?;
        if patch.apply_to(&mut contact) {
            // A retry scheduled in the old zone is moved into the new zone's window.
            if let Some(due) = contact.next_attempt_at.filter(|_| contact.state == ContactState::Pending) {
                contact.next_attempt_at = Some(campaign.schedule().next_allowed(&contact, due));
            }
        }
        contact.updated_at = flow::TxOps::now(&tx);
        contacts::update::<D>(tx.conn(), &contact).await?;
        flow::TxOps::commit(tx).await?;
        Ok(contact)
    }

    async fn exclude_contact(&self, id: Uuid) -> StoreResult<Contact> {
        let mut tx = self.begin().await?;
        let (mut contact, _) = contacts::with_campaign::<D>(tx.conn(), id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("contact `{id}` not found")))?;
        match contact.state {
            ContactState::Excluded => return Ok(contact),
            ContactState::Completed | ContactState::Refused => {
                return Err(StoreError::conflict(
                    "contact_closed",
                    format!("contact `{id}` is {}: its result is kept", contact.state),
                ));
            }
            _ => {}
        }
        contact.state = ContactState::Excluded;
        contact.next_attempt_at = None;
        contact.updated_at = flow::TxOps::now(&tx);
        contacts::update::<D>(tx.conn(), &contact).await?;
        flow::TxOps::commit(tx).await?;
        Ok(contact)
    }

    async fn results(&self, campaign_id: Uuid, after: Option<Uuid>, limit: i64) -> StoreResult<Vec<ContactResult>> {
        contacts::results::<D>(&mut *self.conn().await?, campaign_id, after, limit).await
    }

    async fn attempt(&self, call_id: &str) -> StoreResult<Option<Attempt>> {
        attempts::by_call_id::<D>(&mut *self.conn().await?, call_id).await
    }

    async fn events_for_call(&self, call_id: &str) -> StoreResult<Vec<StoredEvent>> {
        events::for_call::<D>(&mut *self.conn().await?, call_id).await
    }

    async fn events(&self, limit: i64) -> StoreResult<Vec<StoredEvent>> {
        events::list::<D>(&mut *self.conn().await?, limit).await
    }

    async fn events_between(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: i64,
    ) -> StoreResult<Vec<StoredEvent>> {
        retention::between::<D>(&mut *self.conn().await?, since, until, after, limit).await
    }

    async fn attempts_of_contact(&self, contact_id: Uuid) -> StoreResult<Vec<Attempt>> {
        views::attempts_of_contact::<D>(&mut *self.conn().await?, contact_id).await
    }

    async fn jobs_of_call(&self, call_id: &str) -> StoreResult<Vec<OutboxJob>> {
        views::jobs_of_call::<D>(&mut *self.conn().await?, call_id).await
    }

    async fn quiet_calls(&self, cutoffs: Cutoffs, limit: i64) -> StoreResult<Vec<Attempt>> {
        views::quiet_calls::<D>(&mut *self.conn().await?, cutoffs, limit).await
    }

    async fn prune(&self, cutoff: DateTime<Utc>) -> StoreResult<PruneReport> {
        retention::prune::<D>(&mut *self.conn().await?, cutoff).await
    }

    async fn ensure_partitions(&self) -> StoreResult<i64> {
        retention::ensure_partitions::<D>(&mut *self.conn().await?, self.clock.now()).await
    }

    async fn outbox(&self, limit: i64) -> StoreResult<Vec<OutboxJob>> {
        outbox::list::<D>(&mut *self.conn().await?, None, limit).await
    }

    async fn outbox_in(&self, status: &str, limit: i64) -> StoreResult<Vec<OutboxJob>> {
        outbox::list::<D>(&mut *self.conn().await?, Some(status), limit).await
    }

    async fn outbox_stats(&self) -> StoreResult<OutboxStats> {
        outbox::stats::<D>(&mut *self.conn().await?).await
    }

    async fn record_outcome(&self, call_id: &str, outcome: Outcome) -> StoreResult<(Attempt, Contact)> {
        let (attempt, contact, enqueued) = flow::record_outcome(self.begin().await?, call_id, outcome).await?;
        self.signal_jobs(usize::from(enqueued));
        Ok((attempt, contact))
    }

    async fn dial_failed(
        &self,
        call_id: &str,
        error_code: &str,
        error_message: Option<&str>,
    ) -> StoreResult<(Attempt, Contact)> {
        let (attempt, contact, enqueued) =
            flow::dial_failed(self.begin().await?, call_id, error_code, error_message).await?;
        self.signal_jobs(enqueued);
        Ok((attempt, contact))
    }

    async fn replay_deferred(&self, limit: i64) -> StoreResult<ReplayReport> {
        let waiting = events::deferred::<D>(&mut *self.conn().await?, limit).await?;
        let mut report = ReplayReport { examined: waiting.len(), applied: 0 };
        for event in waiting {
            if let Some(enqueued) = flow::replay_deferred(self.begin().await?, event).await? {
                report.applied += 1;
                self.signal_jobs(enqueued);
            }
        }
        Ok(report)
    }

    fn jobs_signal(&self) -> Arc<Notify> {
        self.jobs.clone()
    }

    async fn listen_for_jobs(&self) -> StoreResult<()> {
        D::listen_for_jobs(&self.pool, self.jobs.clone()).await
    }

    async fn claim_jobs(&self, limit: i64, lease: std::time::Duration) -> StoreResult<Claimed> {
        let taken = Lease::new();
        let jobs = outbox::claim::<D>(&mut *self.conn().await?, limit, millis(lease), taken).await?;
        Ok(Claimed { lease: taken, jobs })
    }

    async fn complete_jobs(&self, lease: Lease, ids: &[Uuid]) -> StoreResult<usize> {
        let done = outbox::complete::<D>(&mut *self.conn().await?, lease, ids).await?;
        Ok(usize::try_from(done).unwrap_or(usize::MAX))
    }

    async fn fail_job(
        &self,
        lease: Lease,
        id: Uuid,
        error: &str,
        retry_in: Option<std::time::Duration>,
    ) -> StoreResult<bool> {
        let retry_in_ms = retry_in.map(millis);
        outbox::fail::<D>(&mut *self.conn().await?, lease, id, error, retry_in_ms).await
    }

    async fn retry_job(&self, id: Uuid) -> StoreResult<bool> {
        let retried = outbox::retry::<D>(&mut *self.conn().await?, id).await?;
        self.signal_jobs(usize::from(retried));
        Ok(retried)
    }

    async fn claim_quiet_attempts(
        &self,
        cutoffs: Cutoffs,
        limit: i64,
        lease: std::time::Duration,
    ) -> StoreResult<ClaimedAttempts> {
        let taken = Lease::new();
        let attempts =
            reconcile::claim_quiet::<D>(&mut *self.conn().await?, cutoffs, limit, millis(lease), taken).await?;
        Ok(ClaimedAttempts { lease: taken, attempts })
    }

    async fn claim_attempt(&self, call_id: &str, lease: std::time::Duration) -> StoreResult<Option<(Lease, Quiet)>> {
        let taken = Lease::new();
        let claimed = reconcile::claim_one::<D>(&mut *self.conn().await?, call_id, millis(lease), taken).await?;
        Ok(claimed.map(|quiet| (taken, quiet)))
    }

    async fn release_attempt(
        &self,
        lease: Lease,
        attempt_id: Uuid,
        not_before: Option<DateTime<Utc>>,
        failed: bool,
    ) -> StoreResult<bool> {
        reconcile::release::<D>(&mut *self.conn().await?, lease, attempt_id, not_before, failed).await
    }

    async fn settle_attempt(
        &self,
        call_id: &str,
        rule: SettleRule,
        timeouts: Timeouts,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(Attempt, Contact)>> {
        let settled = flow::settle(self.begin().await?, call_id, rule, &timeouts, now).await?;
        Ok(settled.map(|(attempt, contact, enqueued)| {
            self.signal_jobs(enqueued);
            (attempt, contact)
        }))
    }

    async fn verdict_overdue(&self, cutoffs: Cutoffs, limit: i64) -> StoreResult<Vec<String>> {
        reconcile::verdict_overdue::<D>(&mut *self.conn().await?, cutoffs.verdict, limit).await
    }

    async fn expire_dialogue_starts(&self) -> StoreResult<u64> {
        reconcile::expire_dialogue_starts::<D>(&mut *self.conn().await?).await
    }

    async fn fold_contact_counts(&self) -> StoreResult<usize> {
        super::sql::counts::fold_all::<D>(&mut *self.conn().await?).await
    }

    async fn reconcile_stats(&self, cutoffs: Cutoffs) -> StoreResult<ReconcileStats> {
        reconcile::stats::<D>(&mut *self.conn().await?, cutoffs).await
    }
}

/// A duration as the whole milliseconds the lease statements take.
fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
