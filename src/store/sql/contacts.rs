//! `contacts` and `campaigns`.

use uuid::Uuid;

use super::{execute, fetch_optional, insert_rows_sql, insert_sql, values, Cols};
use crate::domain::{Campaign, Contact};
use crate::store::dialect::Dialect;
use crate::store::rows::{self, CAMPAIGN_COLS, CONTACT_COLS};
use crate::store::StoreResult;

/// A contact and its campaign, locked.
pub(crate) async fn with_campaign<D: Dialect>(
    conn: &mut D::Connection,
    id: Uuid,
) -> StoreResult<Option<(Contact, Campaign)>> {
    let sql = format!(
        "SELECT {CONTACT_COLS}, {CAMPAIGN_COLS} FROM contacts c JOIN campaigns k ON k.id = c.campaign_id \
         WHERE c.id = $1 {}",
        D::LOCK_CONTACT
    );
    let row = fetch_optional::<D>(conn, &sql, [id.into()]).await?;
    row.map(|r| Ok((rows::contact(&r)?, rows::campaign(&r)?))).transpose()
}

pub(crate) async fn by_id<D: Dialect>(conn: &mut D::Connection, id: Uuid) -> StoreResult<Option<Contact>> {
    let sql = format!("SELECT {CONTACT_COLS} FROM contacts c WHERE c.id = $1");
    let row = fetch_optional::<D>(conn, &sql, [id.into()]).await?;
    row.as_ref().map(rows::contact).transpose()
}

/// Inserts contacts in multi-row statements of `D::ROWS_PER_INSERT` rows: an upload
/// of 100,000 contacts is a few hundred statements, not 100,000 round trips.
pub(crate) async fn insert_many<D: Dialect>(conn: &mut D::Connection, contacts: &[Contact]) -> StoreResult<()> {
    for chunk in contacts.chunks(D::ROWS_PER_INSERT) {
        let rows: Vec<Cols> = chunk.iter().map(row).collect();
        let sql = insert_rows_sql("contacts", &rows);
        execute::<D>(conn, &sql, rows.into_iter().flat_map(values)).await?;
    }
    Ok(())
}

fn row(c: &Contact) -> Cols<'_> {
    vec![
        ("id", c.id.into()),
        ("campaign_id", c.campaign_id.into()),
        ("phone_number", (&c.phone_number).into()),
        ("external_id", (&c.external_id).into()),
        ("state", c.state.as_str().into()),
        ("do_not_call", c.do_not_call.into()),
        ("created_at", c.created_at.into()),
        ("updated_at", c.updated_at.into()),
    ]
}

/// Writes the contact's state, counters and timestamps as given.
pub(crate) async fn update<D: Dialect>(conn: &mut D::Connection, c: &Contact) -> StoreResult<()> {
    let sql = "UPDATE contacts SET state = $2, attempts_count = $3, last_attempt_at = $4, last_outcome = $5, \
               next_attempt_at = $6, updated_at = $7 WHERE id = $1";
    let args = [
        c.id.into(),
        c.state.as_str().into(),
        c.attempts_count.into(),
        c.last_attempt_at.into(),
        c.last_outcome.map(|o| o.as_str()).into(),
        c.next_attempt_at.into(),
        c.updated_at.into(),
    ];
    execute::<D>(conn, sql, args).await?;
    Ok(())
}

pub(crate) async fn campaign<D: Dialect>(conn: &mut D::Connection, id: Uuid) -> StoreResult<Option<Campaign>> {
    let sql = format!("SELECT {CAMPAIGN_COLS} FROM campaigns k WHERE k.id = $1");
    let row = fetch_optional::<D>(conn, &sql, [id.into()]).await?;
    row.as_ref().map(rows::campaign).transpose()
}

pub(crate) async fn insert_campaign<D: Dialect>(conn: &mut D::Connection, k: &Campaign) -> StoreResult<()> {
    let row: Cols = vec![
        ("id", k.id.into()),
        ("name", (&k.name).into()),
        ("max_attempts", k.max_attempts.into()),
        ("retry_interval_minutes", k.retry_interval_minutes.into()),
        ("created_at", k.created_at.into()),
        ("amd_mode", k.amd_mode.as_str().into()),
        ("amd_wait_timeout_ms", k.amd_wait_timeout_ms.into()),
    ];
    let sql = insert_sql("campaigns", &row, 1);
    execute::<D>(conn, &sql, values(row)).await?;
    Ok(())
}
