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
            let sql = concat!(
                "WITH ins AS (",
                super::backend::INSERT_EVENT!(),
                " ON CONFLICT (dedupe_key) DO NOTHING RETURNING 1), upd AS (UPDATE call_attempts SET ",
                super::backend::ATTEMPT_SET!(19),
                " WHERE id = $19 AND EXISTS (SELECT 1 FROM ins) RETURNING 1) SELECT EXISTS (SELECT 1 FROM ins)"
            );
            let row = bind_attempt(bind_event(sqlx::query(sql), e, Some(call_id), disposition), a)
                .fetch_one(&mut *self.0)
                .await
                .map_err(|err| provider_id_conflict(err, a))?;
            Ok(sqlx::Row::try_get(&row, 0)?)
        }
    },
}
