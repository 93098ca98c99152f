//! Delivery of outbox jobs (`dialogue.start`, `survey.*`) to the dialogue
//! orchestrator: at least once, with exponential backoff and jitter, dead after a
//! configured number of attempts.
//!
//! The dispatcher wakes at once when a job is committed (in-process signal; on
//! PostgreSQL also `LISTEN/NOTIFY`, so another replica's jobs wake it) and polls as
//! the fallback. Jobs are leased, not locked across the delivery: a dispatcher that
//! dies mid-delivery leaves a lease that expires, and the job is claimed again.
//! Receivers dedupe on the job id (`webhook-id`, `Nats-Msg-Id`).

mod sinks;
pub mod standard_webhooks;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{JoinError, JoinSet};

pub use sinks::{HttpSink, LogSink, NatsSink, Sink, SinkError};

use crate::store::{Claimed, Lease, OutboxJob, Store, StoreResult};

#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// Jobs claimed per round.
    pub batch: i64,
    /// How long a claim is exclusive; must exceed a delivery's timeout.
    pub lease: Duration,
    /// Polling interval when nothing signals new jobs.
    pub poll_interval: Duration,
    /// Deliveries tried before a job is dead.
    pub max_attempts: i32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        DispatcherConfig {
            batch: 32,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            max_attempts: 10,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(300),
        }
    }
}

/// Delay before the next try after `attempts` failed ones: `base · 2^(attempts-1)`,
/// capped, then scaled by a random factor in [0.5, 1.0] so that jobs failing
/// together do not retry in lockstep.
pub fn backoff(attempts: i32, base: Duration, max: Duration) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1)).unwrap_or(0).min(20);
    let full = base.saturating_mul(1 << exp).min(max);
    let jitter = (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 2000.0;
    full.mul_f64(0.5 + jitter)
}

pub struct Dispatcher {
    store: Arc<dyn Store>,
    sink: Arc<dyn Sink>,
    config: DispatcherConfig,
}

/// What one round did, for logs, tests and the CLI.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub delivered: usize,
    pub retried: usize,
    pub dead: usize,
    /// Deliveries whose settle did not stick: the lease had ended (another
    /// dispatcher may hold the job now) or the store refused the write. The job is
    /// left to whoever holds it, or claimed again when the lease ends.
    pub unsettled: usize,
    /// Deliveries whose task panicked; the job is retried when its lease ends.
    pub panicked: usize,
}

impl Round {
    pub fn claimed(&self) -> usize {
        self.delivered + self.retried + self.dead + self.unsettled + self.panicked
    }
}

impl Dispatcher {
    pub fn new(store: Arc<dyn Store>, sink: Arc<dyn Sink>, config: DispatcherConfig) -> Self {
        Dispatcher { store, sink, config }
    }

