//! The inbox, `telephony_events`: every accepted callback, inserted once per
//! dedupe key, and the deferred ones looked up again when their attempt appears.

use uuid::Uuid;

use super::{execute, fetch_all, fetch_optional, insert_sql, set_sql, values, Cols};
use crate::domain::{Attempt, CallEvent, Disposition, Provider};
use crate::store::dialect::{Arg, Dialect};
use crate::store::rows::{self, EVENT_COLS};
use crate::store::types::StoredEvent;
use crate::store::StoreResult;

/// An inbox row: every column beside its value.
fn event_row<'a>(e: &'a CallEvent, call_id: Option<&'a str>, disposition: Disposition) -> Cols<'a> {
    vec![
        ("id", Uuid::new_v4().into()),
        ("provider", e.provider.as_str().into()),
        ("dedupe_key", (&e.dedupe_key).into()),
        ("call_id", call_id.into()),
        ("provider_call_id", (&e.provider_call_id).into()),
        ("event_type", e.event_type.map(|t| t.as_str()).into()),
        ("provider_status", (&e.provider_status).into()),
        ("sequence_number", e.sequence_number.into()),
        ("occurred_at", e.occurred_at.into()),
        ("received_at", e.received_at.into()),
        ("disposition", disposition.as_str().into()),
        ("payload", (&e.payload).into()),
        ("campaign_id", e.campaign_id.into()),
        ("contact_id", e.contact_id.into()),
        ("duration_seconds", e.duration_seconds.into()),
        ("answered_by", (&e.answered_by).into()),
        ("error_code", (&e.error_code).into()),
        ("error_message", (&e.error_message).into()),
        ("source", e.source.as_str().into()),
        ("account_sid", (&e.account_sid).into()),
    ]
}

/// Inserts the inbox row unless its dedupe key exists; `false` when it did.
pub(crate) async fn insert<D: Dialect>(
    conn: &mut D::Connection,
    e: &CallEvent,
    call_id: Option<&str>,
    disposition: Disposition,
) -> StoreResult<bool> {
    let row = event_row(e, call_id, disposition);
    let sql = match insert_once::<D>(&row, 1) {
        Some((key, event)) => format!("WITH {key} {event}"),
        None => format!("{} ON CONFLICT (dedupe_key) DO NOTHING", insert_sql("telephony_events", &row, 1)),
    };
    Ok(execute::<D>(conn, &sql, values(row)).await? == 1)
}

/// Where the inbox is partitioned (PostgreSQL), its dedupe keys are unique in
/// `telephony_event_keys` instead: the CTE `k` that inserts the key, and the
/// event's insert, which writes only when `k` did. `None` where the inbox's own
/// unique index holds (SQLite).
fn insert_once<D: Dialect>(row: &Cols<'_>, first: usize) -> Option<(String, String)> {
    if !D::PARTITIONED_INBOX {
        return None;
    }
    let param = |name: &str| row.iter().position(|(col, _)| *col == name).map(|i| first + i).expect("inbox column");
    let key = format!(
        "k AS (INSERT INTO telephony_event_keys (dedupe_key, received_at) VALUES (${}, ${}) \
         ON CONFLICT (dedupe_key) DO NOTHING RETURNING 1)",
        param("dedupe_key"),
        param("received_at"),
    );
    let names: Vec<&str> = row.iter().map(|(name, _)| *name).collect();
    let params: Vec<String> = (first..first + row.len()).map(|i| format!("${i}")).collect();
    let event = format!(
        "INSERT INTO telephony_events ({}) SELECT {} WHERE EXISTS (SELECT 1 FROM k)",
        names.join(", "),
        params.join(", ")
    );
    Some((key, event))
}

