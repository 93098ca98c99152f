//! Retention (SPEC §13) on both stores: what a prune removes and what it never
//! touches (a call still open, one that ended after the cutoff, jobs not
//! finished), exactly-once across it, PostgreSQL's monthly partitions dropped
//! whole, and `callhook events prune|export` as an operator runs them.

#[macro_use]
mod common;

use std::sync::Arc;

use chrono::{Duration, Utc};

use callhook::domain::{CallEvent, EventType, Provider};
use callhook::store::{NewAttempt, RecordOutcome, SqliteStore, Store};
use common::*;

on_both_stores!(export_pages_through_a_time_range, the_serve_loop_prunes_with_its_retention_days);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_prune_removes_only_what_ended_before_the_cutoff() {
    a_prune_removes_only_what_ended_before_the_cutoff(&sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_prune_removes_only_what_ended_before_the_cutoff() {
    let Some(db) = postgres().await else { return };
    a_prune_removes_only_what_ended_before_the_cutoff(&db).await;
    db.cleanup().await;
}

/// A registered Twilio call; its callbacks are recorded as received `days_ago`.
async fn call(store: &Arc<dyn Store>, sid: &str) -> String {
    let campaign = campaign(store, 3).await;
    let contact = contact(store, &campaign).await;
    let new = NewAttempt { provider_call_id: Some(sid.into()), ..NewAttempt::new(contact.id, Provider::Twilio) };
    store.register_attempt(new).await.unwrap().attempt.call_id
}

fn old(call_id: &str, sid: &str, status: &str, event_type: EventType, days_ago: i64) -> CallEvent {
    CallEvent { received_at: Utc::now() - Duration::days(days_ago), ..call_event(call_id, sid, status, event_type) }
}

async fn record(store: &Arc<dyn Store>, event: &CallEvent) -> RecordOutcome {
    store.record_event(event).await.unwrap().outcome
}

async fn count(store: &Arc<dyn Store>) -> usize {
    store.events(100_000).await.unwrap().len()
}

async fn a_prune_removes_only_what_ended_before_the_cutoff(db: &TestDb) {
    let store = db.store.clone();
    // Months of history: on PostgreSQL, partitions for them as a running service
    // would have created (the test schema is younger than its data).
    if store.backend() == "postgres" {
        db.execute_script("SELECT callhook_event_partitions(now() - interval '130 days', now())").await;
    }
    let ended = call(&store, "CA-ended").await;
    record(&store, &old(&ended, "CA-ended", "ringing", EventType::Ringing, 100)).await;
    record(&store, &old(&ended, "CA-ended", "in-progress", EventType::Answered, 100)).await;
    record(&store, &old(&ended, "CA-ended", "completed", EventType::Completed, 100)).await;
    store.record_outcome(&ended, callhook::domain::Outcome::Completed).await.unwrap();
    let open = call(&store, "CA-open").await;
    record(&store, &old(&open, "CA-open", "ringing", EventType::Ringing, 100)).await;
    let recent = call(&store, "CA-recent").await;
    record(&store, &old(&recent, "CA-recent", "completed", EventType::Completed, 2)).await;
    // Deferred: no call was ever registered for it.
    record(&store, &old("never-registered", "CA-orphan", "completed", EventType::Completed, 100)).await;
    assert_eq!(count(&store).await, 6);
    // The answered call's dialogue.start, delivered.
    let claimed = store.claim_jobs(10, std::time::Duration::from_secs(30)).await.unwrap();
    let ids: Vec<_> = claimed.jobs.iter().map(|j| j.id).collect();
    assert_eq!(store.complete_jobs(claimed.lease, &ids).await.unwrap(), ids.len());
    let jobs_before = store.outbox(100).await.unwrap();

    let report = store.prune(Utc::now() - Duration::days(30)).await.unwrap();
    assert_eq!((report.events, report.kept_open, report.busy), (4, 1, false), "{report:?}");
    if store.backend() == "postgres" {
        assert!(report.partitions_dropped >= 1, "whole months went: {report:?}");
    } else {
        assert_eq!(report.partitions_dropped, 0);
    }
    assert!(store.events_for_call(&ended).await.unwrap().is_empty());
    assert!(store.events_for_call("never-registered").await.unwrap().is_empty());
    assert_eq!(store.events_for_call(&open).await.unwrap().len(), 1, "an open call keeps its history");
    assert_eq!(store.events_for_call(&recent).await.unwrap().len(), 1, "ended after the cutoff");
    assert_eq!(report.jobs, 0, "jobs finished after the cutoff stay");
    assert_eq!(store.outbox(100).await.unwrap(), jobs_before);
    // The attempts themselves are never pruned.
    assert!(store.attempt(&ended).await.unwrap().is_some());

    // Still exactly once: the open call's kept callback is a duplicate, and the
    // call goes on.
    assert_eq!(
        record(&store, &old(&open, "CA-open", "ringing", EventType::Ringing, 100)).await,
        RecordOutcome::Duplicate
    );
    let answered = call_event(&open, "CA-open", "in-progress", EventType::Answered);
    assert_eq!(record(&store, &answered).await, RecordOutcome::Applied);

    // A cutoff after everything: finished jobs go, the open call's events and its
    // pending dialogue.start stay; a second run finds nothing more.
    let jobs = store.outbox(100).await.unwrap();
    let done = jobs.iter().filter(|j| j.status == "done" || j.status == "expired").count();
    assert!(done >= 1 && done < jobs.len(), "some jobs are pending: {jobs:?}");
    let report = store.prune(Utc::now() + Duration::minutes(1)).await.unwrap();
    assert_eq!(report.jobs, done as i64, "{report:?}");
    assert!(store.outbox(100).await.unwrap().iter().all(|j| j.status == "pending"), "pending jobs are never pruned");
    assert_eq!(store.events_for_call(&open).await.unwrap().len(), 2, "the open call keeps everything");
    assert_eq!(count(&store).await, 2);
    let again = store.prune(Utc::now() + Duration::minutes(1)).await.unwrap();
    assert_eq!((again.events, again.jobs, again.partitions_dropped), (0, 0, 0));
}

async fn export_pages_through_a_time_range(store: Arc<dyn Store>) {
    let id = call(&store, "CA-x").await;
    let statuses =
        [("ringing", EventType::Ringing), ("in-progress", EventType::Answered), ("completed", EventType::Completed)];
    for (i, (status, t)) in statuses.into_iter().enumerate() {
        let mut e = old(&id, "CA-x", status, t, 10);
        e.received_at += Duration::seconds(i as i64);
        record(&store, &e).await;
    }
    let since = Utc::now() - Duration::days(11);
    let until = Utc::now() - Duration::days(9);
    let first = store.events_between(since, until, None, 2).await.unwrap();
    assert_eq!(first.len(), 2);
    let after = first.last().map(|e| (e.received_at, e.id));
    let rest = store.events_between(since, until, after, 2).await.unwrap();
    let statuses: Vec<_> = first.iter().chain(&rest).map(|e| e.provider_status.as_str()).collect();
    assert_eq!(statuses, ["ringing", "in-progress", "completed"]);
    assert!(store.events_between(until, until + Duration::days(1), None, 10).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_and_export_from_the_command_line() {
    let dir = common::scratch_dir("retention");
    let url = format!("sqlite://{}", dir.join("ops.db").display());
    let db = format!("--database-url={url}");
    let (ok, out, err) = callhook(&["migrate", &db]);
    assert!(ok, "{out}{err}");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::connect(&url).await.unwrap());
    let id = call(&store, "CA-cli").await;
    record(&store, &old(&id, "CA-cli", "ringing", EventType::Ringing, 40)).await;
    record(&store, &old(&id, "CA-cli", "busy", EventType::Busy, 40)).await;

    // Bad ages and ranges change nothing.
    for (args, expected) in [
        (vec!["--older-than", "-5"], "between 1 and 3650 days, got -5"),
        (vec!["--older-than", "0"], "between 1 and 3650 days, got 0"),
        (vec!["--older-than", "99999"], "between 1 and 3650 days, got 99999"),
        (vec!["--older-than", "ten"], "invalid value 'ten'"),
    ] {
        let mut full = vec!["events", "prune", &db];
        full.extend(args);
        let (ok, _, err) = callhook(&full);
        assert!(!ok && err.contains(expected), "{full:?}: {err}");
    }
    let (ok, _, err) = callhook(&["events", "export", &db, "--since", "yesterday", "--until", "2030-01-01"]);
    assert!(!ok && err.contains("neither an RFC 3339 instant"), "{err}");
    let (ok, _, err) = callhook(&["events", "export", &db, "--since", "2030-01-01", "--until", "2020-01-01"]);
    assert!(!ok && err.contains("must be before"), "{err}");
    assert_eq!(count(&store).await, 2);

    // Export first, then prune.
    let file = dir.join("events.jsonl");
    let since = (Utc::now() - Duration::days(60)).format("%Y-%m-%d").to_string();
    let until = Utc::now().to_rfc3339();
    let (ok, _, err) =
        callhook(&["events", "export", &db, "--since", &since, "--until", &until, "-o", file.to_str().unwrap()]);
    assert!(ok && err.contains("2 event(s) written"), "{err}");
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&file).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.iter().map(|l| l["provider_status"].as_str().unwrap()).collect::<Vec<_>>(), ["ringing", "busy"]);
    assert_eq!(lines[0]["call_id"], id.as_str());

    let (ok, out, err) = callhook(&["events", "prune", &db, "--older-than", "30", "--json"]);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["events"], 2, "{out}");
    assert_eq!(count(&store).await, 0);
    std::fs::remove_dir_all(dir).ok();
}

async fn the_serve_loop_prunes_with_its_retention_days(store: Arc<dyn Store>) {
    use callhook::clock::Clock;
    use callhook::retention::Retention;
    let id = call(&store, "CA-loop").await;
    record(&store, &old(&id, "CA-loop", "busy", EventType::Busy, 40)).await;
    let interval = std::time::Duration::from_secs(3600);
    let keep_all = Retention::new(store.clone(), None, interval, Clock::system());
    assert_eq!(keep_all.round().await.unwrap(), None, "no retention_days: nothing pruned");
    assert_eq!(count(&store).await, 1);
    // Fifty days keep it; thirty days later (the loop's clock) they do not.
    let fifty = Retention::new(store.clone(), Some(50), interval, Clock::system());
    assert_eq!(fifty.round().await.unwrap().map(|r| r.events), Some(0));
    let later = Retention::new(store.clone(), Some(50), interval, Clock::offset(Duration::days(30)));
    assert_eq!(later.round().await.unwrap().map(|r| r.events), Some(1));
    assert_eq!(count(&store).await, 0);
}
