//! The `callhook` binary as a user runs it.

mod common;

use std::process::Command;

use callhook::domain::Provider;
use callhook::store::{NewAttempt, SqliteStore, Store};

fn callhook(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_callhook"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run callhook");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

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
        assert!(line("Signed callbacks sent").contains("2 deferred, 2 duplicate, 1 ignored (stale)"), "{out}");
        assert!(line("carol   +1").contains("not_reached"), "{out}");
        assert!(line("erin    +1").contains("pending"), "{out}");
        assert!(line("bob     +1").contains("refused"), "{out}");
        assert_eq!(out.lines().filter(|l| l.trim_start().starts_with("dialogue.start")).count(), 4, "{out}");
        assert!(line("Outbox:").contains("9 delivered, 0 pending, 0 dead; receiver rejected 0"), "{out}");
    }
    let (ok, _, err) = callhook(&["demo", "--provider", "acme"]);
    assert!(!ok && err.contains("unknown provider"), "{err}");
}

#[tokio::test]
async fn operator_commands_work_on_a_database_file() {
    let dir = std::env::temp_dir().join(format!("callhook-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("ops.db").display());
    let db = format!("--database-url={url}");

    let (ok, out, err) = callhook(&["migrate", &db]);
    assert!(ok && out.contains("migrations applied (sqlite)"), "{out}{err}");

    // A callback that named the call only by the provider's id and raced the call's
    // first correlated one: left deferred, which `events replay` repairs.
    let store = SqliteStore::connect(&url).await.unwrap();
    let campaign = common::campaign(&(std::sync::Arc::new(store.clone()) as _), 3).await;
    let contact = store
        .add_contacts(campaign.id, vec![callhook::store::NewContact::phone("+14155550100")])
        .await
        .unwrap()
        .remove(0);
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
    let (ok, out, _) = callhook(&["calls", "show", "nope", &db]);
    assert!(!ok && out.is_empty());

    let (ok, out, err) = callhook(&["outbox", "list", &db]);
    assert!(ok, "{err}");
    assert!(out.contains("outbox: 1 pending, 0 done, 0 dead") && out.contains("dialogue.start"), "{out}");
    let (ok, _, err) = callhook(&["outbox", "list", "--status=weird", &db]);
    assert!(!ok && err.contains("pending, done or dead"), "{err}");
    let (ok, out, err) = callhook(&["outbox", "retry", "--all-dead", &db]);
    assert!(ok && out.contains("0 job(s) due again"), "{out}{err}");

    let (ok, _, err) = callhook(&["migrate", "--database-url=mysql://x"]);
    assert!(!ok && err.contains("unsupported database URL"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn config_file_merges_under_env_and_flags_and_check_explains_errors() {
    let dir = std::env::temp_dir().join(format!("callhook-cfg-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
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

#[tokio::test]
async fn serve_logs_json_spans_and_shuts_down_gracefully_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("callhook-serve-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(env!("CARGO_BIN_EXE_callhook"))
        .args(["serve", "--log-format=json", &format!("--listen=127.0.0.1:{port}")])
        .arg(format!("--database-url=sqlite://{}", dir.join("s.db").display()))
        .env("CALLHOOK_TWILIO_AUTH_TOKENS", common::TOKEN)
        .env("RUST_LOG", "info")
        .env_remove("DATABASE_URL")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
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

    let path = "/webhooks/telephony/events?call_id=log-1";
    let fields = common::fields(&[("CallSid", "CA-log"), ("CallStatus", "ringing")]);
    let url = format!("{base}{path}");
    let signature = callhook::providers::twilio::sign(
        callhook::providers::twilio::Algorithm::HmacSha1,
        common::TOKEN,
        &url,
        &fields,
    );
    let res = client.post(&url).header("x-twilio-signature", signature).form(&fields).send().await.unwrap();
    assert_eq!(res.status(), 202);

    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    assert!(out.status.success(), "exit after SIGTERM: {:?}", out.status);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> =
        stderr.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"))).collect();
    let recorded =
        lines.iter().find(|l| l["fields"]["message"] == "callback recorded").unwrap_or_else(|| panic!("{stderr}"));
    let webhook = recorded["spans"].as_array().unwrap().iter().find(|s| s["name"] == "webhook").unwrap();
    assert_eq!(
        (webhook["provider"].as_str(), webhook["call_id"].as_str(), webhook["event_type"].as_str()),
        (Some("twilio"), Some("log-1"), Some("call.ringing"))
    );
    let request = recorded["spans"].as_array().unwrap().iter().find(|s| s["name"] == "request").unwrap();
    assert_eq!(request["request_id"].as_str().map(str::len), Some(36), "a request id on every request span");
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["fields"]["message"].as_str()).collect();
    assert!(messages.contains(&"shutdown signal received; draining in-flight requests"), "{messages:?}");
    assert!(messages.contains(&"outbox dispatcher stopped") && messages.last() == Some(&"stopped"), "{messages:?}");
    assert!(!stderr.contains(common::TOKEN), "secrets never logged");
    std::fs::remove_dir_all(dir).ok();
}
