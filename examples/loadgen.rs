//! Load generator for `bench/run.sh`: registers calls directly in the database,
//! pre-signs every Twilio callback of realistic call sequences (so signing is not
//! measured), then sends them with `--concurrency` workers, each call's callbacks in
//! order, optionally paced to `--rate` requests/s. Reports throughput, latency
//! percentiles, errors, the server's peak RSS (`--server-pid`), and — with
//! `--sink-port` — the time from sending an answered callback to the dialogue
//! orchestrator receiving its `dialogue.start`.
//!
//! `cargo run --release --example loadgen -- --help`

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use clap::Parser;

use callhook::domain::{EventType, Provider};
use callhook::providers::simulate::{Callback, Signed, Signer};
use callhook::store::{NewAttempt, NewCampaign, NewContact};

#[derive(Parser, Debug)]
struct Args {
    /// Base URL of the service under test.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// Database the service uses (calls are registered there directly).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Public base URL the service checks signatures against.
    #[arg(long, default_value = "https://hooks.example.com")]
    public_base_url: String,
    /// Twilio auth token the service is configured with.
    #[arg(long, default_value = "bench-token")]
    token: String,
    #[arg(long, default_value_t = 2000)]
    calls: usize,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Requests per second (0 = as fast as possible).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Measure answered → dialogue.start receipt with an http sink on this port.
    #[arg(long)]
    sink_port: Option<u16>,
    /// PID of the server, to report its peak RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Label for the JSON result line.
    #[arg(long, default_value = "callhook")]
    label: String,
}

struct Request {
    call_id: String,
    answered: bool,
    signed: Signed,
    path: String,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// CPU seconds (user + system) the process `pid` has used, from `/proc` (Linux).
fn cpu_seconds(pid: u32) -> f64 {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|stat| {
        // Fields after the command name (which may hold spaces, so split after its `)`).
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
    });
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks.map_or(0.0, |t| t as f64 / per_second)
}

