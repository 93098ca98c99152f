//! Timing of the dialer's two reads for `bench/dial.sh`: `--claims` sequential
//! claims of `--limit` due contacts (`POST /api/v1/campaigns/{id}/dial`) and
//! `--stats-runs` reads of the campaign's statistics, through the running service.
//! Prints one JSON line: latency percentiles of each, and how many calls were
//! claimed (each claim must return `--limit` while due contacts remain).
//!
//! `cargo run --release --example dial_bench -- --help`

use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    #[arg(long)]
    campaign: String,
    /// An admin token of the service.
    #[arg(long, default_value = "bench-admin")]
    token: String,
    #[arg(long, default_value_t = 300)]
    claims: usize,
    #[arg(long, default_value_t = 100)]
    limit: usize,
    #[arg(long, default_value_t = 30)]
    stats_runs: usize,
    /// Label for the JSON result line.
    #[arg(long, default_value = "dial-and-stats")]
    label: String,
}

fn percentiles(mut ms: Vec<f64>) -> Value {
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms.get(((ms.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0);
    json!({"p50": at(0.5), "p95": at(0.95), "p99": at(0.99), "max": at(1.0), "n": ms.len()})
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let base = format!("{}/api/v1/campaigns/{}", args.target, args.campaign);
    let (mut claim_ms, mut claimed, mut short) = (vec![], 0usize, 0usize);
    for _ in 0..args.claims {
        let started = Instant::now();
        let res = http
            .post(format!("{base}/dial"))
            .bearer_auth(&args.token)
            .json(&json!({"limit": args.limit}))
            .send()
            .await?;
        let status = res.status();
        let body: Value = res.json().await?;
        claim_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(status.is_success(), "dial answered {status}: {body}");
        let n = body["calls"].as_array().map_or(0, Vec::len);
        claimed += n;
        short += usize::from(n < args.limit);
    }
    let mut stats_ms = vec![];
    let mut contacts = 0;
    for _ in 0..args.stats_runs {
        let started = Instant::now();
        let res = http.get(format!("{base}/stats")).bearer_auth(&args.token).send().await?;
        let body: Value = res.json().await?;
        stats_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        contacts = body["contacts"].as_i64().unwrap_or(0);
    }
    let result = json!({
        "label": args.label,
        "claim_ms": percentiles(claim_ms),
        "claims_short_of_limit": short,
        "calls_claimed": claimed,
        "stats_ms": percentiles(stats_ms),
        "campaign_contacts": contacts,
    });
    println!("{result}");
    Ok(())
}
