//! Retention's settings in `serve` (SPEC §13).

use std::time::Duration;

use clap::Args;

use crate::domain::retention::retention_cutoff;

#[derive(Debug, Clone, Args)]
pub struct RetentionArgs {
    /// Remove inbox events and finished outbox jobs of calls that ended more than
    /// this many days ago (1–3650; never of a call still open). Unset: keep all.
    #[arg(long, env = "CALLHOOK_RETENTION_DAYS", allow_negative_numbers = true)]
    pub retention_days: Option<i64>,
    /// Time between retention rounds (each also creates the PostgreSQL inbox
    /// partitions of the months ahead).
    #[arg(long, env = "CALLHOOK_RETENTION_INTERVAL_SECS", default_value_t = 3600)]
    pub retention_interval_secs: u64,
}

impl RetentionArgs {
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.retention_interval_secs.max(1))
    }

    pub fn problems(&self) -> Vec<String> {
        let mut problems = vec![];
        if let Some(days) = self.retention_days {
            if let Err(e) = retention_cutoff(chrono::Utc::now(), days) {
                problems.push(format!("CALLHOOK_RETENTION_DAYS: {e}"));
            }
        }
        problems.extend(super::server::out_of_range(
            "CALLHOOK_RETENTION_INTERVAL_SECS",
            self.retention_interval_secs,
            1..=86_400,
        ));
        problems
    }
}
