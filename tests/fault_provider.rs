//! The fault test with a provider that behaves like the real ones (SPEC §4, §9): two
//! `callhook serve` replicas on a PostgreSQL of the test's own; 300 calls whose Twilio
//! status callbacks are sent as Twilio sends them — run 1 with its defaults (final
//! status only; one retry, on connection failure only), run 2 with every event,
//! shuffled, and the overrides `#rc=5&rp=ct,rt,5xx&tt=15000` — 5 % dropped outright,
//! PostgreSQL stopped for 30 s mid-load. Once the reconciler has asked the fake Twilio
//! REST API: every call's final state is the API's, no contact is stranded, no event
//! is stored twice, one `dialogue.start` per call a person answered before its end.
//!
//! The spool runs (SPEC §10) take three replicas with an outage spool (`file`, then
//! `nats`), every event shuffled, a provider that never retries (`#rc=0`), nothing
//! dropped, PostgreSQL stopped for 60 s and the last replica SIGKILLed 20 s into the
//! outage (the load balancer takes it out) and restarted 10 s later, inside the
//! outage. Besides the checks above: nothing is lost to the outage but what the kill
//! cut mid-request, and the killed replica held spooled records when it died.
//!
//! Run by `scripts/fault-test.sh` (CI). Needs PostgreSQL's server binaries under
//! `/usr/lib/postgresql/*/bin`; as root the cluster runs as the `postgres` user.
//! `CALLHOOK_FAULT_SEED` replays a run.

mod common;
mod fake_providers;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::{body::Bytes, http::HeaderMap, http::StatusCode};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::task::{block_in_place, JoinSet};
use tokio::time::{sleep, sleep_until};

use callhook::domain::stranded::{Timeouts, NO_DIALOGUE_OUTCOME};
use callhook::domain::{CallStatus, ContactState, Outcome, Provider};
use callhook::providers::{form, twilio};
use callhook::store::{Cutoffs, NewAttempt, NewCampaign, NewContact, PgStore, Store};
use fake_providers::{fixture_for, Behaviour, FakeHandle, FakeProvider, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN};

const PUBLIC: &str = "https://hooks.example.com";
const CALLS: usize = 300;
/// Twilio dials the queued calls one after another over this window (its CPS limit).
const DIAL_WINDOW: Duration = Duration::from_secs(45);
/// PostgreSQL is stopped this far into the load, for `OUTAGE`.
const OUTAGE_AT: Duration = Duration::from_secs(10);
const OUTAGE: Duration = Duration::from_secs(30);
/// Deliveries failing this long after PostgreSQL is back still count as the outage's.
const OUTAGE_SETTLE: Duration = Duration::from_secs(10);
const DROP_PERCENT: u64 = 5;
/// The spool runs: a longer outage inside a longer load; a replica killed this far
/// into the outage and started again `RESTART_AFTER` later.
const SPOOL_OUTAGE: Duration = Duration::from_secs(60);
const SPOOL_DIAL_WINDOW: Duration = Duration::from_secs(80);
const KILL_AT: Duration = Duration::from_secs(20);
const RESTART_AFTER: Duration = Duration::from_secs(10);
/// The replicas' settings besides addresses and credentials (timings as in [`timeouts`]).
/// No outage spool unless a scenario sets one: the callbacks the outage refuses are the reconciler's.
const REPLICA_ENV: &str = "RUST_LOG=warn,tower_http=off,callhook::http::error=off CALLHOOK_SPOOL=off \
    CALLHOOK_DB_MAX_CONNECTIONS=8 \
    CALLHOOK_RECONCILE_INTERVAL_SECS=1 CALLHOOK_RECONCILE_AFTER_SECS=3 CALLHOOK_MAX_CALL_DURATION_SECS=3 \
    CALLHOOK_DIALOGUE_OUTCOME_TIMEOUT_SECS=5 CALLHOOK_RECONCILE_GIVE_UP_AFTER_SECS=86400 \
    CALLHOOK_SINK=http CALLHOOK_SINK_HTTP_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw CALLHOOK_SINK_HTTP_TIMEOUT_SECS=2 \
    CALLHOOK_OUTBOX_LEASE_SECS=3 CALLHOOK_OUTBOX_POLL_MS=200 CALLHOOK_OUTBOX_BACKOFF_MS=100 CALLHOOK_OUTBOX_MAX_ATTEMPTS=50";
/// The runs share a 2-core machine: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One run's shape.
struct Scenario {
    label: &'static str,
    /// Every status subscribed (shuffled in delivery), or Twilio's default: the final one.
    all_events: bool,
    /// The connection overrides in the callback URL's fragment (Twilio's retries).
    overrides: &'static str,
    /// `None`: no spool (the outage's callbacks are refused and reconciled);
    /// `file` or `nats`: three replicas spool them, and one is SIGKILLed mid-outage.
    spool: Option<&'static str>,
}

