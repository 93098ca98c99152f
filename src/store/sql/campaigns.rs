//! `campaigns`: written once, read with every event's rules, listed, paused and
//! resumed; and the counts the scheduler and the statistics need.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{execute, fetch_all, fetch_optional, insert_sql, values, Cols};
use crate::domain::{Campaign, CampaignStatus};
use crate::store::dialect::Dialect;
use crate::store::rows::{self, RowExt, CAMPAIGN_COLS};
use crate::store::types::CampaignStats;
use crate::store::StoreResult;

pub(crate) async fn get<D: Dialect>(conn: &mut D::Connection, id: Uuid) -> StoreResult<Option<Campaign>> {
    let sql = format!("SELECT {CAMPAIGN_COLS} FROM campaigns k WHERE k.id = $1");
    let row = fetch_optional::<D>(conn, &sql, [id.into()]).await?;
    row.as_ref().map(rows::campaign).transpose()
}

pub(crate) async fn insert<D: Dialect>(conn: &mut D::Connection, k: &Campaign) -> StoreResult<()> {
    let days = rows::days_text(&k.calling_days);
    let policy = k.retry_policy.as_ref().map(|p| serde_json::to_value(p).unwrap_or_default());
    let row: Cols = vec![
        ("id", k.id.into()),
        ("name", (&k.name).into()),
        ("max_attempts", k.max_attempts.into()),
        ("retry_interval_minutes", k.retry_interval_minutes.into()),
        ("created_at", k.created_at.into()),
        ("amd_mode", k.amd_mode.as_str().into()),
        ("amd_wait_timeout_ms", k.amd_wait_timeout_ms.into()),
        ("timezone", (&k.timezone).into()),
        ("calling_window_start", (&k.calling_window_start).into()),
        ("calling_window_end", (&k.calling_window_end).into()),
        ("calling_days", (&days).into()),
        ("retry_policy", crate::store::dialect::Arg::OptJson(policy.as_ref())),
        ("max_concurrent_calls", k.max_concurrent_calls.into()),
        ("status", k.status.as_str().into()),
    ];
    let sql = insert_sql("campaigns", &row, 1);
    execute::<D>(conn, &sql, values(row)).await?;
    Ok(())
}

/// Campaigns after `after` (`created_at`, `id`) in that order; optionally one status.
pub(crate) async fn list<D: Dialect>(
    conn: &mut D::Connection,
    status: Option<CampaignStatus>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> StoreResult<Vec<Campaign>> {
    let (after_ts, after_id) = after.map_or((None, None), |(ts, id)| (Some(ts), Some(id)));
    let sql = format!(
        "SELECT {CAMPAIGN_COLS} FROM campaigns k WHERE ($1 IS NULL OR k.status = $1) \
         AND ($2 IS NULL OR k.created_at > $2 OR (k.created_at = $2 AND k.id > $3)) \
         ORDER BY k.created_at, k.id LIMIT $4"
    );
    let args = [status.map(|s| s.as_str()).into(), after_ts.into(), after_id.into(), limit.into()];
    fetch_all::<D>(conn, &sql, args).await?.iter().map(rows::campaign).collect()
}

pub(crate) async fn set_status<D: Dialect>(
    conn: &mut D::Connection,
    id: Uuid,
    status: CampaignStatus,
) -> StoreResult<()> {
    execute::<D>(conn, "UPDATE campaigns SET status = $2 WHERE id = $1", [id.into(), status.as_str().into()]).await?;
    Ok(())
}

/// Calls of the campaign not finished yet (the concurrency cap counts these).
pub(crate) async fn in_flight<D: Dialect>(conn: &mut D::Connection, id: Uuid) -> StoreResult<i64> {
    let sql = "SELECT COUNT(*) AS n FROM call_attempts \
               WHERE campaign_id = $1 AND status IN ('initiated', 'ringing', 'answered')";
    let row = fetch_optional::<D>(conn, sql, [id.into()]).await?;
    Ok(row.map(|r| r.opt_i64("n")).transpose()?.flatten().unwrap_or(0))
}

/// Contacts by state, last outcome and attempts (from `contact_counts`, not the
/// contacts), and calls in flight.
pub(crate) async fn stats<D: Dialect>(conn: &mut D::Connection, k: &Campaign) -> StoreResult<CampaignStats> {
    let mut stats = CampaignStats::new(k);
    for g in super::counts::groups::<D>(conn, k).await? {
        stats.add(g.state, g.last_outcome, g.attempts, g.n);
    }
    stats.calls_in_flight = in_flight::<D>(conn, k.id).await?;
    stats.finish();
    Ok(stats)
}
