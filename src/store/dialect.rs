//! What truly differs between the two backends, in one trait: how a UUID is bound,
//! the row-locking suffixes, the named lock, the database clock, and whether
//! a statement may modify data inside a `WITH`. Everything else — the statements
//! in [`super::sql`], the transactional rules in [`super::flow`] — is written once,
//! generic over [`Dialect`].
//!
//! Values are bound through [`Arg`], one typed value per column, so a statement's
//! parameters are listed beside the column names they fill (see [`super::sql::cols`])
//! instead of being counted by hand.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use tokio::sync::Notify;
use uuid::Uuid;

use super::rows::RowExt;
use super::StoreResult;

/// A statement of backend `D` with its bound values.
pub type Query<'q, D> = sqlx::query::Query<'q, D, <D as sqlx::Database>::Arguments<'q>>;

/// A database call in flight (what [`Dialect`]'s execution methods return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One bound value. The variants are the column types the schema uses.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Id(Option<Uuid>),
    Text(Option<&'a str>),
    Int(Option<i32>),
    BigInt(Option<i64>),
    Bool(bool),
    Ts(Option<DateTime<Utc>>),
    Json(&'a Value),
    OptJson(Option<&'a Value>),
}

/// A backend's differences. Implemented for `sqlx::Postgres` and `sqlx::Sqlite`.
pub trait Dialect: sqlx::Database<Row: RowExt> {
    /// `postgres` or `sqlite`.
    const BACKEND: &'static str;
    /// Locks an attempt and its contact (alias `a`, `c`) for the transaction.
    const LOCK_ATTEMPT: &'static str;
    /// Locks a contact (alias `c`).
    const LOCK_CONTACT: &'static str;
    /// Locks the selected inbox rows.
    const LOCK_ROWS: &'static str;
    /// Lets concurrent claimers skip each other's rows.
    const SKIP_LOCKED: &'static str;
    /// A transaction-scoped lock on the name bound as `$1`; `None` where writers
    /// are already serialised (SQLite's single connection).
    const NAMED_LOCK: Option<&'static str>;
    /// The database's clock, as an SQL expression of the same type as the
    /// timestamp columns. Leases and job schedules use it, so that replicas whose
    /// clocks disagree still agree on when a lease ends.
    const NOW: &'static str;
    /// The readiness probe: one row when the database can take writes now.
    const PING: &'static str;
    /// An error aborts the whole transaction (PostgreSQL), so a batch of callbacks
    /// can never commit half of a failed one: group commit is safe (`batch.rs`).
    const TRANSACTION_ABORTS_ON_ERROR: bool;
    /// Whether `WITH x AS (INSERT …) UPDATE …` works (one round trip for the inbox
    /// insert and the attempt update).
    const WRITABLE_CTE: bool;
    /// The inbox is partitioned by month, its dedupe keys kept unique in
    /// `telephony_event_keys` (PostgreSQL, migration 0006).
    const PARTITIONED_INBOX: bool;
    /// An outbox job's `payload.call_id` as text.
    const JSON_CALL_ID: &'static str;
    /// Wraps an outbox `INSERT` so that its commit wakes other replicas'
    /// dispatchers (`NOTIFY`); `None` where there are no other replicas.
    const NOTIFY_JOB_INSERT: Option<(&'static str, &'static str)>;

    /// Rows per multi-row `INSERT` of a bulk write: fastest measured (see
    /// `examples/contacts_upload.rs`), and far below the parameter limits.
    const ROWS_PER_INSERT: usize;

    /// `NOW` plus the milliseconds bound at parameter `param` (e.g. `$2`).
    fn now_plus_ms(param: &str) -> String;

    /// Binds one value.
    fn bind<'q>(query: Query<'q, Self>, arg: Arg<'q>) -> Query<'q, Self>;

    /// Applies this backend's embedded migrations.
    fn migrate(pool: &sqlx::Pool<Self>) -> BoxFuture<'_, StoreResult<()>>;
    /// Forwards other replicas' job commits to `jobs` (a no-op without replicas).
    fn listen_for_jobs(pool: &sqlx::Pool<Self>, jobs: Arc<Notify>) -> BoxFuture<'_, StoreResult<()>>;

    fn execute<'a>(conn: &'a mut Self::Connection, query: Query<'a, Self>) -> BoxFuture<'a, sqlx::Result<u64>>;
    fn fetch_all<'a>(
        conn: &'a mut Self::Connection,
        query: Query<'a, Self>,
    ) -> BoxFuture<'a, sqlx::Result<Vec<Self::Row>>>;
    fn fetch_optional<'a>(
        conn: &'a mut Self::Connection,
        query: Query<'a, Self>,
    ) -> BoxFuture<'a, sqlx::Result<Option<Self::Row>>>;
}

