//! The `callhook` command line: `serve` and `migrate`.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use callhook::config::{Cli, Command, DatabaseArgs, LogFormat, ServeArgs};
use callhook::store::{self, Store};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Migrate(args) => {
            let store = open(&args).await?;
            store.migrate().await?;
            println!("migrations applied ({})", store.backend());
            Ok(())
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn open(args: &DatabaseArgs) -> anyhow::Result<Arc<dyn Store>> {
    store::connect(&args.database_url, args.db_max_connections)
        .await
        .with_context(|| "could not open the database (check DATABASE_URL)")
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let store = open(&args.database).await?;
    if !args.no_migrate {
        store.migrate().await?;
    }
    let state = args.app_state(store.clone());
    if state.providers.insecure_skip_verification {
        tracing::warn!("signature verification is DISABLED: anyone can post callbacks. Never run this in production.");
    } else if state.providers.twilio.auth_tokens.is_empty() && state.providers.twilio.shared_keys.is_empty() {
        tracing::warn!("no Twilio credentials configured (CALLHOOK_TWILIO_AUTH_TOKENS): Twilio callbacks will be refused with 403");
    }
    let app = callhook::http::router(state, args.limits());
    let listener = TcpListener::bind(args.listen).await.with_context(|| format!("could not listen on {}", args.listen))?;
    tracing::info!(addr = %listener.local_addr()?, store = store.backend(), "callhook ready");
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM; axum then stops accepting and drains in-flight requests.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; draining in-flight requests");
}
