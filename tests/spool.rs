//! The outage spool (SPEC §10) through the real router, on the real PostgreSQL
//! behind a proxy the test takes down: a verified callback arriving during the
//! outage is answered `202 spooled`, and once the database is back the drainer
//! stores it exactly once through the normal path — with a file spool and with a
//! NATS JetStream spool. Forged or malformed callbacks are never spooled.

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::Value;

use callhook::domain::{CallStatus, EventSource, Provider};
use callhook::spool::{Drainer, FileSpool, NatsSpool, NatsSpoolConfig, Spool};
use callhook::store::NewAttempt;
use common::tcp_proxy::TcpProxy;
use common::{callback, callback_with, send};

fn temp_dir(label: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("callhook-spool-{label}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn readyz(app: &axum::Router) -> (StatusCode, Value) {
    send(app, axum::http::Request::get("/readyz").body(axum::body::Body::empty()).unwrap()).await
}

/// The whole outage, on one spool backend.
/// The test PostgreSQL's address, for a proxy in front of it.
fn postgres_addr() -> std::net::SocketAddr {
    let pg: std::net::SocketAddr = "127.0.0.1:5432".parse().unwrap();
    common::postgres_url().parse::<sqlx::postgres::PgConnectOptions>().map_or(pg, |o| {
        format!("{}:{}", o.get_host().replace("localhost", "127.0.0.1"), o.get_port()).parse().unwrap_or(pg)
    })
}

async fn outage(db: &common::TestDb, spool: Arc<Spool>) {
    let proxy = TcpProxy::start(postgres_addr()).await;
    let store = db.store_through(proxy.addr);
    let app = common::app_with_spool(store.clone(), spool.clone());
    let campaign = common::campaign(&db.store, 3).await;
    let contact = common::contact(&db.store, &campaign).await;
    let sid = format!("CA{}", uuid::Uuid::new_v4().simple());
    let new = NewAttempt { provider_call_id: Some(sid.clone()), ..NewAttempt::new(contact.id, Provider::Twilio) };
    let call_id = db.store.register_attempt(new).await.unwrap().attempt.call_id;

    let (status, body) = send(&app, callback(&call_id, &sid, "initiated")).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("processed")), "{body}");

    proxy.down();
    let human = [("AnsweredBy", "human")];
    let during = [
        callback(&call_id, &sid, "ringing"),
        callback(&call_id, &sid, "ringing"), // the provider's retry, spooled twice
        callback_with(&call_id, &sid, "in-progress", &human),
        callback_with(&call_id, &sid, "completed", &[("CallDuration", "42"), ("AnsweredBy", "human")]),
    ];
    for request in during {
        let (status, body) = send(&app, request).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["status"], "spooled");
        assert_eq!((body["call_id"].as_str(), body["spool"].as_str()), (Some(call_id.as_str()), Some(spool.kind())));
    }
    // Nothing unverified or unreadable is spooled: the same 4xx as with the store up.
    let mut forged = callback(&call_id, &sid, "busy");
    forged.headers_mut().insert("x-twilio-signature", "Zm9yZ2Vk".parse().unwrap());
    assert_eq!(send(&app, forged).await.0, StatusCode::FORBIDDEN);
    let unreadable = common::signed(&format!("/webhooks/telephony/events?call_id={call_id}"), &common::fields(&[]));
    assert_eq!(send(&app, unreadable).await.0, StatusCode::BAD_REQUEST);

    let mut drainer = Drainer::new(spool.clone(), store.clone(), std::time::Duration::from_millis(10), false);
    assert_eq!(drainer.round().await.unwrap(), None, "nothing drains while the store is away");
    let status = spool.backend().status().await.unwrap();
    // JetStream drops the retry itself (`Nats-Msg-Id` is the inbox key); the file
    // spool keeps both and the store tells them apart.
    let nats = spool.kind() == "nats";
    let spooled = if nats { 3 } else { 4 };
    assert_eq!(status.records, spooled, "{status:?}");
    assert!(status.oldest_at.is_some() && status.bytes > 0, "{status:?}");
    let (code, ready) = readyz(&app).await;
    assert_eq!(
        (code, ready["status"].as_str(), ready["spool"]["records"].as_u64()),
        (StatusCode::OK, Some("spooling"), Some(spooled))
    );

    proxy.up();
    let report = drainer.round().await.unwrap().expect("drained once the store answers");
    let duplicates = u64::from(!nats);
    assert_eq!(
        (report.stored, report.duplicates, report.set_aside, report.corrupt),
        (3, duplicates, 0, 0),
        "{report:?}"
    );
    assert_eq!(report.stopped, None);
    assert_eq!(spool.backend().status().await.unwrap().records, 0);
    assert_eq!(readyz(&app).await.1["status"], "ready");
    let metrics = common::scrape_metrics(&app).await;
    let kind = spool.kind();
    assert_eq!(common::series_value(&metrics, "callhook_spool_depth", &[("spool", kind)]), Some(0.0), "{metrics}");
    let stored =
        common::series_value(&metrics, "callhook_spool_drained_total", &[("spool", kind), ("outcome", "stored")]);
    assert!(stored >= Some(3.0), "{metrics}");
    let appended = common::series_value(&metrics, "callhook_spool_appended_total", &[("spool", kind)]);
    assert!(appended >= Some(spooled as f64), "{metrics}");

    // Stored once each, as if they had arrived in order; the dialogue started once.
    let events = db.store.events_for_call(&call_id).await.unwrap();
    let seen: Vec<_> = events.iter().map(|e| (e.provider_status.as_str(), e.source)).collect();
    assert_eq!(
        seen,
        [
            ("initiated", EventSource::Callback),
            ("ringing", EventSource::Spool),
            ("in-progress", EventSource::Spool),
            ("completed", EventSource::Spool)
        ]
    );
    let attempt = db.store.attempt(&call_id).await.unwrap().unwrap();
    assert_eq!((attempt.status, attempt.duration_seconds), (CallStatus::Completed, Some(42)));
    let starts = db.store.outbox(100).await.unwrap();
    let starts: Vec<_> =
        starts.iter().filter(|j| j.kind == "dialogue.start" && j.payload["call_id"] == call_id.as_str()).collect();
    assert_eq!(starts.len(), 1, "one dialogue.start per human-answered call");

    // A late direct delivery of a spooled callback resolves on the inbox key.
    let (status, body) =
        send(&app, callback_with(&call_id, &sid, "completed", &[("CallDuration", "42"), ("AnsweredBy", "human")]))
            .await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("duplicate")), "{body}");
    assert_eq!(drainer.round().await.unwrap(), None, "an empty spool is left alone");
}

