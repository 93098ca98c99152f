//! Shared test fixtures: a fresh store of each backend, the real router in front of
//! it, and Twilio-signed callback requests.
//!
//! PostgreSQL tests use `CALLHOOK_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and give every test its own schema.
//! Where no server answers they are skipped with a notice, unless
//! `CALLHOOK_REQUIRE_POSTGRES=1` (set by CI), where they fail instead.
#![allow(dead_code)]

pub mod tcp_proxy;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tower::ServiceExt;
use uuid::Uuid;

use callhook::domain::{Campaign, Contact, Provider};
use callhook::http::{router, AppState, ExternalUrl, Limits};
use callhook::providers::simulate::{Callback, Signed, Signer};
use callhook::providers::twilio::{self, Algorithm};
use callhook::providers::Providers;
use callhook::secret::Secret;
use callhook::store::{NewCampaign, NewContact, PgStore, SqliteStore, Store};

/// Generates a `sqlite` and a `postgres` test for each async fn taking the store.
#[allow(unused_macros)]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = crate::common::sqlite().await;
                    super::$name(db.store.clone()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = crate::common::postgres().await else { return };
                    super::$name(db.store.clone()).await;
                    db.cleanup().await;
                }
            )*
        }
    };
}

pub const TOKEN: &str = "test-auth-token";
pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const HOST: &str = "callhook.test";

/// A store under test and how to take it down.
pub struct TestDb {
    pub store: Arc<dyn Store>,
    pub backend: &'static str,
    pg: Option<(sqlx::PgPool, sqlx::PgPool, String)>,
    sqlite: Option<SqliteStore>,
}

impl TestDb {
    /// Closes the store's connections, as if the database went away.
    pub async fn break_connection(&self) {
        if let Some((_, pool, _)) = &self.pg {
            pool.close().await;
        }
        if let Some(s) = &self.sqlite {
            s.pool().close().await;
        }
    }

