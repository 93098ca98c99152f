//! Where jobs go: `log` (default), `http` (Standard Webhooks-signed POST) and
//! `nats` (JetStream publish, deduplicated by `Nats-Msg-Id`). Every sink reports
//! success only once the receiver has acknowledged the job.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use super::standard_webhooks;
use crate::secret::Secret;
use crate::store::OutboxJob;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

#[async_trait]
pub trait Sink: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    async fn deliver(&self, job: &OutboxJob) -> Result<(), SinkError>;
}

/// The envelope every sink sends: Standard Webhooks' `type`/`timestamp`/`data`,
/// plus the job id receivers dedupe on.
pub fn envelope(job: &OutboxJob) -> serde_json::Value {
    json!({ "id": job.id, "type": job.kind, "timestamp": job.created_at, "data": job.payload })
}

/// Logs each job; for development and for running without an orchestrator.
pub struct LogSink;

#[async_trait]
impl Sink for LogSink {
    fn name(&self) -> &'static str {
        "log"
    }

    async fn deliver(&self, job: &OutboxJob) -> Result<(), SinkError> {
        tracing::info!(job_id = %job.id, kind = %job.kind, payload = %job.payload, "outbox job (log sink)");
        Ok(())
    }
}

/// POSTs the envelope as JSON; any 2xx is a delivery, anything else a retry.
pub struct HttpSink {
    client: reqwest::Client,
    url: String,
    key: Vec<u8>,
}

impl HttpSink {
    pub fn new(url: impl Into<String>, secret: &Secret, timeout: Duration) -> Result<Self, SinkError> {
        let client =
            reqwest::Client::builder().timeout(timeout).build().map_err(|e| SinkError(format!("http client: {e}")))?;
        Ok(HttpSink { client, url: url.into(), key: standard_webhooks::secret_bytes(secret.expose()) })
    }
}

#[async_trait]
impl Sink for HttpSink {
    fn name(&self) -> &'static str {
        "http"
    }

    async fn deliver(&self, job: &OutboxJob) -> Result<(), SinkError> {
        let body = serde_json::to_vec(&envelope(job)).expect("JSON values serialise");
        let id = job.id.to_string();
        let timestamp = chrono::Utc::now().timestamp();
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", standard_webhooks::sign(&self.key, &id, timestamp, &body))
            .body(body)
            .send()
            .await
            .map_err(|e| SinkError(format!("POST {}: {e}", self.url)))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(SinkError(format!("POST {} answered {}", self.url, response.status())))
        }
    }
}

/// Publishes to JetStream subject `{prefix}.{kind}` and waits for the stream's ack.
/// JetStream drops a re-publish with the same `Nats-Msg-Id` inside the stream's
/// duplicate window, so a retried job is stored once.
pub struct NatsSink {
    jetstream: async_nats::jetstream::Context,
    subject_prefix: String,
}

impl NatsSink {
    /// Connects and makes sure stream `stream` captures `{prefix}.>`.
    pub async fn connect(url: &str, stream: &str, subject_prefix: &str) -> Result<Self, SinkError> {
        let client = async_nats::connect(url).await.map_err(|e| SinkError(format!("NATS connect {url}: {e}")))?;
        let jetstream = async_nats::jetstream::new(client);
        jetstream
            .get_or_create_stream(async_nats::jetstream::stream::Config {
                name: stream.to_owned(),
                subjects: vec![format!("{subject_prefix}.>")],
                ..Default::default()
            })
            .await
            .map_err(|e| SinkError(format!("JetStream stream `{stream}`: {e}")))?;
        Ok(NatsSink { jetstream, subject_prefix: subject_prefix.to_owned() })
    }
}

#[async_trait]
impl Sink for NatsSink {
    fn name(&self) -> &'static str {
        "nats"
    }

    async fn deliver(&self, job: &OutboxJob) -> Result<(), SinkError> {
        let body = serde_json::to_vec(&envelope(job)).expect("JSON values serialise");
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, job.id.to_string().as_str());
        let subject = format!("{}.{}", self.subject_prefix, job.kind);
        let ack = self
            .jetstream
            .publish_with_headers(subject.clone(), headers, body.into())
            .await
            .map_err(|e| SinkError(format!("publish {subject}: {e}")))?;
        ack.await.map_err(|e| SinkError(format!("no JetStream ack for {subject}: {e}")))?;
        Ok(())
    }
}
