//! Error classes through the real router, on both stores: a fault that retrying
//! cannot fix is a 500 (no `Retry-After`, nothing stored, counted), never the 503
//! that makes a provider retry an outage that is not one; a value the database
//! refuses is a 400; the store being away stays a 503 (see `http.rs`).

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use callhook::store::{NewAttempt, NewCampaign, Store, StoreError};
use common::*;

fn internal_errors() -> f64 {
    series_value(&callhook::telemetry::prometheus().render(), "callhook_internal_errors_total", &[("source", "store")])
        .unwrap_or(0.0)
}

async fn registered_call(store: &Arc<dyn Store>) -> String {
    let campaign = campaign(store, 3).await;
    let contact = contact(store, &campaign).await;
    store
        .register_attempt(NewAttempt::new(contact.id, callhook::domain::Provider::Twilio))
        .await
        .unwrap()
        .attempt
        .call_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_statement_the_database_refuses_is_500_not_503() {
    a_statement_the_database_refuses_is_500_not_503(sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_statement_the_database_refuses_is_500_not_503() {
    let Some(db) = postgres().await else { return };
    a_statement_the_database_refuses_is_500_not_503(db).await;
}

async fn a_statement_the_database_refuses_is_500_not_503(db: TestDb) {
    let call_id = registered_call(&db.store).await;
    // A schema the code does not match (a botched manual change, a bug in a
    // statement): the inbox insert names a column that is not there.
    db.execute_script("ALTER TABLE telephony_events RENAME COLUMN answered_by TO answered_by_old").await;
    let before = internal_errors();
    let res =
        tower::ServiceExt::oneshot(app(db.store.clone()), callback(&call_id, "CA1", "in-progress")).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(res.headers().get("retry-after").is_none(), "a 500 does not invite retries");
    let body: serde_json::Value =
        serde_json::from_slice(&http_body_util::BodyExt::collect(res.into_body()).await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["error"]["code"], "internal_error");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(!message.contains("answered_by"), "the database's detail is logged, not sent: {message}");
    assert!(internal_errors() >= before + 1.0, "counted");
    db.execute_script("ALTER TABLE telephony_events RENAME COLUMN answered_by_old TO answered_by").await;
    assert!(db.store.events(10).await.unwrap().is_empty(), "nothing was stored");
    let (code, _) = send(&app(db.store.clone()), callback(&call_id, "CA1", "in-progress")).await;
    assert_eq!(code, StatusCode::OK, "the same callback succeeds once the schema is right");
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_value_the_database_cannot_hold_is_invalid_input() {
    let Some(db) = postgres().await else { return };
    // PostgreSQL text cannot hold NUL (SQLSTATE 22021, a data exception): bad
    // input (400), not an outage (503) nor a bug (500). Callbacks refuse NUL before
    // the store; this is the store's own last line.
    let err = db.store.create_campaign(NewCampaign::named("spring\0survey")).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    db.cleanup().await;
}
