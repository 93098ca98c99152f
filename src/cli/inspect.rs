//! Operator commands over the store: `calls show`, `outbox list|retry`,
//! `events replay`.

use anyhow::bail;
use uuid::Uuid;

use super::open_existing;
use crate::config::DatabaseArgs;

pub async fn calls_show(db: &DatabaseArgs, call_id: &str, json: bool) -> anyhow::Result<()> {
    let store = open_existing(db).await?;
    let Some(attempt) = store.attempt(call_id).await? else { bail!("call `{call_id}` not found") };
    let events = store.events_for_call(call_id).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "attempt": attempt, "events": events }))?);
        return Ok(());
    }
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    println!("call {}  (attempt {} of contact {})", attempt.call_id, attempt.attempt_number, attempt.contact_id);
    println!("  provider      {} {}", attempt.provider, opt(attempt.provider_call_id.clone()));
    println!("  status        {} (raw: {})", attempt.status, opt(attempt.provider_raw_status.clone()));
    println!("  outcome       {}", opt(attempt.outcome.map(|o| o.to_string())));
    println!(
        "  answered      {} by {}",
        opt(attempt.answered_at.map(|t| t.to_rfc3339())),
        opt(attempt.answered_by.clone())
    );
    println!(
        "  ended         {} ({}s)",
        opt(attempt.ended_at.map(|t| t.to_rfc3339())),
        opt(attempt.duration_seconds.map(|d| d.to_string()))
    );
    println!("  error         {} {}", opt(attempt.error_code.clone()), opt(attempt.error_message.clone()));
    println!("events:");
    println!("  {:<32} {:<16} {:<18} {:<11} source", "received_at", "event_type", "provider_status", "disposition");
    for e in events {
        // A reconciled event is what the provider's API said, not a callback: marked.
        let source = if e.source == crate::domain::EventSource::Reconcile { "reconcile *" } else { e.source.as_str() };
        println!(
            "  {:<32} {:<16} {:<18} {:<11} {source}",
            e.received_at.to_rfc3339(),
            e.event_type.unwrap_or_else(|| "-".into()),
            e.provider_status,
            e.disposition
        );
    }
    Ok(())
}

pub async fn outbox_list(db: &DatabaseArgs, status: Option<&str>, limit: i64) -> anyhow::Result<()> {
    if let Some(s) = status {
        if !["pending", "done", "dead", "expired"].contains(&s) {
            bail!("--status must be pending, done, dead or expired, not `{s}`");
        }
    }
    let store = open_existing(db).await?;
    let stats = store.outbox_stats().await?;
    println!(
        "outbox: {} pending, {} done, {} dead; oldest pending since {}",
        stats.pending,
        stats.done,
        stats.dead,
        stats.oldest_pending_at.map_or("-".into(), |t| t.to_rfc3339())
    );
    println!("{:<36} {:<20} {:<8} {:>8}  last_error", "id", "kind", "status", "attempts");
    let jobs = match status {
        Some(s) => store.outbox_in(s, limit).await?,
        None => store.outbox(limit).await?,
    };
    for job in jobs {
        println!(
            "{:<36} {:<20} {:<8} {:>8}  {}",
            job.id,
            job.kind,
            job.status,
            job.attempts,
            job.last_error.unwrap_or_default()
        );
    }
    Ok(())
}

pub async fn outbox_retry(db: &DatabaseArgs, ids: &[Uuid], all_dead: bool) -> anyhow::Result<()> {
    let store = open_existing(db).await?;
    let ids: Vec<Uuid> = if all_dead {
        store.outbox_in("dead", i64::MAX).await?.into_iter().map(|j| j.id).collect()
    } else if ids.is_empty() {
        bail!("name job ids to retry, or pass --all-dead");
    } else {
        ids.to_vec()
    };
    let mut retried = 0;
    let mut refused = 0;
    for id in &ids {
        if store.retry_job(*id).await? {
            retried += 1;
        } else {
            eprintln!("job {id}: not retried (unknown, already delivered or expired, or being delivered now)");
            refused += 1;
        }
    }
    println!("{retried} job(s) due again; a running dispatcher picks them up within its poll interval");
    if refused > 0 {
        bail!("{refused} of {} job(s) could not be retried", ids.len());
    }
    Ok(())
}

pub async fn events_replay(db: &DatabaseArgs, limit: i64) -> anyhow::Result<()> {
    let store = open_existing(db).await?;
    let report = store.replay_deferred(limit).await?;
    // Only events whose call attempt exists are examined; the others wait for it.
    println!(
        "{} deferred event(s) examined, {} applied ({} settled by a callback meanwhile)",
        report.examined,
        report.applied,
        report.examined - report.applied
    );
    Ok(())
}
