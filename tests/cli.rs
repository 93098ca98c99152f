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
            out.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("{provider}: no line with {needle:?} in\n{out}")).to_owned()
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
    let contact = store.add_contacts(campaign.id, vec![callhook::store::NewContact::phone("+14155550100")]).await.unwrap().remove(0);
    let call_id = store.register_attempt(NewAttempt::new(contact.id, Provider::Twilio)).await.unwrap().attempt.call_id;
    let app = common::app(std::sync::Arc::new(store.clone()));
    let bare = common::signed("/webhooks/telephony/events", &common::fields(&[("CallSid", "CA-ops"), ("CallStatus", "in-progress")]));
    assert_eq!(common::send(&app, bare).await.0, axum::http::StatusCode::ACCEPTED);
    sqlx::query("UPDATE call_attempts SET provider_call_id = 'CA-ops' WHERE call_id = $1").bind(&call_id).execute(store.pool()).await.unwrap();
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
