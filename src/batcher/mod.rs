//! The batcher: gathers concurrent webhook callbacks into micro-batches that the
//! store records in one transaction each (group commit, `store::batch`).
//!
//! Requests hand their event to a queue and wait for their own answer. A few worker
//! tasks take from it: a worker takes the first waiting event, then everything else
//! already waiting (up to `max_events`); while another batch is in flight it also
//! waits up to `max_wait` for more. An idle service therefore commits a lone callback
//! at once, and a busy one gathers as many as arrive while the previous batch
//! commits. No answer is sent before the transaction holding its event committed. A
//! batch that fails as a whole (deadlock, serialization failure, a database error in
//! one callback) is split: each callback is recorded alone, so every request gets
//! the answer it would have got without batching. A batch that failed because the
//! store is away (a prompt probe fails too) answers every callback unavailable at
//! once; for a second after that, a callback is first checked with a prompt probe
//! and answered so at once if the store still does not answer, without queueing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Mutex};

use crate::domain::CallEvent;
use crate::store::{Recorded, Store, StoreError, StoreResult};
use crate::telemetry;

/// How long a probe of a store that just failed may take before it counts as away,
/// and how long callbacks are then refused without trying.
const AWAY_PROBE: Duration = Duration::from_millis(500);
const AWAY_FOR: Duration = Duration::from_secs(1);

fn away_error() -> StoreError {
    StoreError::Unavailable("the store did not answer a moment ago".into())
}

#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    pub max_events: usize,
    pub max_wait: Duration,
    /// Batches in flight at once (each holds one database connection).
    pub workers: usize,
}

struct Job {
    event: CallEvent,
    reply: oneshot::Sender<StoreResult<Recorded>>,
}

pub struct Batcher {
    queue: mpsc::Sender<Job>,
    shared: Arc<Shared>,
    /// The workers start with the first callback, on the runtime that carries it.
    started: std::sync::OnceLock<()>,
}

impl Batcher {
    /// A batcher over `store`; its workers stop when it is dropped.
    pub fn start(store: Arc<dyn Store>, config: BatchConfig) -> Self {
        let config = BatchConfig { max_events: config.max_events.max(1), workers: config.workers.max(1), ..config };
        let (queue, receiver) = mpsc::channel(config.max_events * config.workers * 4);
        let shared = Arc::new(Shared {
            store,
            away_until: std::sync::Mutex::new(None),
            config,
            receiver: Mutex::new(receiver),
            in_flight: AtomicUsize::new(0),
        });
        Batcher { queue, shared, started: std::sync::OnceLock::new() }
    }

    /// Records `event` in the next batch; the answer `Store::record_event` would give.
    pub async fn record(&self, event: &CallEvent) -> StoreResult<Recorded> {
        // Found away a moment ago: a prompt probe decides, not a connection timeout.
        if self.shared.away() {
            if !self.shared.store_answers().await {
                return Err(away_error());
            }
            *self.shared.away_until.lock().expect("not poisoned") = None;
        }
        self.started.get_or_init(|| {
            for _ in 0..self.shared.config.workers {
                tokio::spawn(self.shared.clone().work());
            }
        });
        let (reply, answer) = oneshot::channel();
        let job = Job { event: event.clone(), reply };
        self.queue.send(job).await.map_err(|_| StoreError::Unavailable("the batcher stopped".into()))?;
        answer.await.map_err(|_| StoreError::Unavailable("the batcher stopped".into()))?
    }
}

struct Shared {
    store: Arc<dyn Store>,
    /// Until when callbacks are answered "unavailable" without queueing: the store
    /// did not answer a moment ago. Without it, batches waiting out a connection
    /// timeout one after another would keep requests past their own timeout.
    away_until: std::sync::Mutex<Option<Instant>>,
    config: BatchConfig,
    receiver: Mutex<mpsc::Receiver<Job>>,
    /// Batches being recorded now: a worker waits for more events only while
    /// another is busy (otherwise waiting would only add latency).
    in_flight: AtomicUsize,
}

impl Shared {
    async fn work(self: Arc<Self>) {
        while let Some(jobs) = self.gather().await {
            self.in_flight.fetch_add(1, Ordering::Relaxed);
            // A task of its own: a panic loses this batch's answers (their requests
            // get 503), not the worker.
            let shared = self.clone();
            if let Err(e) = tokio::spawn(async move { shared.record(jobs).await }).await {
                tracing::error!(error = %e, "recording a batch panicked");
            }
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The next batch; `None` once the batcher is gone.
    async fn gather(&self) -> Option<Vec<Job>> {
        let mut receiver = self.receiver.lock().await;
        let first = receiver.recv().await?;
        let deadline = tokio::time::Instant::now() + self.config.max_wait;
        let mut jobs = vec![first];
        while jobs.len() < self.config.max_events {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) if self.in_flight.load(Ordering::Relaxed) == 0 => break,
                Err(_) => match tokio::time::timeout_at(deadline, receiver.recv()).await {
                    Ok(Some(job)) => jobs.push(job),
                    _ => break,
                },
            }
        }
        Some(jobs)
    }

    /// Whether the store answers a probe promptly.
    async fn store_answers(&self) -> bool {
        matches!(tokio::time::timeout(AWAY_PROBE, self.store.ping()).await, Ok(Ok(())))
    }

    /// The store did not answer a moment ago.
    fn away(&self) -> bool {
        self.away_until.lock().expect("not poisoned").is_some_and(|until| Instant::now() < until)
    }

    fn mark_away(&self) {
        *self.away_until.lock().expect("not poisoned") = Some(Instant::now() + AWAY_FOR);
    }

    async fn record(&self, jobs: Vec<Job>) {
        let (events, replies): (Vec<CallEvent>, Vec<_>) = jobs.into_iter().map(|j| (j.event, j.reply)).unzip();
        metrics::histogram!(telemetry::BATCH_EVENTS).record(events.len() as f64);
        let started = Instant::now();
        let answers = if self.away() {
            // Queued before the store was found away: answered now, not after a timeout.
            events.iter().map(|_| Err(away_error())).collect()
        } else if events.len() == 1 {
            let answer = self.store.record_event(&events[0]).await;
            if answer.as_ref().is_err_and(StoreError::is_unavailable) && !self.store_answers().await {
                self.mark_away();
            }
            vec![answer]
        } else {
            match self.store.record_events(&events).await {
                Ok(answers) => answers,
                Err(e) if e.is_unavailable() && !self.store_answers().await => {
                    // The store is away: every callback gets that answer now (503, or
                    // the spool), not after a connection timeout each.
                    self.mark_away();
                    events.iter().map(|_| Err(StoreError::Unavailable(e.to_string()))).collect()
                }
                Err(e) => {
                    // Each alone: the answer each would have got without batching
                    // (a request that has given up meanwhile is skipped).
                    tracing::info!(error = %e, events = events.len(), "batch failed; recording its callbacks one by one");
                    metrics::counter!(telemetry::BATCH_SPLITS).increment(1);
                    let mut answers = Vec::with_capacity(events.len());
                    for (event, reply) in events.iter().zip(&replies) {
                        answers.push(if reply.is_closed() {
                            Err(StoreError::Unavailable("the request was abandoned".into()))
                        } else {
                            self.store.record_event(event).await
                        });
                    }
                    answers
                }
            }
        };
        metrics::histogram!(telemetry::BATCH_COMMIT).record(started.elapsed().as_secs_f64());
        for (reply, answer) in replies.into_iter().zip(answers) {
            let _ = reply.send(answer);
        }
    }
}
