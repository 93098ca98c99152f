//! `callhook campaigns list|show|stats|dial|pause|resume|stop`: the campaign
//! endpoints of the admin API, on the database directly, for operators and for a
//! dialer scripted in shell.

use anyhow::Context;
use serde::Serialize;

use super::open_existing;
use crate::config::CampaignsCommand;
use crate::domain::{Campaign, CampaignStatus};

pub async fn campaigns(command: CampaignsCommand) -> anyhow::Result<()> {
    match command {
        CampaignsCommand::List { status, limit, database, json } => {
            anyhow::ensure!((1..=10_000).contains(&limit), "--limit must be 1–10000");
            let store = open_existing(&database).await?;
            let campaigns = store.campaigns(status, None, limit).await?;
            if json {
                return print_json(&campaigns);
            }
            println!("{:<36}  {:<8}  {:<20}  {:<11}  name", "id", "status", "timezone", "window");
            for k in campaigns {
                println!(
                    "{:<36}  {:<8}  {:<20}  {:<11}  {}",
                    k.id,
                    k.status,
                    k.timezone,
                    format!("{}–{}", k.calling_window_start, k.calling_window_end),
                    k.name
                );
            }
            Ok(())
        }
        CampaignsCommand::Show { id, database, json } => {
            let store = open_existing(&database).await?;
            let k = store.campaign(id).await?.with_context(|| format!("campaign `{id}` not found"))?;
            if json {
                return print_json(&k);
            }
            show(&k);
            Ok(())
        }
        CampaignsCommand::Stats { id, database, json } => {
            let store = open_existing(&database).await?;
            let stats = store.campaign_stats(id).await?;
            if json {
                return print_json(&stats);
            }
            println!("campaign {id} ({}): {} contacts", stats.status, stats.contacts);
            let line = |map: &std::collections::BTreeMap<String, i64>| {
                map.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
            };
            println!("  by state        {}", line(&stats.by_state));
            println!("  by last outcome {}", line(&stats.by_last_outcome));
            println!("  attempts        {}", line(&stats.attempts_histogram));
            let cap = stats.max_concurrent_calls.map_or_else(|| "no cap".to_owned(), |c| format!("cap {c}"));
            println!("  in flight       {} ({cap})", stats.calls_in_flight);
            println!(
                "  completed       {:.1} %   finished {:.1} %",
                stats.completion_rate * 100.0,
                stats.finished_rate * 100.0
            );
            Ok(())
        }
        CampaignsCommand::Dial { id, limit, provider, json, serve } => {
            anyhow::ensure!((1..=1000).contains(&limit), "--limit must be 1–1000");
            anyhow::ensure!(
                serve.public_base_url.is_some(),
                "set CALLHOOK_PUBLIC_BASE_URL (or --public-base-url): the status callback URLs are built from it"
            );
            let store = open_existing(&serve.database).await?;
            let app = serve.app_state(store, None);
            let provider = provider.unwrap_or(app.default_provider);
            let headers = axum::http::HeaderMap::new();
            let claimed = crate::http::campaigns::claim(&app, &headers, id, limit as usize, provider)
                .await
                .map_err(|e| anyhow::anyhow!("{} ({})", e.message, e.code))?;
            if json {
                return print_json(&claimed);
            }
            for call in claimed.calls {
                println!("{}\t{}\t{}", call.phone_number, call.call_id, call.status_callback_url);
            }
            Ok(())
        }
        CampaignsCommand::Pause { id, database } => set(&database, id, CampaignStatus::Paused).await,
        CampaignsCommand::Resume { id, database } => set(&database, id, CampaignStatus::Running).await,
        CampaignsCommand::Stop { id, database } => set(&database, id, CampaignStatus::Stopped).await,
    }
}

async fn set(database: &crate::config::DatabaseArgs, id: uuid::Uuid, status: CampaignStatus) -> anyhow::Result<()> {
    let store = open_existing(database).await?;
    let k = store.set_campaign_status(id, status).await?;
    println!("campaign {} is {}", k.id, k.status);
    Ok(())
}

fn show(k: &Campaign) {
    println!("campaign {}  {}", k.id, k.name);
    println!("  status          {}", k.status);
    println!("  timezone        {}", k.timezone);
    println!("  calling window  {}–{} on ISO days {:?}", k.calling_window_start, k.calling_window_end, k.calling_days);
    println!("  max attempts    {}", k.max_attempts);
    match &k.retry_policy {
        Some(p) => println!("  retry policy    {}", serde_json::to_string(p).unwrap_or_default()),
        None => println!("  retry policy    every outcome after {} min", k.retry_interval_minutes),
    }
    let cap = k.max_concurrent_calls.map_or_else(|| "none".to_owned(), |c| c.to_string());
    println!("  concurrency cap {cap}");
    println!("  AMD             {} ({} ms)", k.amd_mode, k.amd_wait_timeout_ms);
    println!("  created         {}", k.created_at.to_rfc3339());
}

fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
