//! The retention loop `serve` runs: every interval it keeps the inbox's monthly
//! partitions ahead of time (PostgreSQL) and, when `retention_days` is set,
//! prunes what retention may remove ([`Store::prune`]). Replicas may all run it:
//! a prune takes a lock that the others skip.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::Clock;
use crate::domain::retention::retention_cutoff;
use crate::store::{PruneReport, Store, StoreResult};
use crate::telemetry;

pub struct Retention {
    store: Arc<dyn Store>,
    days: Option<i64>,
    interval: Duration,
    clock: Clock,
}

impl Retention {
    pub fn new(store: Arc<dyn Store>, days: Option<i64>, interval: Duration, clock: Clock) -> Self {
        Retention { store, days, interval, clock }
    }

    /// One round: partitions ahead, then the prune if a retention is set.
    pub async fn round(&self) -> StoreResult<Option<PruneReport>> {
        // A failure here (e.g. a role without CREATE on the schema) must not stop
        // the prune: callbacks of a month without its partition go to the default
        // partition meanwhile, and the next round moves them.
        match self.store.ensure_partitions().await {
            Ok(0) => {}
            Ok(created) => tracing::info!(created, "created inbox partitions ahead"),
            Err(e) => tracing::error!(error = %e, "could not create the inbox partitions ahead; retried next round"),
        }
        let Some(days) = self.days else { return Ok(None) };
        let cutoff =
            retention_cutoff(self.clock.now(), days).map_err(|e| crate::store::StoreError::Invalid(e.to_string()))?;
        let report = self.store.prune(cutoff).await?;
        record(&report);
        if report.events + report.jobs + report.partitions_dropped > 0 {
            tracing::info!(%cutoff, ?report, "retention pruned");
        }
        Ok(Some(report))
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(days = ?self.days, interval = ?self.interval, "retention started");
        while !*shutdown.borrow() {
            if let Err(e) = self.round().await {
                tracing::warn!(error = %e, "retention round failed; retried next interval");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

/// Counts what a prune removed (`serve` and `events prune`).
pub fn record(report: &PruneReport) {
    let count = |v: i64| u64::try_from(v).unwrap_or(0);
    metrics::counter!(telemetry::RETENTION_EVENTS).increment(count(report.events));
    metrics::counter!(telemetry::RETENTION_PARTITIONS).increment(count(report.partitions_dropped));
    metrics::counter!(telemetry::RETENTION_JOBS).increment(count(report.jobs));
}
