//! The `callhook` binary as a user runs it.

mod common;
mod fake_providers;

use std::io::{Read, Write};
use std::process::Command;

use callhook::domain::Provider;
use callhook::store::{NewAttempt, SqliteStore, Store};

use common::callhook;

#[test]
fn demo_plays_a_campaign_with_every_provider_and_reports_consistent_state() {
    for provider in ["twilio", "telnyx", "vonage", "plivo", "signalwire"] {
        let (ok, out, err) = callhook(&["demo", "--provider", provider]);
        assert!(ok, "demo {provider} failed: {err}\n{out}");
        let line = |needle: &str| {
            out.lines()
                .find(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("{provider}: no line with {needle:?} in\n{out}"))
                .to_owned()
        };
        assert!(line("Signed callbacks sent").contains("2 deferred, 2 duplicate, 2 ignored (stale)"), "{out}");
        assert!(line("carol   +1").contains("not_reached"), "{out}");
        assert!(line("erin    +1").contains("pending"), "{out}");
        assert!(line("bob     +1").contains("refused"), "{out}");
        assert_eq!(out.lines().filter(|l| l.trim_start().starts_with("dialogue.start")).count(), 5, "{out}");
        // Grace's voicemail: started on the answer, cancelled by the later machine verdict.
        assert!(line("dialogue.cancel").contains("grace"), "{out}");
        assert!(line("grace   +1").contains("pending") && line("grace   +1").contains("no_answer"), "{out}");
        assert!(line("Outbox:").contains("11 delivered, 0 pending, 0 dead; receiver rejected 0"), "{out}");
        // The two-timezone campaign: each retry lands in its contact's window.
        assert!(line("hana").contains("Wed 09:00 EST") && line("hana").ends_with("yes"), "{out}");
        assert!(line("ishaan").contains("Wed 11:00 IST") && line("ishaan").ends_with("yes"), "{out}");
    }
    let (ok, _, err) = callhook(&["demo", "--provider", "acme"]);
    assert!(!ok && err.contains("unknown provider"), "{err}");
}

