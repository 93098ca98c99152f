//! `outbox`: jobs written in the transaction that decided them, then leased,
//! delivered and settled by the dispatcher. Every time here is the database's
//! (see [`crate::store::lease`]); `created_at` alone is the application's, kept for
//! ordering and display.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{execute, fetch_all, params};
use crate::domain::{JobChange, NewJob};
use crate::store::dialect::{Arg, Dialect};
use crate::store::lease::{self, Lease, RELEASE};
use crate::store::rows::{self, RowExt, OUTBOX_COLS};
use crate::store::types::{OutboxJob, OutboxStats};
use crate::store::StoreResult;

/// Enqueues a job, due now or after its delay, unless one with its idempotency
/// key exists.
pub(crate) async fn insert<D: Dialect>(
    conn: &mut D::Connection,
    job: &NewJob,
    created_at: DateTime<Utc>,
) -> StoreResult<()> {
    let due = match job.delay {
        Some(_) => D::now_plus_ms("$6"),
        None => D::NOW.to_owned(),
    };
    let insert = format!(
        "INSERT INTO outbox (id, kind, idempotency_key, payload, status, attempts, next_run_at, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, 'pending', 0, {due}, $5, $5) ON CONFLICT (idempotency_key) DO NOTHING"
    );
    let mut args = vec![
        Uuid::new_v4().into(),
        job.kind.as_str().into(),
        (&job.idempotency_key).into(),
        (&job.payload).into(),
        created_at.into(),
    ];
    if let Some(delay) = job.delay {
        args.push(delay.num_milliseconds().into());
    }
    execute::<D>(conn, &announced::<D>(insert), args).await?;
    Ok(())
}

/// `statement` (an `INSERT` or `UPDATE` of jobs), announcing the jobs it touched to
/// other replicas' dispatchers where the backend can.
fn announced<D: Dialect>(statement: String) -> String {
    match D::NOTIFY_JOB_INSERT {
        Some((before, after)) => format!("{before}{statement}{after}"),
        None => statement,
    }
}

/// Applies a [`JobChange`] to a pending job; returns how many jobs became
/// deliverable (to wake the dispatcher).
pub(crate) async fn change<D: Dialect>(
    conn: &mut D::Connection,
    change: &JobChange,
    created_at: DateTime<Utc>,
) -> StoreResult<usize> {
    let now = D::NOW;
    match change {
        JobChange::DueNow { idempotency_key } => {
            let update = format!(
                "UPDATE outbox SET next_run_at = {now}, updated_at = {now} \
                 WHERE idempotency_key = $1 AND status = 'pending' AND next_run_at > {now}"
            );
            let made_due = execute::<D>(conn, &announced::<D>(update), [idempotency_key.into()]).await?;
            Ok(usize::try_from(made_due).unwrap_or(0))
        }
        JobChange::Expire { idempotency_key, reason } => {
            expire::<D>(conn, idempotency_key, reason).await?;
            Ok(0)
        }
        JobChange::Withdraw { idempotency_key, reason, undo } => {
            if expire::<D>(conn, idempotency_key, reason).await? {
                return Ok(0);
            }
            // Not pending (or held by a dispatcher): delivered, or being delivered.
            let sql = "SELECT status FROM outbox WHERE idempotency_key = $1";
            let rows = fetch_all::<D>(conn, sql, [idempotency_key.into()]).await?;
            let status = rows.first().map(|r| r.text("status")).transpose()?;
            if matches!(status.as_deref(), Some("done" | "pending")) {
                insert::<D>(conn, undo, created_at).await?;
                return Ok(1);
            }
            Ok(0)
        }
    }
}

/// Expires a pending job no dispatcher holds; `true` when it did.
async fn expire<D: Dialect>(conn: &mut D::Connection, idempotency_key: &str, reason: &str) -> StoreResult<bool> {
    let sql = format!(
        "UPDATE outbox SET status = 'expired', last_error = $2, {RELEASE}, updated_at = {now} \
         WHERE idempotency_key = $1 AND status = 'pending' AND {free}",
        now = D::NOW,
        free = lease::is_free::<D>(),
    );
    Ok(execute::<D>(conn, &sql, [idempotency_key.into(), reason.into()]).await? == 1)
}

/// Leases up to `limit` due jobs for `lease_ms`; each claim counts as an attempt.
pub(crate) async fn claim<D: Dialect>(
    conn: &mut D::Connection,
    limit: i64,
    lease_ms: i64,
    lease: Lease,
) -> StoreResult<Vec<OutboxJob>> {
    let now = D::NOW;
    let sql = format!(
        "UPDATE outbox SET {take}, attempts = attempts + 1, updated_at = {now} \
         WHERE id IN (SELECT id FROM outbox WHERE status = 'pending' AND next_run_at <= {now} AND {free} \
         ORDER BY next_run_at, created_at LIMIT $1 {skip}) RETURNING {OUTBOX_COLS}",
        take = lease::take::<D>(2, 3),
        free = lease::is_free::<D>(),
        skip = D::SKIP_LOCKED,
    );
    let rows = fetch_all::<D>(conn, &sql, [limit.into(), lease_ms.into(), lease.token.into()]).await?;
    rows.iter().map(rows::outbox_job).collect()
}

