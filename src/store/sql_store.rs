//! [`SqlStore`]: the [`Store`] both backends share. A backend is a pool of
//! [`Dialect`] `D` plus the process's job signal and application clock; every
//! method is a transactional rule from [`flow`] or a statement from [`sql`].

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use uuid::Uuid;

use super::dialect::Dialect;
use super::flow;
use super::lease::Lease;
use super::sql::{attempts, contacts, events, outbox, reconcile};
use super::tx::Tx;
use super::types::{
    Claimed, ClaimedAttempts, Cutoffs, NewAttempt, NewCampaign, NewContact, OutboxJob, OutboxStats, Quiet,
    ReconcileStats, Recorded, Registered, ReplayReport, SettleRule, StoredEvent,
};
use super::{Store, StoreError, StoreResult};
use crate::clock::Clock;
use crate::domain::stranded::Timeouts;
use crate::domain::{Attempt, CallEvent, Campaign, Contact, ContactState, Outcome};

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

    async fn ping(&self) -> StoreResult<()> {
        super::sql::execute::<D>(&mut *self.conn().await?, "SELECT 1", []).await?;
        Ok(())
    }

    async fn record_event(&self, event: &CallEvent) -> StoreResult<Recorded> {
        let recorded = flow::record_event(self.begin().await?, event).await?;
        self.signal_jobs(recorded.enqueued);
        Ok(recorded)
    }

    async fn create_campaign(&self, new: NewCampaign) -> StoreResult<Campaign> {
        let (max_attempts, interval, amd_wait_timeout_ms) = new.validated()?;
        let campaign = Campaign {
            id: Uuid::new_v4(),
            name: new.name.trim().to_owned(),
            max_attempts,
            retry_interval_minutes: interval,
            created_at: self.clock.now(),
            amd_mode: new.amd_mode.unwrap_or(crate::domain::AmdMode::Off),
            amd_wait_timeout_ms,
        };
        contacts::insert_campaign::<D>(&mut *self.conn().await?, &campaign).await?;
        Ok(campaign)
    }

    async fn add_contacts(&self, campaign_id: Uuid, new: Vec<NewContact>) -> StoreResult<Vec<Contact>> {
        for c in &new {
            c.validate()?;
        }
        let mut tx = self.begin().await?;
        if contacts::campaign::<D>(tx.conn(), campaign_id).await?.is_none() {
            return Err(StoreError::NotFound(format!("campaign `{campaign_id}` not found")));
        }
        let now = flow::TxOps::now(&tx);
        let created: Vec<Contact> = new
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
                created_at: now,
                updated_at: now,
            })
            .collect();
        contacts::insert_many::<D>(tx.conn(), &created).await?;
        flow::TxOps::commit(tx).await?;
        Ok(created)
    }

    async fn register_attempt(&self, new: NewAttempt) -> StoreResult<Registered> {
        let registered = flow::register_attempt(self.begin().await?, new).await?;
        self.signal_jobs(registered.enqueued);
        Ok(registered)
    }

    async fn campaign(&self, id: Uuid) -> StoreResult<Option<Campaign>> {
        contacts::campaign::<D>(&mut *self.conn().await?, id).await
    }

    async fn contact(&self, id: Uuid) -> StoreResult<Option<Contact>> {
        contacts::by_id::<D>(&mut *self.conn().await?, id).await
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

    async fn reconcile_stats(&self, cutoffs: Cutoffs) -> StoreResult<ReconcileStats> {
        reconcile::stats::<D>(&mut *self.conn().await?, cutoffs).await
    }
}

/// A duration as the whole milliseconds the lease statements take.
fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
