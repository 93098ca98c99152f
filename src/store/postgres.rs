//! PostgreSQL, the production store. Concurrent deliveries of one call serialise on
//! the attempt's row lock (`FOR UPDATE`); deferral and registration serialise on a
//! transaction-scoped advisory lock named after the call.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};

use super::backend::sql_backend;
use super::rows::impl_row_ext;

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        Ok(PgStore { pool })
    }

    /// Wraps an existing pool (tests give each run its own schema this way).
    pub fn from_pool(pool: PgPool) -> Self {
        PgStore { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn run_migrations(&self) -> StoreResult<()> {
        sqlx::migrate!("./migrations/postgres").run(&self.pool).await?;
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
    named_lock: Some("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"),
}
