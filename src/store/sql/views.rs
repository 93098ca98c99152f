//! Read-only views the operator's console shows: a contact's calls, a call's
//! outbox jobs, and the calls the reconciler is waiting on.

use super::fetch_all;
use super::reconcile::QUIET;
use crate::domain::Attempt;
use crate::store::dialect::Dialect;
use crate::store::rows::{self, ATTEMPT_COLS, OUTBOX_COLS};
use crate::store::types::{Cutoffs, OutboxJob};
use crate::store::StoreResult;

pub(crate) async fn attempts_of_contact<D: Dialect>(
    conn: &mut D::Connection,
    contact_id: uuid::Uuid,
) -> StoreResult<Vec<Attempt>> {
    let sql = format!("SELECT {ATTEMPT_COLS} FROM call_attempts a WHERE a.contact_id = $1 ORDER BY a.attempt_number");
    fetch_all::<D>(conn, &sql, [contact_id.into()]).await?.iter().map(rows::attempt).collect()
}

/// The jobs a call enqueued (their payload names it), oldest first.
pub(crate) async fn jobs_of_call<D: Dialect>(conn: &mut D::Connection, call_id: &str) -> StoreResult<Vec<OutboxJob>> {
    let sql = format!("SELECT {OUTBOX_COLS} FROM outbox WHERE {} = $1 ORDER BY created_at, id", D::JSON_CALL_ID);
    fetch_all::<D>(conn, &sql, [call_id.into()]).await?.iter().map(rows::outbox_job).collect()
}

/// Calls not finished and quiet longer than the reconciler waits (the gauge
/// `callhook_reconcile_awaiting` counts them), quietest first.
pub(crate) async fn quiet_calls<D: Dialect>(
    conn: &mut D::Connection,
    cutoffs: Cutoffs,
    limit: i64,
) -> StoreResult<Vec<Attempt>> {
    let sql = format!("SELECT {ATTEMPT_COLS} FROM call_attempts a WHERE {QUIET} ORDER BY a.last_event_at LIMIT $3");
    let args = [cutoffs.quiet.into(), cutoffs.answered_quiet.into(), limit.into()];
    fetch_all::<D>(conn, &sql, args).await?.iter().map(rows::attempt).collect()
}
