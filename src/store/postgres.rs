//! PostgreSQL, the production store. Concurrent deliveries of one call serialise on
//! the attempt's row lock (`FOR UPDATE`); deferral and registration serialise on a
//! transaction-scoped advisory lock named after the call; committed jobs are
//! announced to every replica with `NOTIFY`.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row};
use tokio::sync::Notify;
use uuid::Uuid;

use super::dialect::{bind_plain, Arg, BoxFuture, Dialect, Query};
use super::rows::impl_row_ext;
use super::sql_store::SqlStore;
use super::StoreResult;

/// The channel committed outbox jobs are announced on.
const JOBS_CHANNEL: &str = "callhook_outbox";

pub type PgStore = SqlStore<Postgres>;

impl PgStore {
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        Ok(PgStore::from_pool(pool_options(max_connections).connect(url).await?))
    }

    /// A store whose connections are opened on first use: `serve` with an outage
    /// spool starts this way when PostgreSQL is unreachable (SPEC §10).
    pub fn connect_lazy(url: &str, max_connections: u32) -> StoreResult<Self> {
        let pool = pool_options(max_connections)
            .connect_lazy(url)
            .map_err(|e| super::StoreError::Invalid(format!("DATABASE_URL: {e}")))?;
        Ok(PgStore::from_pool(pool))
    }

    /// Wraps an existing pool (tests give each run its own schema this way).
    pub fn from_pool(pool: PgPool) -> Self {
        SqlStore::new(pool)
    }
}

fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new().max_connections(max_connections).acquire_timeout(Duration::from_secs(5))
}

impl Dialect for Postgres {
    const BACKEND: &'static str = "postgres";
    const LOCK_ATTEMPT: &'static str = "FOR UPDATE OF a, c";
    const LOCK_CONTACT: &'static str = "FOR UPDATE OF c";
    const LOCK_ROWS: &'static str = "FOR UPDATE";
    const SKIP_LOCKED: &'static str = "FOR UPDATE SKIP LOCKED";
    const NAMED_LOCK: Option<&'static str> = Some("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))");
    const NOW: &'static str = "now()";
    // A standby (a failover in progress, a replica behind the same name) answers
    // queries but refuses writes: not ready.
    const TRANSACTION_ABORTS_ON_ERROR: bool = true;
    const PING: &'static str = "SELECT 1 WHERE NOT pg_is_in_recovery()";
    const WRITABLE_CTE: bool = true;
    const PARTITIONED_INBOX: bool = true;
    const JSON_CALL_ID: &'static str = "payload->>'call_id'";
    const ROWS_PER_INSERT: usize = 1000;
    // The NOTIFY reaches other replicas' dispatchers when the transaction commits.
    const NOTIFY_JOB_INSERT: Option<(&'static str, &'static str)> =
        Some(("WITH j AS (", " RETURNING 1) SELECT pg_notify('callhook_outbox', '') FROM j"));

    fn now_plus_ms(param: &str) -> String {
        format!("(now() + ({param})::double precision * interval '1 millisecond')")
    }

    fn bind<'q>(query: Query<'q, Self>, arg: Arg<'q>) -> Query<'q, Self> {
        match arg {
            Arg::Id(id) => query.bind(id),
            other => bind_plain(query, other),
        }
    }

    fn migrate(pool: &PgPool) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move { Ok(sqlx::migrate!("./migrations/postgres").run(pool).await?) })
    }

    /// `LISTEN`s for other replicas' jobs and wakes the local dispatcher; reconnects
    /// on its own after a lost connection (polling covers the gap).
    fn listen_for_jobs(pool: &PgPool, jobs: Arc<Notify>) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let mut listener = PgListener::connect_with(pool).await?;
            listener.listen(JOBS_CHANNEL).await?;
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
        })
    }

    fn execute<'a>(conn: &'a mut Self::Connection, query: Query<'a, Self>) -> BoxFuture<'a, sqlx::Result<u64>> {
        Box::pin(async move { Ok(query.execute(conn).await?.rows_affected()) })
    }

    fn fetch_all<'a>(
        conn: &'a mut Self::Connection,
        query: Query<'a, Self>,
    ) -> BoxFuture<'a, sqlx::Result<Vec<PgRow>>> {
        Box::pin(query.fetch_all(conn))
    }

    fn fetch_optional<'a>(
        conn: &'a mut Self::Connection,
        query: Query<'a, Self>,
    ) -> BoxFuture<'a, sqlx::Result<Option<PgRow>>> {
        Box::pin(query.fetch_optional(conn))
    }
}

impl_row_ext!(PgRow, |row, col| Ok(row.try_get::<Option<Uuid>, _>(col)?));
