//! Bulk contact upload: `cargo run --release --example contacts_upload [N]` uploads N
//! contacts (default 100,000) to one campaign, through `Store::add_contacts` on
//! PostgreSQL (`CALLHOOK_BENCH_DATABASE_URL`, default the local test database, in a
//! scratch schema) and on a SQLite file, then as one
//! `POST /api/v1/campaigns/{id}/contacts` request to the service on PostgreSQL, and
//! prints the time each took.

use std::time::Instant;

use callhook::store::{NewCampaign, NewContact, PgStore, SqliteStore, Store};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().nth(1).map_or(Ok(100_000), |a| a.parse())?;
    let contacts = || (0..n).map(|i| NewContact::phone(format!("+1415{i:07}"))).collect::<Vec<_>>();

    let url = std::env::var("CALLHOOK_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let admin = PgPoolOptions::new().max_connections(1).connect(&url).await?;
    let schema = format!("bench_upload_{}", std::process::id());
    sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&admin).await?;
    let options: PgConnectOptions = url.parse()?;
    let pool =
        PgPoolOptions::new().max_connections(4).connect_with(options.options([("search_path", &schema)])).await?;
    let pg = PgStore::from_pool(pool.clone());
    pg.migrate().await?;
    report("postgres", n, &pg, contacts()).await?;
    over_http(&url, &schema, n).await?;
    pool.close().await;
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(&admin).await?;

    let dir = std::env::temp_dir().join(&schema);
    std::fs::create_dir_all(&dir)?;
    let sqlite = SqliteStore::connect(&format!("sqlite://{}", dir.join("upload.db").display())).await?;
    sqlite.migrate().await?;
    report("sqlite", n, &sqlite, contacts()).await?;
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

/// The same upload as one admin API request to `callhook serve` on PostgreSQL.
async fn over_http(url: &str, schema: &str, n: usize) -> anyhow::Result<()> {
    #[derive(clap::Parser)]
    struct Serve {
        #[command(flatten)]
        serve: callhook::config::ServeArgs,
    }
    let db = format!("{url}?options=-c%20search_path%3D{schema}");
    let args = <Serve as clap::Parser>::try_parse_from([
        "serve".to_owned(),
        format!("--database-url={db}"),
        "--admin-tokens=bench".to_owned(),
        "--no-dispatcher".to_owned(),
        "--no-reconciler".to_owned(),
        "--spool=off".to_owned(),
    ])?
    .serve;
    let store = callhook::store::connect(&db, 4).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let running = callhook::cli::start(&args, store, listener).await?;
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    let campaign: serde_json::Value = http
        .post(format!("{base}/api/v1/campaigns"))
        .bearer_auth("bench")
        .json(&serde_json::json!({"name": "http"}))
        .send()
        .await?
        .json()
        .await?;
    let contacts: Vec<serde_json::Value> =
        (0..n).map(|i| serde_json::json!({"phone_number": format!("+1415{i:07}")})).collect();
    let body = serde_json::to_vec(&serde_json::json!({ "contacts": contacts }))?;
    let bytes = body.len();
    let started = Instant::now();
    let res = http
        .post(format!("{base}/api/v1/campaigns/{}/contacts", campaign["id"].as_str().unwrap_or_default()))
        .bearer_auth("bench")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = res.status();
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(status.is_success(), "upload answered {status}: {}", res.text().await?);
    println!("http     {n} contacts in one request ({:.1} MiB) in {secs:.2} s", bytes as f64 / 1048576.0);
    running.stop().await
}

async fn report(backend: &str, n: usize, store: &dyn Store, contacts: Vec<NewContact>) -> anyhow::Result<()> {
    let campaign = store.create_campaign(NewCampaign::named("upload")).await?;
    let started = Instant::now();
    let created = store.add_contacts(campaign.id, contacts, Default::default()).await?.contacts;
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(created.len(), n);
    println!("{backend:<8} {n} contacts in {secs:.2} s ({:.0} contacts/s)", n as f64 / secs);
    Ok(())
}