/// A statement with its values bound in order.
pub fn query<'q, D: Dialect>(sql: &'q str, args: impl IntoIterator<Item = Arg<'q>>) -> Query<'q, D> {
    args.into_iter().fold(sqlx::query::<D>(sql), D::bind)
}

/// Binds every variant but `Id`, whose encoding is the one thing the backends
/// disagree on; each [`Dialect::bind`] handles `Id` and delegates the rest here.
pub fn bind_plain<'q, D>(query: Query<'q, D>, arg: Arg<'q>) -> Query<'q, D>
where
    D: sqlx::Database,
    Option<&'q str>: sqlx::Encode<'q, D> + sqlx::Type<D>,
    Option<i32>: sqlx::Encode<'q, D> + sqlx::Type<D>,
    Option<i64>: sqlx::Encode<'q, D> + sqlx::Type<D>,
    bool: sqlx::Encode<'q, D> + sqlx::Type<D>,
    Option<DateTime<Utc>>: sqlx::Encode<'q, D> + sqlx::Type<D>,
    Json<&'q Value>: sqlx::Encode<'q, D> + sqlx::Type<D>,
    Option<Json<&'q Value>>: sqlx::Encode<'q, D> + sqlx::Type<D>,
{
    match arg {
        Arg::Text(v) => query.bind(v),
        Arg::Int(v) => query.bind(v),
        Arg::BigInt(v) => query.bind(v),
        Arg::Bool(v) => query.bind(v),
        Arg::Ts(v) => query.bind(v),
        Arg::Json(v) => query.bind(Json(v)),
        Arg::OptJson(v) => query.bind(v.map(Json)),
        Arg::Id(_) => unreachable!("each dialect binds UUIDs itself"),
    }
}

impl<'a> From<Uuid> for Arg<'a> {
    fn from(v: Uuid) -> Self {
        Arg::Id(Some(v))
    }
}
impl<'a> From<Option<Uuid>> for Arg<'a> {
    fn from(v: Option<Uuid>) -> Self {
        Arg::Id(v)
    }
}
impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Some(v))
    }
}
impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(Some(v))
    }
}
impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::Text(v)
    }
}
impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Arg::Text(v.as_deref())
    }
}
impl<'a> From<i32> for Arg<'a> {
    fn from(v: i32) -> Self {
        Arg::Int(Some(v))
    }
}
impl<'a> From<Option<i32>> for Arg<'a> {
    fn from(v: Option<i32>) -> Self {
        Arg::Int(v)
    }
}
impl<'a> From<i64> for Arg<'a> {
    fn from(v: i64) -> Self {
        Arg::BigInt(Some(v))
    }
}
impl<'a> From<Option<i64>> for Arg<'a> {
    fn from(v: Option<i64>) -> Self {
        Arg::BigInt(v)
    }
}
impl<'a> From<bool> for Arg<'a> {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}
impl<'a> From<DateTime<Utc>> for Arg<'a> {
    fn from(v: DateTime<Utc>) -> Self {
        Arg::Ts(Some(v))
    }
}
impl<'a> From<Option<DateTime<Utc>>> for Arg<'a> {
    fn from(v: Option<DateTime<Utc>>) -> Self {
        Arg::Ts(v)
    }
}
impl<'a> From<&'a Value> for Arg<'a> {
    fn from(v: &'a Value) -> Self {
        Arg::Json(v)
    }
}