/// Marks delivered jobs done, those whose lease `lease` still holds; returns how many.
pub(crate) async fn complete<D: Dialect>(conn: &mut D::Connection, lease: Lease, ids: &[Uuid]) -> StoreResult<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let now = D::NOW;
    let sql = format!(
        "UPDATE outbox SET status = 'done', delivered_at = {now}, {RELEASE}, last_error = NULL, updated_at = {now} \
         WHERE {held} AND id IN ({ids})",
        held = lease::is_held::<D>(1),
        ids = params(2, ids.len()),
    );
    let args = std::iter::once(Arg::from(lease.token)).chain(ids.iter().map(|id| Arg::from(*id)));
    execute::<D>(conn, &sql, args).await
}

/// Records a failed delivery under a held lease: due again in `retry_in_ms`, or
/// dead when `None`. `false` when the lease was no longer held.
pub(crate) async fn fail<D: Dialect>(
    conn: &mut D::Connection,
    lease: Lease,
    id: Uuid,
    error: &str,
    retry_in_ms: Option<i64>,
) -> StoreResult<bool> {
    let now = D::NOW;
    let sql = format!(
        "UPDATE outbox SET status = $3, next_run_at = CASE WHEN $4 IS NULL THEN next_run_at ELSE {retry_at} END, \
         {RELEASE}, last_error = $2, updated_at = {now} WHERE id = $1 AND {held}",
        retry_at = D::now_plus_ms("$4"),
        held = lease::is_held::<D>(5),
    );
    let status = if retry_in_ms.is_some() { "pending" } else { "dead" };
    let args = [id.into(), error.into(), status.into(), retry_in_ms.into(), lease.token.into()];
    Ok(execute::<D>(conn, &sql, args).await? == 1)
}

/// Makes a dead (or pending, unleased) job due now with a fresh attempt budget.
pub(crate) async fn retry<D: Dialect>(conn: &mut D::Connection, id: Uuid) -> StoreResult<bool> {
    let now = D::NOW;
    let sql = format!(
        "UPDATE outbox SET status = 'pending', attempts = 0, next_run_at = {now}, {RELEASE}, updated_at = {now} \
         WHERE id = $1 AND status IN ('dead', 'pending') AND {free}",
        free = lease::is_free::<D>(),
    );
    Ok(execute::<D>(conn, &sql, [id.into()]).await? == 1)
}

pub(crate) async fn stats<D: Dialect>(conn: &mut D::Connection) -> StoreResult<OutboxStats> {
    let sql = "SELECT COUNT(*) FILTER (WHERE status = 'pending') AS pending, \
               COUNT(*) FILTER (WHERE status = 'dead') AS dead, \
               COUNT(*) FILTER (WHERE status = 'done') AS done, \
               COUNT(*) FILTER (WHERE kind = 'dialogue.start' AND status IN ('expired', 'dead') \
                   AND (last_error IS NULL OR last_error <> 'answered by a machine')) AS never_started, \
               MIN(CASE WHEN status = 'pending' THEN created_at END) AS oldest FROM outbox";
    let rows = fetch_all::<D>(conn, sql, []).await?;
    let row = rows.first().ok_or_else(|| crate::store::StoreError::Internal("outbox stats returned no row".into()))?;
    Ok(OutboxStats {
        pending: row.opt_i64("pending")?.unwrap_or(0),
        dead: row.opt_i64("dead")?.unwrap_or(0),
        done: row.opt_i64("done")?.unwrap_or(0),
        dialogue_never_started: row.opt_i64("never_started")?.unwrap_or(0),
        oldest_pending_at: row.opt_ts("oldest")?,
    })
}

/// Jobs, oldest first, only those in `status` when given (filtered before the limit).
pub(crate) async fn list<D: Dialect>(
    conn: &mut D::Connection,
    status: Option<&str>,
    limit: i64,
) -> StoreResult<Vec<OutboxJob>> {
    let sql =
        format!("SELECT {OUTBOX_COLS} FROM outbox WHERE ($2 IS NULL OR status = $2) ORDER BY created_at, id LIMIT $1");
    let rows = fetch_all::<D>(conn, &sql, [limit.into(), status.into()]).await?;
    rows.iter().map(rows::outbox_job).collect()
}
