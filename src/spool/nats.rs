//! The NATS spool: a JetStream stream (work-queue retention, file storage, as many
//! replicas as configured) that every callhook replica appends to and any replica
//! drains, through one durable pull consumer.
//!
//! A record is accepted when the stream acknowledges it (stored on its replicas);
//! `Nats-Msg-Id` is the callback's inbox key, so a provider's retry that reaches
//! another replica within the stream's duplicate window is stored once here too.
//! The consumer allows one unacknowledged record at a time, so records are applied
//! in arrival order whichever replica drains; a record is acknowledged only after
//! the store committed it, and one a replica held when it died is redelivered.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream, AckKind};
use async_trait::async_trait;
use futures_util::StreamExt;
use sha2::Digest;

use super::{apply, Backend, DrainReport, SpoolError, SpoolStatus, Stop, Verdict, MAX_STOPS};
use crate::store::Store;

const CONSUMER: &str = "callhook-spool-drainer";
/// A drainer that died holding a record releases it after this long.
const ACK_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct NatsSpoolConfig {
    pub url: String,
    pub stream: String,
    pub replicas: usize,
    pub max_bytes: u64,
}

impl NatsSpoolConfig {
    fn subject(&self) -> String {
        format!("spool.{}.events", self.stream)
    }

    fn set_aside_subject(&self) -> String {
        format!("spool.{}.set-aside", self.stream)
    }

    fn set_aside_stream(&self) -> String {
        format!("{}_SET_ASIDE", self.stream)
    }
}

pub struct NatsSpool {
    config: NatsSpoolConfig,
    jetstream: jetstream::Context,
    /// One drain at a time in this process (the consumer orders them across replicas).
    draining: tokio::sync::Mutex<()>,
}

impl NatsSpool {
    /// Connects and creates the streams if missing.
    pub async fn open(config: NatsSpoolConfig) -> Result<Self, SpoolError> {
        let setup = |what: &str, e: &dyn std::fmt::Display| {
            SpoolError::Setup(format!("NATS spool ({}): {what}: {e}", config.url))
        };
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .retry_on_initial_connect()
            .connect(&config.url)
            .await
            .map_err(|e| setup("cannot connect", &e))?;
        let jetstream = jetstream::new(client);
        let spool = stream::Config {
            name: config.stream.clone(),
            subjects: vec![config.subject()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            num_replicas: config.replicas,
            max_bytes: i64::try_from(config.max_bytes).unwrap_or(i64::MAX),
            discard: stream::DiscardPolicy::New,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        let set_aside = stream::Config {
            name: config.set_aside_stream(),
            subjects: vec![config.set_aside_subject()],
            storage: stream::StorageType::File,
            num_replicas: config.replicas,
            ..Default::default()
        };
        for stream in [spool, set_aside] {
            let name = stream.name.clone();
            tokio::time::timeout(Duration::from_secs(10), jetstream.get_or_create_stream(stream))
                .await
                .map_err(|e| setup(&format!("stream `{name}`"), &e))?
                .map_err(|e| setup(&format!("stream `{name}`"), &e))?;
        }
        Ok(NatsSpool { config, jetstream, draining: tokio::sync::Mutex::new(()) })
    }

    async fn consumer(&self) -> Result<consumer::PullConsumer, SpoolError> {
        let stream = self.jetstream.get_stream(&self.config.stream).await.map_err(unavailable)?;
        let config = consumer::pull::Config {
            durable_name: Some(CONSUMER.into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: ACK_WAIT,
            max_ack_pending: 1,
            ..Default::default()
        };
        stream.get_or_create_consumer(CONSUMER, config).await.map_err(unavailable)
    }

    async fn set_aside(&self, payload: bytes::Bytes, error: &str) -> Result<(), SpoolError> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Callhook-Error", crate::http::clip_message(error).replace(['\r', '\n'], " ").as_str());
        let ack = self
            .jetstream
            .publish_with_headers(self.config.set_aside_subject(), headers, payload)
            .await
            .map_err(unavailable)?;
        ack.await.map_err(unavailable)?;
        Ok(())
    }
}

fn unavailable(e: impl std::fmt::Display) -> SpoolError {
    SpoolError::Unavailable(format!("NATS: {e}"))
}

/// The error and its causes, one line (the server's reason is in a source).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text = format!("{text}: {c}");
        cause = c.source();
    }
    text
}

