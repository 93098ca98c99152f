//! The drainer: one loop per replica that watches the store on the spool's behalf
//! and applies what was spooled as soon as the store answers.
//!
//! Each round it refreshes the spool's gauges; if the spool holds records or the
//! store was seen down, it probes the store (a cheap query) and, when the store
//! answers, clears the "store down" flag (callbacks go to the store again) and
//! drains. A service that started while the store was unreachable applies its
//! migrations here first, before anything is drained.

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
}

impl Drainer {
    pub fn new(spool: Arc<Spool>, store: Arc<dyn Store>, interval: Duration, migrate_first: bool) -> Self {
        Drainer { spool, store, interval, migrate_first }
    }

    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(spool = self.spool.kind(), interval = ?self.interval, "spool drainer started");
        while !*shutdown.borrow() {
            self.round().await;
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = shutdown.changed() => {}
            }
        }
        tracing::info!("spool drainer stopped");
    }

    /// One round; the drain's report when it drained.
    pub async fn round(&mut self) -> Option<DrainReport> {
        let pending = self.refresh().await;
        if self.migrate_first {
            match self.store.migrate().await {
                Ok(()) => {
                    tracing::info!("the store answers: migrations applied");
                    self.migrate_first = false;
                }
                Err(e) => {
                    if e.is_unavailable() {
                        self.spool.set_store_down(true);
                    } else {
                        tracing::error!(error = %e, "applying migrations failed; retried next round");
                    }
                    return None;
                }
            }
        }
        if !pending && !self.spool.store_down() {
            return None;
        }
        if let Err(e) = self.store.ping().await {
            if e.is_unavailable() {
                self.spool.set_store_down(true);
            }
            return None;
        }
        self.spool.set_store_down(false);
        if !pending {
            return None;
        }
        let drained = self.spool.backend().drain(self.store.as_ref()).await;
        self.refresh().await;
        match drained {
            Ok(report) => {
                if report.stopped.is_some() {
                    self.spool.set_store_down(true);
                }
                tracing::info!(spool = self.spool.kind(), report = %report.summary(), "spool drained");
                Some(report)
            }
            Err(e) => {
                tracing::warn!(spool = self.spool.kind(), error = %e, "draining the spool failed; retried next round");
                None
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
                true
            }
        }
    }
}
