//! The outage spool's settings (SPEC §10) and opening the spool they describe.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::spool::{FileSpool, NatsSpool, NatsSpoolConfig, Spool, SpoolError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SpoolKind {
    /// `file` with PostgreSQL, `off` with SQLite (an embedded store is not reached
    /// over a network, so it has no outage to bridge).
    Auto,
    File,
    Nats,
    Off,
}

#[derive(Debug, Clone, Args)]
pub struct SpoolArgs {
    /// Where callbacks go while the store is unavailable: `file` (segment files in
    /// spool_dir, on this machine's disk), `nats` (a replicated JetStream stream that
    /// any replica drains), `off` (503, as without a spool), or `auto`.
    #[arg(long = "spool", env = "CALLHOOK_SPOOL", value_enum, default_value_t = SpoolKind::Auto)]
    pub kind: SpoolKind,
    /// file spool: its directory, one per replica (created if its parent exists).
    #[arg(long, env = "CALLHOOK_SPOOL_DIR", default_value = "./callhook-spool")]
    pub spool_dir: PathBuf,
    /// Most bytes the spool holds; beyond, callbacks are answered 503.
    #[arg(long, env = "CALLHOOK_SPOOL_MAX_BYTES", default_value_t = 1024 * 1024 * 1024)]
    pub spool_max_bytes: u64,
    /// nats spool: the JetStream stream (created if missing; subject `spool.{stream}.events`),
    /// on the server of nats_url.
    #[arg(long, env = "CALLHOOK_SPOOL_NATS_STREAM", default_value = "CALLHOOK_SPOOL")]
    pub spool_nats_stream: String,
    /// nats spool: the stream's replicas (1 on a single server; 3 on a cluster).
    #[arg(long, env = "CALLHOOK_SPOOL_NATS_REPLICAS", default_value_t = 1)]
    pub spool_nats_replicas: usize,
    /// How often the drainer checks the store and the spool.
    #[arg(long, env = "CALLHOOK_SPOOL_DRAIN_INTERVAL_MS", default_value_t = 1000)]
    pub spool_drain_interval_ms: u64,
}

impl SpoolArgs {
    /// The backend in effect for `database_url`: `Auto` resolved.
    pub fn effective(&self, database_url: &str) -> SpoolKind {
        match self.kind {
            SpoolKind::Auto if database_url.starts_with("sqlite:") => SpoolKind::Off,
            SpoolKind::Auto => SpoolKind::File,
            kind => kind,
        }
    }

    pub fn drain_interval(&self) -> Duration {
        Duration::from_millis(self.spool_drain_interval_ms)
    }

    pub fn problems(&self) -> Vec<String> {
        let mut problems = vec![];
        if self.spool_max_bytes < 1024 * 1024 {
            problems.push(format!("CALLHOOK_SPOOL_MAX_BYTES must be at least 1 MiB, got {}", self.spool_max_bytes));
        }
        let name_ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok(&self.spool_nats_stream) {
            problems.push(format!(
                "CALLHOOK_SPOOL_NATS_STREAM must be letters, digits, `_` or `-`, got `{}`",
                self.spool_nats_stream
            ));
        }
        if !(1..=5).contains(&self.spool_nats_replicas) {
            problems.push(format!("CALLHOOK_SPOOL_NATS_REPLICAS must be 1 to 5, got {}", self.spool_nats_replicas));
        }
        if !(10..=60_000).contains(&self.spool_drain_interval_ms) {
            problems.push(format!(
                "CALLHOOK_SPOOL_DRAIN_INTERVAL_MS must be between 10 and 60000, got {}",
                self.spool_drain_interval_ms
            ));
        }
        problems
    }

    /// Opens the spool in effect (`None` when off): checks the directory or
    /// connects to NATS, so a spool that cannot work is reported at start.
    /// `store_timeout` bounds each callback's wait for the store (at most 5 s).
    pub async fn open(
        &self,
        database_url: &str,
        nats_url: &str,
        store_timeout: Duration,
    ) -> Result<Option<Arc<Spool>>, SpoolError> {
        let backend: Box<dyn crate::spool::Backend> = match self.effective(database_url) {
            SpoolKind::Off | SpoolKind::Auto => return Ok(None),
            SpoolKind::File => {
                let (dir, max) = (self.spool_dir.clone(), self.spool_max_bytes);
                let opened = tokio::task::spawn_blocking(move || FileSpool::open(&dir, max)).await;
                Box::new(opened.map_err(|e| SpoolError::Setup(e.to_string()))??)
            }
            SpoolKind::Nats => Box::new(
                NatsSpool::open(NatsSpoolConfig {
                    url: nats_url.to_owned(),
                    stream: self.spool_nats_stream.clone(),
                    replicas: self.spool_nats_replicas,
                    max_bytes: self.spool_max_bytes,
                })
                .await?,
            ),
        };
        let store_timeout = store_timeout.min(Duration::from_secs(5));
        Ok(Some(Arc::new(Spool::new(backend).with_store_timeout(store_timeout))))
    }
}
