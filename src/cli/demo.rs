//! `callhook demo [--provider NAME]`: a small campaign played end to end on a
//! temporary in-memory SQLite, with any provider's callbacks. It starts the real
//! service (HTTP server, dispatcher, http sink) and a local stand-in for the
//! dialogue orchestrator that checks the Standard Webhooks signature of every job
//! it receives, then drives everything over HTTP exactly as a dialer and Twilio
//! would, and prints the resulting state.
//!
//! The service runs on a simulated clock (a Tuesday afternoon in New York), so the
//! calling windows open and close the same way whenever the demo is run; the last
//! part moves that clock to show retries landing in each contact's own window.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use clap::Parser;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::config::{DemoArgs, ServeArgs};
use crate::domain::{EventType, Provider};
use crate::outbox::standard_webhooks;
use crate::providers::simulate::{Callback, Signer};
use crate::store::{SqliteStore, Store};

const ADMIN_TOKEN: &str = "demo-admin-token";
/// When the demo's campaign runs: Tuesday 15:00 in New York.
const DEMO_START: &str = "2026-12-01T20:00:00Z";

/// The simulated clock: set to an instant, then running at the real pace.
#[derive(Clone)]
struct DemoClock(Arc<Mutex<(chrono::DateTime<chrono::Utc>, Instant)>>);

impl DemoClock {
    fn starting(at: &str) -> Self {
        DemoClock(Arc::new(Mutex::new((at.parse().expect("a valid instant"), Instant::now()))))
    }

    fn set(&self, at: &str) {
        *self.0.lock().unwrap() = (at.parse().expect("a valid instant"), Instant::now());
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        let (at, set) = *self.0.lock().unwrap();
        at + chrono::Duration::from_std(set.elapsed()).unwrap_or_default()
    }

    fn clock(&self) -> Clock {
        let me = self.clone();
        Clock::from_fn(move || me.now())
    }
}

#[derive(Parser)]
struct ServeOnly {
    #[command(flatten)]
    serve: ServeArgs,
}

/// The stand-in orchestrator: accepts only correctly signed jobs, once per id.
#[derive(Clone, Default)]
struct Orchestrator {
    /// (webhook-id, job) in arrival order, each id once.
    jobs: Arc<Mutex<Vec<(String, Value)>>>,
    rejected: Arc<Mutex<usize>>,
}

