//! `call_attempts`: looked up (locked) with the contact and campaign their rules
//! need, inserted at registration, and updated by each transition.

use super::{execute, fetch_optional, insert_rows_sql, insert_sql, set_sql, values, Cols};
use crate::domain::Attempt;
use crate::store::dialect::{Arg, Dialect};
use crate::store::flow::{AttemptKey, Loaded};
use crate::store::rows::{self, RowExt, ATTEMPT_COLS, CAMPAIGN_COLS, CONTACT_COLS};
use crate::store::{StoreError, StoreResult};

/// The columns a transition writes, beside their values (the id is not among them).
pub(crate) fn state_row(a: &Attempt) -> Cols<'_> {
    vec![
        ("provider_call_id", (&a.provider_call_id).into()),
        ("status", a.status.as_str().into()),
        ("provider_raw_status", (&a.provider_raw_status).into()),
        ("answered_by", (&a.answered_by).into()),
        ("answered_at", a.answered_at.into()),
        ("ended_at", a.ended_at.into()),
        ("duration_seconds", a.duration_seconds.into()),
        ("outcome", a.outcome.map(|o| o.as_str()).into()),
        ("error_code", (&a.error_code).into()),
        ("error_message", (&a.error_message).into()),
        ("last_event_at", a.last_event_at.into()),
        ("account_sid", (&a.account_sid).into()),
    ]
}

/// The attempt, its contact and campaign, locked; with `probe`, also whether
/// deferred events wait under that provider call id (saves a query on most first
/// callbacks).
pub(crate) async fn find<D: Dialect>(
    conn: &mut D::Connection,
    key: AttemptKey<'_>,
    probe: Option<&str>,
) -> StoreResult<Option<Loaded>> {
    let joined = "FROM call_attempts a JOIN contacts c ON c.id = a.contact_id JOIN campaigns k ON k.id = a.campaign_id";
    let row = match key {
        AttemptKey::CallId(id) => {
            let sql = format!(
                "SELECT {ATTEMPT_COLS}, {CONTACT_COLS}, {CAMPAIGN_COLS}, EXISTS (SELECT 1 FROM telephony_events d \
                 WHERE d.disposition = 'deferred' AND d.provider = a.provider AND d.provider_call_id = $2) \
                 AS deferred_waiting {joined} WHERE a.call_id = $1 {}",
                D::LOCK_ATTEMPT
            );
            fetch_optional::<D>(conn, &sql, [id.into(), probe.into()]).await?
        }
        AttemptKey::ProviderCallId(p, id) => {
            let sql = format!(
                "SELECT {ATTEMPT_COLS}, {CONTACT_COLS}, {CAMPAIGN_COLS}, FALSE AS deferred_waiting {joined} \
                 WHERE a.provider = $1 AND a.provider_call_id = $2 {}",
                D::LOCK_ATTEMPT
            );
            fetch_optional::<D>(conn, &sql, [p.as_str().into(), id.into()]).await?
        }
    };
    row.map(|r| {
        Ok(Loaded {
            attempt: rows::attempt(&r)?,
            contact: rows::contact(&r)?,
            campaign: rows::campaign(&r)?,
            deferred_waiting: r.boolean("deferred_waiting")?,
        })
    })
    .transpose()
}