    /// Runs until `shutdown` turns true; a round in progress is finished first.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let signal = self.store.jobs_signal();
        if let Err(e) = self.store.listen_for_jobs().await {
            tracing::warn!(error = %e, "no cross-replica job notifications; relying on polling");
        }
        tracing::info!(sink = self.sink.name(), "outbox dispatcher started");
        while !*shutdown.borrow() {
            let round = match self.run_once().await {
                Ok(round) => round,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox claim failed");
                    Round::default()
                }
            };
            if round.claimed() as i64 >= self.config.batch {
                continue;
            }
            tokio::select! {
                _ = signal.notified() => {}
                _ = tokio::time::sleep(self.config.poll_interval) => {}
                _ = shutdown.changed() => {}
            }
        }
        tracing::info!("outbox dispatcher stopped");
    }

    /// Claims one batch of due jobs, delivers them concurrently, and settles each
    /// as its delivery finishes (those that finish together in one statement). A
    /// job's failure — its delivery, its settle, even a panic — is that job's alone.
    /// Only the claim itself can fail the round.
    pub async fn run_once(&self) -> StoreResult<Round> {
        let Claimed { lease, jobs } = self.store.claim_jobs(self.config.batch, self.config.lease).await?;
        let mut deliveries = JoinSet::new();
        // Which job each task carries, to name the job if its task panics.
        let mut in_flight = HashMap::new();
        for job in jobs {
            let (sink, limit) = (self.sink.clone(), self.config.lease);
            let carried = (job.id, job.kind.clone());
            let handle = deliveries.spawn(async move {
                // A delivery may not outlive its lease: past it, another dispatcher
                // may already be delivering the same job.
                let result = match tokio::time::timeout(limit, sink.deliver(&job)).await {
                    Ok(result) => result,
                    Err(_) => Err(SinkError(format!("delivery took longer than the {limit:?} lease"))),
                };
                (job, result)
            });
            in_flight.insert(handle.id(), carried);
        }
        let mut round = Round::default();
        while let Some(first) = deliveries.join_next_with_id().await {
            let mut finished = vec![first];
            while let Some(more) = deliveries.try_join_next_with_id() {
                finished.push(more);
            }
            let mut delivered = Vec::new();
            for joined in finished {
                match joined {
                    Ok((_, (job, Ok(())))) => delivered.push(job),
                    Ok((_, (job, Err(e)))) => self.settle_failure(lease, &job, e, &mut round).await,
                    Err(e) => self.record_panic(&e, &in_flight, &mut round),
                }
            }
            self.settle_delivered(lease, &delivered, &mut round).await;
        }
        Ok(round)
    }
    /// Marks delivered jobs done under the round's lease, in one statement.
    async fn settle_delivered(&self, lease: Lease, delivered: &[OutboxJob], round: &mut Round) {
        if delivered.is_empty() {
            return;
        }
        let ids: Vec<uuid::Uuid> = delivered.iter().map(|job| job.id).collect();
        let settled = match self.store.complete_jobs(lease, &ids).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, jobs = ids.len(), "could not mark delivered jobs done; they will be delivered again");
                0
            }
        };
        if settled < ids.len() {
            tracing::warn!(
                delivered = ids.len(),
                settled,
                "lease lost before delivered jobs were marked done; the lease's next holder settles them"
            );
        }
        round.delivered += settled.min(ids.len());
        round.unsettled += ids.len().saturating_sub(settled);
        for job in delivered {
            let lag = (chrono::Utc::now() - job.created_at).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6;
            metrics::histogram!(crate::telemetry::DISPATCH_LAG, "sink" => self.sink.name(), "kind" => job.kind.clone())
                .record(lag);
            // SPEC §12: how long the person who answered waited for the dialogue.
            let answered_at = job.payload.get("answered_at").and_then(|t| t.as_str());
            let answered_at = answered_at.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
            if let (true, Some(answered_at)) = (job.kind == "dialogue.start", answered_at) {
                let secs =
                    (chrono::Utc::now() - answered_at.to_utc()).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6;
                metrics::histogram!(crate::telemetry::ANSWER_TO_DIALOGUE, "sink" => self.sink.name()).record(secs);
            }
            tracing::info!(job_id = %job.id, kind = %job.kind, sink = self.sink.name(), "job delivered");
        }
        self.count(delivered.iter().map(|job| job.kind.clone()), "delivered");
    }

    /// Schedules a failed job's retry (or marks it dead) under the round's lease.
    async fn settle_failure(&self, lease: Lease, job: &OutboxJob, error: SinkError, round: &mut Round) {
        let dead = job.attempts >= self.config.max_attempts;
        let retry_in = (!dead).then(|| backoff(job.attempts, self.config.backoff_base, self.config.backoff_max));
        match self.store.fail_job(lease, job.id, &error.to_string(), retry_in).await {
            Ok(true) if dead => {
                tracing::error!(job_id = %job.id, kind = %job.kind, attempts = job.attempts, error = %error, "job is dead");
                round.dead += 1;
                self.count([job.kind.clone()], "dead");
            }
            Ok(true) => {
                tracing::warn!(job_id = %job.id, kind = %job.kind, attempts = job.attempts, error = %error, delay = ?retry_in, "delivery failed; will retry");
                round.retried += 1;
                self.count([job.kind.clone()], "retried");
            }
            Ok(false) => {
                tracing::warn!(job_id = %job.id, kind = %job.kind, error = %error, "delivery failed after its lease ended; left to the lease's next holder");
                round.unsettled += 1;
                self.count([job.kind.clone()], "unsettled");
            }
            Err(e) => {
                tracing::error!(job_id = %job.id, kind = %job.kind, error = %e, "could not record a failed delivery; retried when its lease ends");
                round.unsettled += 1;
                self.count([job.kind.clone()], "unsettled");
            }
        }
    }

    fn record_panic(
        &self,
        error: &JoinError,
        in_flight: &HashMap<tokio::task::Id, (uuid::Uuid, String)>,
        round: &mut Round,
    ) {
        let (job_id, kind) = in_flight.get(&error.id()).cloned().unwrap_or_default();
        tracing::error!(%job_id, %kind, sink = self.sink.name(), error = %error, "delivery task panicked; the job is retried when its lease ends");
        metrics::counter!(crate::telemetry::DISPATCH_PANICS, "sink" => self.sink.name(), "kind" => kind.clone())
            .increment(1);
        round.panicked += 1;
        self.count([kind], "panicked");
    }

    fn count(&self, kinds: impl IntoIterator<Item = String>, result: &'static str) {
        for kind in kinds {
            metrics::counter!(crate::telemetry::DISPATCH, "sink" => self.sink.name(), "kind" => kind, "result" => result)
                .increment(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_within_jitter_and_cap() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(10);
        for attempts in 1..=12 {
            let full = base.saturating_mul(1 << (attempts - 1)).min(max);
            let d = backoff(attempts, base, max);
            assert!(d >= full / 2 && d <= full, "attempt {attempts}: {d:?} not in [{:?}, {full:?}]", full / 2);
        }
        assert!(backoff(100, base, max) <= max);
    }
}
