//! `contacts`: uploaded in bulk, locked with their campaign for registration,
//! listed with cursors, and read by the claim of due contacts, zone by zone.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{execute, fetch_all, fetch_optional, insert_rows_sql, params, values, Cols};
use crate::domain::{Campaign, Contact, ContactState};
use crate::store::dialect::{Arg, Dialect};
use crate::store::rows::{self, RowExt, ATTEMPT_COLS, CAMPAIGN_COLS, CONTACT_COLS};
use crate::store::types::ContactResult;
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
        ("timezone", (&c.timezone).into()),
        ("next_attempt_at", c.next_attempt_at.into()),
        ("created_at", c.created_at.into()),
        ("updated_at", c.updated_at.into()),
    ]
}

/// Writes the contact's mutable columns as given.
pub(crate) async fn update<D: Dialect>(conn: &mut D::Connection, c: &Contact) -> StoreResult<()> {
    let sql = "UPDATE contacts SET state = $2, attempts_count = $3, last_attempt_at = $4, last_outcome = $5, \
               next_attempt_at = $6, updated_at = $7, do_not_call = $8, timezone = $9, external_id = $10 \
               WHERE id = $1";
    let args = [
        c.id.into(),
        c.state.as_str().into(),
        c.attempts_count.into(),
        c.last_attempt_at.into(),
        c.last_outcome.map(|o| o.as_str()).into(),
        c.next_attempt_at.into(),
        c.updated_at.into(),
        c.do_not_call.into(),
        (&c.timezone).into(),
        (&c.external_id).into(),
    ];
    execute::<D>(conn, sql, args).await?;
    Ok(())
}

/// Of `phones`, those the campaign has already, with the contact holding each.
pub(crate) async fn existing_phones<D: Dialect>(
    conn: &mut D::Connection,
    campaign_id: Uuid,
    phones: &[&str],
) -> StoreResult<Vec<(String, Uuid)>> {
    let mut found = Vec::new();
    for chunk in phones.chunks(1000) {
        let sql = format!(
            "SELECT phone_number, id FROM contacts WHERE campaign_id = $1 AND duplicate_of IS NULL \
             AND phone_number IN ({})",
            params(2, chunk.len())
        );
        let args = std::iter::once(campaign_id.into()).chain(chunk.iter().map(|p| Arg::from(*p)));
        for r in fetch_all::<D>(conn, &sql, args).await? {
            found.push((r.text("phone_number")?, r.uuid("id")?));
        }
    }
    Ok(found)
}

/// A page of a campaign's contacts in id order, after `after`; optionally one state.
pub(crate) async fn list<D: Dialect>(
    conn: &mut D::Connection,
    campaign_id: Uuid,
    state: Option<ContactState>,
    after: Option<Uuid>,
    limit: i64,
) -> StoreResult<Vec<Contact>> {
    let sql = format!(
        "SELECT {CONTACT_COLS} FROM contacts c WHERE c.campaign_id = $1 AND ($2 IS NULL OR c.state = $2) \
         AND ($3 IS NULL OR c.id > $3) ORDER BY c.id LIMIT $4"
    );
    let args = [campaign_id.into(), state.map(|s| s.as_str()).into(), after.into(), limit.into()];
    fetch_all::<D>(conn, &sql, args).await?.iter().map(rows::contact).collect()
}

