//! The file spool's own rules: what survives a crash, what is set aside, the
//! bound, one process per directory, and the operator's `callhook spool` commands.
//! Spooled events drain into an embedded SQLite store here (the spool's rules do
//! not depend on the store; tests/spool.rs drains into PostgreSQL).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::StatusCode;

use callhook::domain::{CallEvent, EventSource, EventType};
use callhook::spool::{Backend, FileSpool, Record, Spool, SpoolError};
use common::callhook;

fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("callhook-spool-{label}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A Twilio `completed` callback for a call no one registered (stored as deferred).
fn event(n: u32) -> CallEvent {
    common::call_event(&format!("call-{n}"), &format!("CA{n:032}"), "completed", EventType::Completed)
}

async fn append(spool: &FileSpool, n: u32) {
    let e = event(n);
    spool.append(serde_json::to_vec(&Record::new(&e)).unwrap(), &e.dedupe_key).await.unwrap();
}

fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn a_tail_torn_by_a_crash_is_set_aside_and_the_records_before_it_are_stored() {
    let dir = temp_dir("torn");
    let spool = FileSpool::open(&dir, 64 << 20).unwrap();
    for n in 1..=3 {
        append(&spool, n).await;
    }
    drop(spool); // the process dies…
    let segment = files(&dir, ".seg").pop().expect("a segment");
    let mut file = std::fs::OpenOptions::new().append(true).open(&segment).unwrap();
    file.write_all(b"CS\x40\x00\x00\x00half a rec").unwrap(); // …in the middle of a write

    let spool = FileSpool::open(&dir, 64 << 20).unwrap();
    assert_eq!(spool.status().await.unwrap().records, 3, "the whole records are counted at start");
    let db = common::sqlite().await;
    let report = spool.drain(db.store.as_ref(), &|| false).await.unwrap();
    assert_eq!((report.stored, report.duplicates, report.set_aside, report.corrupt), (3, 0, 0, 1), "{report:?}");
    assert_eq!(db.store.events(10).await.unwrap().len(), 3);
    let aside = files(&dir.join("set-aside"), ".json");
    assert_eq!(aside.len(), 1);
    let entry: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&aside[0]).unwrap()).unwrap();
    assert_eq!(entry["error"], "torn tail");
    assert!(files(&dir, ".seg").is_empty(), "a drained segment is removed");
    let status = spool.status().await.unwrap();
    assert_eq!((status.records, status.bytes, status.set_aside), (0, 0, 1));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_record_that_cannot_be_read_is_set_aside_with_its_error_and_the_rest_drained() {
    let dir = temp_dir("unreadable");
    let spool = FileSpool::open(&dir, 64 << 20).unwrap();
    append(&spool, 1).await;
    spool.append(b"{\"v\": 1, \"spooled_at\": \"yesterday\"}".to_vec(), "k").await.unwrap();
    spool.append(b"{\"v\": 99}".to_vec(), "k").await.unwrap();
    append(&spool, 2).await;
    let db = common::sqlite().await;
    let report = spool.drain(db.store.as_ref(), &|| false).await.unwrap();
    assert_eq!((report.stored, report.set_aside, report.corrupt), (2, 2, 0), "{report:?}");
    let errors: Vec<String> = files(&dir.join("set-aside"), ".json")
        .iter()
        .map(|p| serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(p).unwrap()).unwrap())
        .map(|e| format!("{} | {}", e["error"], e["record"]["text"]))
        .collect();
    assert!(errors[0].contains("unreadable spool record") && errors[0].contains("yesterday"), "{errors:?}");
    assert!(errors[1].contains("version 99"), "{errors:?}");
    // Set aside once: a second drain finds nothing to do.
    assert_eq!(spool.drain(db.store.as_ref(), &|| false).await.unwrap(), Default::default());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_record_the_store_keeps_failing_is_set_aside_and_a_drain_stops_at_shutdown() {
    let dir = temp_dir("stops");
    let spool = FileSpool::open(&dir, 64 << 20).unwrap();
    append(&spool, 1).await;
    append(&spool, 2).await;
    let db = common::sqlite().await;
    let stopped = spool.drain(db.store.as_ref(), &|| true).await.unwrap();
    assert_eq!(stopped.stopped.as_deref(), Some("shutting down"));
    assert_eq!(spool.status().await.unwrap().records, 2, "nothing taken at shutdown");

    // Each drain follows a probe the store answered; this one record fails anyway.
    let broken = common::sqlite().await;
    broken.break_connection().await;
    for _ in 1..20 {
        let report = spool.drain(broken.store.as_ref(), &|| false).await.unwrap();
        assert!(report.stopped.is_some() && report.set_aside == 0, "{report:?}");
    }
    let report = spool.drain(broken.store.as_ref(), &|| false).await.unwrap();
    assert_eq!(report.set_aside, 1, "the 20th failure sets it aside: {report:?}");
    let report = spool.drain(db.store.as_ref(), &|| false).await.unwrap();
    assert_eq!((report.stored, report.set_aside), (1, 0), "the record behind it drains: {report:?}");
    let aside = files(&dir.join("set-aside"), ".json");
    let entry = std::fs::read_to_string(&aside[0]).unwrap();
    assert!(entry.contains("failed 20 drains in a row while the store answered"), "{entry}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_full_spool_answers_503_and_keeps_what_it_holds() {
    let dir = temp_dir("full");
    let db = common::sqlite().await;
    db.break_connection().await; // the store is away
    let spool = Arc::new(Spool::new(Box::new(FileSpool::open(&dir, 2_000).unwrap())));
    let app = common::app_with_spool(db.store.clone(), spool.clone());
    let mut answers = vec![];
    for n in 0..6 {
        let (status, body) =
            common::send(&app, common::callback(&format!("c{n}"), &format!("CA{n}"), "completed")).await;
        answers.push((status, body["status"].as_str().or(body["error"]["code"].as_str()).unwrap_or("").to_owned()));
    }
    let spooled = answers.iter().filter(|(s, _)| *s == StatusCode::ACCEPTED).count();
    assert!(spooled >= 2, "{answers:?}");
    assert!(
        answers[spooled..].iter().all(|(s, code)| *s == StatusCode::SERVICE_UNAVAILABLE && code == "spool_full"),
        "{answers:?}"
    );
    let status = spool.backend().status().await.unwrap();
    assert_eq!(status.records, spooled as u64);
    assert!(status.bytes <= 2_000, "{status:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn one_process_per_directory_and_unusable_directories_are_refused() {
    let dir = temp_dir("lock");
    let held = FileSpool::open(&dir, 1 << 20).unwrap();
    let second = FileSpool::open(&dir, 1 << 20).err().expect("a second owner is refused");
    assert!(matches!(&second, SpoolError::Setup(m) if m.contains("in use by another callhook process")), "{second}");
    drop(held);
    FileSpool::open(&dir, 1 << 20).expect("free again once its owner is gone");

    let missing_parent = dir.join("not-mounted/spool");
    let err = FileSpool::open(&missing_parent, 1 << 20).err().unwrap().to_string();
    assert!(err.contains("does not exist (is the volume mounted?)"), "{err}");
    let file = dir.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let err = FileSpool::open(&file, 1 << 20).err().unwrap().to_string();
    assert!(err.contains("is not a directory"), "{err}");
    let created = dir.join("new");
    FileSpool::open(&created, 1 << 20).expect("a missing directory under an existing parent is created");
    assert!(created.join("set-aside").is_dir());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_operator_inspects_and_drains_a_spool_left_behind() {
    let dir = temp_dir("cli");
    let spool_dir = dir.join("spool");
    let spool = FileSpool::open(&spool_dir, 64 << 20).unwrap();
    append(&spool, 1).await;
    append(&spool, 2).await;
    let db = format!("--database-url=sqlite://{}", dir.join("callhook.db").display());
    let spool_args = ["--spool=file".to_owned(), format!("--spool-dir={}", spool_dir.display()), db.clone()];
    let with = |cmd: &[&str]| [cmd.iter().map(|s| s.to_string()).collect::<Vec<_>>(), spool_args.to_vec()].concat();
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || callhook(&args.iter().map(String::as_str).collect::<Vec<_>>()))
    };

    let (ok, out, err) = run(with(&["spool", "status"])).await.unwrap();
    assert!(ok, "{err}");
    assert!(out.contains("records:    2") && out.contains("spool:      file"), "{out}");
    // A running service owns the directory: draining beside it is refused.
    let (ok, _, err) = run(with(&["spool", "drain"])).await.unwrap();
    assert!(!ok && err.contains("in use by another callhook process"), "{err}");
    drop(spool);

    assert!(run(vec!["migrate".into(), db.clone()]).await.unwrap().0);
    let (ok, out, err) = run(with(&["spool", "drain"])).await.unwrap();
    assert!(ok, "{err}");
    assert!(out.contains("drained: 2 stored, 0 already stored, 0 set aside, 0 corrupt"), "{out}");
    let (ok, out, _) = run(with(&["spool", "status", "--json"])).await.unwrap();
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(ok && status["records"] == 0 && status["backend"] == "file", "{out}");
    let store = callhook::store::SqliteStore::connect(&db["--database-url=".len()..]).await.unwrap();
    let stored = callhook::store::Store::events(&store, 10).await.unwrap();
    assert_eq!(stored.iter().filter(|e| e.source == EventSource::Spool).count(), 2);

    // config check reports a spool directory that cannot work.
    let bad = format!("--spool-dir={}", dir.join("no/such/dir").display());
    let (ok, out, _) = run(vec!["config".into(), "check".into(), "--spool=file".into(), bad, db]).await.unwrap();
    assert!(!ok && out.contains("error: spool_dir") && out.contains("is the volume mounted?"), "{out}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A store that answers but cannot be migrated is no outage: the drainer reports it
/// as fatal (serve exits, as it would have at start) instead of spooling forever.
#[tokio::test]
async fn a_store_that_answers_but_cannot_be_migrated_is_fatal() {
    let dir = temp_dir("fatal");
    let db = common::sqlite().await;
    db.execute_script("UPDATE _sqlx_migrations SET checksum = x'00' WHERE version = 1").await;
    let spool = Arc::new(Spool::new(Box::new(FileSpool::open(&dir, 1 << 20).unwrap())));
    let (fatal, mut told) = tokio::sync::watch::channel(None);
    let mut drainer =
        callhook::spool::Drainer::new(spool, db.store.clone(), std::time::Duration::from_millis(10), true)
            .on_fatal(fatal);
    let why = drainer.round().await.expect_err("fatal");
    assert!(why.contains("applying migrations failed"), "{why}");
    assert_eq!(told.borrow_and_update().as_deref(), Some(why.as_str()));
    let _ = std::fs::remove_dir_all(dir);
}
