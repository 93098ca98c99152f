//! The outage spool (SPEC §10): where a verified, parsed callback goes when the
//! store cannot take it, so that a database outage costs latency, not events.
//!
//! The webhook tries the store first; when the store is unavailable (or known to
//! be, see [`Spool::store_down`]) it appends the event to the spool — durably, before
//! answering `202 spooled` — and the [`Drainer`] applies spooled events through the
//! same exactly-once path (`Store::record_event`) once the store answers again.
//! A callback both spooled and delivered directly is stored once: the inbox key
//! decides. Two backends: [`FileSpool`] (segment files on a local disk) and
//! [`NatsSpool`] (a JetStream stream any replica drains).

mod drainer;
mod file;
mod frame;
mod nats;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{CallEvent, EventSource};
use crate::store::{RecordOutcome, Store, StoreError};
use crate::telemetry;

pub use drainer::Drainer;
pub use file::{inspect, preflight, FileSpool};
pub use nats::{NatsSpool, NatsSpoolConfig};

/// The version of [`Record`] this build writes and reads.
const RECORD_VERSION: u32 = 1;

/// A record the store fails as "unavailable" this many drains in a row, each right
/// after the store answered a probe, is set aside instead of blocking the spool
/// behind it forever (a lock timeout or a serialization failure that keeps coming
/// back for that one record).
pub(crate) const MAX_STOPS: u32 = 20;

/// Asked between records: `true` when the drain should stop (shutdown).
pub type Stop<'a> = &'a (dyn Fn() -> bool + Send + Sync);

/// One spooled callback: the event exactly as the webhook would have recorded it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Record {
    pub v: u32,
    /// When it was spooled (the real time): the spool's age is measured from it.
    pub spooled_at: DateTime<Utc>,
    pub event: CallEvent,
}

impl Record {
    pub fn new(event: &CallEvent) -> Self {
        let mut event = event.clone();
        event.source = EventSource::Spool;
        Record { v: RECORD_VERSION, spooled_at: Utc::now(), event }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// `spool_max_bytes` reached: the callback is refused (503) as without a spool.
    #[error("the outage spool is full ({0})")]
    Full(String),
    /// The spool cannot take a record now (disk error, NATS unreachable): 503.
    #[error("the outage spool is unavailable: {0}")]
    Unavailable(String),
    /// The spool cannot be opened as configured (reported at start).
    #[error("{0}")]
    Setup(String),
}

/// What a spool holds now.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SpoolStatus {
    pub backend: &'static str,
    /// The directory, or the stream's name.
    pub location: String,
    pub records: u64,
    pub bytes: u64,
    pub max_bytes: u64,
    pub oldest_at: Option<DateTime<Utc>>,
    /// Records set aside (unreadable, corrupt, or refused by the store) for an operator.
    pub set_aside: u64,
}

/// What one drain did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DrainReport {
    /// Recorded now (applied, deferred, stale or unrecognised: stored either way).
    pub stored: u64,
    /// Already stored (delivered directly too, or drained before a crash).
    pub duplicates: u64,
    /// Set aside with their error: unreadable, or refused by the store.
    pub set_aside: u64,
    /// Damaged bytes found (a torn tail after a crash, a bad checksum), set aside.
    pub corrupt: u64,
    /// Why draining stopped early (the store went away again), if it did.
    pub stopped: Option<String>,
}

impl DrainReport {
    pub fn summary(&self) -> String {
        let stopped = self.stopped.as_deref().map(|s| format!("; stopped: {s}")).unwrap_or_default();
        format!(
            "{} stored, {} already stored, {} set aside, {} corrupt{stopped}",
            self.stored, self.duplicates, self.set_aside, self.corrupt
        )
    }
}

/// A spool backend: append durably, report, drain in arrival order.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    fn kind(&self) -> &'static str;
    /// Returns once the record is durable (fsynced, or acknowledged by the stream).
    async fn append(&self, record: Vec<u8>, dedupe_key: &str) -> Result<(), SpoolError>;
    async fn status(&self) -> Result<SpoolStatus, SpoolError>;
    /// Applies every record through `store`, oldest first, removing each once
    /// stored; stops (keeping the rest) when the store becomes unavailable or
    /// `stop` says so.
    async fn drain(&self, store: &dyn Store, stop: Stop<'_>) -> Result<DrainReport, SpoolError>;
}

