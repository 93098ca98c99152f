//! `contact_counts`: a campaign's contacts counted by state, last outcome and
//! attempts, kept by triggers on `contacts` (migration 0005) as delta rows that are
//! only ever inserted — concurrent writers never wait on each other — and folded
//! into one row per group when read and by the reconciler's passes. Statistics then
//! cost a few dozen rows whatever the size of the campaign.

use uuid::Uuid;

use super::{execute, fetch_all};
use crate::domain::{Campaign, ContactState, Outcome};
use crate::store::dialect::Dialect;
use crate::store::rows::RowExt;
use crate::store::StoreResult;

/// A campaign folded once it has more delta rows than this.
const FOLD_ABOVE_ROWS: i64 = 500;

/// One group: contacts in `state` with `last_outcome` after `attempts` attempts.
pub(crate) struct Group {
    pub state: ContactState,
    pub last_outcome: Option<Outcome>,
    pub attempts: i32,
    pub n: i64,
}

/// The campaign's groups (empty groups left out); folds its rows when they are many.
pub(crate) async fn groups<D: Dialect>(conn: &mut D::Connection, k: &Campaign) -> StoreResult<Vec<Group>> {
    let sql = "SELECT state, last_outcome, attempts_count, CAST(SUM(n) AS BIGINT) AS n, COUNT(*) AS deltas \
               FROM contact_counts \
               WHERE campaign_id = $1 GROUP BY state, last_outcome, attempts_count";
    let rows = fetch_all::<D>(conn, sql, [k.id.into()]).await?;
    let mut groups = Vec::with_capacity(rows.len());
    let mut deltas = 0;
    for r in &rows {
        deltas += r.opt_i64("deltas")?.unwrap_or(0);
        let n = r.opt_i64("n")?.unwrap_or(0);
        if n == 0 {
            continue;
        }
        let outcome = r.text("last_outcome")?;
        groups.push(Group {
            state: r.parsed("state")?,
            last_outcome: if outcome.is_empty() {
                None
            } else {
                Some(
                    outcome
                        .parse()
                        .map_err(|_| crate::store::rows::corrupt("contact_counts.last_outcome", &outcome))?,
                )
            },
            attempts: r.int("attempts_count")?,
            n,
        });
    }
    if deltas > FOLD_ABOVE_ROWS {
        fold::<D>(conn, k.id).await?;
    }
    Ok(groups)
}

/// Folds every campaign with many delta rows (the reconciler's passes).
pub(crate) async fn fold_all<D: Dialect>(conn: &mut D::Connection) -> StoreResult<usize> {
    let sql = "SELECT campaign_id FROM contact_counts GROUP BY campaign_id HAVING COUNT(*) > $1";
    let campaigns = fetch_all::<D>(conn, sql, [FOLD_ABOVE_ROWS.into()]).await?;
    for r in &campaigns {
        fold::<D>(conn, r.uuid("campaign_id")?).await?;
    }
    Ok(campaigns.len())
}

/// Replaces a campaign's delta rows by one row per non-empty group. On
/// PostgreSQL one statement moves exactly the rows it deletes, so deltas inserted
/// meanwhile are kept for the next fold; SQLite's single writer makes the three
/// statements of its transaction just as safe.
async fn fold<D: Dialect>(conn: &mut D::Connection, campaign_id: Uuid) -> StoreResult<()> {
    const GROUPED: &str = "GROUP BY state, last_outcome, attempts_count HAVING SUM(n) <> 0";
    if D::WRITABLE_CTE {
        let sql = format!(
            "WITH moved AS (DELETE FROM contact_counts WHERE campaign_id = $1 \
               RETURNING state, last_outcome, attempts_count, n) \
             INSERT INTO contact_counts (campaign_id, state, last_outcome, attempts_count, n) \
             SELECT $1, state, last_outcome, attempts_count, SUM(n) FROM moved {GROUPED}"
        );
        execute::<D>(conn, &sql, [campaign_id.into()]).await?;
    } else {
        execute::<D>(conn, "BEGIN IMMEDIATE", []).await?;
        let folded = async {
            execute::<D>(
                conn,
                "CREATE TEMP TABLE IF NOT EXISTS folded_counts AS SELECT * FROM contact_counts LIMIT 0",
                [],
            )
            .await?;
            execute::<D>(conn, "DELETE FROM folded_counts", []).await?;
            let sql = format!(
                "INSERT INTO folded_counts SELECT campaign_id, state, last_outcome, attempts_count, SUM(n) \
                 FROM contact_counts WHERE campaign_id = $1 {GROUPED}"
            );
            execute::<D>(conn, &sql, [campaign_id.into()]).await?;
            execute::<D>(conn, "DELETE FROM contact_counts WHERE campaign_id = $1", [campaign_id.into()]).await?;
            execute::<D>(conn, "INSERT INTO contact_counts SELECT * FROM folded_counts", []).await?;
            StoreResult::Ok(())
        }
        .await;
        let end = if folded.is_ok() { "COMMIT" } else { "ROLLBACK" };
        execute::<D>(conn, end, []).await?;
        folded?;
    }
    Ok(())
}
