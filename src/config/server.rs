//! `serve`'s connection limits, timeouts and where `/metrics` is served (SPEC §7
//! hardening), flattened into [`ServeArgs`](super::ServeArgs).

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use clap::Args;

use crate::http::server::ConnectionLimits;
use crate::http::MetricsAccess;
use crate::secret::Secret;

#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// A request's head must arrive in full within this time of the connection being
    /// ready for it (accepted, or its previous response sent); else it is closed.
    #[arg(long, env = "CALLHOOK_HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,
    /// A request's body must arrive in full within this time of its head (408).
    #[arg(long, env = "CALLHOOK_BODY_READ_TIMEOUT_SECS", default_value_t = 5)]
    pub body_read_timeout_secs: u64,
    /// A connection on which nothing moves for this long, with no request being
    /// processed, is closed.
    #[arg(long, env = "CALLHOOK_IDLE_TIMEOUT_SECS", default_value_t = 30)]
    pub idle_timeout_secs: u64,
    /// Connections open at once; beyond, new ones wait in the listen backlog.
    #[arg(long, env = "CALLHOOK_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// After SIGTERM, how long requests in progress may take to finish before every
    /// connection still open is closed.
    #[arg(long, env = "CALLHOOK_SHUTDOWN_GRACE_SECS", default_value_t = 15)]
    pub shutdown_grace_secs: u64,
    /// How long a request whose body has arrived waits for a processing slot before
    /// it is answered 503 with Retry-After.
    #[arg(long, env = "CALLHOOK_QUEUE_TIMEOUT_MS", default_value_t = 1000)]
    pub queue_timeout_ms: u64,
    /// Largest accepted body of an admin API request, in bytes: 16 MiB takes a
    /// contact upload of about 300,000 contacts in one request.
    #[arg(long, env = "CALLHOOK_MAX_ADMIN_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_admin_body_bytes: usize,
    /// Serve `/metrics` on this address instead of the main listener.
    #[arg(long, env = "CALLHOOK_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Bearer token a `/metrics` scrape must present; none: open.
    #[arg(long, env = "CALLHOOK_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<Secret>,
}

impl ServerArgs {
    pub fn problems(&self) -> Vec<String> {
        let mut problems = vec![];
        let mut check = |name: &str, value: u64, range: RangeInclusive<u64>| {
            if let Some(problem) = out_of_range(name, value, range) {
                problems.push(problem);
            }
        };
        check("CALLHOOK_HEADER_READ_TIMEOUT_SECS", self.header_read_timeout_secs, 1..=300);
        check("CALLHOOK_BODY_READ_TIMEOUT_SECS", self.body_read_timeout_secs, 1..=300);
        check("CALLHOOK_IDLE_TIMEOUT_SECS", self.idle_timeout_secs, 1..=3600);
        check("CALLHOOK_MAX_CONNECTIONS", self.max_connections as u64, 1..=1_000_000);
        check("CALLHOOK_SHUTDOWN_GRACE_SECS", self.shutdown_grace_secs, 1..=3600);
        check("CALLHOOK_QUEUE_TIMEOUT_MS", self.queue_timeout_ms, 0..=60_000);
        check("CALLHOOK_MAX_ADMIN_BODY_BYTES", self.max_admin_body_bytes as u64, 1024..=256 * 1024 * 1024);
        if self.metrics_token.as_ref().is_some_and(|t| t.expose().trim().is_empty()) {
            problems.push("CALLHOOK_METRICS_TOKEN is set but empty".into());
        }
        problems
    }

    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            max_connections: self.max_connections,
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
        }
    }

    pub fn metrics_access(&self) -> MetricsAccess {
        MetricsAccess { separate_listener: self.metrics_listen.is_some(), token: self.metrics_token.clone() }
    }
}

/// `name must be between …` when `value` is outside `range`.
pub fn out_of_range(name: &str, value: u64, range: RangeInclusive<u64>) -> Option<String> {
    (!range.contains(&value))
        .then(|| format!("{name} must be between {} and {}, got {value}", range.start(), range.end()))
}