/// The spool a service runs with, and what it believes about its store.
pub struct Spool {
    backend: Box<dyn Backend>,
    store_down: AtomicBool,
    /// The spool's own health: its last status read or append succeeded.
    healthy: AtomicBool,
    /// Longest wait for the store before a callback is spooled instead: a query
    /// stuck on a connection that died silently must not outlast the provider.
    store_timeout: std::time::Duration,
    /// When this replica last saw the store come back after being away.
    back_at: Mutex<Option<std::time::Instant>>,
    last_status: Mutex<Option<SpoolStatus>>,
}

/// After an outage, how long other replicas are given to drain their own spools
/// (which this replica cannot see) before the reconciler asks providers about calls
/// that look quiet only because their callbacks are still spooled elsewhere.
pub const SETTLE_AFTER_OUTAGE: std::time::Duration = std::time::Duration::from_secs(10);

/// Where a callback went.
pub enum Accepted {
    Recorded(crate::store::Recorded),
    Spooled,
}

impl Spool {
    pub fn new(backend: Box<dyn Backend>) -> Self {
        Spool {
            backend,
            store_down: AtomicBool::new(false),
            healthy: AtomicBool::new(true),
            store_timeout: std::time::Duration::from_secs(5),
            back_at: Mutex::new(None),
            last_status: Mutex::new(None),
        }
    }

    /// See `store_timeout`; `serve` sets half its request timeout, at most 5 s.
    pub fn with_store_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.store_timeout = timeout;
        self
    }

    /// The spool could take a record at its last try (status read or append).
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub fn kind(&self) -> &'static str {
        self.backend.kind()
    }

    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// The store failed as unavailable lately and has not answered a probe since:
    /// callbacks go straight to the spool instead of waiting out a connection timeout.
    pub fn store_down(&self) -> bool {
        self.store_down.load(Ordering::Relaxed)
    }

    pub fn set_store_down(&self, down: bool) {
        if self.store_down.swap(down, Ordering::Relaxed) != down {
            if down {
                tracing::warn!(spool = self.kind(), "store unavailable: accepting callbacks into the outage spool");
            } else {
                tracing::info!(spool = self.kind(), "store available again: draining the outage spool");
                *self.back_at.lock().expect("not poisoned") = Some(std::time::Instant::now());
            }
        }
        metrics::gauge!(telemetry::SPOOL_STORE_DOWN).set(if down { 1.0 } else { 0.0 });
    }

    /// Records `event` with `attempt` (the store's `record_event`, or the batcher),
    /// or spools it when the store is unavailable. `attempt` is not polled when the
    /// store is known to be down.
    pub async fn record_or_spool(
        &self,
        attempt: impl std::future::Future<Output = crate::store::StoreResult<crate::store::Recorded>>,
        event: &CallEvent,
    ) -> Result<Accepted, SpoolOrStore> {
        if !self.store_down() {
            // A timed-out attempt may still commit: then the spooled copy is a
            // duplicate, and the inbox key keeps one.
            let attempt = tokio::time::timeout(self.store_timeout, attempt).await;
            let attempt = attempt.unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!("no answer from the store within {:?}", self.store_timeout)))
            });
            match attempt {
                Ok(recorded) => return Ok(Accepted::Recorded(recorded)),
                Err(e) if e.is_unavailable() => {
                    tracing::warn!(error = %e, "store unavailable; spooling the callback");
                    self.set_store_down(true);
                }
                Err(e) => return Err(SpoolOrStore::Store(e)),
            }
        }
        let record = serde_json::to_vec(&Record::new(event))
            .map_err(|e| SpoolOrStore::Store(StoreError::Internal(format!("cannot serialise a spool record: {e}"))))?;
        let appended = self.backend.append(record, &event.dedupe_key).await;
        self.healthy.store(appended.is_ok() || matches!(appended, Err(SpoolError::Full(_))), Ordering::Relaxed);
        appended.map_err(SpoolOrStore::Spool)?;
        metrics::counter!(telemetry::SPOOL_APPENDED, "spool" => self.kind()).increment(1);
        Ok(Accepted::Spooled)
    }

    /// Why the reconciler should wait, if it should: the store is away, this spool
    /// holds records, or the store came back less than [`SETTLE_AFTER_OUTAGE`] ago.
    pub fn holds_back_reconciliation(&self, now: std::time::Instant) -> Option<String> {
        if self.store_down() {
            return Some("the store is away".into());
        }
        // A spool that cannot be read now (NATS away) may never be drained soon: its
        // last count must not hold reconciliation back indefinitely.
        let records = if self.healthy() { self.last_status().map_or(0, |s| s.records) } else { 0 };
        if records > 0 {
            return Some(format!("{records} callbacks still in the outage spool"));
        }
        let back_at = *self.back_at.lock().expect("not poisoned");
        back_at
            .filter(|at| now.saturating_duration_since(*at) < SETTLE_AFTER_OUTAGE)
            .map(|_| "the store came back moments ago: other replicas are still draining".into())
    }

    /// The status the drainer saw last (cheap: for `/readyz`).
    pub fn last_status(&self) -> Option<SpoolStatus> {
        self.last_status.lock().expect("not poisoned").clone()
    }

    pub(crate) fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    pub(crate) fn remember(&self, status: &SpoolStatus) {
        self.set_healthy(true);
        let age = status.oldest_at.map_or(0.0, |t| (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0);
        metrics::gauge!(telemetry::SPOOL_DEPTH, "spool" => self.kind()).set(status.records as f64);
        metrics::gauge!(telemetry::SPOOL_BYTES, "spool" => self.kind()).set(status.bytes as f64);
        metrics::gauge!(telemetry::SPOOL_OLDEST_AGE, "spool" => self.kind()).set(age);
        *self.last_status.lock().expect("not poisoned") = Some(status.clone());
    }
}

