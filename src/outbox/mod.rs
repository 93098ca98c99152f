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

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

pub use sinks::{HttpSink, LogSink, NatsSink, Sink, SinkError};

use crate::store::{OutboxJob, Store, StoreResult};

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
}

impl Round {
    pub fn claimed(&self) -> usize {
        self.delivered + self.retried + self.dead
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
                    tracing::warn!(error = %e, "outbox round failed");
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

    /// Claims one batch of due jobs and delivers them concurrently.
    pub async fn run_once(&self) -> StoreResult<Round> {
        let lease = chrono::Duration::from_std(self.config.lease).unwrap_or(chrono::Duration::seconds(30));
        let jobs = self.store.claim_jobs(self.config.batch, lease).await?;
        let mut deliveries = JoinSet::new();
        for job in jobs {
            let sink = self.sink.clone();
            deliveries.spawn(async move {
                let result = sink.deliver(&job).await;
                (job, result)
            });
        }
        let mut round = Round::default();
        let mut delivered = Vec::new();
        while let Some(joined) = deliveries.join_next().await {
            let Ok((job, result)) = joined else { continue };
            self.settle(&job, result, &mut round, &mut delivered).await?;
        }
        // One statement marks the whole round's deliveries done: under load the
        // dispatcher then waits for the shared pool twice a round, not once a job.
        self.store.complete_jobs(&delivered).await?;
        Ok(round)
    }

    async fn settle(
        &self,
        job: &OutboxJob,
        result: Result<(), SinkError>,
        round: &mut Round,
        delivered: &mut Vec<uuid::Uuid>,
    ) -> StoreResult<()> {
        let outcome = match &result {
            Ok(()) => "delivered",
            Err(_) if job.attempts >= self.config.max_attempts => "dead",
            Err(_) => "retried",
        };
        let (sink, kind) = (self.sink.name(), job.kind.clone());
        metrics::counter!(crate::telemetry::DISPATCH, "sink" => sink, "kind" => kind.clone(), "result" => outcome)
            .increment(1);
        if result.is_ok() {
            let lag = (chrono::Utc::now() - job.created_at).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6;
            metrics::histogram!(crate::telemetry::DISPATCH_LAG, "sink" => sink, "kind" => kind).record(lag);
        }
        match result {
            Ok(()) => {
                delivered.push(job.id);
                tracing::info!(job_id = %job.id, kind = %job.kind, sink = self.sink.name(), "job delivered");
                round.delivered += 1;
            }
            Err(e) if job.attempts >= self.config.max_attempts => {
                self.store.fail_job(job.id, &e.to_string(), None).await?;
                tracing::error!(job_id = %job.id, kind = %job.kind, attempts = job.attempts, error = %e, "job is dead");
                round.dead += 1;
            }
            Err(e) => {
                let delay = backoff(job.attempts, self.config.backoff_base, self.config.backoff_max);
                let retry_at = chrono::Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                self.store.fail_job(job.id, &e.to_string(), Some(retry_at)).await?;
                tracing::warn!(job_id = %job.id, kind = %job.kind, attempts = job.attempts, error = %e, ?delay, "delivery failed; will retry");
                round.retried += 1;
            }
        }
        Ok(())
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
