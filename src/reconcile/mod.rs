//! The reconciler (SPEC §4 "No stranded contact", §9): the loop that makes sure no
//! call stays unfinished and no contact stays `in_progress` because a callback was
//! lost, late, or never subscribed.
//!
//! One pass, every `reconcile_interval` inside `serve` (or once with
//! `callhook reconcile --once`):
//! 1. applies deferred events whose attempt exists now;
//! 2. settles answered calls whose dialogue verdict is overdue (`no_dialogue_outcome`);
//! 3. leases the calls that have been quiet too long (fenced leases, so replicas
//!    never look up the same call at once), asks the provider's REST API how each
//!    went, and applies the answer as an event with `source = reconcile` through the
//!    same exactly-once path as a callback, under the dedupe key the callback would
//!    have had; a provider that does not know the call, or keeps failing, is asked
//!    again with backoff until `reconcile_give_up_after`, then the call is settled as
//!    `failed` / `reconcile_gave_up`;
//! 4. expires the `dialogue.start` jobs of calls that ended before delivery.

mod config;
mod event;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

pub use config::ReconcileArgs;
pub use event::{reconcile_dedupe_key, to_event};

use crate::clock::Clock;
use crate::domain::stranded::Timeouts;
use crate::domain::Provider;
use crate::providers::api::{ApiError, CallApi, CallSnapshot};
use crate::store::{Cutoffs, Lease, Quiet, RecordOutcome, SettleRule, Store, StoreResult};

#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    /// Time between passes.
    pub interval: Duration,
    pub timeouts: Timeouts,
    /// Calls leased per claim.
    pub batch: i64,
    /// How long a claimed call is exclusive; above the API clients' timeout.
    pub lease: Duration,
    /// The longest wait between two look-ups of a call the provider fails on.
    pub max_backoff: Duration,
}

impl Default for ReconcilerConfig {
    fn default() -> Self {
        ReconcilerConfig {
            interval: Duration::from_secs(60),
            timeouts: Timeouts::default(),
            batch: 50,
            lease: Duration::from_secs(60),
            max_backoff: Duration::from_secs(3600),
        }
    }
}

/// What one look-up of one call came to (the `result` label of the metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Looked {
    /// The provider's answer moved the call forward.
    Applied,
    /// The provider said what callhook already knew (a callback got there first).
    Known,
    /// The call is still going on; asked again later.
    Live,
    /// The provider could not tell (unknown call, error); asked again later.
    Failed,
    /// Still not settled after `reconcile_give_up_after`: settled as failed.
    GaveUp,
}

impl Looked {
    pub fn as_str(self) -> &'static str {
        match self {
            Looked::Applied => "applied",
            Looked::Known => "known",
            Looked::Live => "live",
            Looked::Failed => "failed",
            Looked::GaveUp => "gave_up",
        }
    }
}

/// What a pass did, for logs, tests and the CLI.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    pub deferred_applied: usize,
    pub verdict_timeouts: usize,
    /// Look-ups by result.
    pub looked: HashMap<&'static str, usize>,
    pub expired_starts: u64,
}

impl Pass {
    pub fn looked(&self, result: Looked) -> usize {
        self.looked.get(result.as_str()).copied().unwrap_or(0)
    }

    /// One line for the CLI.
    pub fn summary(&self) -> String {
        let results = [Looked::Applied, Looked::Known, Looked::Live, Looked::Failed, Looked::GaveUp];
        let looked: Vec<String> = results.iter().map(|r| format!("{} {}", self.looked(*r), r.as_str())).collect();
        format!(
            "looked up: {}; verdict timeouts: {}; deferred events applied: {}; dialogue starts expired: {}",
            looked.join(", "),
            self.verdict_timeouts,
            self.deferred_applied,
            self.expired_starts
        )
    }
}

/// Asks about a call with its account's client: a call placed from a known account
/// only ever with that account's credentials (another account's would be told
/// 404, and the call given up). A call whose account is not known yet (no
/// callback named it) is asked of each account in turn until one knows it.
async fn fetch(apis: &[Arc<dyn CallApi>], account: Option<&str>, pcid: &str) -> Result<CallSnapshot, ApiError> {
    if let Some(account) = account {
        let api = apis
            .iter()
            .find(|api| api.account().is_none_or(|a| a == account))
            .ok_or(ApiError::NotConfigured("no REST credentials for this call's account"))?;
        return api.fetch_call(pcid).await;
    }
    for api in apis {
        match api.fetch_call(pcid).await {
            Err(ApiError::NotFound) => continue,
            other => return other,
        }
    }
    Err(ApiError::NotFound)
}

pub struct Reconciler {
    store: Arc<dyn Store>,
    /// Each provider's clients, one per account.
    apis: HashMap<Provider, Vec<Arc<dyn CallApi>>>,
    config: ReconcilerConfig,
    clock: Clock,
    /// This replica's outage spool: callbacks in it have not reached the store yet.
    spool: Option<Arc<crate::spool::Spool>>,
}

