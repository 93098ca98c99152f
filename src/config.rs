//! Configuration from flags and the environment (`CALLHOOK_*`, `DATABASE_URL`).
//! Every flag has an environment twin; secrets are [`Secret`]s, whose values clap
//! never shows in `--help` and `Debug` never prints.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::domain::Provider;
use crate::http::{AppState, ExternalUrl, Limits};
use crate::providers::twilio::TwilioConfig;
use crate::providers::Providers;
use crate::secret::Secret;
use crate::store::Store;

#[derive(Debug, Parser)]
#[command(name = "callhook", version, about = "Telephony call-status webhooks, recorded exactly once.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format.
    #[arg(long, global = true, env = "CALLHOOK_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the webhook service (applies migrations first unless --no-migrate).
    Serve(ServeArgs),
    /// Apply the embedded migrations and exit.
    Migrate(DatabaseArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// `sqlite://callhook.db` (embedded, the default) or `postgres://user@host/db`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://callhook.db", hide_env_values = true)]
    pub database_url: String,
    /// Connection pool size (PostgreSQL; SQLite always uses one connection).
    #[arg(long, env = "CALLHOOK_DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Address to listen on.
    #[arg(long, env = "CALLHOOK_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Do not apply migrations at start.
    #[arg(long, env = "CALLHOOK_NO_MIGRATE")]
    pub no_migrate: bool,
    /// Public base URL the providers call, e.g. `https://hooks.example.com`; signatures
    /// are checked against it plus the request path and query.
    #[arg(long, env = "CALLHOOK_PUBLIC_BASE_URL")]
    pub public_base_url: Option<String>,
    /// Rebuild the signed URL from X-Forwarded-Proto/-Host (only behind a proxy you trust).
    #[arg(long, env = "CALLHOOK_TRUST_FORWARDED_HEADERS")]
    pub trust_forwarded_headers: bool,
    /// Provider of `POST /webhooks/telephony/events`.
    #[arg(long, env = "CALLHOOK_DEFAULT_PROVIDER", default_value = "twilio")]
    pub default_provider: Provider,
    /// Twilio auth token(s), comma-separated; several allow rotation.
    #[arg(long, env = "CALLHOOK_TWILIO_AUTH_TOKENS", value_delimiter = ',', hide_env_values = true)]
    pub twilio_auth_tokens: Vec<Secret>,
    /// Twilio webhook shared key secret(s) (`X-Twilio-Webhooks-Signature-Settings`).
    #[arg(long, env = "CALLHOOK_TWILIO_SHARED_KEYS", value_delimiter = ',', hide_env_values = true)]
    pub twilio_shared_keys: Vec<Secret>,
    /// DANGER: accept callbacks without checking signatures. Logs a warning on every request.
    #[arg(long, env = "CALLHOOK_INSECURE_SKIP_SIGNATURE_VERIFICATION")]
    pub insecure_skip_signature_verification: bool,
    /// Largest accepted webhook body, in bytes.
    #[arg(long, env = "CALLHOOK_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,
    /// Requests taking longer are answered 408 (and roll back).
    #[arg(long, env = "CALLHOOK_REQUEST_TIMEOUT_SECS", default_value_t = 10)]
    pub request_timeout_secs: u64,
}

impl ServeArgs {
    pub fn providers(&self) -> Providers {
        Providers {
            twilio: TwilioConfig {
                auth_tokens: non_empty(&self.twilio_auth_tokens),
                shared_keys: non_empty(&self.twilio_shared_keys),
            },
            insecure_skip_verification: self.insecure_skip_signature_verification,
        }
    }

    pub fn app_state(&self, store: Arc<dyn Store>) -> AppState {
        AppState {
            store,
            providers: Arc::new(self.providers()),
            external_url: Arc::new(ExternalUrl {
                public_base_url: self.public_base_url.clone(),
                trust_forwarded_headers: self.trust_forwarded_headers,
            }),
            default_provider: self.default_provider,
            max_body_bytes: self.max_body_bytes,
        }
    }

    pub fn limits(&self) -> Limits {
        Limits { request_timeout: Duration::from_secs(self.request_timeout_secs) }
    }
}

/// `CALLHOOK_TWILIO_AUTH_TOKENS=""` means none, not one empty token.
fn non_empty(secrets: &[Secret]) -> Vec<Secret> {
    secrets.iter().filter(|s| !s.expose().trim().is_empty()).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_embedded_sqlite_and_enforced_signatures() {
        let cli = Cli::try_parse_from(["callhook", "serve"]).unwrap();
        let Command::Serve(args) = cli.command else { panic!("serve") };
        if std::env::var_os("DATABASE_URL").is_none() {
            assert_eq!(args.database.database_url, "sqlite://callhook.db");
        }
        assert!(!args.insecure_skip_signature_verification);
        assert_eq!(args.default_provider, Provider::Twilio);
        assert_eq!(args.max_body_bytes, 65536);
    }

    #[test]
    fn tokens_split_on_commas_and_stay_masked() {
        let cli = Cli::try_parse_from(["callhook", "serve", "--twilio-auth-tokens", "new,old,"]).unwrap();
        let Command::Serve(args) = cli.command else { panic!("serve") };
        let providers = args.providers();
        assert_eq!(providers.twilio.auth_tokens.len(), 2);
        assert!(!format!("{args:?}").contains("new"));
    }
}
