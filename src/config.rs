//! Configuration from flags and the environment (`CALLHOOK_*`, `DATABASE_URL`).
//! Every flag has an environment twin; secrets are [`Secret`]s, whose values clap
//! never shows in `--help` and `Debug` never prints.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::domain::Provider;
use crate::http::{AppState, ExternalUrl, Limits};
use crate::providers::plivo::PlivoConfig;
use crate::providers::telnyx::TelnyxConfig;
use crate::providers::twilio::TwilioConfig;
use crate::providers::vonage::VonageConfig;
use crate::providers::Providers;
use crate::secret::Secret;
use crate::store::Store;
use accounts::AccountsFile;

pub mod accounts;
mod batch;
mod outbox;
mod retention;
mod server;
mod spool;
pub use batch::BatchArgs;
pub use outbox::{OutboxArgs, SinkKind};
pub use retention::RetentionArgs;
pub use server::ServerArgs;
pub use spool::{SpoolArgs, SpoolKind};

#[derive(Debug, Parser)]
#[command(name = "callhook", version, about = "Telephony call-status webhooks, recorded exactly once.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format.
    #[arg(long, global = true, env = "CALLHOOK_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Optional TOML file of settings (flags and environment take precedence).
    #[arg(long, global = true, env = "CALLHOOK_CONFIG")]
    pub config: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the webhook service and the outbox dispatcher (applies migrations first
    /// unless --no-migrate).
    Serve(ServeArgs),
    /// Apply the embedded migrations and exit.
    Migrate(DatabaseArgs),
    /// Check the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Play a small simulated campaign through the real HTTP endpoint with signed
    /// callbacks, on a temporary embedded SQLite, and print what happened.
    Demo(DemoArgs),
    /// List, inspect, dial, pause, resume and stop campaigns.
    #[command(subcommand)]
    Campaigns(CampaignsCommand),
    /// Inspect calls.
    #[command(subcommand)]
    Calls(CallsCommand),
    /// Inspect and retry outbox jobs.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// Work on stored events.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Settle calls whose callbacks were lost: ask the providers' REST APIs about
    /// calls quiet too long, time out overdue dialogue verdicts, replay deferred
    /// events. Runs every interval until stopped (serve runs it too), or once.
    Reconcile(ReconcileCommandArgs),
    /// Inspect or drain the outage spool (callbacks accepted while the store was down).
    #[command(subcommand)]
    Spool(SpoolCommand),
}

