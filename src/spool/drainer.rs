//! The drainer: one loop per replica that watches the store on the spool's behalf
//! and applies what was spooled as soon as the store answers.
//!
//! Each round it refreshes the spool's gauges; if the spool holds records or the
//! store was seen down, it probes the store (a cheap query) and, when the store
//! answers, clears the "store down" flag (callbacks go to the store again) and
//! drains. A service that started while the store was unreachable applies its
//! migrations here first, before anything is drained.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{DrainReport, Spool};
use crate::store::Store;

pub struct Drainer {
    spool: Arc<Spool>,
    store: Arc<dyn Store>,
    interval: Duration,
    /// Migrations are still to be applied (the store was away at start).
    migrate_first: bool,
    /// Told why when the store answers but cannot be migrated: `serve` then exits,
    /// as it would have at start, instead of spooling forever.
    fatal: Option<watch::Sender<Option<String>>>,
    /// Set at shutdown: a drain in progress stops between two records.
    stopping: Arc<AtomicBool>,
}

impl Drainer {
    pub fn new(spool: Arc<Spool>, store: Arc<dyn Store>, interval: Duration, migrate_first: bool) -> Self {
        Drainer { spool, store, interval, migrate_first, fatal: None, stopping: Arc::default() }
    }

    pub fn on_fatal(mut self, fatal: watch::Sender<Option<String>>) -> Self {
        self.fatal = Some(fatal);
        self
    }

    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(spool = self.spool.kind(), interval = ?self.interval, "spool drainer started");
        self.spool.set_store_down(self.spool.store_down()); // exports the gauge from the start
        let (stopping, mut watching) = (self.stopping.clone(), shutdown.clone());
        let watcher = tokio::spawn(async move {
            let _ = watching.wait_for(|s| *s).await;
            stopping.store(true, Ordering::Relaxed);
        });
        while !*shutdown.borrow() {
            if self.round().await.is_err() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = shutdown.changed() => {}
            }
        }
        watcher.abort();
        tracing::info!("spool drainer stopped");
    }

    /// One round: the drain's report when it drained; `Err` when the store answers
    /// but its migrations fail (nothing a later round can fix).
    pub async fn round(&mut self) -> Result<Option<DrainReport>, String> {
        if self.migrate_first {
            self.refresh().await;
            match self.store.migrate().await {
                Ok(()) => {
                    tracing::info!("the store answers: migrations applied");
                    self.migrate_first = false;
                }
                Err(e) if e.is_unavailable() => {
                    self.spool.set_store_down(true);
                    return Ok(None);
                }
                Err(e) => {
                    let why = format!("the store answers but applying migrations failed: {e}");
                    tracing::error!("{why}");
                    if let Some(fatal) = &self.fatal {
                        let _ = fatal.send(Some(why.clone()));
                    }
                    return Err(why);
                }
            }
        }
        let pending = self.refresh().await;
        if !pending && !self.spool.store_down() {
            return Ok(None);
        }
        if let Err(e) = self.store.ping().await {
            if e.is_unavailable() {
                self.spool.set_store_down(true);
            }
            return Ok(None);
        }
        self.spool.set_store_down(false);
        if !pending {
            return Ok(None);
        }
        let stopping = self.stopping.clone();
        let stop = move || stopping.load(Ordering::Relaxed);
        let drained = self.spool.backend().drain(self.store.as_ref(), &stop).await;
        self.refresh().await;
        // A drain the store stopped is not taken as an outage here: the next round's
        // probe decides (one record failing must not divert every callback).
        match drained {
            Ok(report) => {
                tracing::info!(spool = self.spool.kind(), report = %report.summary(), "spool drained");
                Ok(Some(report))
            }
            Err(e) => {
                tracing::warn!(spool = self.spool.kind(), error = %e, "draining the spool failed; retried next round");
                Ok(None)
            }
        }
    }

    /// Updates the gauges; `true` when the spool may hold records.
    async fn refresh(&self) -> bool {
        match self.spool.backend().status().await {
            Ok(status) => {
                self.spool.remember(&status);
                status.records > 0
            }
            Err(e) => {
                tracing::warn!(spool = self.spool.kind(), error = %e, "cannot read the spool's status");
                self.spool.set_healthy(false);
                true
            }
        }
    }
}