/// A page of contacts with their latest call (the results export).
pub(crate) async fn results<D: Dialect>(
    conn: &mut D::Connection,
    campaign_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> StoreResult<Vec<ContactResult>> {
    let sql = format!(
        "SELECT {CONTACT_COLS}, {ATTEMPT_COLS}, a.id IS NOT NULL AS has_call FROM contacts c \
         LEFT JOIN call_attempts a ON a.contact_id = c.id AND a.attempt_number = c.attempts_count \
         WHERE c.campaign_id = $1 AND ($2 IS NULL OR c.id > $2) ORDER BY c.id LIMIT $3"
    );
    let rows = fetch_all::<D>(conn, &sql, [campaign_id.into(), after.into(), limit.into()]).await?;
    rows.iter()
        .map(|r| {
            let last_call = if r.boolean("has_call")? { Some(rows::attempt(r)?) } else { None };
            Ok(ContactResult { contact: rows::contact(r)?, last_call })
        })
        .collect()
}

/// The zones of a campaign's dialable contacts (`None`: contacts in the
/// campaign's zone), found by skipping through the index `contacts_dialable`
/// (one probe a zone) rather than reading every contact.
pub(crate) async fn dialable_zones<D: Dialect>(
    conn: &mut D::Connection,
    campaign_id: Uuid,
) -> StoreResult<Vec<Option<String>>> {
    const DIALABLE: &str = "campaign_id = $1 AND state = 'pending' AND NOT do_not_call";
    const ZONE: &str = "coalesce(timezone, '')";
    let sql = format!(
        "WITH RECURSIVE z(tz) AS ( \
           SELECT MIN({ZONE}) FROM contacts WHERE {DIALABLE} AND {ZONE} > '' \
           UNION ALL SELECT (SELECT MIN({ZONE}) FROM contacts WHERE {DIALABLE} AND {ZONE} > z.tz) \
           FROM z WHERE z.tz IS NOT NULL) \
         SELECT tz FROM z WHERE tz IS NOT NULL"
    );
    let mut zones: Vec<Option<String>> = fetch_all::<D>(conn, &sql, [campaign_id.into()])
        .await?
        .iter()
        .map(|r| r.text("tz").map(Some))
        .collect::<StoreResult<_>>()?;
    zones.push(None);
    Ok(zones)
}

/// Up to `limit` dialable contacts of one zone group due at `now`, locked
/// (skipping rows other transactions hold): due retries first, earliest due first,
/// then contacts never called. `zone` `None`: the contacts in the campaign's zone.
pub(crate) async fn due<D: Dialect>(
    conn: &mut D::Connection,
    campaign_id: Uuid,
    zone: Option<&str>,
    now: DateTime<Utc>,
    limit: i64,
) -> StoreResult<Vec<Contact>> {
    // `''` is the campaign's zone: one equality on the index's expression either way.
    let zone_is = "coalesce(c.timezone, '') = $2";
    let zone = zone.unwrap_or("");
    let dialable = format!(
        "SELECT {CONTACT_COLS} FROM contacts c WHERE c.campaign_id = $1 AND c.state = 'pending' \
         AND NOT c.do_not_call AND {zone_is}"
    );
    let retries =
        format!("{dialable} AND c.next_attempt_at <= $3 ORDER BY c.next_attempt_at LIMIT $4 {}", D::SKIP_LOCKED);
    let fresh = format!("{dialable} AND c.next_attempt_at IS NULL AND $3 IS NOT NULL LIMIT $4 {}", D::SKIP_LOCKED);
    let mut found = Vec::new();
    for sql in [retries, fresh] {
        let left = limit - found.len() as i64;
        if left <= 0 {
            break;
        }
        let args = [campaign_id.into(), zone.into(), now.into(), left.into()];
        for r in fetch_all::<D>(conn, &sql, args).await? {
            found.push(rows::contact(&r)?);
        }
    }
    Ok(found)
}

/// Registers one attempt for each of `ids` (already checked): `in_progress`, one
/// more attempt, not due again until its call ends.
pub(crate) async fn mark_dialled<D: Dialect>(
    conn: &mut D::Connection,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    for chunk in ids.chunks(500) {
        let sql = format!(
            "UPDATE contacts SET state = 'in_progress', attempts_count = attempts_count + 1, last_attempt_at = $1, \
             next_attempt_at = NULL, updated_at = $1 WHERE id IN ({})",
            params(2, chunk.len())
        );
        let args = std::iter::once(now.into()).chain(chunk.iter().map(|id| Arg::from(*id)));
        execute::<D>(conn, &sql, args).await?;
    }
    Ok(())
}

/// A campaign, locked against concurrent claims and capped registrations.
pub(crate) fn campaign_lock(id: Uuid) -> String {
    format!("campaign:{id}")
}