impl Reconciler {
    pub fn new(store: Arc<dyn Store>, apis: Vec<Arc<dyn CallApi>>, config: ReconcilerConfig, clock: Clock) -> Self {
        let mut by_provider: HashMap<Provider, Vec<Arc<dyn CallApi>>> = HashMap::new();
        for api in apis {
            by_provider.entry(api.provider()).or_default().push(api);
        }
        let apis = by_provider;
        Reconciler { store, apis, config, clock, spool: None }
    }

    /// Waits for `spool`: no pass while the store is seen away or the spool holds
    /// records, since a call quiet in the store may have its callbacks spooled
    /// (asking the provider about it would cost API calls and settle it from the
    /// API before its own events arrive).
    pub fn with_spool(mut self, spool: Option<Arc<crate::spool::Spool>>) -> Self {
        self.spool = spool;
        self
    }

    /// Why this replica's outage spool holds the passes back, if it does.
    fn spool_pending(&self, now: std::time::Instant) -> Option<String> {
        self.spool.as_ref()?.holds_back_reconciliation(now)
    }

    /// Runs a pass every `interval` until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let configured: Vec<&str> = self.apis.keys().map(|p| p.as_str()).collect();
        tracing::info!(providers = ?configured, interval = ?self.config.interval, "reconciler started");
        while !*shutdown.borrow() {
            match self.spool_pending(std::time::Instant::now()) {
                Some(why) => tracing::info!(%why, "reconcile pass postponed until the outage spool is drained"),
                None => match self.pass().await {
                    Ok(pass) => tracing::debug!(?pass, "reconcile pass"),
                    Err(e) => tracing::warn!(error = %e, "reconcile pass failed; retried next interval"),
                },
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.interval) => {}
                _ = shutdown.changed() => {}
            }
        }
        tracing::info!("reconciler stopped");
    }

    /// One pass over everything that is due now.
    pub async fn pass(&self) -> StoreResult<Pass> {
        let mut pass = Pass { deferred_applied: self.store.replay_deferred(500).await?.applied, ..Pass::default() };
        let cutoffs = Cutoffs::at(self.clock.now(), &self.config.timeouts);
        for call_id in self.store.verdict_overdue(cutoffs, 500).await? {
            let settled =
                self.store.settle_attempt(&call_id, SettleRule::VerdictTimeout, self.config.timeouts, cutoffs.now);
            if settled.await?.is_some() {
                tracing::info!(%call_id, "no dialogue verdict in time: call failed (no_dialogue_outcome)");
                metrics::counter!(crate::telemetry::VERDICT_TIMEOUTS).increment(1);
                pass.verdict_timeouts += 1;
            }
        }
        loop {
            let cutoffs = Cutoffs::at(self.clock.now(), &self.config.timeouts);
            let claimed = self.store.claim_quiet_attempts(cutoffs, self.config.batch, self.config.lease).await?;
            let n = claimed.attempts.len();
            for quiet in claimed.attempts {
                let looked = self.look_up(claimed.lease, quiet).await;
                *pass.looked.entry(looked.as_str()).or_default() += 1;
            }
            if (n as i64) < self.config.batch {
                break;
            }
        }
        pass.expired_starts = self.store.expire_dialogue_starts().await?;
        if pass.expired_starts > 0 {
            tracing::info!(jobs = pass.expired_starts, "dialogue.start of ended calls expired");
        }
        // Keeps campaign statistics cheap for campaigns nobody reads for a while.
        self.store.fold_contact_counts().await?;
        Ok(pass)
    }

    /// Looks up one call now, whatever its times (`callhook reconcile --call`).
    /// `None` when it is finished already or another reconciler holds it.
    pub async fn reconcile_call(&self, call_id: &str) -> StoreResult<Option<Looked>> {
        let Some((lease, quiet)) = self.store.claim_attempt(call_id, self.config.lease).await? else {
            return Ok(None);
        };
        Ok(Some(self.look_up(lease, quiet).await))
    }

    /// Asks the provider about one leased call and settles what it can. Never
    /// fails: every problem is logged, counted, and retried with backoff.
    async fn look_up(&self, lease: Lease, quiet: Quiet) -> Looked {
        let attempt = &quiet.attempt;
        let provider = attempt.provider;
        let result = match (self.apis.get(&provider), attempt.provider_call_id.as_deref()) {
            (None, _) => Err(ApiError::NotConfigured("no REST credentials for this provider")),
            // No callback ever named the provider's call, and the dialer did not
            // either: nothing to ask about.
            (_, None) => Err(ApiError::NotFound),
            (Some(apis), Some(pcid)) => fetch(apis, attempt.account_sid.as_deref(), pcid).await,
        };
        let looked = match result {
            Ok(snapshot) => match self.apply(attempt, snapshot).await {
                // A call its provider still calls live a day after it was placed is
                // given up too: no survey call lasts that long.
                Ok(looked @ (Looked::Live | Looked::Known)) => self.give_up_if_due(attempt).await.unwrap_or(looked),
                Ok(looked) => looked,
                Err(e) => {
                    tracing::warn!(call_id = %attempt.call_id, error = %e, "could not apply the provider's answer");
                    Looked::Failed
                }
            },
            // Without credentials for the provider (`serve` warned once at start),
            // only the give-up can settle the call: not worth a warning per call.
            Err(e @ ApiError::NotConfigured(_)) => {
                tracing::debug!(call_id = %attempt.call_id, %provider, error = %e, "call cannot be looked up");
                self.give_up_if_due(attempt).await.unwrap_or(Looked::Failed)
            }
            Err(e) => {
                tracing::warn!(call_id = %attempt.call_id, %provider, error = %e, failures = quiet.failures + 1, "call look-up failed");
                self.give_up_if_due(attempt).await.unwrap_or(Looked::Failed)
            }
        };
        metrics::counter!(crate::telemetry::RECONCILIATIONS, "provider" => provider.as_str(), "result" => looked.as_str())
            .increment(1);
        let not_before = match looked {
            // Settled: nothing left to ask.
            Looked::Applied | Looked::GaveUp => None,
            // Not settled by this answer: ask again after the usual quiet time.
            Looked::Live | Looked::Known => Some(self.clock.now() + self.config.timeouts.reconcile_after),
            Looked::Failed => Some(self.clock.now() + self.backoff(quiet.failures)),
        };
        if let Err(e) = self.store.release_attempt(lease, attempt.id, not_before, looked == Looked::Failed).await {
            tracing::warn!(call_id = %attempt.call_id, error = %e, "could not release a reconciled call; its lease expires");
        }
        looked
    }

    /// Records what the provider said, through the callback path.
    async fn apply(
        &self,
        attempt: &crate::domain::Attempt,
        snapshot: crate::providers::api::CallSnapshot,
    ) -> StoreResult<Looked> {
        let live = !snapshot.is_ended();
        let event = to_event(attempt, snapshot, self.clock.now());
        let recorded = self.store.record_event(&event).await?;
        tracing::info!(call_id = %attempt.call_id, status = %event.provider_status, outcome = ?recorded.outcome, "call reconciled");
        Ok(match (live, recorded.outcome) {
            (true, _) => Looked::Live,
            (false, RecordOutcome::Applied) => Looked::Applied,
            (false, _) => Looked::Known,
        })
    }

    async fn give_up_if_due(&self, attempt: &crate::domain::Attempt) -> Option<Looked> {
        let now = self.clock.now();
        let settled = self.store.settle_attempt(&attempt.call_id, SettleRule::GiveUp, self.config.timeouts, now).await;
        match settled {
            Ok(Some(_)) => {
                tracing::warn!(call_id = %attempt.call_id, "provider never told how the call ended: settled as failed (reconcile_gave_up)");
                Some(Looked::GaveUp)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(call_id = %attempt.call_id, error = %e, "could not give the call up");
                None
            }
        }
    }

    /// The wait after `failures` failed look-ups in a row: the pass interval,
    /// doubling, capped.
    fn backoff(&self, failures: i32) -> chrono::Duration {
        let exp = u32::try_from(failures).unwrap_or(0).min(16);
        let wait = self.config.interval.saturating_mul(1 << exp).min(self.config.max_backoff);
        chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::{FileSpool, Spool, SpoolStatus};

    #[tokio::test]
    async fn passes_wait_while_the_outage_spool_holds_callbacks() {
        let store = Arc::new(crate::store::SqliteStore::connect("sqlite::memory:").await.unwrap());
        let dir = std::env::temp_dir().join(format!("callhook-reconcile-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let spool = Arc::new(Spool::new(Box::new(FileSpool::open(&dir, 1 << 20).unwrap())));
        let reconciler = Reconciler::new(store, vec![], ReconcilerConfig::default(), Clock::system())
            .with_spool(Some(spool.clone()));
        let now = std::time::Instant::now;
        assert_eq!(reconciler.spool_pending(now()), None);
        spool.set_store_down(true);
        assert_eq!(reconciler.spool_pending(now()).as_deref(), Some("the store is away"));
        spool.set_store_down(false);
        spool.remember(&SpoolStatus { records: 3, ..SpoolStatus::default() });
        assert_eq!(reconciler.spool_pending(now()).as_deref(), Some("3 callbacks still in the outage spool"));
        // A spool that cannot be read (NATS away) does not hold passes back on a stale count.
        spool.set_healthy(false);
        assert_eq!(reconciler.spool_pending(now() + crate::spool::SETTLE_AFTER_OUTAGE), None);
        spool.remember(&SpoolStatus::default());
        // Back moments ago: other replicas' spools are given time to drain, then passes resume.
        assert!(reconciler.spool_pending(now()).is_some_and(|why| why.contains("came back moments ago")));
        assert_eq!(reconciler.spool_pending(now() + crate::spool::SETTLE_AFTER_OUTAGE), None);
        let _ = std::fs::remove_dir_all(dir);
    }
}