async fn spawn_orchestrator(secret: String) -> anyhow::Result<(String, Orchestrator)> {
    let orchestrator = Orchestrator::default();
    let state = orchestrator.clone();
    let key = standard_webhooks::secret_bytes(&secret);
    let app = axum::Router::new().route(
        "/dialogue",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            let key = key.clone();
            async move {
                let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                let (id, ts) = (h("webhook-id"), h("webhook-timestamp").parse::<i64>().unwrap_or(0));
                let now = chrono::Utc::now().timestamp();
                if !standard_webhooks::verify(&key, &id, ts, &body, &h("webhook-signature"), now, 300) {
                    *state.rejected.lock().unwrap() += 1;
                    return StatusCode::UNAUTHORIZED;
                }
                let job: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let mut jobs = state.jobs.lock().unwrap();
                if !jobs.iter().any(|(seen, _)| *seen == id) {
                    jobs.push((id, job));
                }
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/dialogue", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, orchestrator))
}

/// The dialer's and the provider's side of the conversation, over HTTP.
struct Client {
    http: reqwest::Client,
    base: String,
    provider: Provider,
    signer: Signer,
    campaign_id: String,
    tally: BTreeMap<String, usize>,
    sent: usize,
    clock: DemoClock,
}

impl Client {
    async fn admin(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let res = self.http.post(format!("{}{path}", self.base)).bearer_auth(ADMIN_TOKEN).json(&body).send().await?;
        let status = res.status();
        let body: Value = res.json().await?;
        if !status.is_success() {
            bail!("POST {path} answered {status}: {body}");
        }
        Ok(body)
    }

    async fn add_contact(&self, phone: &str, name: &str) -> anyhow::Result<String> {
        let body = json!({"contacts": [{"phone_number": phone, "external_id": name}]});
        let res = self.admin(&format!("/api/v1/campaigns/{}/contacts", self.campaign_id), body).await?;
        Ok(res["contacts"][0]["id"].as_str().unwrap_or_default().to_owned())
    }

    /// Registers an attempt; returns its call id and status callback URL.
    async fn register(&self, contact_id: &str, call_id: Option<&str>) -> anyhow::Result<(String, String)> {
        let res = self
            .admin("/api/v1/calls", json!({"contact_id": contact_id, "call_id": call_id, "provider": self.provider}))
            .await?;
        Ok((
            res["call_id"].as_str().unwrap_or_default().into(),
            res["status_callback_url"].as_str().unwrap_or_default().into(),
        ))
    }

    /// Posts one status callback to `url`, shaped and signed as the provider does.
    async fn callback(
        &mut self,
        url: &str,
        call: &str,
        event: EventType,
        answered_by: Option<&str>,
        duration: Option<i32>,
    ) -> anyhow::Result<()> {
        if self.provider == Provider::Telnyx && event == EventType::Ringing {
            return Ok(()); // Telnyx reports no ringing.
        }
        let provider_call_id = format!("{}-{call}", self.provider);
        let cb = Callback {
            provider_call_id: &provider_call_id,
            event: Some(event),
            answered_by,
            duration_seconds: duration,
        };
        // Signed now (signatures carry real time); happened on the demo's clock.
        let (now, happened) = (chrono::Utc::now().timestamp(), self.clock.now().timestamp());
        let signed = self.signer.callback_at(self.provider, url, &cb, now, happened);
        let res = signed.post(&self.http, url).send().await?;
        let code = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if !code.is_success() {
            bail!("callback {event} for {provider_call_id} answered {code}: {body}");
        }
        self.count(&body);
        Ok(())
    }

    /// The answering-machine verdict, as the provider reports it after the answer:
    /// Twilio's and SignalWire's `AsyncAmdStatusCallback` (no `CallStatus`), the
    /// others' detection events.
    async fn verdict(&mut self, url: &str, call: &str, answered_by: &str) -> anyhow::Result<()> {
        if !matches!(self.provider, Provider::Twilio | Provider::SignalWire) {
            return self.callback(url, call, EventType::Answered, Some(answered_by), None).await;
        }
        let account = if self.provider == Provider::Twilio {
            &self.signer.twilio_account
        } else {
            &self.signer.signalwire_project
        };
        let body = format!(
            "CallSid={}-{call}&AccountSid={account}&AnsweredBy={answered_by}&MachineDetectionDuration=1830",
            self.provider
        );
        let form = "application/x-www-form-urlencoded";
        let signed = self.signer.sign(self.provider, url, form, body.into_bytes(), chrono::Utc::now().timestamp());
        let res = signed.post(&self.http, url).send().await?;
        let (code, body): (_, Value) = (res.status(), res.json().await.unwrap_or(Value::Null));
        if !code.is_success() {
            bail!("verdict for {call} answered {code}: {body}");
        }
        self.count(&body);
        Ok(())
    }

    /// Tallies one callback's answer (`processed`, `ignored (stale)`, …).
    fn count(&mut self, body: &Value) {
        let word = body["status"].as_str().unwrap_or("?").to_owned();
        let word =
            if word == "ignored" { format!("ignored ({})", body["reason"].as_str().unwrap_or("?")) } else { word };
        *self.tally.entry(word).or_default() += 1;
        self.sent += 1;
    }

    async fn outcome(&self, call_id: &str, outcome: &str) -> anyhow::Result<()> {
        self.admin(&format!("/api/v1/calls/{call_id}/outcome"), json!({ "outcome": outcome })).await.map(|_| ())
    }
}

pub async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let provider = args.provider;
    let signer = Signer::from_seed(&uuid::Uuid::new_v4().to_string());
    let secret = format!(
        "whsec_{}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, uuid::Uuid::new_v4().as_bytes())
    );
    let (sink_url, orchestrator) = spawn_orchestrator(secret.clone()).await?;

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let serve = ServeOnly::try_parse_from([
        "serve".to_owned(),
        "--database-url=sqlite::memory:".to_owned(),
        format!("--twilio-auth-tokens={}", signer.twilio_token),
        format!("--signalwire-signing-keys={}", signer.signalwire_key),
        format!("--telnyx-public-keys={}", signer.telnyx_public_key()),
        format!("--vonage-signature-secrets={}", signer.vonage_secret),
        format!("--plivo-auth-tokens={}", signer.plivo_token),
        format!("--admin-tokens={ADMIN_TOKEN}"),
        "--sink=http".to_owned(),
        format!("--sink-http-url={sink_url}"),
        format!("--sink-http-secret={secret}"),
        "--outbox-poll-ms=200".to_owned(),
        "--outbox-backoff-ms=100".to_owned(),
        // The demo's calls all end within seconds; no provider API to ask anyway.
        "--no-reconciler".to_owned(),
    ])?
    .serve;
    let clock = DemoClock::starting(DEMO_START);
    let store: Arc<dyn Store> = Arc::new(SqliteStore::connect("sqlite::memory:").await?.with_clock(clock.clock()));
    let running = super::start(&serve, store.clone(), listener).await?;
    let base = format!("http://{}", running.addr);
    println!("callhook demo: {provider} callbacks into {base} (embedded SQLite in memory); dialogue orchestrator stand-in on {sink_url}");
    println!("simulated clock: {DEMO_START} (Tuesday 15:00 in New York, the campaign's zone)\n");

    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let mut c = Client {
        http,
        base: base.clone(),
        provider,
        signer,
        campaign_id: String::new(),
        tally: BTreeMap::new(),
        sent: 0,
        clock,
    };
    let settings =
        json!({"name": "Demo survey", "max_attempts": 2, "retry_interval_minutes": 0, "timezone": "America/New_York"});
    let campaign = c.admin("/api/v1/campaigns", settings).await?;
    c.campaign_id = campaign["id"].as_str().context("campaign id")?.to_owned();
    let names = play(&mut c, &orchestrator).await?;

    // Wait for the dispatcher to drain the outbox into the orchestrator.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while store.outbox_stats().await?.pending > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    report(&c, &store, &names, &orchestrator).await?;
    two_timezones(&mut c, &store).await?;
    running.stop().await
}

/// The scenario; returns (contact id, name) in order.
async fn play(c: &mut Client, orchestrator: &Orchestrator) -> anyhow::Result<Vec<(String, String)>> {
    use EventType::*;
    let mut names = Vec::new();
    let mut contact = |id: String, name: &str| {
        names.push((id.clone(), name.to_owned()));
        id
    };

    // Alice answers, talks, completes the survey.
    let alice = contact(c.add_contact("+14155550101", "alice").await?, "alice");
    let (call, url) = c.register(&alice, None).await?;
    c.callback(&url, "alice-1", Initiated, None, None).await?;
    c.callback(&url, "alice-1", Ringing, None, None).await?;
    c.callback(&url, "alice-1", Answered, Some("human"), None).await?;
    talk(orchestrator, &alice).await;
    c.callback(&url, "alice-1", Completed, None, Some(94)).await?;
    c.outcome(&call, "completed").await?;

    // Bob does not answer, is retried, answers and refuses.
    let bob = contact(c.add_contact("+14155550102", "bob").await?, "bob");
    let (_, url) = c.register(&bob, None).await?;
    c.callback(&url, "bob-1", Ringing, None, None).await?;
    c.callback(&url, "bob-1", NoAnswer, None, None).await?;
    let (call, url) = c.register(&bob, None).await?;
    c.callback(&url, "bob-2", Answered, None, None).await?;
    talk(orchestrator, &bob).await;
    c.callback(&url, "bob-2", Completed, None, Some(31)).await?;
    c.outcome(&call, "refused").await?;

    // Carol is busy on both attempts: not reached.
    let carol = contact(c.add_contact("+14155550103", "carol").await?, "carol");
    for attempt in 1..=2 {
        let (_, url) = c.register(&carol, None).await?;
        c.callback(&url, &format!("carol-{attempt}"), Busy, None, None).await?;
    }

    // Dave's callbacks arrive duplicated and out of order.
    let dave = contact(c.add_contact("+14155550104", "dave").await?, "dave");
    let (call, url) = c.register(&dave, None).await?;
    for (event, duration) in [(Answered, None), (Answered, None), (Initiated, None)] {
        c.callback(&url, "dave-1", event, None, duration).await?;
    }
    talk(orchestrator, &dave).await;
    for _ in 0..2 {
        c.callback(&url, "dave-1", Completed, None, Some(48)).await?;
    }
    c.outcome(&call, "completed").await?;

    // Erin's voicemail picks up: no dialogue, retry scheduled.
    let erin = contact(c.add_contact("+14155550105", "erin").await?, "erin");
    let (_, url) = c.register(&erin, None).await?;
    c.callback(&url, "erin-1", Answered, Some("machine"), None).await?;
    c.callback(&url, "erin-1", Completed, Some("machine"), Some(5)).await?;

    // Frank's first callbacks arrive before the dialer registers the call.
    let frank = contact(c.add_contact("+14155550106", "frank").await?, "frank");
    let early = format!(
        "{}/webhooks/telephony/{}/events?call_id=frank-1&campaign_id={}&contact_id={frank}",
        c.base, c.provider, c.campaign_id
    );
    c.callback(&early, "frank-1", Initiated, None, None).await?;
    c.callback(&early, "frank-1", Answered, None, None).await?;
    let (call, _) = c.register(&frank, Some("frank-1")).await?;
    talk(orchestrator, &frank).await;
    c.callback(&early, "frank-1", Completed, None, Some(60)).await?;
    c.outcome(&call, "completed").await?;

    // Grace's voicemail answers; the dialogue starts at once (the campaign's
    // amd_mode is `off`), then the asynchronous machine verdict cancels it.
    let grace = contact(c.add_contact("+14155550107", "grace").await?, "grace");
    let (_, url) = c.register(&grace, None).await?;
    c.callback(&url, "grace-1", Answered, None, None).await?;
    talk(orchestrator, &grace).await;
    c.verdict(&url, "grace-1", "machine_end_beep").await?;
    c.callback(&url, "grace-1", Completed, None, Some(24)).await?;
    Ok(names)
}

/// Waits until the orchestrator has the contact's `dialogue.start`: the person
/// talks with the survey before the call ends (a call that ends first never
/// starts its dialogue).
async fn talk(orchestrator: &Orchestrator, contact_id: &str) {
    let started = |o: &Orchestrator| {
        o.jobs
            .lock()
            .unwrap()
            .iter()
            .any(|(_, j)| j["type"] == "dialogue.start" && j["data"]["contact_id"] == contact_id)
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !started(orchestrator) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn report(
    c: &Client,
    store: &Arc<dyn Store>,
    names: &[(String, String)],
    orchestrator: &Orchestrator,
) -> anyhow::Result<()> {
    let tally: Vec<String> = c.tally.iter().map(|(k, v)| format!("{v} {k}")).collect();
    println!("Signed callbacks sent: {} ({})\n", c.sent, tally.join(", "));

    println!("CALLS");
    println!(
        "  {:<7} {:<3} {:<38} {:<10} {:<10} {:<15} events",
        "contact", "#", "call_id", "status", "outcome", "answered_by"
    );
    let mut attempts = vec![];
    for job in store.events(10_000).await? {
        if let Some(call_id) = job.call_id {
            if !attempts.contains(&call_id) {
                attempts.push(call_id);
            }
        }
    }
    for call_id in &attempts {
        let Some(a) = store.attempt(call_id).await? else { continue };
        let events = store.events_for_call(call_id).await?;
        let mut dispositions: BTreeMap<String, usize> = BTreeMap::new();
        for e in &events {
            *dispositions.entry(e.disposition.to_string()).or_default() += 1;
        }
        let dispositions: Vec<String> = dispositions.iter().map(|(k, v)| format!("{v} {k}")).collect();
        println!(
            "  {:<7} {:<3} {:<38} {:<10} {:<10} {:<15} {}",
            name_of(names, &a.contact_id.to_string()),
            a.attempt_number,
            a.call_id,
            a.status,
            a.outcome.map_or("-".into(), |o| o.to_string()),
            a.answered_by.as_deref().unwrap_or("-"),
            dispositions.join(", ")
        );
    }

    println!("\nCONTACTS");
    println!(
        "  {:<7} {:<13} {:<12} {:<9} {:<13} next_attempt_at",
        "name", "phone", "state", "attempts", "last_outcome"
    );
    for (id, name) in names.iter() {
        let Some(ct) = store.contact(id.parse()?).await? else { continue };
        println!(
            "  {:<7} {:<13} {:<12} {:<9} {:<13} {}",
            name,
            ct.phone_number,
            ct.state,
            ct.attempts_count,
            ct.last_outcome.map_or("-".into(), |o| o.to_string()),
            ct.next_attempt_at.map_or("-".into(), |t| t.format("%H:%M:%S").to_string())
        );
    }

    let jobs = orchestrator.jobs.lock().unwrap().clone();
    println!("\nDELIVERED TO THE DIALOGUE ORCHESTRATOR (http sink, Standard Webhooks signature verified on receipt)");
    for (_, job) in &jobs {
        let data = &job["data"];
        let who = name_of(names, data["contact_id"].as_str().unwrap_or_default());
        let call = data["call_id"].as_str().unwrap_or("-");
        println!("  {:<20} {:<7} {}", job["type"].as_str().unwrap_or("?"), who, call);
    }
    let stats = store.outbox_stats().await?;
    println!(
        "\nOutbox: {} delivered, {} pending, {} dead; receiver rejected {} unsigned or forged deliveries.",
        stats.done,
        stats.pending,
        stats.dead,
        orchestrator.rejected.lock().unwrap()
    );
    Ok(())
}

fn name_of<'a>(names: &'a [(String, String)], contact_id: &str) -> &'a str {
    names.iter().find(|(id, _)| id == contact_id).map_or("?", |(_, name)| name.as_str())
}

/// A second campaign whose contacts live in New York and Kolkata: the dialer's
/// claim only returns contacts whose window is open, and a retry that would ring
/// after 20:00 local is moved to the next morning, in the contact's own zone.
async fn two_timezones(c: &mut Client, store: &Arc<dyn Store>) -> anyhow::Result<()> {
    println!("\nTWO TIMEZONES (window 09:00–20:00 local; retry_policy {{\"no_answer\": [60]}})");
    let settings = json!({"name": "Two timezones", "timezone": "America/New_York", "max_attempts": 3,
                          "retry_policy": {"no_answer": [60]}});
    let campaign = c.admin("/api/v1/campaigns", settings).await?;
    let id = campaign["id"].as_str().context("campaign id")?.to_owned();
    let contacts = json!({"contacts": [
        {"phone_number": "+1 212 555 0199", "external_id": "hana", "timezone": "America/New_York"},
        {"phone_number": "+91 98123 45678", "external_id": "ishaan", "timezone": "Asia/Kolkata"},
    ]});
    c.admin(&format!("/api/v1/campaigns/{id}/contacts"), contacts).await?;
    println!(
        "  {:<21} {:<7} {:<17} {:<16} {:<16} {:<16} in window",
        "dialer claims at", "contact", "zone", "no answer", "+60 min", "next attempt"
    );
    // 19:30 in New York, 06:00 in Kolkata; then 23:30 in New York, 10:00 in Kolkata.
    for at in ["2026-12-02T00:30:00Z", "2026-12-02T04:30:00Z"] {
        c.clock.set(at);
        let claim = json!({"limit": 10, "provider": c.provider});
        let claimed = c.admin(&format!("/api/v1/campaigns/{id}/dial"), claim).await?;
        for call in claimed["calls"].as_array().cloned().unwrap_or_default() {
            let call_id = call["call_id"].as_str().unwrap_or_default();
            let url = call["status_callback_url"].as_str().unwrap_or_default();
            let zone: chrono_tz::Tz = call["timezone"].as_str().unwrap_or("UTC").parse().unwrap_or(chrono_tz::UTC);
            let ended = c.clock.now();
            c.callback(url, call_id, EventType::Ringing, None, None).await?;
            c.callback(url, call_id, EventType::NoAnswer, None, None).await?;
            let contact_id = call["contact_id"].as_str().unwrap_or_default().parse()?;
            let contact = store.contact(contact_id).await?.context("contact")?;
            let next = contact.next_attempt_at.context("a retry is scheduled")?;
            let window = crate::domain::window::CallingWindow::default();
            let local = |t: chrono::DateTime<chrono::Utc>| t.with_timezone(&zone).format("%a %H:%M %Z").to_string();
            println!(
                "  {:<21} {:<7} {:<17} {:<16} {:<16} {:<16} {}",
                at,
                call["external_id"].as_str().unwrap_or("?"),
                zone.name(),
                local(ended),
                local(ended + chrono::Duration::minutes(60)),
                local(next),
                if window.allows(zone, next) { "yes" } else { "NO" }
            );
        }
    }
    println!("  (each claim returns only the contacts whose own window is open at that moment)");
    Ok(())
}
