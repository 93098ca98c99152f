//! Group commit's settings (issue: many webhooks per transaction on PostgreSQL).

use std::time::Duration;

use clap::Args;

use crate::batcher::BatchConfig;

#[derive(Debug, Clone, Args)]
pub struct BatchArgs {
    /// Group commit: record concurrent webhooks in shared transactions (PostgreSQL;
    /// SQLite always records one callback per transaction). `false`: one each.
    #[arg(long, env = "CALLHOOK_BATCH", default_value_t = true, action = clap::ArgAction::Set)]
    pub batch: bool,
    /// Most callbacks in one transaction.
    #[arg(long, env = "CALLHOOK_BATCH_MAX_EVENTS", default_value_t = 64)]
    pub batch_max_events: usize,
    /// Longest a batch waits for more callbacks while another batch is in flight
    /// (an idle service commits a lone callback at once).
    #[arg(long, env = "CALLHOOK_BATCH_MAX_WAIT_MS", default_value_t = 2)]
    pub batch_max_wait_ms: u64,
    /// Batches in flight at once, each on a database connection of its own.
    #[arg(long, env = "CALLHOOK_BATCH_WORKERS", default_value_t = 4)]
    pub batch_workers: usize,
}

impl BatchArgs {
    /// The batcher's settings, or `None` when webhooks are recorded one per
    /// transaction (switched off, or SQLite).
    pub fn config(&self, database_url: &str) -> Option<BatchConfig> {
        (self.batch && !database_url.starts_with("sqlite:")).then(|| BatchConfig {
            max_events: self.batch_max_events,
            max_wait: Duration::from_millis(self.batch_max_wait_ms),
            workers: self.batch_workers,
        })
    }

    pub fn problems(&self, db_max_connections: u32) -> Vec<String> {
        let mut problems = vec![];
        if !(1..=1000).contains(&self.batch_max_events) {
            problems.push(format!("CALLHOOK_BATCH_MAX_EVENTS must be 1 to 1000, got {}", self.batch_max_events));
        }
        if self.batch_max_wait_ms > 1000 {
            problems.push(format!("CALLHOOK_BATCH_MAX_WAIT_MS must be at most 1000, got {}", self.batch_max_wait_ms));
        }
        if self.batch_workers == 0 || self.batch_workers as u64 >= u64::from(db_max_connections) {
            problems.push(format!(
                "CALLHOOK_BATCH_WORKERS must be at least 1 and below CALLHOOK_DB_MAX_CONNECTIONS ({db_max_connections}), \
                 got {}",
                self.batch_workers
            ));
        }
        problems
    }
}