#[tokio::test]
async fn postgres_outage_file_spool_accepts_then_stores_exactly_once() {
    let Some(db) = common::postgres().await else { return };
    let dir = temp_dir("outage");
    let spool = Arc::new(Spool::new(Box::new(FileSpool::open(&dir, 64 << 20).unwrap())));
    outage(&db, spool).await;
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(!left.iter().any(|n| n.to_string_lossy().ends_with(".seg")), "drained segments are removed: {left:?}");
    db.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn postgres_outage_nats_spool_accepts_then_stores_exactly_once() {
    let Some(db) = common::postgres().await else { return };
    let stream = format!("CALLHOOK_SPOOL_TEST_{}", uuid::Uuid::new_v4().simple());
    let config = NatsSpoolConfig { url: common::nats_url(), stream: stream.clone(), replicas: 1, max_bytes: 64 << 20 };
    let backend = match NatsSpool::open(config).await {
        Ok(backend) => backend,
        Err(e) if common::nats_optional(&e) => return,
        Err(e) => panic!("NATS is required (CALLHOOK_REQUIRE_NATS) but unavailable: {e}"),
    };
    outage(&db, Arc::new(Spool::new(Box::new(backend)))).await;
    let js = async_nats::jetstream::new(async_nats::connect(common::nats_url()).await.unwrap());
    for name in [stream.clone(), format!("{stream}_SET_ASIDE")] {
        js.delete_stream(name).await.unwrap();
    }
    db.cleanup().await;
}

/// A network partition: the database's connections stay open and fall silent, so a
/// query would hang for as long as the pool lets it. The callback is spooled once
/// the spool's store timeout passes — not when the provider has given up.
#[tokio::test]
async fn postgres_partition_spools_after_the_store_timeout() {
    let Some(db) = common::postgres().await else { return };
    let proxy = TcpProxy::start(postgres_addr()).await;
    // A pool that would wait a minute for a connection: only the store timeout helps.
    let store = db.store_through_with(proxy.addr, std::time::Duration::from_secs(60));
    store.ping().await.expect("the proxy forwards");
    let dir = temp_dir("partition");
    let backend = FileSpool::open(&dir, 64 << 20).unwrap();
    let spool = Arc::new(Spool::new(Box::new(backend)).with_store_timeout(std::time::Duration::from_millis(300)));
    let app = common::app_with_spool(store.clone(), spool.clone());

    proxy.stall();
    let (status, body) = send(&app, callback("c-partition", "CApartition", "completed")).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::ACCEPTED, Some("spooled")), "{body}");
    assert!(spool.store_down(), "the next callbacks go straight to the spool");
    let (status, _) = send(&app, callback("c-partition", "CApartition2", "completed")).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    proxy.up();
    let store = db.store_through(proxy.addr); // the stalled connections are gone for good
    let mut drainer = Drainer::new(spool.clone(), store, std::time::Duration::from_millis(10), false);
    let report = drainer.round().await.unwrap().expect("drained");
    assert_eq!((report.stored, report.duplicates), (2, 0), "{report:?}");
    let _ = std::fs::remove_dir_all(dir);
    db.cleanup().await;
}