#[tokio::test]
async fn operator_commands_work_on_a_database_file() {
    let dir = common::scratch_dir("cli");
    let url = format!("sqlite://{}", dir.join("ops.db").display());
    let db = format!("--database-url={url}");

    let (ok, out, err) = callhook(&["migrate", &db]);
    assert!(ok && out.contains("migrations applied (sqlite)"), "{out}{err}");

    // A callback that named the call only by the provider's id and raced the call's
    // first correlated one: left deferred, which `events replay` repairs.
    let store = SqliteStore::connect(&url).await.unwrap();
    let campaign = common::campaign(&(std::sync::Arc::new(store.clone()) as _), 3).await;
    let contact = common::contact(&(std::sync::Arc::new(store.clone()) as _), &campaign).await;
    let call_id = store.register_attempt(NewAttempt::new(contact.id, Provider::Twilio)).await.unwrap().attempt.call_id;
    let app = common::app(std::sync::Arc::new(store.clone()));
    let bare = common::signed(
        "/webhooks/telephony/events",
        &common::fields(&[("CallSid", "CA-ops"), ("CallStatus", "in-progress")]),
    );
    assert_eq!(common::send(&app, bare).await.0, axum::http::StatusCode::ACCEPTED);
    sqlx::query("UPDATE call_attempts SET provider_call_id = 'CA-ops' WHERE call_id = $1")
        .bind(&call_id)
        .execute(store.pool())
        .await
        .unwrap();
    store.pool().close().await;

    let (ok, out, err) = callhook(&["events", "replay", &db]);
    assert!(ok, "{err}");
    assert!(out.contains("1 deferred event(s) examined, 1 applied"), "{out}");

    let (ok, out, err) = callhook(&["calls", "show", &call_id, &db]);
    assert!(ok, "{err}");
    assert!(out.contains("answered") && out.contains("call.answered") && out.contains("applied"), "{out}");
    let header = out.lines().find(|l| l.contains("received_at")).unwrap_or_default();
    let columns: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(columns, ["received_at", "event_type", "provider_status", "disposition", "source"], "{out}");
    let (ok, out, _) = callhook(&["calls", "show", "nope", &db]);
    assert!(!ok && out.is_empty());

    let (ok, out, err) = callhook(&["outbox", "list", &db]);
    assert!(ok, "{err}");
    assert!(out.contains("outbox: 1 pending, 0 done, 0 dead") && out.contains("dialogue.start"), "{out}");
    let (ok, _, err) = callhook(&["outbox", "list", "--status=weird", &db]);
    assert!(!ok && err.contains("pending, done, dead or expired"), "{err}");
    let (ok, out, err) = callhook(&["outbox", "retry", "--all-dead", &db]);
    assert!(ok && out.contains("0 job(s) due again"), "{out}{err}");

    let (ok, _, err) = callhook(&["migrate", "--database-url=mysql://x"]);
    assert!(!ok && err.contains("unsupported database URL"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn config_file_merges_under_env_and_flags_and_check_explains_errors() {
    let dir = common::scratch_dir("cfg");
    let file = dir.join("callhook.toml");
    std::fs::write(
        &file,
        r#"
database_url = "postgres://app:s3cret@db.internal/callhook"
twilio_auth_tokens = ["tok-new", "tok-old"]
listen = "0.0.0.0:9000"
outbox_max_attempts = 4
sink = "http"
sink_http_url = "ftp://nope"
"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_callhook"))
        .args(["config", "check", "--config", file.to_str().unwrap(), "--outbox-max-attempts", "7"])
        .env("CALLHOOK_LISTEN", "127.0.0.1:7000")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let row = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in {text}"))
            .to_owned()
    };
    assert!(row("listen").contains("env") && row("listen").contains("127.0.0.1:7000"), "env beats file: {text}");
    assert!(
        row("outbox_max_attempts").contains("flag") && row("outbox_max_attempts").ends_with(" 7"),
        "flag beats file: {text}"
    );
    assert!(row("database_url").contains("file") && row("database_url").contains("app:***@db.internal"), "{text}");
    assert!(row("twilio_auth_tokens").ends_with("***"), "{text}");
    assert!(!text.contains("tok-new") && !text.contains("s3cret"), "secrets never printed: {text}");
    assert!(text.contains("error: sink_http_url must be an http(s) URL"), "{text}");
    assert!(text.contains("error: sink = http needs sink_http_secret"), "{text}");

    std::fs::write(&file, "databse_url = 'x'\n").unwrap();
    let (ok, _, err) = callhook(&["config", "check", "--config", file.to_str().unwrap()]);
    assert!(!ok && err.contains("unknown setting `databse_url`"), "{err}");

    std::fs::write(&file, "twilio_auth_tokens = 'tok'\n").unwrap();
    let (ok, out, err) = callhook(&["config", "check", "--config", file.to_str().unwrap()]);
    assert!(ok && out.contains("configuration OK"), "{out}{err}");
    std::fs::remove_dir_all(dir).ok();
}

/// Log lines of a child process as they come, parsed as JSON, and every line so far.
struct JsonLog {
    rx: tokio::sync::mpsc::UnboundedReceiver<String>,
    lines: Vec<serde_json::Value>,
    text: String,
}

impl JsonLog {
    fn follow(stderr: std::process::ChildStderr) -> Self {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        JsonLog { rx, lines: Vec::new(), text: String::new() }
    }

    fn push(&mut self, line: String) {
        self.lines.push(serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}")));
        self.text.push_str(&line);
        self.text.push('\n');
    }

    /// Reads lines until one matches `found` (panics after 10 s); returns its index.
    async fn wait_for(&mut self, what: &str, found: impl Fn(&serde_json::Value) -> bool) -> usize {
        if let Some(i) = self.lines.iter().position(&found) {
            return i;
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(line)) => self.push(line),
                Ok(None) => panic!("the log ended before {what}:\n{}", self.text),
                Err(_) => panic!("no {what} in the log within 10 s:\n{}", self.text),
            }
            if found(self.lines.last().unwrap()) {
                return self.lines.len() - 1;
            }
        }
    }

    /// Reads the rest of the log, up to the process's exit.
    async fn read_to_end(&mut self) {
        while let Some(line) = self.rx.recv().await {
            self.push(line);
        }
    }
}

