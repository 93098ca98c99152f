//! `callhook config check`: the effective configuration, where each value came from,
//! and an explanation of every problem.

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory};

use crate::config::{Cli, ServeArgs, SinkKind, SpoolKind};
use crate::config_file::FileLayer;

/// Prints the report; `Ok(false)` when there are errors.
pub fn config_check(args: &ServeArgs, matches: &ArgMatches, layer: &FileLayer) -> anyhow::Result<bool> {
    let command = Cli::command();
    let serve = command.find_subcommand("serve").expect("serve exists");
    if let Some(path) = &layer.path {
        println!("config file: {}", path.display());
    }
    println!("{:<38} {:<8} value", "setting", "from");
    for arg in serve.get_arguments() {
        let id = arg.get_id().as_str();
        if matches!(id, "help" | "version") {
            continue;
        }
        let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
        let from = match matches.value_source(id) {
            Some(ValueSource::CommandLine) => "flag",
            Some(ValueSource::EnvVariable) if env.as_ref().is_some_and(|e| layer.env_names.contains(e)) => "file",
            Some(ValueSource::EnvVariable) => "env",
            Some(_) => "default",
            None => "unset",
        };
        let raw: Vec<String> = matches
            .get_raw(id)
            .map(|vals| vals.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let value = if id == "database_url" {
            raw.iter().map(|u| mask_password(u)).collect::<Vec<_>>().join(",")
        } else if arg.is_hide_env_values_set() && raw.iter().any(|v| !v.is_empty()) {
            "***".to_owned()
        } else {
            raw.join(",")
        };
        let name = arg.get_long().unwrap_or(id).replace('-', "_");
        println!("{name:<38} {from:<8} {value}");
    }

    let mut errors = args.problems();
    let mut warnings: Vec<String> = vec![];
    let db = &args.database.database_url;
    if !(db.starts_with("postgres://") || db.starts_with("postgresql://") || db.starts_with("sqlite:")) {
        errors.push(format!(
            "database_url must start with postgres:// or sqlite:, got `{}`",
            db.split("://").next().unwrap_or(db)
        ));
    }
    if let Some(w) = args.outbox.log_sink_warning() {
        warnings.push(w.to_owned());
    }
    if args.outbox.sink == SinkKind::Http {
        match &args.outbox.sink_http_url {
            None => errors.push("sink = http needs sink_http_url (CALLHOOK_SINK_HTTP_URL)".into()),
            Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => {
                errors.push(format!("sink_http_url must be an http(s) URL, got `{u}`"))
            }
            _ => {}
        }
        if args.outbox.sink_http_secret.is_none() {
            errors.push("sink = http needs sink_http_secret (CALLHOOK_SINK_HTTP_SECRET, `whsec_…`) so the receiver can verify jobs".into());
        }
    }
    let providers = args.providers();
    if providers.insecure_skip_verification {
        warnings.push("insecure_skip_signature_verification is on: anyone can post callbacks".into());
    } else if providers.configured().is_empty() {
        warnings.push(
            "no provider credentials: every callback will be refused with 403 (set e.g. twilio_auth_tokens)".into(),
        );
    }
    if args.admin_tokens.iter().all(|t| t.expose().trim().is_empty()) {
        warnings.push("no admin_tokens: the admin API (/api/v1) and the console (/ui) are disabled".into());
    }
    if let Ok(accounts) = args.accounts() {
        if !accounts.is_empty() {
            warnings.push(format!(
                "accounts_file: {} Twilio, {} SignalWire and {} Plivo account(s); callbacks of other accounts of those providers are refused{}",
                accounts.twilio.len(),
                accounts.signalwire.len(),
                accounts.plivo.len(),
                if args.twilio_auth_tokens.is_empty() { "" } else { " unless the single-account tokens verify them" }
            ));
        }
    }
    match args.spool.effective(db) {
        SpoolKind::File => match crate::spool::preflight(&args.spool.spool_dir) {
            Ok(note) => warnings.extend(note),
            Err(e) => errors.push(e.to_string()),
        },
        SpoolKind::Nats => warnings.push(format!(
            "spool = nats: stream {} on {} is checked when serve starts",
            args.spool.spool_nats_stream, args.outbox.nats_url
        )),
        SpoolKind::Off | SpoolKind::Auto if !db.starts_with("sqlite:") => warnings.push(
            "spool = off with PostgreSQL: callbacks arriving during a database outage are answered 503, and most providers do not retry them".into(),
        ),
        SpoolKind::Off | SpoolKind::Auto => {}
    }
    for w in &warnings {
        println!("warning: {w}");
    }
    for e in &errors {
        println!("error: {e}");
    }
    println!("{}", if errors.is_empty() { "configuration OK" } else { "configuration has errors" });
    Ok(errors.is_empty())
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((userinfo, host)) = rest.split_once('@') else { return url.to_owned() };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn masks_only_the_password() {
        assert_eq!(super::mask_password("postgres://app:s3cret@db:5432/x"), "postgres://app:***@db:5432/x");
        assert_eq!(super::mask_password("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(super::mask_password("sqlite://callhook.db"), "sqlite://callhook.db");
    }
}