#[derive(Debug, Subcommand)]
pub enum SpoolCommand {
    /// Records, bytes, the oldest record's age and the records set aside.
    Status {
        #[command(flatten)]
        serve: Box<ServeArgs>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Apply every spooled callback to the store now and exit (a file spool only
    /// when no `serve` holds its directory: a running service drains on its own).
    Drain {
        #[command(flatten)]
        serve: Box<ServeArgs>,
    },
}

#[derive(Debug, Args)]
pub struct ReconcileCommandArgs {
    /// Run one pass and exit.
    #[arg(long)]
    pub once: bool,
    /// Look this call up now, whatever its times, and exit.
    #[arg(long, value_name = "CALL_ID")]
    pub call: Option<String>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective `serve` configuration (secrets masked) with where each
    /// value came from, and explain every problem; exits non-zero if there is one.
    Check(ServeArgs),
}

#[derive(Debug, Subcommand)]
pub enum CampaignsCommand {
    /// Campaigns, oldest first.
    List {
        /// Only campaigns in this status (running, paused, stopped).
        #[arg(long)]
        status: Option<crate::domain::CampaignStatus>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[command(flatten)]
        database: DatabaseArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// A campaign's settings.
    Show {
        id: uuid::Uuid,
        #[command(flatten)]
        database: DatabaseArgs,
        #[arg(long)]
        json: bool,
    },
    /// Contacts by state and last outcome, attempts, calls in flight.
    Stats {
        id: uuid::Uuid,
        #[command(flatten)]
        database: DatabaseArgs,
        #[arg(long)]
        json: bool,
    },
    /// Claim up to --limit due contacts and register a call for each; prints the
    /// numbers to dial with their status callback URLs (CALLHOOK_PUBLIC_BASE_URL).
    Dial {
        id: uuid::Uuid,
        #[arg(long)]
        limit: i64,
        /// The provider the calls are placed with (default: the default provider).
        #[arg(long)]
        provider: Option<Provider>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        serve: Box<ServeArgs>,
    },
    /// Stop claiming and registering calls until resumed.
    Pause {
        id: uuid::Uuid,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Resume a paused campaign.
    Resume {
        id: uuid::Uuid,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Stop a campaign for good.
    Stop {
        id: uuid::Uuid,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum CallsCommand {
    /// A call attempt's state and its event timeline.
    Show {
        call_id: String,
        #[command(flatten)]
        database: DatabaseArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Outbox jobs, oldest first, with a summary.
    List {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Only jobs in this status (pending, done, dead).
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Make dead jobs due again with a fresh attempt budget.
    Retry {
        /// Job ids to retry.
        ids: Vec<uuid::Uuid>,
        /// Retry every dead job.
        #[arg(long, conflicts_with = "ids")]
        all_dead: bool,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Apply deferred events whose call attempt has been registered since.
    Replay {
        #[command(flatten)]
        database: DatabaseArgs,
        #[arg(long, default_value_t = 10_000)]
        limit: i64,
    },
    /// Remove inbox events and finished outbox jobs of calls that ended more than
    /// DAYS ago (never of a call still open); on PostgreSQL whole monthly
    /// partitions are dropped. Export them first with `events export`.
    Prune {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Age in days (1–3650).
        #[arg(long, value_name = "DAYS", allow_negative_numbers = true)]
        older_than: i64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the inbox events received in [--since, --until) as JSON lines, oldest
    /// first (RFC 3339 instants or UTC dates, e.g. 2026-10-01).
    Export {
        #[command(flatten)]
        database: DatabaseArgs,
        #[arg(long)]
        since: String,
        #[arg(long)]
        until: String,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Provider whose callbacks the demo plays.
    #[arg(long, default_value = "twilio")]
    pub provider: Provider,
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
    #[command(flatten)]
    pub outbox: OutboxArgs,
    #[command(flatten)]
    pub reconcile: crate::reconcile::ReconcileArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub spool: SpoolArgs,
    #[command(flatten)]
    pub batch: BatchArgs,
    #[command(flatten)]
    pub retention: RetentionArgs,
    /// Connection overrides appended to Twilio status-callback URLs: up to 5
    /// retries on connection failures, timeouts and 5xx within Twilio's 15 s
    /// (Twilio's default is one retry, on connection failure only). Empty: none.
    #[arg(
        long,
        env = "CALLHOOK_TWILIO_CALLBACK_OVERRIDES",
        default_value = "rc=5&rp=ct,rt,5xx&ct=2000&rt=5000&tt=15000"
    )]
    pub twilio_callback_overrides: String,
    /// SignalWire's (timeouts only; it makes 3 attempts): fit them into 15 s.
    #[arg(long, env = "CALLHOOK_SIGNALWIRE_CALLBACK_OVERRIDES", default_value = "ot=2000&rt=3000&tt=15000")]
    pub signalwire_callback_overrides: String,
    /// Plivo's (same keys as Twilio's; Plivo allows 55 s in all).
    #[arg(
        long,
        env = "CALLHOOK_PLIVO_CALLBACK_OVERRIDES",
        default_value = "rc=5&rp=ct,rt,5xx&ct=2000&rt=5000&tt=55000"
    )]
    pub plivo_callback_overrides: String,
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
    /// SignalWire project signing key(s), comma-separated.
    #[arg(long, env = "CALLHOOK_SIGNALWIRE_SIGNING_KEYS", value_delimiter = ',', hide_env_values = true)]
    pub signalwire_signing_keys: Vec<Secret>,
    /// Telnyx public key(s) (base64 Ed25519), comma-separated.
    #[arg(long, env = "CALLHOOK_TELNYX_PUBLIC_KEYS", value_delimiter = ',')]
    pub telnyx_public_keys: Vec<String>,
    /// Vonage signature secret(s), comma-separated.
    #[arg(long, env = "CALLHOOK_VONAGE_SIGNATURE_SECRETS", value_delimiter = ',', hide_env_values = true)]
    pub vonage_signature_secrets: Vec<Secret>,
    /// Plivo auth token(s), comma-separated.
    #[arg(long, env = "CALLHOOK_PLIVO_AUTH_TOKENS", value_delimiter = ',', hide_env_values = true)]
    pub plivo_auth_tokens: Vec<Secret>,
    /// Several provider accounts: a TOML file mapping each Twilio AccountSid,
    /// SignalWire project and Plivo auth id to its keys and API credentials.
    #[arg(long, env = "CALLHOOK_ACCOUNTS_FILE")]
    pub accounts_file: Option<std::path::PathBuf>,
    /// DANGER: accept callbacks without checking signatures. Logs a warning on every request.
    #[arg(long, env = "CALLHOOK_INSECURE_SKIP_SIGNATURE_VERIFICATION")]
    pub insecure_skip_signature_verification: bool,
    /// Bearer token(s) of the admin API, comma-separated; none disables it.
    #[arg(long, env = "CALLHOOK_ADMIN_TOKENS", value_delimiter = ',', hide_env_values = true)]
    pub admin_tokens: Vec<Secret>,
    /// Largest accepted webhook body, in bytes.
    #[arg(long, env = "CALLHOOK_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,
    /// Handlers taking longer (from taking a processing slot) are answered 408 (and
    /// roll back).
    #[arg(long, env = "CALLHOOK_REQUEST_TIMEOUT_SECS", default_value_t = 10)]
    pub request_timeout_secs: u64,
    /// Requests processed at once, over the whole service; more wait briefly for a
    /// slot (CALLHOOK_QUEUE_TIMEOUT_MS), then get 503.
    #[arg(long, env = "CALLHOOK_MAX_CONCURRENT_REQUESTS", default_value_t = 1024)]
    pub max_concurrent_requests: usize,
}

impl ServeArgs {
    /// The accounts file's accounts (none without a file; a broken file is one of
    /// [`problems`](Self::problems), so `serve` never starts with it).
    pub fn accounts(&self) -> Result<AccountsFile, String> {
        self.accounts_file.as_deref().map_or_else(|| Ok(AccountsFile::default()), AccountsFile::load)
    }

    pub fn providers(&self) -> Providers {
        let accounts = self.accounts().unwrap_or_default();
        Providers {
            twilio: TwilioConfig {
                auth_tokens: non_empty(&self.twilio_auth_tokens),
                shared_keys: non_empty(&self.twilio_shared_keys),
                accounts: accounts.twilio_accounts(),
            },
            signalwire: TwilioConfig {
                auth_tokens: non_empty(&self.signalwire_signing_keys),
                shared_keys: vec![],
                accounts: accounts.signalwire_accounts(),
            },
            telnyx: TelnyxConfig {
                public_keys: self
                    .telnyx_public_keys
                    .iter()
                    .map(|k| k.trim().to_owned())
                    .filter(|k| !k.is_empty())
                    .collect(),
            },
            vonage: VonageConfig { signature_secrets: non_empty(&self.vonage_signature_secrets) },
            plivo: PlivoConfig {
                auth_tokens: non_empty(&self.plivo_auth_tokens),
                auth_id: self.reconcile.plivo_auth_id.clone().filter(|id| !id.trim().is_empty()),
                accounts: accounts.plivo_accounts(),
            },
            insecure_skip_verification: self.insecure_skip_signature_verification,
        }
    }

    /// Configuration mistakes worth refusing to start over.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = vec![];
        problems.extend(self.accounts().err());
        for key in &self.providers().telnyx.public_keys {
            if crate::providers::telnyx::parse_key(key).is_none() {
                problems.push(format!("CALLHOOK_TELNYX_PUBLIC_KEYS: `{key}` is not a base64 Ed25519 public key"));
            }
        }
        if let Some(url) = &self.public_base_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                problems.push(format!("CALLHOOK_PUBLIC_BASE_URL must start with http:// or https://, got `{url}`"));
            }
        }
        problems.extend(self.reconcile.problems());
        problems.extend(self.server.problems());
        problems.extend(self.spool.problems());
        problems.extend(self.retention.problems());
        problems.extend(self.batch.problems(self.database.db_max_connections));
        let ranges = [
            ("CALLHOOK_MAX_BODY_BYTES", self.max_body_bytes as u64, 1024..=16 * 1024 * 1024),
            ("CALLHOOK_REQUEST_TIMEOUT_SECS", self.request_timeout_secs, 1..=3600),
            ("CALLHOOK_MAX_CONCURRENT_REQUESTS", self.max_concurrent_requests as u64, 1..=1_000_000),
        ];
        problems.extend(ranges.into_iter().filter_map(|(name, v, range)| server::out_of_range(name, v, range)));
        if self.server.metrics_listen == Some(self.listen) {
            problems.push("CALLHOOK_METRICS_LISTEN must differ from CALLHOOK_LISTEN".into());
        }
        if self.outbox.lease_secs_below_timeout() {
            problems.push(
                "outbox_lease_secs must exceed sink_http_timeout_secs, or a slow delivery could be claimed twice"
                    .into(),
            );
        }
        problems
    }

    pub fn app_state(&self, store: Arc<dyn Store>, spool: Option<Arc<crate::spool::Spool>>) -> AppState {
        let batcher = self
            .batch
            .config(&self.database.database_url)
            .map(|config| Arc::new(crate::batcher::Batcher::start(store.clone(), config)));
        AppState {
            store,
            spool,
            batcher,
            providers: Arc::new(self.providers()),
            external_url: Arc::new(ExternalUrl {
                public_base_url: self.public_base_url.clone(),
                trust_forwarded_headers: self.trust_forwarded_headers,
                callback_fragments: vec![
                    (Provider::Twilio, self.twilio_callback_overrides.clone()),
                    (Provider::SignalWire, self.signalwire_callback_overrides.clone()),
                    (Provider::Plivo, self.plivo_callback_overrides.clone()),
                ],
            }),
            default_provider: self.default_provider,
            max_body_bytes: self.max_body_bytes,
            admin_tokens: Arc::new(non_empty(&self.admin_tokens)),
            timeouts: self.reconcile.timeouts(),
        }
    }

    pub fn limits(&self) -> Limits {
        Limits {
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            max_concurrent_requests: self.max_concurrent_requests,
            queue_timeout: Duration::from_millis(self.server.queue_timeout_ms),
            body_read_timeout: Duration::from_secs(self.server.body_read_timeout_secs),
            max_admin_body_bytes: self.server.max_admin_body_bytes,
        }
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
        assert!(args.problems().is_empty(), "{:?}", args.problems());
    }

    #[test]
    fn connection_limits_are_checked_for_range() {
        let cli = Cli::try_parse_from([
            "callhook",
            "serve",
            "--header-read-timeout-secs=0",
            "--max-connections=0",
            "--queue-timeout-ms=60001",
            "--max-concurrent-requests=0",
            "--listen=127.0.0.1:9000",
            "--metrics-listen=127.0.0.1:9000",
            "--metrics-token=",
            "--retention-days=-3",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else { panic!("serve") };
        let problems = args.problems().join("\n");
        for name in [
            "CALLHOOK_HEADER_READ_TIMEOUT_SECS must be between 1 and 300, got 0",
            "CALLHOOK_MAX_CONNECTIONS",
            "CALLHOOK_QUEUE_TIMEOUT_MS",
            "CALLHOOK_MAX_CONCURRENT_REQUESTS",
            "CALLHOOK_METRICS_LISTEN must differ",
            "CALLHOOK_METRICS_TOKEN is set but empty",
            "CALLHOOK_RETENTION_DAYS: the retention age must be between 1 and 3650 days, got -3",
        ] {
            assert!(problems.contains(name), "{name} in {problems}");
        }
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
