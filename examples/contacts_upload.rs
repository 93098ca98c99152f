//! Bulk contact upload: `cargo run --release --example contacts_upload [N]` uploads N
//! contacts (default 100,000) to one campaign through `Store::add_contacts` — the
//! store side of `POST /api/v1/campaigns/{id}/contacts` — on PostgreSQL
//! (`CALLHOOK_BENCH_DATABASE_URL`, default the local test database, in a scratch
//! schema) and on a SQLite file, and prints the time each took.

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

async fn report(backend: &str, n: usize, store: &dyn Store, contacts: Vec<NewContact>) -> anyhow::Result<()> {
    let campaign = store.create_campaign(NewCampaign::named("upload")).await?;
    let started = Instant::now();
    let created = store.add_contacts(campaign.id, contacts).await?;
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(created.len(), n);
    println!("{backend:<8} {n} contacts in {secs:.2} s ({:.0} contacts/s)", n as f64 / secs);
    Ok(())
}