/// The attempts of `call_ids` (sorted), with contact and campaign, locked in
/// `call_id` order: every batch takes its locks in the same order.
pub(crate) async fn find_many<D: Dialect>(conn: &mut D::Connection, call_ids: &[&str]) -> StoreResult<Vec<Loaded>> {
    if call_ids.is_empty() {
        return Ok(vec![]);
    }
    // Attempts first, in call_id order; then their contacts, in id order (a contact
    // may have two attempts in a batch: a late callback of its previous call).
    let lock_attempts = if D::LOCK_ROWS.is_empty() { "" } else { "FOR UPDATE OF a" };
    let sql = format!(
        "SELECT {ATTEMPT_COLS}, {CONTACT_COLS}, {CAMPAIGN_COLS} FROM call_attempts a \
         JOIN contacts c ON c.id = a.contact_id JOIN campaigns k ON k.id = a.campaign_id \
         WHERE a.call_id IN ({}) ORDER BY a.call_id {lock_attempts}",
        super::params(1, call_ids.len()),
    );
    let rows = super::fetch_all::<D>(conn, &sql, call_ids.iter().map(|id| Arg::from(*id))).await?;
    let mut contacts: Vec<uuid::Uuid> = rows.iter().map(|r| r.uuid("contact_id")).collect::<StoreResult<_>>()?;
    contacts.sort_unstable();
    contacts.dedup();
    let mut loaded: Vec<Loaded> = rows
        .iter()
        .map(|r| {
            Ok(Loaded {
                attempt: rows::attempt(r)?,
                contact: rows::contact(r)?,
                campaign: rows::campaign(r)?,
                deferred_waiting: false,
            })
        })
        .collect::<StoreResult<_>>()?;
    if !D::LOCK_ROWS.is_empty() && !contacts.is_empty() {
        // Read again under the lock: the first read did not hold it.
        let sql = format!(
            "SELECT {CONTACT_COLS} FROM contacts c WHERE c.id IN ({}) ORDER BY c.id {}",
            super::params(1, contacts.len()),
            D::LOCK_ROWS
        );
        let locked = super::fetch_all::<D>(conn, &sql, contacts.iter().map(|id| Arg::Id(Some(*id)))).await?;
        for row in &locked {
            let contact = rows::contact(row)?;
            for l in loaded.iter_mut().filter(|l| l.contact.id == contact.id) {
                l.contact = contact.clone();
            }
        }
    }
    Ok(loaded)
}

pub(crate) async fn by_call_id<D: Dialect>(conn: &mut D::Connection, call_id: &str) -> StoreResult<Option<Attempt>> {
    let sql = format!("SELECT {ATTEMPT_COLS} FROM call_attempts a WHERE a.call_id = $1");
    let row = fetch_optional::<D>(conn, &sql, [call_id.into()]).await?;
    row.as_ref().map(rows::attempt).transpose()
}

pub(crate) async fn insert<D: Dialect>(conn: &mut D::Connection, a: &Attempt) -> StoreResult<()> {
    let row = insert_row(a);
    let sql = insert_sql("call_attempts", &row, 1);
    execute::<D>(conn, &sql, values(row)).await.map_err(|e| match e {
        StoreError::Conflict(_) => {
            StoreError::Conflict(format!("call_id `{}` or its provider call id is already registered", a.call_id))
        }
        other => other,
    })?;
    Ok(())
}

/// Inserts new attempts in multi-row statements (a claim of due contacts).
pub(crate) async fn insert_many<D: Dialect>(conn: &mut D::Connection, attempts: &[Attempt]) -> StoreResult<()> {
    for chunk in attempts.chunks(D::ROWS_PER_INSERT) {
        let rows: Vec<Cols> = chunk.iter().map(insert_row).collect();
        let sql = insert_rows_sql("call_attempts", &rows);
        execute::<D>(conn, &sql, rows.into_iter().flat_map(values)).await?;
    }
    Ok(())
}

fn insert_row(a: &Attempt) -> Cols<'_> {
    vec![
        ("id", a.id.into()),
        ("call_id", (&a.call_id).into()),
        ("campaign_id", a.campaign_id.into()),
        ("contact_id", a.contact_id.into()),
        ("attempt_number", a.attempt_number.into()),
        ("provider", a.provider.as_str().into()),
        ("provider_call_id", (&a.provider_call_id).into()),
        ("status", a.status.as_str().into()),
        ("started_at", a.started_at.into()),
        ("metadata", (&a.metadata).into()),
        ("last_event_at", a.last_event_at.into()),
        ("account_sid", (&a.account_sid).into()),
    ]
}

pub(crate) async fn update<D: Dialect>(conn: &mut D::Connection, a: &Attempt) -> StoreResult<()> {
    let set = state_row(a);
    let sql = format!("UPDATE call_attempts SET {} WHERE id = $1", set_sql(&set, 2));
    let args = std::iter::once(Arg::from(a.id)).chain(values(set));
    execute::<D>(conn, &sql, args).await.map_err(|e| provider_id_conflict(e, a))?;
    Ok(())
}

/// A unique violation while writing an attempt: its provider call id is taken.
pub(crate) fn provider_id_conflict(err: StoreError, a: &Attempt) -> StoreError {
    match err {
        StoreError::Conflict(_) => StoreError::Conflict(format!(
            "provider call id `{}` already belongs to another call attempt",
            a.provider_call_id.as_deref().unwrap_or_default()
        )),
        other => other,
    }
}
