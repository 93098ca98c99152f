//! `callhook events prune` and `callhook events export`: retention from the
//! command line, and the inbox written out as JSON lines before it goes.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use chrono::{DateTime, NaiveDate, Utc};

use super::open_existing;
use crate::config::DatabaseArgs;
use crate::domain::retention::retention_cutoff;

/// Rows read per page of an export.
const PAGE: i64 = 1000;

pub async fn prune(db: &DatabaseArgs, older_than: i64, json: bool) -> anyhow::Result<()> {
    // Checked before the database is opened: a bad age changes nothing.
    let cutoff = retention_cutoff(Utc::now(), older_than).context("--older-than")?;
    let store = open_existing(db).await?;
    let report = store.prune(cutoff).await?;
    crate::retention::record(&report);
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else if report.busy {
        println!("another replica is pruning now; nothing removed");
    } else {
        println!(
            "removed {} event(s) ({} monthly partition(s) dropped) and {} finished job(s) of calls that ended before {}; \
             kept {} event(s) of calls still open or ended since",
            report.events,
            report.partitions_dropped,
            report.jobs,
            cutoff.to_rfc3339(),
            report.kept_open
        );
    }
    Ok(())
}

/// An instant (RFC 3339) or a date (midnight UTC).
fn instant(flag: &str, text: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    match NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
        Ok(d) => Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()),
        Err(_) => {
            bail!("{flag} `{text}` is neither an RFC 3339 instant (2026-10-01T00:00:00Z) nor a date (2026-10-01)")
        }
    }
}

pub async fn export(db: &DatabaseArgs, since: &str, until: &str, output: Option<&Path>) -> anyhow::Result<()> {
    let (since, until) = (instant("--since", since)?, instant("--until", until)?);
    if since >= until {
        bail!("--since ({since}) must be before --until ({until})");
    }
    let store = open_existing(db).await?;
    let mut out: Box<dyn Write> = match output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let (mut after, mut written) = (None, 0u64);
    loop {
        let page = store.events_between(since, until, after, PAGE).await?;
        for event in &page {
            serde_json::to_writer(&mut out, event)?;
            out.write_all(b"\n")?;
        }
        written += page.len() as u64;
        match page.last() {
            Some(last) if page.len() as i64 == PAGE => after = Some((last.received_at, last.id)),
            _ => break,
        }
    }
    out.flush()?;
    if let Some(path) = output {
        // Durable before the operator prunes what it holds.
        std::fs::File::open(path)?.sync_all()?;
        eprintln!("{written} event(s) written to {}", path.display());
    }
    Ok(())
}
