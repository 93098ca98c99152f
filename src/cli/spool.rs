//! `callhook spool status|drain`: what the outage spool holds, and applying it by
//! hand (a replica that will not come back left a file spool behind, say).

use crate::config::{ServeArgs, SpoolKind};
use crate::spool::{self, Backend, SpoolStatus};

pub async fn status(args: &ServeArgs, json: bool) -> anyhow::Result<()> {
    let status = match args.spool.effective(&args.database.database_url) {
        SpoolKind::Off | SpoolKind::Auto => {
            anyhow::bail!("no outage spool is configured (CALLHOOK_SPOOL=off, or auto with SQLite, which needs none)")
        }
        // Read without taking the directory over: `serve` may be running on it.
        SpoolKind::File => spool::inspect(&args.spool.spool_dir, args.spool.spool_max_bytes)?,
        SpoolKind::Nats => open(args).await?.status().await?,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", describe(&status));
    }
    Ok(())
}

/// Drains everything now; fails if the store is unavailable before the spool is empty.
pub async fn drain(args: &ServeArgs) -> anyhow::Result<()> {
    let backend = open(args).await?;
    let store = super::open_existing(&args.database).await?;
    let mut total = spool::DrainReport::default();
    loop {
        let report = backend.drain(store.as_ref(), &|| false).await?;
        let progress = report.stored + report.duplicates + report.set_aside + report.corrupt;
        total.stored += report.stored;
        total.duplicates += report.duplicates;
        total.set_aside += report.set_aside;
        total.corrupt += report.corrupt;
        total.stopped = report.stopped;
        if progress == 0 || total.stopped.is_some() {
            break;
        }
    }
    println!("drained: {}", total.summary());
    print!("{}", describe(&backend.status().await?));
    if let Some(why) = total.stopped {
        anyhow::bail!("the store became unavailable while draining ({why}); what is left stays spooled");
    }
    Ok(())
}

async fn open(args: &ServeArgs) -> anyhow::Result<Box<dyn Backend>> {
    use crate::spool::{FileSpool, NatsSpool, NatsSpoolConfig};
    let s = &args.spool;
    Ok(match s.effective(&args.database.database_url) {
        SpoolKind::Off | SpoolKind::Auto => anyhow::bail!("no outage spool is configured"),
        SpoolKind::File => Box::new(FileSpool::open(&s.spool_dir, s.spool_max_bytes)?),
        SpoolKind::Nats => Box::new(
            NatsSpool::open(NatsSpoolConfig {
                url: args.outbox.nats_url.clone(),
                stream: s.spool_nats_stream.clone(),
                replicas: s.spool_nats_replicas,
                max_bytes: s.spool_max_bytes,
            })
            .await?,
        ),
    })
}

fn describe(s: &SpoolStatus) -> String {
    let oldest = match s.oldest_at {
        Some(at) => format!("{} ({} s ago)", at.to_rfc3339(), (chrono::Utc::now() - at).num_seconds().max(0)),
        None => "-".into(),
    };
    format!(
        "spool:      {} ({})\nrecords:    {}\nbytes:      {} of {}\noldest:     {oldest}\nset aside:  {}\n",
        s.backend, s.location, s.records, s.bytes, s.max_bytes, s.set_aside
    )
}