fn message(line: &serde_json::Value) -> &str {
    line["fields"]["message"].as_str().unwrap_or_default()
}

fn span<'a>(line: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    line["spans"].as_array()?.iter().find(|s| s["name"] == name)
}

#[tokio::test]
async fn serve_logs_json_spans_and_shuts_down_gracefully_on_sigterm() {
    let dir = common::scratch_dir("serve");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_callhook"))
        .args(["serve", "--log-format=json", &format!("--listen=127.0.0.1:{port}")])
        .arg(format!("--database-url=sqlite://{}", dir.join("s.db").display()))
        .env("CALLHOOK_TWILIO_AUTH_TOKENS", common::TOKEN)
        // tower_http's debug events log each request's arrival ("started processing request").
        .env("RUST_LOG", "info,tower_http::trace=debug")
        .env_remove("DATABASE_URL")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = JsonLog::follow(child.stderr.take().unwrap());
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready, "serve never became ready");

    let sign = |path: &str, fields: &[(String, String)]| {
        use callhook::providers::twilio;
        twilio::sign(twilio::Algorithm::HmacSha1, common::TOKEN, &format!("{base}{path}"), fields)
    };
    let path = "/webhooks/telephony/events?call_id=log-1";
    let fields = common::fields(&[("CallSid", "CA-log"), ("CallStatus", "ringing")]);
    let res = client
        .post(format!("{base}{path}"))
        .header("x-twilio-signature", sign(path, &fields))
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);

    // A callback in flight when SIGTERM lands: its headers and half its body are sent
    // now, the rest only once the server is draining.
    const DRAIN_ID: &str = "in-flight-at-sigterm";
    let drain_path = "/webhooks/telephony/events?call_id=drain-1";
    let drain_fields = common::fields(&[("CallSid", "CA-drain"), ("CallStatus", "ringing")]);
    let body = common::encode(&drain_fields);
    let (first_half, second_half) = body.split_at(body.len() / 2);
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(15))).unwrap();
    let head = format!(
        "POST {drain_path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/x-www-form-urlencoded\r\n\
         content-length: {}\r\nx-twilio-signature: {}\r\nx-request-id: {DRAIN_ID}\r\nconnection: close\r\n\r\n",
        body.len(),
        sign(drain_path, &drain_fields)
    );
    conn.write_all(format!("{head}{first_half}").as_bytes()).unwrap();
    let arrived = |l: &serde_json::Value| {
        message(l) == "started processing request" && span(l, "request").is_some_and(|s| s["request_id"] == DRAIN_ID)
    };
    log.wait_for("the slow request's arrival", arrived).await;

    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let draining = "shutdown signal received; draining in-flight requests";
    let sigterm_at = log.wait_for("the shutdown signal", |l| message(l) == draining).await;
    // Draining: new connections are refused while the process waits for ours.
    let mut refused = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(refused, "still accepting connections after SIGTERM");
    assert!(child.try_wait().unwrap().is_none(), "exited with a request in flight:\n{}", log.text);

    conn.write_all(second_half.as_bytes()).unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).expect("the in-flight request is answered");
    let (head, json) = response.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no response: {response:?}"));
    assert!(head.starts_with("HTTP/1.1 202 "), "{response}");
    let json: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|_| panic!("{response}"));
    assert_eq!((json["status"].as_str(), json["call_id"].as_str()), (Some("deferred"), Some("drain-1")), "{json}");

    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    log.read_to_end().await;
    let stderr = &log.text;
    let lines = &log.lines;
    let recorded = |call_id: &str| {
        lines
            .iter()
            .position(|l| {
                message(l) == "callback recorded" && span(l, "webhook").is_some_and(|s| s["call_id"] == call_id)
            })
            .unwrap_or_else(|| panic!("no callback recorded for {call_id}: {stderr}"))
    };
    let first = &lines[recorded("log-1")];
    let webhook = span(first, "webhook").unwrap();
    assert_eq!(
        (webhook["provider"].as_str(), webhook["call_id"].as_str(), webhook["event_type"].as_str()),
        (Some("twilio"), Some("log-1"), Some("call.ringing"))
    );
    let request = span(first, "request").unwrap();
    assert_eq!(request["request_id"].as_str().map(str::len), Some(36), "a request id on every request span");
    assert!(recorded("drain-1") > sigterm_at, "the in-flight callback was recorded while draining: {stderr}");
    let messages: Vec<&str> = lines.iter().map(message).collect();
    assert!(messages.contains(&"outbox dispatcher stopped") && messages.last() == Some(&"stopped"), "{messages:?}");
    assert!(!stderr.contains(common::TOKEN), "secrets never logged");
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_from_the_command_line_asks_the_provider_and_marks_what_it_learnt() {
    use fake_providers::{Behaviour, FakeProvider, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN};
    let dir = common::scratch_dir("cli");
    let url = format!("sqlite://{}", dir.join("reconcile.db").display());
    let (base, fake) = FakeProvider::start(Provider::Twilio).await;
    let store = SqliteStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let shared: std::sync::Arc<dyn Store> = std::sync::Arc::new(store.clone());
    let campaign = common::campaign(&shared, 3).await;
    let mut calls = vec![];
    for (i, status) in ["busy", "no-answer"].iter().enumerate() {
        let contact = common::contact(&shared, &campaign).await;
        let sid = format!("CA4000000000000000000000000000000{i}");
        let mut new = NewAttempt::new(contact.id, Provider::Twilio);
        new.provider_call_id = Some(sid.clone());
        calls.push(store.register_attempt(new).await.unwrap().attempt.call_id);
        fake.set_call(&sid, Behaviour::Fixture(status));
    }
    store.pool().close().await;

    let db = format!("--database-url={url}");
    let args = move |extra: &[&str]| {
        let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        args.extend([
            format!("--database-url={url}"),
            format!("--twilio-account-sid={TWILIO_ACCOUNT_SID}"),
            format!("--twilio-auth-tokens={TWILIO_AUTH_TOKEN}"),
            format!("--twilio-api-base={base}"),
            "--reconcile-after-secs=1".into(),
        ]);
        args
    };
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || callhook(&args.iter().map(String::as_str).collect::<Vec<_>>()))
    };
    // One call now, whatever its times.
    let (ok, out, err) = run(args(&["reconcile", "--call", &calls[0]])).await.unwrap();
    assert!(ok, "{out}{err}");
    assert_eq!(out.trim(), format!("call {}: applied", calls[0]));
    let show = vec!["calls".to_owned(), "show".to_owned(), calls[0].clone(), db.clone()];
    let (ok, out, err) = run(show).await.unwrap();
    assert!(ok && out.contains("busy") && out.contains("reconcile *"), "{out}{err}");
    // A pass over everything due: the other call, quiet for over a second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (ok, out, err) = run(args(&["reconcile", "--once"])).await.unwrap();
    assert!(ok, "{out}{err}");
    assert!(out.contains("looked up: 1 applied"), "{out}");
    assert_eq!(fake.requests().len(), 2, "each call asked once");
    let (ok, _, err) = run(args(&["reconcile", "--call", "no-such-call"])).await.unwrap();
    assert!(!ok && err.contains("no-such-call"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_are_friendly_on_the_first_day() {
    let dir = common::scratch_dir("cli");

    // Run from the wrong place: no empty database is created, and the file is named.
    let missing = dir.join("missing.db");
    let (ok, _, err) = callhook(&["outbox", "list", &format!("--database-url=sqlite://{}", missing.display())]);
    assert!(!ok && err.contains("no database at") && err.contains("missing.db"), "{err}");
    assert!(!missing.exists(), "a report must not create a database");

    let url = format!("sqlite://{}", dir.join("ops.db").display());
    let db = format!("--database-url={url}");
    let store = SqliteStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let shared: std::sync::Arc<dyn Store> = std::sync::Arc::new(store.clone());
    let app = common::app(shared.clone());
    let campaign = common::campaign(&shared, 3).await;
    for i in 0..5 {
        let contact = common::contact(&shared, &campaign).await;
        let call = store.register_attempt(NewAttempt::new(contact.id, Provider::Twilio)).await.unwrap().attempt.call_id;
        common::send(&app, common::callback(&call, &format!("CA-day1-{i}"), "in-progress")).await;
    }
    // The oldest job dies; four stay pending.
    let claimed = store.claim_jobs(1, std::time::Duration::from_secs(30)).await.unwrap();
    store.fail_job(claimed.lease, claimed.jobs[0].id, "boom", None).await.unwrap();
    let dead_id = claimed.jobs[0].id.to_string();
    store.pool().close().await;

    // The limit applies after the status filter.
    let (ok, out, err) = callhook(&["outbox", "list", "--status", "dead", "--limit", "1", &db]);
    assert!(ok && out.contains(&dead_id), "{out}{err}");
    let (ok, out, _) = callhook(&["outbox", "list", "--status", "pending", "--limit", "2", &db]);
    assert!(ok && out.lines().filter(|l| l.contains("dialogue.start")).count() == 2, "{out}");

    // A retry that retries nothing fails.
    let (ok, _, err) = callhook(&["outbox", "retry", &uuid::Uuid::new_v4().to_string(), &db]);
    assert!(!ok && err.contains("could not be retried"), "{err}");

    // A closed stdout ends the report quietly, as `| head` does.
    let mut child = Command::new(env!("CARGO_BIN_EXE_callhook"))
        .args(["outbox", "list", &db])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader went away before the first line
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");

    // The default `log` sink is a loud warning outside the demo.
    let (_, out, _) = callhook(&["config", "check", &db]);
    assert!(out.contains("warning: sink = log"), "{out}");
    std::fs::remove_dir_all(dir).ok();
}

/// `callhook campaigns …` on a database file, as an operator or a shell dialer runs it.
#[tokio::test]
async fn campaigns_are_managed_and_dialled_from_the_command_line() {
    let dir = common::scratch_dir("cli");
    let url = format!("sqlite://{}", dir.join("campaigns.db").display());
    let db = format!("--database-url={url}");
    assert!(callhook(&["migrate", &db]).0);
    let store = SqliteStore::connect(&url).await.unwrap();
    let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(store);
    let campaign = common::campaign(&store, 3).await;
    let phones = ["+14155550301", "+14155550302", "+14155550303"];
    common::add_contacts(&store, &campaign, phones.iter().map(|p| callhook::store::NewContact::phone(*p)).collect())
        .await;
    let id = campaign.id.to_string();

    let (ok, out, err) = callhook(&["campaigns", "list", &db]);
    assert!(ok && out.contains(&id) && out.contains("running"), "{out}{err}");
    let (ok, out, _) = callhook(&["campaigns", "show", &id, &db]);
    assert!(ok && out.contains("calling window  09:00–20:00"), "{out}");
    let (ok, out, err) = callhook(&["campaigns", "dial", &id, "--limit", "2", &db]);
    assert!(!ok && err.contains("CALLHOOK_PUBLIC_BASE_URL"), "{out}{err}");
    let base = "--public-base-url=https://hooks.example.com";
    let (ok, out, err) = callhook(&["campaigns", "dial", &id, "--limit", "2", &db, base]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    for line in &lines {
        let fields: Vec<&str> = line.split('\t').collect();
        assert!(phones.contains(&fields[0]), "{line}");
        assert!(fields[2].starts_with("https://hooks.example.com/webhooks/telephony/twilio/events?call_id="), "{line}");
    }
    let (ok, out, _) = callhook(&["campaigns", "stats", &id, &db, "--json"]);
    let stats: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(ok);
    assert_eq!((stats["calls_in_flight"].as_i64(), stats["by_state"]["pending"].as_i64()), (Some(2), Some(1)));

    let (ok, out, _) = callhook(&["campaigns", "pause", &id, &db]);
    assert!(ok && out.contains("is paused"), "{out}");
    let (ok, _, err) = callhook(&["campaigns", "dial", &id, "--limit", "2", &db, base]);
    assert!(!ok && err.contains("campaign_not_running"), "{err}");
    assert!(callhook(&["campaigns", "stop", &id, &db]).0);
    let (ok, _, err) = callhook(&["campaigns", "resume", &id, &db]);
    assert!(!ok && err.contains("stopped for good"), "{err}");
    let (ok, _, err) = callhook(&["campaigns", "show", &uuid::Uuid::new_v4().to_string(), &db]);
    assert!(!ok && err.contains("not found"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
