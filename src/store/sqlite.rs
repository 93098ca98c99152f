//! Embedded SQLite, the zero-setup default. One connection does all the work, so
//! transactions never interleave: no row locks or named locks are needed, and
//! exactly-once follows from the unique dedupe key alone. WAL journaling with
//! `synchronous = FULL` makes a commit durable before the webhook is answered.
//!
//! Timestamps are RFC 3339 text in UTC. sqlx writes them with 0, 3, 6 or 9
//! fractional digits and the database clock ([`Dialect::NOW`]) with 3; both end in
//! `+00:00`, and `+` sorts before `.` and every digit, so comparing them as text
//! (due jobs, leases) orders them correctly.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Sqlite};
use tokio::sync::Notify;
use uuid::Uuid;

use super::dialect::{bind_plain, Arg, BoxFuture, Dialect, Query};
use super::rows::{corrupt, impl_row_ext};
use super::sql_store::SqlStore;
use super::StoreResult;

pub type SqliteStore = SqlStore<Sqlite>;

/// The database clock in the text form of the timestamp columns.
const SQLITE_NOW: &str = "strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')";

impl SqliteStore {
    /// Opens (creating if needed) the database a `sqlite:` URL names;
    /// `sqlite::memory:` gives a private in-memory database.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        // One connection, never recycled: serialises writers, and keeps an in-memory
        // database alive for the life of the store.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        Ok(SqlStore::new(pool))
    }
}

impl Dialect for Sqlite {
    const BACKEND: &'static str = "sqlite";
    const LOCK_ATTEMPT: &'static str = "";
    const LOCK_CONTACT: &'static str = "";
    const LOCK_ROWS: &'static str = "";
    const SKIP_LOCKED: &'static str = "";
    const NAMED_LOCK: Option<&'static str> = None;
    const NOW: &'static str = SQLITE_NOW;
    const TRANSACTION_ABORTS_ON_ERROR: bool = false;
    const PING: &'static str = "SELECT 1";
    const WRITABLE_CTE: bool = false;
    const PARTITIONED_INBOX: bool = false;
    const JSON_CALL_ID: &'static str = "json_extract(payload, '$.call_id')";
    // sqlx's SQLite driver slows down sharply on statements with many parameters.
    const ROWS_PER_INSERT: usize = 50;
    const NOTIFY_JOB_INSERT: Option<(&'static str, &'static str)> = None;

    fn now_plus_ms(param: &str) -> String {
        format!("strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now', (({param}) / 1000.0) || ' seconds')")
    }

    fn bind<'q>(query: Query<'q, Self>, arg: Arg<'q>) -> Query<'q, Self> {
        match arg {
            Arg::Id(id) => query.bind(id.map(|id| id.hyphenated().to_string())),
            other => bind_plain(query, other),
        }
    }

    fn migrate(pool: &SqlitePool) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move { Ok(sqlx::migrate!("./migrations/sqlite").run(pool).await?) })
    }

    /// One process owns an SQLite file, so the in-process signal is all there is.
    fn listen_for_jobs(_pool: &SqlitePool, _jobs: Arc<Notify>) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async { Ok(()) })
    }

    fn execute<'a>(conn: &'a mut Self::Connection, query: Query<'a, Self>) -> BoxFuture<'a, sqlx::Result<u64>> {
        Box::pin(async move { Ok(query.execute(conn).await?.rows_affected()) })
    }

    fn fetch_all<'a>(
        conn: &'a mut Self::Connection,
        query: Query<'a, Self>,
    ) -> BoxFuture<'a, sqlx::Result<Vec<SqliteRow>>> {
        Box::pin(query.fetch_all(conn))
    }

    fn fetch_optional<'a>(
        conn: &'a mut Self::Connection,
        query: Query<'a, Self>,
    ) -> BoxFuture<'a, sqlx::Result<Option<SqliteRow>>> {
        Box::pin(query.fetch_optional(conn))
    }
}

impl_row_ext!(SqliteRow, |row, col| {
    let text: Option<String> = row.try_get(col)?;
    text.map(|t| Uuid::parse_str(&t).map_err(|_| corrupt(col, &t))).transpose()
});
