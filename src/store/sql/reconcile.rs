//! What the reconciler asks of `call_attempts` (SPEC §9): lease the calls that
//! have been quiet too long, release them with the next look-up time, find the
//! verdicts that are overdue, count what is waiting, and expire the dialogue
//! starts of calls that ended first. Every query is answered from a partial index
//! (`call_attempts_open`, `call_attempts_awaiting_verdict`, `outbox_due`), so a
//! pass with nothing due costs a few index probes.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{execute, fetch_all};
use crate::store::dialect::{Arg, Dialect};
use crate::store::lease::{self, Lease, RELEASE};
use crate::store::rows::{self, RowExt, ATTEMPT_COLS};
use crate::store::types::{Cutoffs, Quiet, ReconcileStats};
use crate::store::StoreResult;

/// The attempt columns, unqualified: SQLite's `RETURNING` takes no table alias.
fn returning_cols() -> String {
    ATTEMPT_COLS.replace("a.", "")
}

/// A call not finished and quiet since before the cutoffs: `$1` (`quiet`) for a
/// call not answered yet, `$2` (`answered_quiet`) for an answered one. The
/// reconciler's claim, its gauge and the console's list share it.
pub(crate) const QUIET: &str = "((status IN ('initiated', 'ringing') AND last_event_at <= $1) \
     OR (status = 'answered' AND last_event_at <= $2))";

/// Leases up to `limit` calls not finished and quiet since before the cutoffs
/// (`quiet` for calls not answered yet, `answered_quiet` for answered ones), and
/// not backing off past `now`.
pub(crate) async fn claim_quiet<D: Dialect>(
    conn: &mut D::Connection,
    cutoffs: Cutoffs,
    limit: i64,
    lease_ms: i64,
    lease: Lease,
) -> StoreResult<Vec<Quiet>> {
    let sql = format!(
        "UPDATE call_attempts SET {take} WHERE id IN (SELECT id FROM call_attempts \
         WHERE {QUIET} \
         AND (reconcile_at IS NULL OR reconcile_at <= $3) AND {free} \
         ORDER BY last_event_at LIMIT $4 {skip}) RETURNING {cols}, reconcile_failures",
        cols = returning_cols(),
        take = lease::take::<D>(5, 6),
        free = lease::is_free::<D>(),
        skip = D::SKIP_LOCKED,
    );
    let args = [
        cutoffs.quiet.into(),
        cutoffs.answered_quiet.into(),
        cutoffs.now.into(),
        limit.into(),
        lease_ms.into(),
        lease.token.into(),
    ];
    let rows = fetch_all::<D>(conn, &sql, args).await?;
    rows.iter().map(|r| Ok(Quiet { attempt: rows::attempt(r)?, failures: r.int("reconcile_failures")? })).collect()
}

/// Leases one call by its id, whatever its times, if it is not finished and not
/// leased by another reconciler (`callhook reconcile --call`).
pub(crate) async fn claim_one<D: Dialect>(
    conn: &mut D::Connection,
    call_id: &str,
    lease_ms: i64,
    lease: Lease,
) -> StoreResult<Option<Quiet>> {
    let sql = format!(
        "UPDATE call_attempts SET {take} WHERE call_id = $1 \
         AND status IN ('initiated', 'ringing', 'answered') AND {free} RETURNING {cols}, reconcile_failures",
        cols = returning_cols(),
        take = lease::take::<D>(2, 3),
        free = lease::is_free::<D>(),
    );
    let rows = fetch_all::<D>(conn, &sql, [call_id.into(), lease_ms.into(), lease.token.into()]).await?;
    rows.first().map(|r| Ok(Quiet { attempt: rows::attempt(r)?, failures: r.int("reconcile_failures")? })).transpose()
}

/// Ends a reconciler's lease on an attempt: not looked at again before
/// `not_before`; `failed` counts one more failed look-up, else the count restarts.
pub(crate) async fn release<D: Dialect>(
    conn: &mut D::Connection,
    lease: Lease,
    attempt_id: Uuid,
    not_before: Option<DateTime<Utc>>,
    failed: bool,
) -> StoreResult<bool> {
    let sql = format!(
        "UPDATE call_attempts SET {RELEASE}, reconcile_at = $2, \
         reconcile_failures = CASE WHEN $3 THEN reconcile_failures + 1 ELSE 0 END \
         WHERE id = $1 AND {held}",
        held = lease::is_held::<D>(4),
    );
    let args = [attempt_id.into(), not_before.into(), failed.into(), lease.token.into()];
    Ok(execute::<D>(conn, &sql, args).await? == 1)
}

/// Calls ended before `ended_before`, answered by a person, still without a verdict.
pub(crate) async fn verdict_overdue<D: Dialect>(
    conn: &mut D::Connection,
    ended_before: DateTime<Utc>,
    limit: i64,
) -> StoreResult<Vec<String>> {
    let sql = "SELECT call_id FROM call_attempts WHERE status = 'completed' AND outcome IS NULL \
               AND answered_at IS NOT NULL AND ended_at <= $1 ORDER BY ended_at LIMIT $2";
    let rows = fetch_all::<D>(conn, sql, [ended_before.into(), limit.into()]).await?;
    rows.iter().map(|r| r.text("call_id")).collect()
}

/// Pending `dialogue.start` jobs (not being delivered) of calls that have ended:
/// there is no call left to start a dialogue on. Returns how many were expired.
pub(crate) async fn expire_dialogue_starts<D: Dialect>(conn: &mut D::Connection) -> StoreResult<u64> {
    // `dialogue.start:` is 15 characters: the rest of the key is the call id, which
    // lets the lookup use the unique index on `call_id`.
    let sql = format!(
        "UPDATE outbox SET status = 'expired', {RELEASE}, last_error = 'the call ended before the dialogue started', \
         updated_at = {now} WHERE kind = 'dialogue.start' AND status = 'pending' AND {free} \
         AND EXISTS (SELECT 1 FROM call_attempts a WHERE a.call_id = substr(outbox.idempotency_key, 16) \
         AND a.status IN ('completed', 'no_answer', 'busy', 'failed'))",
        now = D::NOW,
        free = lease::is_free::<D>(),
    );
    execute::<D>(conn, &sql, []).await
}

/// The gauges: calls waiting for the reconciler, and contacts stranded.
pub(crate) async fn stats<D: Dialect>(conn: &mut D::Connection, cutoffs: Cutoffs) -> StoreResult<ReconcileStats> {
    let sql = format!(
        "SELECT \
         (SELECT COUNT(*) FROM call_attempts WHERE {QUIET}) AS awaiting, \
         (SELECT COUNT(*) FROM contacts c WHERE c.state = 'in_progress' AND NOT EXISTS (SELECT 1 FROM call_attempts a \
             WHERE a.contact_id = c.id AND (a.status IN ('initiated', 'ringing', 'answered') \
             OR (a.status = 'completed' AND a.outcome IS NULL AND a.answered_at IS NOT NULL AND a.ended_at > $3)))) \
             AS stranded"
    );
    let args: [Arg; 3] = [cutoffs.quiet.into(), cutoffs.answered_quiet.into(), cutoffs.verdict.into()];
    let rows = fetch_all::<D>(conn, &sql, args).await?;
    let row =
        rows.first().ok_or_else(|| crate::store::StoreError::Internal("reconcile stats returned no row".into()))?;
    Ok(ReconcileStats {
        awaiting_reconciliation: row.opt_i64("awaiting")?.unwrap_or(0),
        stranded_contacts: row.opt_i64("stranded")?.unwrap_or(0),
    })
}