/// CPU seconds used so far by every PostgreSQL process on this machine (the server
/// under test shares it); backends of a run live through the run.
fn postgres_cpu_seconds() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0.0 };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres"))
        .map(cpu_seconds)
        .sum()
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// A zone where it is mid-afternoon now, so the campaign's calling window is open
/// whenever the benchmark runs (registration refuses calls outside it).
fn daytime_zone() -> String {
    let offset = 14 - chrono::Timelike::hour(&chrono::Utc::now()) as i32;
    match offset {
        0 => "Etc/GMT".into(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let store = callhook::store::connect(&args.database_url, 4).await?;
    let campaign = store
        .create_campaign(NewCampaign {
            max_attempts: Some(3),
            retry_interval_minutes: Some(0),
            timezone: Some(daytime_zone()),
            ..NewCampaign::named("bench")
        })
        .await?;
    let contacts = store
        .add_contacts(
            campaign.id,
            (0..args.calls).map(|i| NewContact::phone(format!("+1415{:07}", i % 10_000_000))).collect(),
            Default::default(),
        )
        .await?
        .contacts;
    let mut signer = Signer::from_seed("bench");
    signer.twilio_token = args.token.clone();
    let now = chrono::Utc::now().timestamp();
    let mut calls: Vec<Vec<Request>> = Vec::with_capacity(args.calls);
    for (i, contact) in contacts.iter().enumerate() {
        let call_id = store.register_attempt(NewAttempt::new(contact.id, Provider::Twilio)).await?.attempt.call_id;
        let path = format!("/webhooks/telephony/events?call_id={call_id}");
        let url = format!("{}{path}", args.public_base_url);
        let pcid = format!("CA{:032x}", uuid::Uuid::new_v4().as_u128());
        // 60 % answered by a person, 25 % not answered, 15 % busy.
        let events: &[EventType] = match i % 20 {
            0..=11 => &[EventType::Initiated, EventType::Ringing, EventType::Answered, EventType::Completed],
            12..=16 => &[EventType::Initiated, EventType::Ringing, EventType::NoAnswer],
            _ => &[EventType::Initiated, EventType::Busy],
        };
        calls.push(
            events
                .iter()
                .map(|e| {
                    let cb = Callback {
                        provider_call_id: &pcid,
                        event: Some(*e),
                        answered_by: None,
                        duration_seconds: (*e == EventType::Completed).then_some(60),
                    };
                    Request {
                        call_id: call_id.clone(),
                        answered: *e == EventType::Answered,
                        signed: signer.callback(Provider::Twilio, &url, &cb, now),
                        path: path.clone(),
                    }
                })
                .collect(),
        );
    }
    let total: usize = calls.iter().map(Vec::len).sum();

    // The dialogue orchestrator stand-in, timing receipts per call.
    let receipts: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    if let Some(port) = args.sink_port {
        let r = receipts.clone();
        let app = axum::Router::new().route(
            "/dialogue",
            axum::routing::post(move |_h: HeaderMap, body: Bytes| {
                let r = r.clone();
                async move {
                    let at = Instant::now();
                    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
                        if v["type"] == "dialogue.start" {
                            if let Some(call) = v["data"]["call_id"].as_str() {
                                r.lock().unwrap().entry(call.to_owned()).or_insert(at);
                            }
                        }
                    }
                    StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        tokio::spawn(async move { axum::serve(listener, app).await });
    }

    let client =
        reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).timeout(Duration::from_secs(30)).build()?;
    let queue = Arc::new(Mutex::new(calls));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let answered_sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let errors = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    // CPU used while sending only (the calls were registered above).
    let cpu_before = (postgres_cpu_seconds(), args.server_pid.map_or(0.0, cpu_seconds));
    let started = Instant::now();
    // Paced runs: one pacer hands out evenly spaced send permits (an open-loop
    // arrival process), so requests do not arrive in bursts of `concurrency`.
    let permits = (args.rate > 0.0).then(|| {
        let (tx, rx) = async_channel(args.concurrency);
        let every = Duration::from_secs_f64(1.0 / args.rate);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            loop {
                ticker.tick().await;
                if tx.send(()).await.is_err() {
                    break;
                }
            }
        });
        rx
    });
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let (client, queue, latencies, answered_sent, errors, sent, target, permits) = (
            client.clone(),
            queue.clone(),
            latencies.clone(),
            answered_sent.clone(),
            errors.clone(),
            sent.clone(),
            args.target.clone(),
            permits.clone(),
        );
        workers.spawn(async move {
            loop {
                let Some(call) = queue.lock().unwrap().pop() else { break };
                for req in call {
                    if let Some(rx) = &permits {
                        rx.lock().await.recv().await;
                    }
                    let builder = req.signed.post(&client, &format!("{target}{}", req.path));
                    let t0 = Instant::now();
                    if req.answered {
                        answered_sent.lock().unwrap().insert(req.call_id.clone(), t0);
                    }
                    let ok = builder.send().await.is_ok_and(|r| r.status().is_success());
                    latencies.lock().unwrap().push(t0.elapsed().as_secs_f64() * 1000.0);
                    sent.fetch_add(1, Ordering::Relaxed);
                    if !ok {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let elapsed = started.elapsed().as_secs_f64();
    let per_event_ms = |seconds: f64| 1000.0 * seconds / total as f64;
    let postgres_cpu = per_event_ms(postgres_cpu_seconds() - cpu_before.0);
    let server_cpu = args.server_pid.map(|pid| per_event_ms(cpu_seconds(pid) - cpu_before.1));

    let mut lat = latencies.lock().unwrap().clone();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mut dialogue = vec![];
    if args.sink_port.is_some() {
        let deadline = Instant::now() + Duration::from_secs(30);
        let expected = answered_sent.lock().unwrap().len();
        while receipts.lock().unwrap().len() < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let receipts = receipts.lock().unwrap();
        for (call, sent_at) in answered_sent.lock().unwrap().iter() {
            if let Some(got) = receipts.get(call) {
                dialogue.push(got.saturating_duration_since(*sent_at).as_secs_f64() * 1000.0);
            }
        }
        dialogue.sort_by(|a, b| a.partial_cmp(b).unwrap());
    }
    let result = serde_json::json!({
        "label": args.label,
        "requests": sent.load(Ordering::Relaxed),
        "errors": errors.load(Ordering::Relaxed),
        "seconds": elapsed,
        "events_per_second": total as f64 / elapsed,
        "latency_ms": {"p50": percentile(&lat, 0.50), "p99": percentile(&lat, 0.99), "max": lat.last().copied().unwrap_or(0.0)},
        "dialogue_start_ms": {"count": dialogue.len(), "p50": percentile(&dialogue, 0.50), "p99": percentile(&dialogue, 0.99)},
        "server_peak_rss_mib": args.server_pid.and_then(peak_rss_kib).map(|k| k as f64 / 1024.0),
        "postgres_cpu_ms_per_event": postgres_cpu,
        "server_cpu_ms_per_event": server_cpu,
    });
    println!("{result}");
    Ok(())
}

/// A bounded multi-consumer channel: tokio's mpsc receiver behind an async mutex.
fn async_channel(
    capacity: usize,
) -> (tokio::sync::mpsc::Sender<()>, Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<()>>>) {
    let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
    (tx, Arc::new(tokio::sync::Mutex::new(rx)))
}