/// A callback neither recorded nor spooled.
#[derive(Debug, thiserror::Error)]
pub enum SpoolOrStore {
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Spool(SpoolError),
}

/// What became of one spooled record.
pub(crate) enum Verdict {
    Stored(RecordOutcome),
    /// Unreadable, or refused by the store for a reason retrying cannot fix.
    SetAside(String),
    /// The store is unavailable: keep this record and everything after it.
    Stop(String),
}

/// Applies one spooled record through the normal exactly-once path.
pub(crate) async fn apply(store: &dyn Store, payload: &[u8]) -> Verdict {
    // The version first: a record another build wrote says so, not "missing field".
    #[derive(Deserialize)]
    struct Version {
        v: u32,
    }
    match serde_json::from_slice::<Version>(payload) {
        Ok(Version { v: RECORD_VERSION }) => {}
        Ok(Version { v }) => {
            return Verdict::SetAside(format!("spool record version {v} (this build reads {RECORD_VERSION})"))
        }
        Err(e) => return Verdict::SetAside(format!("unreadable spool record: {e}")),
    }
    let record: Record = match serde_json::from_slice(payload) {
        Ok(r) => r,
        Err(e) => return Verdict::SetAside(format!("unreadable spool record: {e}")),
    };
    match store.record_event(&record.event).await {
        Ok(recorded) => Verdict::Stored(recorded.outcome),
        Err(e) if e.is_unavailable() => Verdict::Stop(e.to_string()),
        Err(e) => Verdict::SetAside(e.to_string()),
    }
}

impl DrainReport {
    /// Counts `verdict` (not `Stop`), with its metric.
    pub(crate) fn count(&mut self, spool: &'static str, verdict: &Verdict) {
        let outcome = match verdict {
            Verdict::Stored(RecordOutcome::Duplicate) => {
                self.duplicates += 1;
                "duplicate"
            }
            Verdict::Stored(_) => {
                self.stored += 1;
                "stored"
            }
            Verdict::SetAside(error) => {
                tracing::error!(spool, error = %error, "spooled callback set aside");
                self.set_aside += 1;
                "set_aside"
            }
            Verdict::Stop(_) => return,
        };
        metrics::counter!(telemetry::SPOOL_DRAINED, "spool" => spool, "outcome" => outcome).increment(1);
    }

    pub(crate) fn count_corrupt(&mut self, spool: &'static str, reason: &str, bytes: usize) {
        tracing::error!(spool, reason, bytes, "damaged bytes in the outage spool set aside");
        self.corrupt += 1;
        metrics::counter!(telemetry::SPOOL_CORRUPT, "spool" => spool).increment(1);
    }
}