/// The inbox insert and, only if it inserted, the attempt's new state — in one
/// round trip where the backend can modify data inside `WITH`.
pub(crate) async fn insert_then_update_attempt<D: Dialect>(
    conn: &mut D::Connection,
    e: &CallEvent,
    call_id: &str,
    disposition: Disposition,
    attempt: &Attempt,
) -> StoreResult<bool> {
    if !D::WRITABLE_CTE {
        if !insert::<D>(conn, e, Some(call_id), disposition).await? {
            return Ok(false);
        }
        super::attempts::update::<D>(conn, attempt).await?;
        return Ok(true);
    }
    let row = event_row(e, Some(call_id), disposition);
    let set = super::attempts::state_row(attempt);
    let id_param = row.len() + 1;
    let ins = match insert_once::<D>(&row, 1) {
        Some((key, event)) => format!("{key}, ins AS ({event} RETURNING 1)"),
        None => format!(
            "ins AS ({} ON CONFLICT (dedupe_key) DO NOTHING RETURNING 1)",
            insert_sql("telephony_events", &row, 1)
        ),
    };
    let sql = format!(
        "WITH {ins}, \
         upd AS (UPDATE call_attempts SET {} WHERE id = ${id_param} AND EXISTS (SELECT 1 FROM ins) RETURNING 1) \
         SELECT EXISTS (SELECT 1 FROM ins) AS inserted",
        set_sql(&set, id_param + 1),
    );
    let args = values(row).chain(std::iter::once(Arg::from(attempt.id))).chain(values(set));
    let inserted = fetch_optional::<D>(conn, &sql, args)
        .await
        .map_err(|err| super::attempts::provider_id_conflict(err, attempt))?
        .map(|r| rows::RowExt::boolean(&r, "inserted"))
        .transpose()?;
    Ok(inserted.unwrap_or(false))
}

pub(crate) async fn set_disposition<D: Dialect>(
    conn: &mut D::Connection,
    dedupe_key: &str,
    call_id: &str,
    disposition: Disposition,
) -> StoreResult<()> {
    let sql = "UPDATE telephony_events SET disposition = $2, call_id = $3 WHERE dedupe_key = $1";
    execute::<D>(conn, sql, [dedupe_key.into(), disposition.as_str().into(), call_id.into()]).await?;
    Ok(())
}

/// The call an inbox row belongs to (`Some(None)`: not matched to a call yet).
pub(crate) async fn stored_call_id<D: Dialect>(
    conn: &mut D::Connection,
    dedupe_key: &str,
) -> StoreResult<Option<Option<String>>> {
    let rows =
        fetch_all::<D>(conn, "SELECT call_id FROM telephony_events WHERE dedupe_key = $1", [dedupe_key.into()]).await?;
    rows.first().map(|r| rows::RowExt::opt_text(r, "call_id")).transpose()
}

/// Deferred events matching a call id or a provider call id, locked.
pub(crate) async fn deferred_for<D: Dialect>(
    conn: &mut D::Connection,
    call_id: Option<&str>,
    provider: Provider,
    provider_call_id: Option<&str>,
) -> StoreResult<Vec<CallEvent>> {
    let sql = format!(
        "SELECT {EVENT_COLS} FROM telephony_events WHERE disposition = 'deferred' \
         AND (call_id = $1 OR (provider = $2 AND provider_call_id = $3)) {}",
        D::LOCK_ROWS
    );
    let rows = fetch_all::<D>(conn, &sql, [call_id.into(), provider.as_str().into(), provider_call_id.into()]).await?;
    rows.iter().map(rows::call_event).collect()
}

/// The oldest deferred events whose attempt exists now (`events replay`, and the
/// reconciler's pass). Events no registration will ever match (calls placed by
/// another system) are left alone, so they cannot crowd out those that can apply.
pub(crate) async fn deferred<D: Dialect>(conn: &mut D::Connection, limit: i64) -> StoreResult<Vec<CallEvent>> {
    let sql = format!(
        "SELECT {EVENT_COLS} FROM telephony_events e WHERE disposition = 'deferred'          AND EXISTS (SELECT 1 FROM call_attempts a WHERE a.call_id = e.call_id              OR (a.provider = e.provider AND a.provider_call_id = e.provider_call_id))          ORDER BY received_at, id LIMIT $1"
    );
    let rows = fetch_all::<D>(conn, &sql, [limit.into()]).await?;
    rows.iter().map(rows::call_event).collect()
}

/// A call's events in arrival order.
pub(crate) async fn for_call<D: Dialect>(conn: &mut D::Connection, call_id: &str) -> StoreResult<Vec<StoredEvent>> {
    let sql = format!("SELECT {EVENT_COLS} FROM telephony_events WHERE call_id = $1 ORDER BY received_at, id");
    let rows = fetch_all::<D>(conn, &sql, [call_id.into()]).await?;
    rows.iter().map(rows::stored_event).collect()
}

/// Every stored event, oldest first.
pub(crate) async fn list<D: Dialect>(conn: &mut D::Connection, limit: i64) -> StoreResult<Vec<StoredEvent>> {
    let sql = format!("SELECT {EVENT_COLS} FROM telephony_events ORDER BY received_at, id LIMIT $1");
    let rows = fetch_all::<D>(conn, &sql, [limit.into()]).await?;
    rows.iter().map(rows::stored_event).collect()
}
