//! Retention (SPEC §13): removes the inbox rows and finished outbox jobs of calls
//! that ended before a cutoff, never those of a call still open; on PostgreSQL
//! drops whole monthly partitions of the inbox and keeps the months ahead
//! partitioned. Also the inbox read by time range (`events export`).

use chrono::{DateTime, Datelike, Months, NaiveDate, TimeZone, Utc};
use uuid::Uuid;

use super::{execute, fetch_all};
use crate::store::dialect::Dialect;
use crate::store::rows::{self, RowExt, EVENT_COLS};
use crate::store::types::{PruneReport, StoredEvent};
use crate::store::StoreResult;

/// Attempt `a` is still open, or ended at or after the cutoff (`$1`): its events
/// and jobs stay.
macro_rules! not_ended_before_cutoff {
    () => {
        "(a.status IN ('initiated', 'ringing', 'answered') OR coalesce(a.ended_at, a.last_event_at) >= $1)"
    };
}

/// Rows of inbox table `e` that must be kept: they belong to a call still open,
/// or to one that ended at or after the cutoff — matched by the call id or, for a
/// deferred callback that named only the provider's call, by that.
const KEEP: &str = concat!(
    "EXISTS (SELECT 1 FROM call_attempts a ",
    "WHERE (a.call_id = e.call_id OR (a.provider = e.provider AND a.provider_call_id = e.provider_call_id)) AND ",
    not_ended_before_cutoff!(),
    ")"
);

/// Months of partitions kept ahead of now.
const MONTHS_AHEAD: u32 = 2;

/// Rows deleted per statement (and transaction) when pruning row by row, so that
/// no prune holds locks or builds a huge transaction.
const BATCH: i64 = 5000;

/// How long dropping a partition waits for the inbox's lock before giving up
/// (retried next round): callbacks queue behind it meanwhile.
const LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '2s'";

/// A monthly partition's name and range, as migration 0006's function names them.
fn partition_month(name: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let rest = name.strip_prefix("telephony_events_y")?;
    let (year, month) = rest.split_once('m')?;
    let start = NaiveDate::from_ymd_opt(year.parse().ok()?, month.parse().ok()?, 1)?;
    let start = Utc.from_utc_datetime(&start.and_hms_opt(0, 0, 0)?);
    Some((start, start.checked_add_months(Months::new(1))?))
}

/// Creates the partitions of this month and the next ones (PostgreSQL); the
/// number created.
pub(crate) async fn ensure_partitions<D: Dialect>(conn: &mut D::Connection, now: DateTime<Utc>) -> StoreResult<i64> {
    if !D::PARTITIONED_INBOX {
        return Ok(0);
    }
    let first = Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0).single().unwrap_or(now);
    let last = first.checked_add_months(Months::new(MONTHS_AHEAD)).unwrap_or(first);
    let rows = fetch_all::<D>(conn, "SELECT callhook_event_partitions($1, $2) AS created", [first.into(), last.into()])
        .await?;
    rows.first().map_or(Ok(0), |r| r.int("created").map(i64::from))
}

/// Prunes everything older than `cutoff` that retention may remove, in short
/// transactions: one per dropped partition, then batches of rows. On PostgreSQL
/// one replica prunes at a time (a session lock on this connection; the others
/// find it taken and report `busy`).
pub(crate) async fn prune<D: Dialect>(conn: &mut D::Connection, cutoff: DateTime<Utc>) -> StoreResult<PruneReport> {
    let mut report = PruneReport::default();
    if !D::PARTITIONED_INBOX {
        prune_rows::<D>(conn, cutoff, &mut report).await?;
        return Ok(report);
    }
    let locked = fetch_all::<D>(
        conn,
        "SELECT pg_try_advisory_lock(hashtext('callhook:retention')) AS locked",
        std::iter::empty(),
    )
    .await?;
    if !locked.first().map(|r| r.boolean("locked")).transpose()?.unwrap_or(false) {
        report.busy = true;
        return Ok(report);
    }
    let pruned = async {
        drop_partitions::<D>(conn, cutoff, &mut report).await?;
        prune_rows::<D>(conn, cutoff, &mut report).await
    }
    .await;
    // Released whatever happened: the connection goes back to the pool.
    let unlocked =
        execute::<D>(conn, "SELECT pg_advisory_unlock(hashtext('callhook:retention'))", std::iter::empty()).await;
    pruned?;
    unlocked?;
    Ok(report)
}

