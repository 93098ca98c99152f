//! The `callhook` binary: parses flags and runs a subcommand from `callhook::cli`.

use clap::Parser;
use tracing_subscriber::EnvFilter;

use callhook::cli;
use callhook::config::{CallsCommand, Cli, Command, EventsCommand, LogFormat, OutboxCommand};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let quiet = matches!(cli.command, Command::Demo(_));
    init_tracing(cli.log_format, quiet);
    match cli.command {
        Command::Serve(args) => cli::serve(args).await,
        Command::Migrate(args) => cli::migrate(&args).await,
        Command::Demo(args) => cli::demo(args).await,
        Command::Calls(CallsCommand::Show { call_id, database, json }) => cli::calls_show(&database, &call_id, json).await,
        Command::Outbox(OutboxCommand::List { database, status, limit }) => {
            cli::outbox_list(&database, status.as_deref(), limit).await
        }
        Command::Outbox(OutboxCommand::Retry { ids, all_dead, database }) => cli::outbox_retry(&database, &ids, all_dead).await,
        Command::Events(EventsCommand::Replay { database, limit }) => cli::events_replay(&database, limit).await,
    }
}

/// Logs go to stderr; the demo keeps them to warnings so its report stays readable.
fn init_tracing(format: LogFormat, quiet: bool) {
    let default = if quiet { "warn" } else { "info,sqlx=warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
