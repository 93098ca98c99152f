//! Where and how outbox jobs are delivered: the sink and the dispatcher's settings.

use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::outbox::{DispatcherConfig, HttpSink, LogSink, NatsSink, Sink, SinkError};
use crate::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SinkKind {
    Log,
    Http,
    Nats,
}

/// Where and how outbox jobs are delivered.
#[derive(Debug, Clone, Args)]
pub struct OutboxArgs {
    /// Sink for outbox jobs.
    #[arg(long, env = "CALLHOOK_SINK", value_enum, default_value_t = SinkKind::Log)]
    pub sink: SinkKind,
    /// http sink: the dialogue orchestrator's URL.
    #[arg(long, env = "CALLHOOK_SINK_HTTP_URL")]
    pub sink_http_url: Option<String>,
    /// http sink: Standard Webhooks secret (`whsec_…`) the receiver verifies with.
    #[arg(long, env = "CALLHOOK_SINK_HTTP_SECRET", hide_env_values = true)]
    pub sink_http_secret: Option<Secret>,
    /// http sink: per-request timeout.
    #[arg(long, env = "CALLHOOK_SINK_HTTP_TIMEOUT_SECS", default_value_t = 10)]
    pub sink_http_timeout_secs: u64,
    /// NATS server URL (the nats sink and the nats spool).
    #[arg(long, env = "CALLHOOK_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// nats sink: JetStream stream (created if missing, capturing `{prefix}.>`).
    #[arg(long, env = "CALLHOOK_NATS_STREAM", default_value = "CALLHOOK")]
    pub nats_stream: String,
    /// nats sink: subjects are `{prefix}.{job kind}`, e.g. `callhook.dialogue.start`.
    #[arg(long, env = "CALLHOOK_NATS_SUBJECT_PREFIX", default_value = "callhook")]
    pub nats_subject_prefix: String,
    /// Deliveries tried before a job is marked dead.
    #[arg(long, env = "CALLHOOK_OUTBOX_MAX_ATTEMPTS", default_value_t = 10)]
    pub outbox_max_attempts: i32,
    /// Polling interval when no new-job signal arrives.
    #[arg(long, env = "CALLHOOK_OUTBOX_POLL_MS", default_value_t = 1000)]
    pub outbox_poll_ms: u64,
    /// How long a claimed job stays exclusive to one dispatcher.
    #[arg(long, env = "CALLHOOK_OUTBOX_LEASE_SECS", default_value_t = 30)]
    pub outbox_lease_secs: u64,
    /// First retry delay; doubles per attempt (with jitter) up to 5 minutes.
    #[arg(long, env = "CALLHOOK_OUTBOX_BACKOFF_MS", default_value_t = 500)]
    pub outbox_backoff_ms: u64,
    /// Do not run the dispatcher in this process.
    #[arg(long, env = "CALLHOOK_NO_DISPATCHER")]
    pub no_dispatcher: bool,
}

impl OutboxArgs {
    /// The warning for the `log` sink, the default: fine for a demo, but in a
    /// deployment every `dialogue.start` is then only logged and marked delivered.
    pub fn log_sink_warning(&self) -> Option<&'static str> {
        (self.sink == SinkKind::Log).then_some(
            "sink = log: dialogue.start jobs are only logged and marked delivered — no dialogue orchestrator \
             receives them. Set sink = http (CALLHOOK_SINK_HTTP_URL) or nats for a real deployment",
        )
    }

    pub fn lease_secs_below_timeout(&self) -> bool {
        self.sink == SinkKind::Http && self.outbox_lease_secs <= self.sink_http_timeout_secs
    }

    pub fn dispatcher_config(&self) -> DispatcherConfig {
        DispatcherConfig {
            max_attempts: self.outbox_max_attempts.max(1),
            poll_interval: Duration::from_millis(self.outbox_poll_ms.max(10)),
            lease: Duration::from_secs(self.outbox_lease_secs.max(1)),
            backoff_base: Duration::from_millis(self.outbox_backoff_ms),
            ..DispatcherConfig::default()
        }
    }

    /// Builds the configured sink, explaining what is missing.
    pub async fn sink(&self) -> Result<Arc<dyn Sink>, SinkError> {
        Ok(match self.sink {
            SinkKind::Log => Arc::new(LogSink),
            SinkKind::Http => {
                let url = self
                    .sink_http_url
                    .clone()
                    .ok_or_else(|| SinkError("the http sink needs CALLHOOK_SINK_HTTP_URL".into()))?;
                let secret = self
                    .sink_http_secret
                    .clone()
                    .ok_or_else(|| SinkError("the http sink needs CALLHOOK_SINK_HTTP_SECRET".into()))?;
                Arc::new(HttpSink::new(url, &secret, Duration::from_secs(self.sink_http_timeout_secs))?)
            }
            SinkKind::Nats => {
                Arc::new(NatsSink::connect(&self.nats_url, &self.nats_stream, &self.nats_subject_prefix).await?)
            }
        })
    }
}