/// Removes, batch by batch, the inbox rows and finished jobs older than `cutoff`
/// that are not kept, and counts the rows kept.
async fn prune_rows<D: Dialect>(
    conn: &mut D::Connection,
    cutoff: DateTime<Utc>,
    report: &mut PruneReport,
) -> StoreResult<()> {
    let chosen = format!(
        "SELECT e.id, e.received_at FROM telephony_events e WHERE e.received_at < $1 AND NOT ({KEEP}) LIMIT {BATCH}"
    );
    let events = if D::PARTITIONED_INBOX {
        format!(
            "WITH gone AS (DELETE FROM telephony_events d WHERE (d.id, d.received_at) IN ({chosen}) \
             RETURNING d.dedupe_key), \
             keys AS (DELETE FROM telephony_event_keys k USING gone WHERE k.dedupe_key = gone.dedupe_key) \
             SELECT count(*) AS n FROM gone"
        )
    } else {
        format!(
            "DELETE FROM telephony_events WHERE id IN \
             (SELECT e.id FROM telephony_events e WHERE e.received_at < $1 AND NOT ({KEEP}) LIMIT {BATCH})"
        )
    };
    loop {
        let n = if D::PARTITIONED_INBOX {
            count::<D>(conn, &events, cutoff).await?
        } else {
            execute::<D>(conn, &events, [cutoff.into()]).await? as i64
        };
        report.events += n;
        if n < BATCH {
            break;
        }
    }
    report.kept_open = count::<D>(
        conn,
        &format!("SELECT count(*) AS n FROM telephony_events e WHERE e.received_at < $1 AND {KEEP}"),
        cutoff,
    )
    .await?;
    let jobs = format!(
        "DELETE FROM outbox WHERE id IN (SELECT o.id FROM outbox o WHERE o.status IN ('done', 'expired') \
         AND o.updated_at < $1 AND NOT EXISTS (SELECT 1 FROM call_attempts a WHERE a.call_id = {} AND {}) \
         LIMIT {BATCH})",
        D::JSON_CALL_ID,
        not_ended_before_cutoff!(),
    );
    loop {
        let n = execute::<D>(conn, &jobs, [cutoff.into()]).await? as i64;
        report.jobs += n;
        if n < BATCH {
            break;
        }
    }
    Ok(())
}

async fn count<D: Dialect>(conn: &mut D::Connection, sql: &str, cutoff: DateTime<Utc>) -> StoreResult<i64> {
    let rows = fetch_all::<D>(conn, sql, [cutoff.into()]).await?;
    rows.first().map_or(Ok(0), |r| Ok(r.opt_i64("n")?.unwrap_or(0)))
}

/// Drops every monthly partition that ends at or before `cutoff`, each in a
/// transaction of its own. Its rows of calls still open are moved first
/// (detached, the partition's range has no partition, so they land in the default
/// one, and are counted with the rows kept); the keys of the rest go with it.
/// `DETACH` locks the inbox: callbacks wait for this transaction, which touches
/// only the old month, and waits at most [`LOCK_TIMEOUT`] for its lock.
async fn drop_partitions<D: Dialect>(
    conn: &mut D::Connection,
    cutoff: DateTime<Utc>,
    report: &mut PruneReport,
) -> StoreResult<()> {
    let sql = "SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
               WHERE i.inhparent = 'telephony_events'::regclass ORDER BY c.relname";
    let names: Vec<String> = fetch_all::<D>(conn, sql, std::iter::empty())
        .await?
        .iter()
        .map(|r| r.text("name"))
        .collect::<Result<_, _>>()?;
    for name in names {
        let Some((_, end)) = partition_month(&name) else { continue };
        if end > cutoff {
            continue;
        }
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        execute::<D>(&mut tx, LOCK_TIMEOUT, std::iter::empty()).await?;
        // `name` is one of ours (it parsed as telephony_events_yYYYYmMM).
        execute::<D>(&mut tx, &format!("ALTER TABLE telephony_events DETACH PARTITION {name}"), std::iter::empty())
            .await?;
        let kept = format!("INSERT INTO telephony_events SELECT * FROM {name} e WHERE {KEEP}");
        execute::<D>(&mut tx, &kept, [cutoff.into()]).await?;
        let keys = format!(
            "DELETE FROM telephony_event_keys k USING {name} e WHERE k.dedupe_key = e.dedupe_key AND NOT ({KEEP})"
        );
        let removed = execute::<D>(&mut tx, &keys, [cutoff.into()]).await? as i64;
        execute::<D>(&mut tx, &format!("DROP TABLE {name}"), std::iter::empty()).await?;
        tx.commit().await?;
        report.events += removed;
        report.partitions_dropped += 1;
    }
    Ok(())
}

/// Inbox rows received in `[since, until)`, after `after` (keyset pagination),
/// oldest first.
pub(crate) async fn between<D: Dialect>(
    conn: &mut D::Connection,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> StoreResult<Vec<StoredEvent>> {
    let (after_at, after_id) = after.unwrap_or((since, Uuid::nil()));
    let sql = format!(
        "SELECT {EVENT_COLS} FROM telephony_events WHERE received_at >= $1 AND received_at < $2 \
         AND (received_at > $3 OR (received_at = $3 AND id > $4)) ORDER BY received_at, id LIMIT $5"
    );
    let args = [since.into(), until.into(), after_at.into(), after_id.into(), limit.into()];
    fetch_all::<D>(conn, &sql, args).await?.iter().map(rows::stored_event).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_give_their_month() {
        let (start, end) = partition_month("telephony_events_y2026m12").unwrap();
        assert_eq!(
            (start.to_rfc3339(), end.to_rfc3339()),
            ("2026-12-01T00:00:00+00:00".into(), "2027-01-01T00:00:00+00:00".into())
        );
        assert!(partition_month("telephony_events_default").is_none());
        assert!(partition_month("telephony_events_y2026m13").is_none());
    }
}
