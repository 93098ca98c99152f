//! Embedded SQLite, the zero-setup default. One connection does all the work, so
//! transactions never interleave: no row locks or named locks are needed, and
//! exactly-once follows from the unique dedupe key alone. WAL journaling with
//! `synchronous = FULL` makes a commit durable before the webhook is answered.
//! Timestamps are RFC 3339 text in UTC, written only by sqlx, so comparing them as
//! text (due jobs, leases) orders them correctly.

use std::str::FromStr;
use std::sync::Arc;

use tokio::sync::Notify;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};

use super::backend::sql_backend;
use super::rows::{corrupt, impl_row_ext};

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    jobs: Arc<Notify>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database a `sqlite:` URL names;
    /// `sqlite::memory:` gives a private in-memory database.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(5));
        // One connection, never recycled: serialises writers, and keeps an in-memory
        // database alive for the life of the store.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        Ok(SqliteStore { pool, jobs: Arc::new(Notify::new()) })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn run_migrations(&self) -> StoreResult<()> {
        sqlx::migrate!("./migrations/sqlite").run(&self.pool).await?;
        Ok(())
    }

    /// One process owns an SQLite file, so the in-process signal is all there is.
    async fn spawn_job_listener(&self) -> StoreResult<()> {
        Ok(())
    }

    async fn begin(&self) -> StoreResult<Tx> {
        Ok(Tx(self.pool.begin().await?))
    }
}

fn sqlite_id(id: Uuid) -> String {
    id.hyphenated().to_string()
}

impl_row_ext!(SqliteRow, |row, col| {
    let text: Option<String> = sqlx::Row::try_get(row, col)?;
    text.map(|t| Uuid::parse_str(&t).map_err(|_| corrupt(col, &t))).transpose()
});

sql_backend! {
    name: "sqlite",
    store: SqliteStore,
    db: sqlx::Sqlite,
    id: sqlite_id,
    lock_attempt: "",
    lock_contact: "",
    lock_events: "",
    claim_lock: "",
    named_lock: None,
    job_insert_wrap: ("", ""),
    extra_tx_ops: {},
}