    /// Runs raw SQL (one or more statements) on this test's database, beside the store.
    pub async fn execute_script(&self, sql: &str) {
        match (&self.pg, &self.sqlite) {
            (Some((_, pool, _)), _) => sqlx::raw_sql(sql).execute(pool).await.map(drop),
            (_, Some(s)) => sqlx::raw_sql(sql).execute(s.pool()).await.map(drop),
            _ => unreachable!("a test db has a backend"),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Applies the embedded migrations up to `version` only: a database as an
    /// earlier release of callhook left it.
    pub async fn migrate_to(&self, version: i64) {
        let mut migrator = match self.backend {
            "postgres" => sqlx::migrate!("./migrations/postgres"),
            _ => sqlx::migrate!("./migrations/sqlite"),
        };
        let kept: Vec<_> = migrator.migrations.iter().filter(|m| m.version <= version).cloned().collect();
        assert!(!kept.is_empty(), "no migration up to {version}");
        migrator.migrations = kept.into();
        match (&self.pg, &self.sqlite) {
            (Some((_, pool, _)), _) => migrator.run(pool).await,
            (_, Some(s)) => migrator.run(s.pool()).await,
            _ => unreachable!("a test db has a backend"),
        }
        .expect("earlier migrations");
    }

    /// Another replica of the service on this test's PostgreSQL schema: a store
    /// with a pool of its own.
    pub async fn replica(&self) -> Arc<dyn Store> {
        let (_, _, schema) = self.pg.as_ref().expect("a PostgreSQL test db");
        let options: PgConnectOptions = postgres_url().parse().expect("postgres url");
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(options.options([("search_path", schema.as_str())]))
            .await
            .expect("connect to test schema");
        Arc::new(PgStore::from_pool(pool))
    }

    /// A store on this test's PostgreSQL schema whose connections go through
    /// `proxy` (see [`tcp_proxy`]), failing fast while it is down.
    pub fn store_through(&self, proxy: std::net::SocketAddr) -> Arc<dyn Store> {
        self.store_through_with(proxy, Duration::from_secs(2))
    }

    /// As [`TestDb::store_through`], waiting up to `acquire_timeout` for a connection.
    pub fn store_through_with(&self, proxy: std::net::SocketAddr, acquire_timeout: Duration) -> Arc<dyn Store> {
        let (_, _, schema) = self.pg.as_ref().expect("a PostgreSQL test db");
        let options: PgConnectOptions = postgres_url().parse().expect("postgres url");
        let options = options.host("127.0.0.1").port(proxy.port()).options([("search_path", schema.as_str())]);
        let pool = PgPoolOptions::new().max_connections(4).acquire_timeout(acquire_timeout).connect_lazy_with(options);
        Arc::new(PgStore::from_pool(pool))
    }

    /// The PostgreSQL pool of this test's schema.
    pub fn pg_pool(&self) -> &sqlx::PgPool {
        &self.pg.as_ref().expect("a PostgreSQL test db").1
    }

    pub async fn cleanup(self) {
        if let Some((admin, pool, schema)) = self.pg {
            pool.close().await;
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).execute(&admin).await;
        }
    }
}

pub async fn sqlite() -> TestDb {
    let db = sqlite_unmigrated().await;
    db.store.migrate().await.expect("sqlite migrations");
    db
}

/// An in-memory SQLite store with no migration applied.
pub async fn sqlite_unmigrated() -> TestDb {
    let store = SqliteStore::connect("sqlite::memory:").await.expect("in-memory sqlite");
    TestDb { store: Arc::new(store.clone()), backend: "sqlite", pg: None, sqlite: Some(store) }
}

pub fn postgres_url() -> String {
    std::env::var("CALLHOOK_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn postgres_required() -> bool {
    std::env::var("CALLHOOK_REQUIRE_POSTGRES").is_ok_and(|v| v == "1" || v == "true")
}

/// A PostgreSQL store in a schema of its own, or `None` (with a notice) when no
/// server is reachable and PostgreSQL is not required.
pub async fn postgres() -> Option<TestDb> {
    let db = postgres_unmigrated().await?;
    db.store.migrate().await.expect("postgres migrations");
    Some(db)
}

/// As [`postgres`], with an empty schema: no migration applied.
pub async fn postgres_unmigrated() -> Option<TestDb> {
    let url = postgres_url();
    let admin =
        match PgPoolOptions::new().max_connections(1).acquire_timeout(Duration::from_secs(3)).connect(&url).await {
            Ok(pool) => pool,
            Err(e) if !postgres_required() => {
                // Straight to stderr: the test harness captures `eprintln!` of passing tests.
                use std::io::Write;
                let _ = writeln!(std::io::stderr(), "NOTICE: PostgreSQL test SKIPPED: cannot connect to {url}: {e}");
                return None;
            }
            Err(e) => panic!("PostgreSQL is required (CALLHOOK_REQUIRE_POSTGRES) but {url} is unreachable: {e}"),
        };
    let schema = format!("test_{}", Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&admin).await.expect("create schema");
    let options: PgConnectOptions = url.parse().expect("postgres url");
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .connect_with(options.options([("search_path", schema.as_str())]))
        .await
        .expect("connect to test schema");
    let store = PgStore::from_pool(pool.clone());
    Some(TestDb { store: Arc::new(store), backend: "postgres", pg: Some((admin, pool, schema)), sqlite: None })
}

/// Keys for every provider; Twilio's token is [`TOKEN`].
pub fn signer() -> Signer {
    let mut signer = Signer::from_seed("callhook-tests");
    signer.twilio_token = TOKEN.to_owned();
    // The accounts the fake providers' APIs answer for.
    signer.twilio_account = "AC0123456789abcdef0123456789abcdef".to_owned();
    signer.signalwire_project = "b3877c40-da60-4998-90ad-b792e98472af".to_owned();
    signer
}

pub fn providers() -> Providers {
    signer().providers()
}

/// A `provider` callback to `path_and_query`, signed as that provider signs it.
pub fn provider_callback(provider: Provider, path_and_query: &str, cb: &Callback<'_>) -> Request<Body> {
    let signed =
        signer().callback(provider, &format!("http://{HOST}{path_and_query}"), cb, chrono::Utc::now().timestamp());
    to_request(path_and_query, signed)
}

/// A raw body (e.g. a fixture) for `provider`, signed now.
pub fn provider_raw(provider: Provider, path_and_query: &str, content_type: &'static str, body: &str) -> Request<Body> {
    let url = format!("http://{HOST}{path_and_query}");
    let signed =
        signer().sign(provider, &url, content_type, body.trim().as_bytes().to_vec(), chrono::Utc::now().timestamp());
    to_request(path_and_query, signed)
}

pub fn to_request(path_and_query: &str, signed: Signed) -> Request<Body> {
    let mut b = Request::post(path_and_query).header("host", HOST).header("content-type", signed.content_type);
    for (k, v) in &signed.headers {
        b = b.header(*k, v);
    }
    b.body(Body::from(signed.body)).unwrap()
}

pub fn app(store: Arc<dyn Store>) -> Router {
    app_with(store, providers())
}

pub fn app_with(store: Arc<dyn Store>, providers: Providers) -> Router {
    build(store, providers, vec![Secret::new(ADMIN_TOKEN)])
}

pub fn app_with_admin(store: Arc<dyn Store>, admin_tokens: Vec<Secret>) -> Router {
    build(store, providers(), admin_tokens)
}

/// The router with an outage spool in front of `store`.
pub fn app_with_spool(store: Arc<dyn Store>, spool: Arc<callhook::spool::Spool>) -> Router {
    router(AppState { spool: Some(spool), ..state(store) }, Limits::default())
}

fn build(store: Arc<dyn Store>, providers: Providers, admin_tokens: Vec<Secret>) -> Router {
    router(state_with(store, providers, admin_tokens), Limits::default())
}

/// The state [`app`] serves, for a test that changes a part of it.
pub fn state(store: Arc<dyn Store>) -> AppState {
    state_with(store, providers(), vec![Secret::new(ADMIN_TOKEN)])
}

/// As `serve` runs by default: on PostgreSQL, webhooks go through group commit, so
/// every router test on PostgreSQL runs with batching on.
fn state_with(store: Arc<dyn Store>, providers: Providers, admin_tokens: Vec<Secret>) -> AppState {
    let config = callhook::batcher::BatchConfig { max_events: 64, max_wait: Duration::from_millis(2), workers: 4 };
    let batcher =
        (store.backend() == "postgres").then(|| Arc::new(callhook::batcher::Batcher::start(store.clone(), config)));
    AppState {
        spool: None,
        batcher,
        store,
        providers: Arc::new(providers),
        external_url: Arc::new(ExternalUrl::default()),
        default_provider: Provider::Twilio,
        max_body_bytes: 64 * 1024,
        admin_tokens: Arc::new(admin_tokens),
        timeouts: Default::default(),
    }
}

/// A Twilio callback as its adapter would have parsed it, correlated by `call_id`.
pub fn call_event(
    call_id: &str,
    sid: &str,
    status: &str,
    event_type: callhook::domain::EventType,
) -> callhook::domain::CallEvent {
    callhook::domain::CallEvent {
        provider: Provider::Twilio,
        dedupe_key: format!("twilio:{sid}:{status}"),
        event_type: Some(event_type),
        provider_status: status.into(),
        provider_call_id: sid.into(),
        call_id: Some(call_id.into()),
        campaign_id: None,
        contact_id: None,
        sequence_number: None,
        occurred_at: None,
        received_at: chrono::Utc::now(),
        duration_seconds: Some(7),
        answered_by: None,
        error_code: None,
        error_message: None,
        payload: serde_json::json!({"CallSid": sid, "CallStatus": status}),
        source: callhook::domain::EventSource::Callback,
        account_sid: None,
        account_checked: false,
    }
}

/// Runs the `callhook` binary as a user would (no `DATABASE_URL` from the
/// environment): whether it succeeded, its stdout and its stderr.
pub fn callhook(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_callhook"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run callhook");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// A fresh directory under the system's temporary one, for a test's files.
pub fn scratch_dir(label: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("callhook-{label}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

/// The NATS server the NATS tests use (`CALLHOOK_TEST_NATS_URL`).
pub fn nats_url() -> String {
    std::env::var("CALLHOOK_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// Whether a NATS test may skip (with a notice) when no server answers.
pub fn nats_optional(e: &dyn std::fmt::Display) -> bool {
    if std::env::var("CALLHOOK_REQUIRE_NATS").is_err() {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "NOTICE: NATS test SKIPPED: {e}");
        return true;
    }
    false
}

pub fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

pub fn encode(fields: &[(String, String)]) -> String {
    let enc = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
    fields.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

/// A form callback to `path_and_query`, signed as Twilio would with [`TOKEN`].
pub fn signed(path_and_query: &str, fields: &[(String, String)]) -> Request<Body> {
    let url = format!("http://{HOST}{path_and_query}");
    let signature = twilio::sign(Algorithm::HmacSha1, TOKEN, &url, fields);
    Request::post(path_and_query)
        .header("host", HOST)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(Body::from(encode(fields)))
        .unwrap()
}

/// An admin API request with the test bearer token, and `body` as JSON if given.
pub fn admin(method: &str, path: &str, body: Option<Value>) -> Request<Body> {
    let b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", HOST)
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"));
    match body {
        Some(json) => b.header("content-type", "application/json").body(Body::from(json.to_string())).unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

/// A Twilio status callback for `call_sid` in `status`, correlated by `call_id`.
pub fn callback(call_id: &str, call_sid: &str, status: &str) -> Request<Body> {
    callback_with(call_id, call_sid, status, &[])
}

pub fn callback_with(call_id: &str, call_sid: &str, status: &str, extra: &[(&str, &str)]) -> Request<Body> {
    let mut f = fields(&[
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("CallSid", call_sid),
        ("CallStatus", status),
        ("From", "+15005550006"),
        ("To", "+14155550100"),
        ("Direction", "outbound-api"),
    ]);
    f.extend(fields(extra));
    signed(&format!("/webhooks/telephony/events?call_id={call_id}"), &f)
}

pub async fn send(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let res: Response<Body> = app.clone().oneshot(req).await.expect("router never fails");
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, json)
}

/// A zone where it is mid-afternoon now (14:xx local), so that the default calling
/// window (09:00–20:00) is open for hours whenever the tests run: registration
/// refuses calls outside the window, and these tests are about something else.
pub fn daytime_zone() -> String {
    zone_at_local_hour(14)
}

/// A zone where it is 02:xx now: outside every calling window.
pub fn night_zone() -> String {
    zone_at_local_hour(2)
}

fn zone_at_local_hour(hour: i32) -> String {
    let mut offset = hour - chrono::Timelike::hour(&chrono::Utc::now()) as i32;
    if offset > 14 {
        offset -= 24;
    } else if offset < -12 {
        offset += 24;
    }
    match offset {
        0 => "Etc/GMT".into(),
        // POSIX sign convention: Etc/GMT-3 is three hours ahead of UTC.
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    }
}

pub async fn campaign(store: &Arc<dyn Store>, max_attempts: i32) -> Campaign {
    let mut new = NewCampaign::named("spring survey");
    new.max_attempts = Some(max_attempts);
    new.timezone = Some(daytime_zone());
    store.create_campaign(new).await.unwrap()
}

/// A new contact of `campaign`, with a phone number of its own.
pub async fn contact(store: &Arc<dyn Store>, campaign: &Campaign) -> Contact {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(100);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    add_contacts(store, campaign, vec![NewContact::phone(format!("+1415555{n:04}"))]).await.remove(0)
}

/// Adds contacts (refusing duplicates) and returns them.
pub async fn add_contacts(store: &Arc<dyn Store>, campaign: &Campaign, new: Vec<NewContact>) -> Vec<Contact> {
    store.add_contacts(campaign.id, new, callhook::store::OnDuplicate::Reject).await.unwrap().contacts
}

/// The value of one series in a Prometheus text exposition: the sample of metric
/// `name` whose label set is exactly `labels` (in any order), or `None` when that
/// series is absent. Label values may hold any character (`{`, `}`, `,`, escaped
/// quotes), as route templates do.
pub fn series_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut wanted: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    wanted.sort();
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (mut found, value) = if let Some(rest) = rest.strip_prefix('{') {
            parse_labels(rest)?
        } else if rest.starts_with(' ') {
            (Vec::new(), rest)
        } else {
            return None; // another metric whose name starts with `name`
        };
        found.sort();
        if found != wanted {
            return None;
        }
        value.split_whitespace().next()?.parse().ok()
    })
}

/// Parses `k="v",k2="v2"} rest` into its labels and the text after the `}`.
fn parse_labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches(',');
        if let Some(rest) = s.strip_prefix('}') {
            return Some((labels, rest));
        }
        let (key, rest) = s.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key.trim().to_owned(), value));
        s = &rest[end + 1..];
    }
}

/// `GET /metrics` through `app`: the Prometheus text of this process's recorder.
pub async fn scrape_metrics(app: &Router) -> String {
    let res = app.clone().oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}
