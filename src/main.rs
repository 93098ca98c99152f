//! The `callhook` binary: applies the optional config file, parses flags and runs a
//! subcommand from `callhook::cli`.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use tracing_subscriber::EnvFilter;

use callhook::cli;
use callhook::config::{
    CallsCommand, Cli, Command, ConfigCommand, EventsCommand, LogFormat, OutboxCommand, SpoolCommand,
};
use callhook::config_file;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    // Before any thread exists: the file's settings become environment variables.
    let layer = match config_file::apply(&args) {
        Ok(layer) => layer,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let matches = Cli::command().get_matches_from(&args);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    init_tracing(
        cli.log_format,
        matches!(cli.command, Command::Demo(_) | Command::Config(_) | Command::Campaigns(_) | Command::Spool(_)),
    );
    if matches!(
        cli.command,
        Command::Calls(_)
            | Command::Campaigns(_)
            | Command::Outbox(_)
            | Command::Events(_)
            | Command::Config(_)
            | Command::Spool(_)
    ) {
        print_like_a_unix_tool();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => cli::serve(args).await,
            Command::Migrate(args) => cli::migrate(&args).await,
            Command::Config(ConfigCommand::Check(args)) => {
                let sub =
                    matches.subcommand_matches("config").and_then(|m| m.subcommand_matches("check")).expect("parsed");
                if cli::config_check(&args, sub, &layer)? {
                    Ok(())
                } else {
                    std::process::exit(1)
                }
            }
            Command::Demo(args) => cli::demo(args).await,
            Command::Campaigns(command) => cli::campaigns(command).await,
            Command::Calls(CallsCommand::Show { call_id, database, json }) => {
                cli::calls_show(&database, &call_id, json).await
            }
            Command::Outbox(OutboxCommand::List { database, status, limit }) => {
                cli::outbox_list(&database, status.as_deref(), limit).await
            }
            Command::Outbox(OutboxCommand::Retry { ids, all_dead, database }) => {
                cli::outbox_retry(&database, &ids, all_dead).await
            }
            Command::Events(EventsCommand::Replay { database, limit }) => cli::events_replay(&database, limit).await,
            Command::Events(EventsCommand::Prune { database, older_than, json }) => {
                cli::events::prune(&database, older_than, json).await
            }
            Command::Events(EventsCommand::Export { database, since, until, output }) => {
                cli::events::export(&database, &since, &until, output.as_deref()).await
            }
            Command::Reconcile(args) => cli::reconcile(args).await,
            Command::Spool(SpoolCommand::Status { serve, json }) => cli::spool::status(&serve, json).await,
            Command::Spool(SpoolCommand::Drain { serve }) => cli::spool::drain(&serve).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `callhook outbox list | head` must end quietly when `head` closes the pipe, as
/// Unix tools do, instead of panicking in `println!`: the reports restore the
/// default SIGPIPE action (Rust ignores it). Not for `serve`, whose sockets must
/// never kill the process.
fn print_like_a_unix_tool() {
    #[cfg(unix)]
    // SAFETY: called before any other thread exists; SIG_DFL is a valid action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Logs go to stderr; the demo and `config check` keep them to warnings so their
/// reports stay readable.
fn init_tracing(format: LogFormat, quiet: bool) {
    let default = if quiet { "warn" } else { "info,sqlx=warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
