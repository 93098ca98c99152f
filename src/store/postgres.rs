//! PostgreSQL, the production store. Concurrent deliveries of one call serialise on
//! the attempt's row lock (`FOR UPDATE`); deferral and registration serialise on a
//! transaction-scoped advisory lock named after the call.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool, PgPoolOptions, PgRow};
use tokio::sync::Notify;

use super::backend::sql_backend;
use super::rows::impl_row_ext;

/// The channel committed outbox jobs are announced on.
const JOBS_CHANNEL: &str = "callhook_outbox";

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    jobs: Arc<Notify>,
}

impl PgStore {
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        Ok(PgStore::from_pool(pool))
    }

    /// Wraps an existing pool (tests give each run its own schema this way).
    pub fn from_pool(pool: PgPool) -> Self {
        PgStore { pool, jobs: Arc::new(Notify::new()) }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn run_migrations(&self) -> StoreResult<()> {
        sqlx::migrate!("./migrations/postgres").run(&self.pool).await?;
        Ok(())
    }

    /// `LISTEN`s for other replicas' jobs and wakes the local dispatcher; reconnects
    /// on its own after a lost connection (polling covers the gap).
    async fn spawn_job_listener(&self) -> StoreResult<()> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(JOBS_CHANNEL).await?;
        let jobs = self.jobs.clone();
        tokio::spawn(async move {
            loop {
                match listener.recv().await {
                    Ok(_) => jobs.notify_one(),
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox LISTEN connection lost; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Ok(())
    }

    async fn begin(&self) -> StoreResult<Tx> {
        Ok(Tx(self.pool.begin().await?))
    }
}

fn pg_id(id: Uuid) -> Uuid {
    id
}

impl_row_ext!(PgRow, |row, col| Ok(sqlx::Row::try_get(row, col)?));

sql_backend! {
    name: "postgres",
    store: PgStore,
    db: sqlx::Postgres,
    id: pg_id,
    lock_attempt: "FOR UPDATE OF a, c",
    lock_contact: "FOR UPDATE OF c",
    lock_events: "FOR UPDATE",
    claim_lock: "FOR UPDATE SKIP LOCKED",
    named_lock: Some("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"),
    // The NOTIFY reaches other replicas' dispatchers when the transaction commits.
    job_insert_wrap: ("WITH j AS (", " RETURNING 1) SELECT pg_notify('callhook_outbox', '') FROM j"),
    extra_tx_ops: {
        /// One round trip: the inbox insert and, only if it inserted, the attempt update.
        async fn insert_event_then_update(
            &mut self,
            e: &CallEvent,
            call_id: &str,
            disposition: Disposition,
            attempt: Option<&Attempt>,
        ) -> StoreResult<bool> {
            let Some(a) = attempt else { return self.insert_event(e, Some(call_id), disposition).await };
            let inserted: bool = sqlx::query_scalar(
                "WITH ins AS (INSERT INTO telephony_events (id, provider, dedupe_key, call_id, provider_call_id, \
                 event_type, provider_status, sequence_number, occurred_at, received_at, disposition, payload, \
                 campaign_id, contact_id, duration_seconds, answered_by, error_code, error_message) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
                 ON CONFLICT (dedupe_key) DO NOTHING RETURNING 1), \
                 upd AS (UPDATE call_attempts SET provider_call_id = $20, status = $21, provider_raw_status = $22, \
                 answered_by = $23, answered_at = $24, ended_at = $25, duration_seconds = $26, outcome = $27, \
                 error_code = $28, error_message = $29 WHERE id = $19 AND EXISTS (SELECT 1 FROM ins) RETURNING 1) \
                 SELECT EXISTS (SELECT 1 FROM ins) OR EXISTS (SELECT 1 FROM upd)",
            )
            .bind(Uuid::new_v4())
            .bind(e.provider.as_str())
            .bind(&e.dedupe_key)
            .bind(call_id)
            .bind(&e.provider_call_id)
            .bind(e.event_type.map(|t| t.as_str()))
            .bind(&e.provider_status)
            .bind(e.sequence_number)
            .bind(e.occurred_at)
            .bind(e.received_at)
            .bind(disposition.as_str())
            .bind(Json(&e.payload))
            .bind(e.campaign_id)
            .bind(e.contact_id)
            .bind(e.duration_seconds)
            .bind(&e.answered_by)
            .bind(&e.error_code)
            .bind(&e.error_message)
            .bind(a.id)
            .bind(&a.provider_call_id)
            .bind(a.status.as_str())
            .bind(&a.provider_raw_status)
            .bind(&a.answered_by)
            .bind(a.answered_at)
            .bind(a.ended_at)
            .bind(a.duration_seconds)
            .bind(a.outcome.map(|o| o.as_str()))
            .bind(&a.error_code)
            .bind(&a.error_message)
            .fetch_one(&mut *self.0)
            .await
            .map_err(|err| match StoreError::from(err) {
                StoreError::Conflict(_) => StoreError::Conflict(format!(
                    "provider call id `{}` already belongs to another call attempt",
                    a.provider_call_id.as_deref().unwrap_or_default()
                )),
                other => other,
            })?;
            Ok(inserted)
        }
    },
}