#[async_trait]
impl Backend for NatsSpool {
    fn kind(&self) -> &'static str {
        "nats"
    }

    async fn append(&self, record: Vec<u8>, dedupe_key: &str) -> Result<(), SpoolError> {
        let mut headers = async_nats::HeaderMap::new();
        // The key holds provider input: hashed, it is always a valid header value.
        let id = sha2::Sha256::digest(dedupe_key.as_bytes());
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
        let refused = |e: &dyn std::error::Error| {
            let text = chain(e);
            if text.contains("maximum bytes") || text.contains("maximum messages") {
                SpoolError::Full(format!("stream `{}`: {text}", self.config.stream))
            } else {
                unavailable(text)
            }
        };
        let ack = self
            .jetstream
            .publish_with_headers(self.config.subject(), headers, record.into())
            .await
            .map_err(|e| refused(&e))?;
        ack.await.map_err(|e| refused(&e))?;
        Ok(())
    }

    async fn status(&self) -> Result<SpoolStatus, SpoolError> {
        let spool = self.jetstream.get_stream(&self.config.stream).await.map_err(unavailable)?;
        let state = &spool.cached_info().state;
        let set_aside = self.jetstream.get_stream(self.config.set_aside_stream()).await.map_err(unavailable)?;
        let oldest_at = (state.messages > 0)
            .then(|| chrono::DateTime::from_timestamp(state.first_timestamp.unix_timestamp(), 0))
            .flatten();
        Ok(SpoolStatus {
            backend: "nats",
            location: format!("{} stream {}", self.config.url, self.config.stream),
            records: state.messages,
            bytes: state.bytes,
            max_bytes: self.config.max_bytes,
            oldest_at,
            set_aside: set_aside.cached_info().state.messages,
        })
    }

    async fn drain(&self, store: &dyn Store, stop: Stop<'_>) -> Result<DrainReport, SpoolError> {
        let _one = self.draining.lock().await;
        let consumer = self.consumer().await?;
        let mut report = DrainReport::default();
        loop {
            let mut batch = consumer
                .fetch()
                .max_messages(256)
                .expires(Duration::from_millis(500))
                .messages()
                .await
                .map_err(unavailable)?;
            let mut fetched = 0;
            while let Some(message) = batch.next().await {
                let message = message.map_err(unavailable)?;
                fetched += 1;
                if stop() {
                    let _ = message.ack_with(AckKind::Nak(None)).await;
                    report.stopped = Some("shutting down".into());
                    return Ok(report);
                }
                let mut verdict = apply(store, &message.payload).await;
                if let Verdict::Stop(why) = &verdict {
                    // Each delivery follows a probe the store answered (see `MAX_STOPS`).
                    let delivered = message.info().map_or(1, |info| info.delivered);
                    if delivered >= i64::from(MAX_STOPS) {
                        verdict = Verdict::SetAside(format!(
                            "failed {delivered} drains in a row while the store answered: {why}"
                        ));
                    }
                }
                match &verdict {
                    Verdict::Stop(why) => {
                        // Back at once for the next drain, in order (nothing else is pending).
                        let _ = message.ack_with(AckKind::Nak(None)).await;
                        report.stopped = Some(why.clone());
                        return Ok(report);
                    }
                    Verdict::SetAside(error) => self.set_aside(message.payload.clone(), error).await?,
                    Verdict::Stored(_) => {}
                }
                report.count("nats", &verdict);
                // Acknowledged once the store committed; confirmed, so a drain that
                // returns has removed what it reports.
                message.double_ack().await.map_err(unavailable)?;
            }
            if fetched == 0 {
                return Ok(report);
            }
        }
    }
}
