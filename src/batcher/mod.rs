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
//! store is away (its probe fails too) answers every callback unavailable at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Mutex};

use crate::domain::CallEvent;
use crate::store::{Recorded, Store, StoreError, StoreResult};
use crate::telemetry;

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
        let shared = Arc::new(Shared { store, config, receiver: Mutex::new(receiver), in_flight: AtomicUsize::new(0) });
        Batcher { queue, shared, started: std::sync::OnceLock::new() }
    }

    /// Records `event` in the next batch; the answer `Store::record_event` would give.
    pub async fn record(&self, event: &CallEvent) -> StoreResult<Recorded> {
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

    async fn record(&self, jobs: Vec<Job>) {
        let events: Vec<CallEvent> = jobs.iter().map(|j| j.event.clone()).collect();
        metrics::histogram!(telemetry::BATCH_EVENTS).record(events.len() as f64);
        let started = Instant::now();
        let answers = if events.len() == 1 {
            vec![self.store.record_event(&events[0]).await]
        } else {
            match self.store.record_events(&events).await {
                Ok(answers) => answers,
                Err(e) if e.is_unavailable() && self.store.ping().await.is_err() => {
                    // The store is away: every callback gets that answer now (503, or
                    // the spool), not after a connection timeout each.
                    events.iter().map(|_| Err(StoreError::Unavailable(e.to_string()))).collect()
                }
                Err(e) => {
                    // Each alone: the answer each would have got without batching
                    // (a request that has given up meanwhile is skipped).
                    tracing::info!(error = %e, events = events.len(), "batch failed; recording its callbacks one by one");
                    metrics::counter!(telemetry::BATCH_SPLITS).increment(1);
                    let mut answers = Vec::with_capacity(events.len());
                    for (event, job) in events.iter().zip(&jobs) {
                        answers.push(if job.reply.is_closed() {
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
        for (job, answer) in jobs.into_iter().zip(answers) {
            let _ = job.reply.send(answer);
        }
    }
}