impl Scenario {
    fn replicas(&self) -> usize {
        if self.spool.is_some() {
            3
        } else {
            2
        }
    }

    fn outage(&self) -> Duration {
        if self.spool.is_some() {
            SPOOL_OUTAGE
        } else {
            OUTAGE
        }
    }

    fn dial_window(&self) -> Duration {
        if self.spool.is_some() {
            SPOOL_DIAL_WINDOW
        } else {
            DIAL_WINDOW
        }
    }

    fn drop_percent(&self) -> u64 {
        if self.spool.is_some() {
            0
        } else {
            DROP_PERCENT
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "runs its own PostgreSQL and stops it for 30 s; run scripts/fault-test.sh"]
async fn twilio_defaults_final_status_only() {
    run(Scenario { label: "twilio-defaults", all_events: false, overrides: "", spool: None }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "runs its own PostgreSQL and stops it for 30 s; run scripts/fault-test.sh"]
async fn twilio_overrides_every_event_shuffled() {
    let overrides = "rc=5&rp=ct,rt,5xx&tt=15000";
    run(Scenario { label: "twilio-overrides", all_events: true, overrides, spool: None }).await;
}

/// SPEC §10: a provider that never retries, PostgreSQL stopped for 60 s, a replica
/// SIGKILLed while spooling and restarted (still in the outage): every accepted
/// callback is stored exactly once — the killed replica's too, drained after its restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "runs its own PostgreSQL and stops it for 60 s; run scripts/fault-test.sh"]
async fn file_spool_postgres_stopped_60s_replica_killed() {
    run(Scenario { label: "spool-file", all_events: true, overrides: "rc=0", spool: Some("file") }).await;
}

/// As above with the JetStream spool: any replica drains what the killed one spooled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "runs its own PostgreSQL and stops it for 60 s; run scripts/fault-test.sh"]
async fn nats_spool_postgres_stopped_60s_replica_killed() {
    run(Scenario { label: "spool-nats", all_events: true, overrides: "rc=0", spool: Some("nats") }).await;
}

fn timeouts() -> Timeouts {
    let secs = chrono::Duration::seconds;
    Timeouts {
        reconcile_after: secs(3),
        max_call_duration: secs(3),
        give_up_after: secs(86_400),
        dialogue_outcome_timeout: secs(5),
    }
}

/// A PostgreSQL cluster of the test's own in a temporary directory; stopped and
/// removed when dropped, panic or not.
struct PrivatePg {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_root: bool,
}

impl PrivatePg {
    fn create(label: &str) -> Self {
        let bin = pg_bin();
        let dir = std::env::temp_dir().join(format!("callhook-fault-provider-{}-{label}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let as_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        if as_root {
            assert!(Command::new("chown").arg("postgres:").arg(&dir).status().unwrap().success(), "chown");
        }
        let pg = PrivatePg { bin, dir, port: free_port(), as_root };
        let data = pg.dir.join("data");
        let initdb = ["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync", "-D", data.to_str().unwrap()];
        assert!(pg.tool("initdb", &initdb).status().unwrap().success(), "initdb failed");
        pg.pg_ctl("start");
        pg
    }

    /// One of PostgreSQL's programs, run in the cluster's directory (as `postgres` when root).
    fn tool(&self, name: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(if self.as_root { "runuser".into() } else { self.bin.join(name) });
        if self.as_root {
            cmd.args(["-u", "postgres", "--"]).arg(self.bin.join(name));
        }
        cmd.args(args).current_dir(&self.dir).stdout(Stdio::null());
        cmd
    }

    /// `start`, `stop` (fast) or `kill` (immediate, quiet: for `Drop`).
    fn pg_ctl(&self, action: &str) {
        let (data, log) = (self.dir.join("data"), self.dir.join("postgres.log"));
        let options = format!("-p {} -k /tmp -c listen_addresses=127.0.0.1", self.port);
        let args: &[&str] = match action {
            "start" => &["start", "-t", "60", "-l", log.to_str().unwrap(), "-o", &options],
            "stop" => &["stop", "-m", "fast"],
            _ => &["stop", "-m", "immediate"],
        };
        let mut cmd = self.tool("pg_ctl", &[&["-w", "-D", data.to_str().unwrap()], args].concat());
        if action == "kill" {
            let _ = cmd.stderr(Stdio::null()).status();
        } else {
            assert!(cmd.status().unwrap().success(), "pg_ctl {action} failed; see {}", log.display());
        }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        self.pg_ctl("kill");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin`.
fn pg_bin() -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql").into_iter().flatten().flatten();
    let version = |e: &std::fs::DirEntry| e.file_name().to_str().and_then(|v| v.parse::<u32>().ok());
    let newest = versions.filter(|e| e.path().join("bin/pg_ctl").exists()).max_by_key(version);
    newest.map(|e| e.path().join("bin")).expect(
        "this test runs a PostgreSQL of its own: it needs the server binaries (initdb, pg_ctl) \
         under /usr/lib/postgresql/<version>/bin; install PostgreSQL's server package",
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `callhook serve` process, killed (SIGKILL) when dropped.
struct Replica(Child);

/// Waits until the replica on `port` answers `/readyz` with 2xx (`ready` or `spooling`).
async fn wait_ready(child: &mut Child, port: u16, within: Duration) {
    let ready = || reqwest::get(format!("http://127.0.0.1:{port}/readyz"));
    let deadline = Instant::now() + within;
    while !ready().await.is_ok_and(|r| r.status().is_success()) {
        let up = child.try_wait().unwrap().is_none() && Instant::now() < deadline;
        assert!(up, "replica on {port} never became ready: see {}/fault_provider-*.log", env!("CARGO_TARGET_TMPDIR"));
        sleep(Duration::from_millis(50)).await;
    }
}

/// The records the replica on `port` last saw in its spool (`/readyz`), if it has one.
async fn spool_records(port: u16) -> Option<u64> {
    let res = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await.ok()?;
    res.json::<Value>().await.ok()?["spool"]["records"].as_u64()
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Deterministic randomness (splitmix64), so a run can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let z = (self.0 ^ (self.0 >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }

    fn ms(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from))
    }
}

/// How a call really went, as the provider knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Truth {
    Human,
    Machine,
    NoAnswer,
    Busy,
    Failed,
}

struct Call {
    call_id: String,
    sid: String,
    contact_id: uuid::Uuid,
    /// The `status_callback_url` the dialer gave Twilio, with the overrides as fragment.
    url: String,
    truth: Truth,
    talk_secs: u64,
    /// Twilio's status words, each at its time after the dial.
    steps: Vec<(Duration, &'static str)>,
}

impl Call {
    /// A call to `contact_id` as it will go (registered later: no `call_id` nor `url` yet).
    fn new(rng: &mut Rng, contact_id: uuid::Uuid) -> Self {
        use Truth::*;
        let truth = match rng.below(20) {
            0..=6 => Human,
            7..=9 => Machine,
            10..=13 => NoAnswer,
            14..=16 => Busy,
            _ => Failed,
        };
        let talk_secs = 1 + rng.below(if truth == Human { 8 } else { 3 });
        let (zero, ring) = (Duration::ZERO, rng.ms(200, 800));
        let answered = ring + rng.ms(1000, 4000);
        let ended = answered + Duration::from_secs(talk_secs);
        let steps = match truth {
            Human | Machine => {
                vec![(zero, "initiated"), (ring, "ringing"), (answered, "in-progress"), (ended, "completed")]
            }
            NoAnswer => vec![(zero, "initiated"), (ring, "ringing"), (ring + rng.ms(3000, 6000), "no-answer")],
            Busy => vec![(zero, "initiated"), (rng.ms(500, 1500), "busy")],
            Failed => vec![(zero, "initiated"), (rng.ms(200, 800), "failed")],
        };
        let sid = format!("CA{:016x}{:016x}", rng.below(u64::MAX), rng.below(u64::MAX));
        Call { call_id: String::new(), sid, contact_id, url: String::new(), truth, talk_secs, steps }
    }

    fn answered_by(&self, status: &str) -> Option<&'static str> {
        let machine = self.truth == Truth::Machine;
        matches!(status, "in-progress" | "completed").then_some(if machine { "machine_start" } else { "human" })
    }

    /// The Call resource in `status` (it has no `initiated`: the call is still `queued`).
    fn api_view(&self, status: &str, dialed: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Behaviour {
        let mut v = fixture_for(Provider::Twilio, if status == "initiated" { "queued" } else { status }, &self.sid);
        let ended = status == "completed";
        v["answered_by"] = json!(self.answered_by(status));
        v["start_time"] = json!(dialed.filter(|_| status != "initiated").map(|t| t.to_rfc2822()));
        v["end_time"] = json!(ended.then(|| now.to_rfc2822()));
        v["duration"] = json!(ended.then(|| self.talk_secs.to_string()));
        v["date_updated"] = json!(now.to_rfc2822());
        Behaviour::Raw { status: 200, content_type: "application/json", body: v.to_string() }
    }

    /// A status callback's form body, as Twilio posts it.
    fn callback(&self, status: &str, sequence: usize, now: DateTime<Utc>) -> String {
        let mut extra = self.answered_by(status).map(|by| format!("&AnsweredBy={by}")).unwrap_or_default();
        match status {
            "completed" => extra += &format!("&CallDuration={}", self.talk_secs),
            "busy" => extra += "&SipResponseCode=486",
            "no-answer" => extra += "&SipResponseCode=487",
            "failed" => extra += "&SipResponseCode=503",
            _ => {}
        }
        format!(
            "AccountSid={TWILIO_ACCOUNT_SID}&ApiVersion=2010-04-01&CallSid={}&CallStatus={status}&CallbackSource=\
             call-progress-events&Direction=outbound-api&From=%2B15005550006&To=%2B14155550100&SequenceNumber=\
             {sequence}&Timestamp={}{extra}",
            self.sid,
            form::encode_component(&now.to_rfc2822())
        )
    }
}

/// What failed a delivery: Twilio's retry policy (`rp`) names `ct`, `rt` and `5xx`.
const CONNECT: usize = 0;
const TIMEOUT: usize = 1;
const SERVER_ERROR: usize = 2;

/// How Twilio retries a status callback: its defaults, or the connection overrides
/// in the callback URL's fragment (`rc` retries; `rp` on connection failure, read
/// timeout, 5xx; `ct`, `rt`, `tt` in ms).
#[derive(Debug, Clone, Copy)]
struct Retries {
    count: u32,
    on: [bool; 3],
    connect: Duration,
    read: Duration,
    total: Duration,
}

impl Retries {
    fn of(url: &str) -> Self {
        let ms = |v: &str| Duration::from_millis(v.parse().unwrap());
        let mut r =
            Retries { count: 1, on: [true, false, false], connect: ms("5000"), read: ms("15000"), total: ms("15000") };
        for (k, v) in url.split_once('#').map_or("", |(_, f)| f).split('&').filter_map(|kv| kv.split_once('=')) {
            match k {
                "rc" => r.count = v.parse().unwrap(),
                "rp" => r.on = ["ct", "rt", "5xx"].map(|p| v.split(',').any(|w| w == p || w == "all")),
                "ct" => r.connect = ms(v),
                "rt" => r.read = ms(v),
                "tt" => r.total = ms(v),
                _ => {}
            }
        }
        r
    }
}

#[derive(Default)]
struct Figures {
    callbacks: AtomicUsize,
    dropped: AtomicUsize,
    lost: AtomicUsize,
    lost_outside_outage: AtomicUsize,
    retried: AtomicUsize,
    saved_by_retry: AtomicUsize,
    /// Answered `202 spooled`.
    spooled: AtomicUsize,
    /// Lost because the replica they reached was SIGKILLed under them.
    cut_by_kill: AtomicUsize,
}

struct Load {
    client: reqwest::Client,
    ports: Vec<u16>,
    /// Replicas the load balancer has taken out (killed, not ready again yet).
    out: Mutex<Vec<bool>>,
    next: AtomicUsize,
    fake: FakeHandle,
    all_events: bool,
    drop_percent: u64,
    figures: Figures,
    /// When PostgreSQL was stopped, and when it answered again.
    outage: Mutex<(Option<Instant>, Option<Instant>)>,
    /// Dedupe keys of the callbacks a replica accepted.
    accepted: Mutex<BTreeSet<String>>,
}

/// One call as Twilio runs it: its API view moves on, then its callback (if
/// subscribed and not dropped) is delivered on its own, so possibly late.
async fn play(load: Arc<Load>, call: Arc<Call>, dial_at: Instant, mut rng: Rng) {
    let mut deliveries = JoinSet::new();
    let mut dialed = None;
    for (n, &(after, status)) in call.steps.iter().enumerate() {
        sleep_until((dial_at + after).into()).await;
        let now = Utc::now();
        load.fake.set_call(&call.sid, call.api_view(status, Some(*dialed.get_or_insert(now)), now));
        if !load.all_events && n + 1 < call.steps.len() {
            continue; // Twilio's default `StatusCallbackEvent`: the final status only
        }
        load.figures.callbacks.fetch_add(1, Relaxed);
        if rng.below(100) < load.drop_percent {
            load.figures.dropped.fetch_add(1, Relaxed);
            continue;
        }
        let (body, load, call) =
            (call.callback(status, if load.all_events { n } else { 0 }, now), load.clone(), call.clone());
        let delay = if load.all_events { rng.ms(0, 1500) } else { Duration::ZERO };
        deliveries.spawn(async move {
            sleep(delay).await;
            if deliver(&load, &call.url, body).await {
                load.accepted.lock().unwrap().insert(format!("twilio:{}:{status}", call.sid));
            }
        });
    }
    while let Some(done) = deliveries.join_next().await {
        done.expect("a callback delivery panicked");
    }
}

/// Delivers one status callback as Twilio does, to a replica the load balancer
/// has in, retried as the URL's connection overrides say. `true` when accepted.
async fn deliver(load: &Load, url: &str, body: String) -> bool {
    let retries = Retries::of(url);
    let requested = url.split('#').next().unwrap(); // the fragment is neither sent nor signed
    let fields = form::decode(body.as_bytes()).unwrap();
    let signature = twilio::sign(twilio::Algorithm::HmacSha1, TWILIO_AUTH_TOKEN, requested, &fields);
    let (started, mut first_failure, mut cut) = (Instant::now(), None, false);
    for attempt in 0..=retries.count {
        if attempt > 0 {
            sleep(Duration::from_secs(1)).await;
            load.figures.retried.fetch_add(1, Relaxed);
        }
        let Some(remaining) = retries.total.checked_sub(started.elapsed()) else { break };
        let (index, port) = {
            let out = load.out.lock().unwrap();
            let live: Vec<usize> = (0..load.ports.len()).filter(|&i| !out[i]).collect();
            let index = live[load.next.fetch_add(1, Relaxed) % live.len()];
            (index, load.ports[index])
        };
        let sent = load
            .client
            .post(format!("http://127.0.0.1:{port}{}", &requested[PUBLIC.len()..]))
            .timeout(retries.read.min(remaining))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", &signature)
            .body(body.clone())
            .send()
            .await;
        let failure = match sent {
            Ok(res) if res.status().is_success() => {
                load.figures.saved_by_retry.fetch_add(usize::from(attempt > 0), Relaxed);
                load.figures.spooled.fetch_add(usize::from(res.status() == StatusCode::ACCEPTED), Relaxed);
                return true;
            }
            Ok(res) => {
                assert!(res.status().is_server_error(), "a valid callback was refused with {}", res.status());
                SERVER_ERROR
            }
            Err(e) if e.is_timeout() => TIMEOUT,
            Err(_) => CONNECT,
        };
        first_failure.get_or_insert_with(Instant::now);
        cut |= load.out.lock().unwrap()[index];
        if !retries.on[failure] {
            break;
        }
    }
    load.figures.lost.fetch_add(1, Relaxed);
    load.figures.cut_by_kill.fetch_add(usize::from(cut), Relaxed);
    let (start, end) = *load.outage.lock().unwrap();
    let at = first_failure.unwrap_or_else(Instant::now);
    if !(start.is_some_and(|s| at >= s) && end.is_none_or(|e| at <= e + OUTAGE_SETTLE)) {
        load.figures.lost_outside_outage.fetch_add(1, Relaxed);
    }
    false
}

async fn run(sc: Scenario) {
    let (label, all_events, overrides) = (sc.label, sc.all_events, sc.overrides);
    let _one_at_a_time = SERIAL.lock().await;
    let began = Instant::now();
    let seed = std::env::var("CALLHOOK_FAULT_SEED").ok().and_then(|s| s.parse().ok());
    let seed = seed.unwrap_or_else(|| Utc::now().timestamp_subsec_nanos().into());
    let mut rng = Rng(seed);
    let pg = block_in_place(|| PrivatePg::create(label));
    let store = Arc::new(PgStore::connect(&pg.url(), 8).await.expect("the private PostgreSQL"));
    store.migrate().await.unwrap();
    let (api_base, fake) = FakeProvider::start(Provider::Twilio).await;

    // The calls, registered by the dialer and queued at Twilio.
    let new = NewCampaign {
        max_attempts: Some(3),
        retry_interval_minutes: Some(60),
        timezone: Some(common::daytime_zone()),
        ..NewCampaign::named(label)
    };
    let campaign = store.create_campaign(new).await.unwrap();
    let phones = (0..CALLS).map(|i| NewContact::phone(format!("+1415{i:07}"))).collect();
    let fragment = if overrides.is_empty() { String::new() } else { format!("#{overrides}") };
    let mut calls = vec![];
    for contact in store.add_contacts(campaign.id, phones, Default::default()).await.unwrap().contacts {
        let mut call = Call::new(&mut rng, contact.id);
        let new =
            NewAttempt { provider_call_id: Some(call.sid.clone()), ..NewAttempt::new(contact.id, Provider::Twilio) };
        call.call_id = store.register_attempt(new).await.unwrap().attempt.call_id;
        let query = format!("call_id={}&campaign_id={}&contact_id={}", call.call_id, campaign.id, contact.id);
        call.url = format!("{PUBLIC}/webhooks/telephony/twilio/events?{query}{fragment}");
        fake.set_call(&call.sid, call.api_view("initiated", None, Utc::now()));
        calls.push(Arc::new(call));
    }

    // The dialogue orchestrator behind the `http` sink: the `dialogue.start` job ids per call.
    let starts: Arc<Mutex<HashMap<String, BTreeSet<String>>>> = Arc::default();
    let received = starts.clone();
    let sink = axum::routing::post(move |headers: HeaderMap, body: Bytes| async move {
        let job: Value = serde_json::from_slice(&body).unwrap_or_default();
        if let (true, Some(call), Some(id)) =
            (job["type"] == "dialogue.start", job["data"]["call_id"].as_str(), headers.get("webhook-id"))
        {
            received.lock().unwrap().entry(call.to_owned()).or_default().insert(format!("{id:?}"));
        }
        StatusCode::NO_CONTENT
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink_url = format!("http://{}/dialogue", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, axum::Router::new().route("/dialogue", sink)).await });

    let ports: Vec<u16> = (0..sc.replicas()).map(|_| free_port()).collect();
    let spool_root = std::env::temp_dir().join(format!("callhook-fault-spool-{}-{label}", std::process::id()));
    std::fs::create_dir_all(&spool_root).unwrap();
    let nats_stream = format!("CALLHOOK_FAULT_SPOOL_{}", std::process::id());
    let replica = |n: usize| {
        let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("fault_provider-{label}-replica{n}.log"));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_callhook"));
        cmd.arg("serve").envs(REPLICA_ENV.split_whitespace().filter_map(|kv| kv.split_once('=')));
        cmd.env("CALLHOOK_LISTEN", format!("127.0.0.1:{}", ports[n])).env("DATABASE_URL", pg.url());
        cmd.env("CALLHOOK_PUBLIC_BASE_URL", PUBLIC).env("CALLHOOK_SINK_HTTP_URL", &sink_url);
        cmd.env("CALLHOOK_TWILIO_AUTH_TOKENS", TWILIO_AUTH_TOKEN)
            .env("CALLHOOK_TWILIO_ACCOUNT_SID", TWILIO_ACCOUNT_SID);
        cmd.env("CALLHOOK_TWILIO_API_BASE", &api_base).stdout(Stdio::null());
        if let Some(kind) = sc.spool {
            // Each replica its own directory (a file spool is one process's); one stream for all.
            cmd.env("CALLHOOK_SPOOL", kind).env("CALLHOOK_SPOOL_DRAIN_INTERVAL_MS", "200");
            cmd.env("CALLHOOK_SPOOL_DIR", spool_root.join(format!("replica{n}")));
            cmd.env("CALLHOOK_SPOOL_NATS_STREAM", &nats_stream).env("CALLHOOK_NATS_URL", common::nats_url());
        }
        Replica(cmd.stderr(log).spawn().expect("callhook serve"))
    };
    let mut replicas: Vec<Replica> = (0..ports.len()).map(replica).collect();
    for (n, Replica(child)) in replicas.iter_mut().enumerate() {
        wait_ready(child, ports[n], Duration::from_secs(10)).await;
    }

    // The load, with PostgreSQL stopped in the middle of it.
    let load = Arc::new(Load {
        client: reqwest::Client::builder().connect_timeout(Retries::of(&fragment).connect).build().unwrap(),
        out: Mutex::new(vec![false; ports.len()]),
        ports: ports.clone(),
        next: AtomicUsize::new(0),
        fake: fake.clone(),
        all_events,
        drop_percent: sc.drop_percent(),
        figures: Figures::default(),
        outage: Mutex::default(),
        accepted: Mutex::default(),
    });
    let t0 = Instant::now() + Duration::from_millis(200);
    let mut plays = JoinSet::new();
    for (i, call) in calls.iter().enumerate() {
        let dial_at = t0 + sc.dial_window().mul_f64(i as f64 / CALLS as f64);
        plays.spawn(play(load.clone(), call.clone(), dial_at, Rng(rng.below(u64::MAX))));
    }
    sleep_until((t0 + OUTAGE_AT).into()).await;
    let stopped = Instant::now();
    load.outage.lock().unwrap().0 = Some(stopped);
    block_in_place(|| pg.pg_ctl("stop"));
    eprintln!("{label}: PostgreSQL stopped at {:.1} s of load", t0.elapsed().as_secs_f64());
    let mut held_at_kill = None;
    if sc.spool.is_some() {
        // The last replica dies while spooling (SIGKILL, requests in flight cut), is
        // taken out of the load balancer, and comes back still inside the outage.
        let last = ports.len() - 1;
        sleep_until((stopped + KILL_AT).into()).await;
        held_at_kill = spool_records(ports[last]).await;
        load.out.lock().unwrap()[last] = true;
        drop(replicas.pop());
        eprintln!("{label}: replica {last} killed holding {held_at_kill:?} spooled records");
        sleep(RESTART_AFTER).await;
        replicas.push(replica(last));
        wait_ready(&mut replicas[last].0, ports[last], Duration::from_secs(20)).await;
        load.out.lock().unwrap()[last] = false;
        eprintln!("{label}: replica {last} back at {:.1} s of load (spooling)", t0.elapsed().as_secs_f64());
    }
    sleep_until((stopped + sc.outage()).into()).await;
    block_in_place(|| pg.pg_ctl("start"));
    load.outage.lock().unwrap().1 = Some(Instant::now());
    eprintln!("{label}: PostgreSQL back at {:.1} s of load", t0.elapsed().as_secs_f64());
    while let Some(done) = plays.join_next().await {
        done.expect("a call's play panicked");
    }
    let load_secs = t0.elapsed().as_secs_f64();

    // Until every call has its outcome and no contact is in progress (bounded).
    let (pool, settle) = (store.pool(), Instant::now());
    let open = "SELECT (SELECT count(*) FROM call_attempts WHERE outcome IS NULL) \
                + (SELECT count(*) FROM contacts WHERE state = 'in_progress')";
    while settle.elapsed() < Duration::from_secs(90) {
        let settled = sqlx::query_scalar::<_, i64>(open).fetch_one(pool).await.is_ok_and(|n| n == 0);
        let mut spooled_left = 0;
        for port in &ports {
            spooled_left += spool_records(*port).await.unwrap_or(0);
        }
        if settled && spooled_left == 0 {
            break;
        }
        sleep(Duration::from_millis(500)).await;
    }
    let settle_secs = settle.elapsed().as_secs_f64();
    drop(replicas);

    // Every call's final state is what the provider's API says. The dialogue never
    // gives a verdict: the timeout settles answered calls, and every contact is due again.
    let (api, mut mismatches) = (fake.client(), vec![]);
    for call in &calls {
        let truth = api.fetch_call(&call.sid).await.expect("the fake API knows every call");
        let status = truth.event_type.expect("every call has ended").status();
        let machine = truth.answered_by.as_deref().is_some_and(|by| by.starts_with("machine"));
        let (outcome, error_code) = match status {
            CallStatus::Completed if machine => (Outcome::NoAnswer, None),
            CallStatus::Completed => (Outcome::Failed, Some(NO_DIALOGUE_OUTCOME)),
            CallStatus::Busy => (Outcome::Busy, None),
            CallStatus::NoAnswer => (Outcome::NoAnswer, None),
            _ => (Outcome::Failed, None),
        };
        let a = store.attempt(&call.call_id).await.unwrap().unwrap();
        let contact = store.contact(call.contact_id).await.unwrap().unwrap().state;
        let error_ok = error_code.is_none_or(|code| a.error_code.as_deref() == Some(code));
        if (a.status, a.outcome, contact) != (status, Some(outcome), ContactState::Pending) || !error_ok {
            let events = store.events_for_call(&call.call_id).await.unwrap();
            let timeline: Vec<_> =
                events.iter().map(|e| (e.received_at.time(), e.source, &e.provider_status, e.disposition)).collect();
            let (id, raw, got) = (&call.call_id, &truth.raw_status, (a.status, a.outcome, a.error_code, contact));
            mismatches.push(format!("{id} ({:?}, API {raw}): got {got:?}; events {timeline:?}", call.truth));
        }
    }

    // No contact stranded, no event stored twice, every accepted callback stored.
    let stats = store.reconcile_stats(Cutoffs::at(Utc::now(), &timeouts())).await.unwrap();
    let (in_progress, duplicated, reconciled, reconciled_finals, from_spool): (i64, i64, i64, i64, i64) =
        sqlx::query_as(
            "SELECT (SELECT count(*) FROM contacts WHERE state = 'in_progress'), \
                (SELECT count(*) - count(DISTINCT dedupe_key) FROM telephony_events) + (SELECT count(*) FROM \
                    (SELECT 1 FROM telephony_events GROUP BY call_id, provider_status HAVING count(*) > 1) twice), \
                (SELECT count(*) FROM telephony_events WHERE source = 'reconcile'), \
                (SELECT count(*) FROM telephony_events WHERE source = 'reconcile' AND disposition = 'applied' \
                    AND event_type IN ('call.completed', 'call.no_answer', 'call.busy', 'call.failed')), \
                (SELECT count(*) FROM telephony_events WHERE source = 'spool')",
        )
        .fetch_one(pool)
        .await
        .unwrap();
    let strings = |sql: &'static str| sqlx::query_scalar::<_, String>(sql).fetch_all(pool);
    let keys: BTreeSet<String> =
        strings("SELECT dedupe_key FROM telephony_events").await.unwrap().into_iter().collect();
    let missing: Vec<String> = load.accepted.lock().unwrap().difference(&keys).cloned().collect();

    // One dialogue.start per call a person answered before it ended, none for others.
    let answered: BTreeSet<String> = strings(
        "SELECT DISTINCT call_id FROM telephony_events e JOIN call_attempts a USING (call_id) \
         WHERE e.event_type = 'call.answered' AND e.disposition = 'applied' \
         AND coalesce(a.answered_by, '') NOT LIKE 'machine%' AND coalesce(a.answered_by, '') <> 'fax'",
    )
    .await
    .unwrap()
    .into_iter()
    .collect();
    let jobs = strings("SELECT payload->>'call_id' FROM outbox WHERE kind = 'dialogue.start'").await.unwrap();
    let started: BTreeSet<String> = jobs.iter().cloned().collect();
    let delivered = starts.lock().unwrap().clone();
    let delivered_twice = delivered.values().filter(|ids| ids.len() > 1).count();
    let stray = delivered.keys().filter(|c| !started.contains(*c)).count();

    let f = &load.figures;
    let [callbacks, dropped, lost, lost_outside, retried, saved, spooled, cut] = [
        &f.callbacks,
        &f.dropped,
        &f.lost,
        &f.lost_outside_outage,
        &f.retried,
        &f.saved_by_retry,
        &f.spooled,
        &f.cut_by_kill,
    ]
    .map(|a| a.load(Relaxed));
    let by_truth = [Truth::Human, Truth::Machine, Truth::NoAnswer, Truth::Busy, Truth::Failed]
        .map(|t| format!("{} {t:?}", calls.iter().filter(|c| c.truth == t).count()))
        .join(", ");
    let humans = calls.iter().filter(|c| c.truth == Truth::Human).count();
    let accepted = load.accepted.lock().unwrap().len();
    println!(
        "fault_provider {label} (seed {seed}): {CALLS} calls ({by_truth}); callbacks ({}): {callbacks}, \
         {dropped} dropped, {accepted} accepted, {lost} lost to the {} s outage ({lost_outside} outside it), \
         {retried} retries ({saved} saved a callback); reconciled: {reconciled} events, {reconciled_finals} final \
         states; final-state mismatches {}, stranded {} ({in_progress} in progress), duplicated {duplicated}, \
         accepted but not stored {}; dialogue.start: {} jobs for {} calls answered before their end, {}/{humans} \
         human calls, {} delivered; spool {}: {spooled} answered 202, {from_spool} stored from it, {cut} cut by the \
         kill, {held_at_kill:?} held by the killed replica; load {load_secs:.0} s, settled (spools drained, calls \
         finished) {settle_secs:.1} s later, run {:.0} s",
        if all_events { "every event, shuffled" } else { "final status only" },
        sc.outage().as_secs(),
        mismatches.len(),
        stats.stranded_contacts,
        missing.len(),
        jobs.len(),
        answered.len(),
        started.len(),
        delivered.len(),
        sc.spool.unwrap_or("off"),
        began.elapsed().as_secs_f64(),
    );

    assert!(mismatches.is_empty(), "final states differ from the provider's:\n{}", mismatches.join("\n"));
    assert_eq!((stats.stranded_contacts, stats.awaiting_reconciliation, in_progress), (0, 0, 0), "stranded");
    assert_eq!(duplicated, 0, "an event stored twice");
    assert!(missing.is_empty(), "accepted callbacks missing from the inbox: {missing:?}");
    assert_eq!(started, answered, "dialogue.start jobs ≠ calls a person answered before their end");
    assert_eq!((jobs.len(), delivered_twice, stray), (started.len(), 0, 0), "a dialogue.start twice");
    assert_eq!(lost_outside, 0, "callbacks refused while PostgreSQL was up");
    match sc.spool {
        None => {
            assert!(dropped > 0 && lost > 0 && reconciled_finals > 0, "the faults were not felt, or not repaired");
            assert!(!all_events || saved > 0, "no callback was saved by the overrides' retries");
        }
        Some(kind) => {
            // Nothing lost to the outage: only what the SIGKILL cut mid-request.
            assert_eq!(lost, cut, "callbacks refused during the outage despite the spool");
            assert!(spooled > 0 && from_spool > 0, "the outage was not spooled");
            let held = held_at_kill.expect("the killed replica reported its spool");
            assert!(kind == "nats" || held > 0, "the replica was killed with an empty spool: nothing proven");
            let _ = std::fs::remove_dir_all(&spool_root);
            if kind == "nats" {
                let js = async_nats::jetstream::new(async_nats::connect(common::nats_url()).await.unwrap());
                for stream in [nats_stream.clone(), format!("{nats_stream}_SET_ASIDE")] {
                    let _ = js.delete_stream(stream).await;
                }
            }
        }
    }
}
