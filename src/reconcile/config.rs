//! The reconciler's settings (SPEC §9 names) and the provider REST clients they
//! configure. Flattened into `serve` and `reconcile`.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::ReconcilerConfig;
use crate::config::accounts::AccountsFile;
use crate::domain::stranded::Timeouts;
use crate::providers::api::{
    ApiError, CallApi, PlivoApi, PlivoApiConfig, TelnyxApi, TelnyxApiConfig, TwilioApi, TwilioApiConfig, VonageApi,
    VonageApiConfig,
};
use crate::secret::Secret;

#[derive(Debug, Clone, Args)]
pub struct ReconcileArgs {
    /// Time between reconciler passes.
    #[arg(long, env = "CALLHOOK_RECONCILE_INTERVAL_SECS", default_value_t = 60)]
    pub reconcile_interval_secs: u64,
    /// A call not answered yet is looked up after this long without a callback.
    #[arg(long, env = "CALLHOOK_RECONCILE_AFTER_SECS", default_value_t = 600)]
    pub reconcile_after_secs: u64,
    /// An answered call is looked up after this long without a callback.
    #[arg(long, env = "CALLHOOK_MAX_CALL_DURATION_SECS", default_value_t = 7200)]
    pub max_call_duration_secs: u64,
    /// A call the provider cannot tell about this long after registration is failed
    /// (`reconcile_gave_up`).
    #[arg(long, env = "CALLHOOK_RECONCILE_GIVE_UP_AFTER_SECS", default_value_t = 86_400)]
    pub reconcile_give_up_after_secs: u64,
    /// How long an answered call waits for its dialogue verdict after it ended.
    #[arg(long, env = "CALLHOOK_DIALOGUE_OUTCOME_TIMEOUT_SECS", default_value_t = 1800)]
    pub dialogue_outcome_timeout_secs: u64,
    /// Timeout of one provider REST request (below the reconciler's 60 s lease).
    #[arg(long, env = "CALLHOOK_PROVIDER_API_TIMEOUT_SECS", default_value_t = 10)]
    pub provider_api_timeout_secs: u64,
    /// Do not run the reconciler in this process (`true`/`1`/`yes`).
    #[arg(long, env = "CALLHOOK_NO_RECONCILER", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_reconciler: bool,

    /// Twilio: the account SID (`AC…`) whose calls are looked up.
    #[arg(long, env = "CALLHOOK_TWILIO_ACCOUNT_SID")]
    pub twilio_account_sid: Option<String>,
    /// Twilio: an API key SID (`SK…`) to use instead of the first auth token.
    #[arg(long, env = "CALLHOOK_TWILIO_API_KEY")]
    pub twilio_api_key: Option<String>,
    #[arg(long, env = "CALLHOOK_TWILIO_API_SECRET", hide_env_values = true)]
    pub twilio_api_secret: Option<Secret>,
    #[arg(long, env = "CALLHOOK_TWILIO_API_BASE", default_value = "https://api.twilio.com")]
    pub twilio_api_base: String,
    /// SignalWire: the space URL, e.g. `https://example.signalwire.com`.
    #[arg(long, env = "CALLHOOK_SIGNALWIRE_API_BASE")]
    pub signalwire_api_base: Option<String>,
    #[arg(long, env = "CALLHOOK_SIGNALWIRE_PROJECT_ID")]
    pub signalwire_project_id: Option<String>,
    #[arg(long, env = "CALLHOOK_SIGNALWIRE_API_TOKEN", hide_env_values = true)]
    pub signalwire_api_token: Option<Secret>,
    /// Telnyx: an API key (`KEY…`).
    #[arg(long, env = "CALLHOOK_TELNYX_API_KEY", hide_env_values = true)]
    pub telnyx_api_key: Option<Secret>,
    #[arg(long, env = "CALLHOOK_TELNYX_API_BASE", default_value = "https://api.telnyx.com")]
    pub telnyx_api_base: String,
    /// Vonage: the Voice application's id.
    #[arg(long, env = "CALLHOOK_VONAGE_APPLICATION_ID")]
    pub vonage_application_id: Option<String>,
    /// Vonage: the application's private key (PEM).
    #[arg(long, env = "CALLHOOK_VONAGE_PRIVATE_KEY", hide_env_values = true)]
    pub vonage_private_key: Option<Secret>,
    #[arg(long, env = "CALLHOOK_VONAGE_API_BASE", default_value = "https://api.nexmo.com")]
    pub vonage_api_base: String,
    /// Plivo: the auth id (the first of the Plivo auth tokens is its secret).
    #[arg(long, env = "CALLHOOK_PLIVO_AUTH_ID")]
    pub plivo_auth_id: Option<String>,
    #[arg(long, env = "CALLHOOK_PLIVO_API_BASE", default_value = "https://api.plivo.com")]
    pub plivo_api_base: String,
}

impl ReconcileArgs {
    pub fn timeouts(&self) -> Timeouts {
        let secs = |s: u64| chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000));
        Timeouts {
            reconcile_after: secs(self.reconcile_after_secs),
            max_call_duration: secs(self.max_call_duration_secs),
            give_up_after: secs(self.reconcile_give_up_after_secs),
            dialogue_outcome_timeout: secs(self.dialogue_outcome_timeout_secs),
        }
    }

    pub fn reconciler_config(&self) -> ReconcilerConfig {
        ReconcilerConfig {
            interval: Duration::from_secs(self.reconcile_interval_secs.max(1)),
            timeouts: self.timeouts(),
            ..ReconcilerConfig::default()
        }
    }

    /// Settings that make the reconciler useless or unsafe.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = vec![];
        let lease = ReconcilerConfig::default().lease.as_secs();
        if self.provider_api_timeout_secs == 0 || self.provider_api_timeout_secs >= lease {
            problems.push(format!("provider_api_timeout_secs must be 1–{} (below the reconciler's lease)", lease - 1));
        }
        for (name, value) in [
            ("reconcile_interval_secs", self.reconcile_interval_secs),
            ("reconcile_after_secs", self.reconcile_after_secs),
            ("max_call_duration_secs", self.max_call_duration_secs),
            ("dialogue_outcome_timeout_secs", self.dialogue_outcome_timeout_secs),
        ] {
            if value == 0 {
                problems.push(format!("{name} must be at least 1"));
            }
        }
        if self.reconcile_give_up_after_secs < self.reconcile_after_secs.max(self.max_call_duration_secs) {
            problems.push(
                "reconcile_give_up_after_secs must be at least reconcile_after_secs and max_call_duration_secs".into(),
            );
        }
        if self.signalwire_api_base.is_some() != self.signalwire_project_id.is_some()
            || self.signalwire_project_id.is_some() != self.signalwire_api_token.is_some()
        {
            problems.push(
                "SignalWire's API needs signalwire_api_base, signalwire_project_id and signalwire_api_token together"
                    .into(),
            );
        }
        if self.vonage_application_id.is_some() != self.vonage_private_key.is_some() {
            problems.push("Vonage's API needs vonage_application_id and vonage_private_key together".into());
        }
        if self.twilio_api_key.is_some() != self.twilio_api_secret.is_some() {
            problems.push("twilio_api_key and twilio_api_secret go together".into());
        }
        problems
    }

    /// The REST clients of every provider with credentials. Twilio's and Plivo's
    /// auth tokens are the first of those that verify their callbacks, as SPEC §9 says.
    pub fn apis(
        &self,
        twilio_tokens: &[Secret],
        plivo_tokens: &[Secret],
        accounts: &AccountsFile,
    ) -> Result<Vec<Arc<dyn CallApi>>, ApiError> {
        let timeout = Duration::from_secs(self.provider_api_timeout_secs.max(1));
        let mut apis: Vec<Arc<dyn CallApi>> = vec![];
        if let Some(sid) = &self.twilio_account_sid {
            let key = self.twilio_api_key.as_deref().zip(self.twilio_api_secret.as_ref());
            // With an API key, its secret stands in for the auth token.
            if let Some(token) = key.map(|(_, secret)| secret).or(twilio_tokens.first()) {
                apis.push(self.twilio_client(sid, token, key, timeout)?);
            }
        }
        if let (Some(base), Some(project), Some(token)) =
            (&self.signalwire_api_base, &self.signalwire_project_id, &self.signalwire_api_token)
        {
            apis.push(signalwire_client(base, project, token, timeout)?);
        }
        if let Some(key) = &self.telnyx_api_key {
            let cfg = TelnyxApiConfig {
                base_url: self.telnyx_api_base.clone(),
                timeout,
                ..TelnyxApiConfig::new(key.clone())
            };
            apis.push(Arc::new(TelnyxApi::new(cfg)?));
        }
        if let (Some(app), Some(key)) = (&self.vonage_application_id, &self.vonage_private_key) {
            let cfg = VonageApiConfig {
                base_url: self.vonage_api_base.clone(),
                timeout,
                ..VonageApiConfig::new(app, key.clone())
            };
            apis.push(Arc::new(VonageApi::new(cfg)?));
        }
        if let (Some(id), Some(token)) = (&self.plivo_auth_id, plivo_tokens.first()) {
            apis.push(self.plivo_client(id, token, timeout)?);
        }
        self.account_apis(accounts, timeout, &mut apis)?;
        Ok(apis)
    }

    /// One client per account of the accounts file that has API credentials; the
    /// reconciler asks the one of the call's account.
    fn account_apis(
        &self,
        accounts: &AccountsFile,
        timeout: Duration,
        apis: &mut Vec<Arc<dyn CallApi>>,
    ) -> Result<(), ApiError> {
        for a in &accounts.twilio {
            if let Some(token) = a.auth_tokens.first() {
                let key = a.api_key.as_deref().zip(a.api_secret.as_ref());
                apis.push(self.twilio_client(&a.account_sid, token, key, timeout)?);
            }
        }
        for a in &accounts.signalwire {
            if let (Some(base), Some(token)) = (&a.space_url, &a.api_token) {
                apis.push(signalwire_client(base, &a.project_id, token, timeout)?);
            }
        }
        for a in &accounts.plivo {
            if let Some(token) = a.auth_tokens.first() {
                apis.push(self.plivo_client(&a.auth_id, token, timeout)?);
            }
        }
        Ok(())
    }

    /// Twilio's client of account `sid`, with an API key instead of the token when given.
    fn twilio_client(
        &self,
        sid: &str,
        token: &Secret,
        key: Option<(&str, &Secret)>,
        timeout: Duration,
    ) -> Result<Arc<dyn CallApi>, ApiError> {
        let mut cfg = TwilioApiConfig::twilio(sid, token.clone());
        if let Some((key, secret)) = key {
            cfg = cfg.with_api_key(key, secret.clone());
        }
        Ok(Arc::new(TwilioApi::new(TwilioApiConfig { base_url: self.twilio_api_base.clone(), timeout, ..cfg })?))
    }

    fn plivo_client(&self, auth_id: &str, token: &Secret, timeout: Duration) -> Result<Arc<dyn CallApi>, ApiError> {
        let cfg = PlivoApiConfig {
            base_url: self.plivo_api_base.clone(),
            timeout,
            ..PlivoApiConfig::new(auth_id, token.clone())
        };
        Ok(Arc::new(PlivoApi::new(cfg)?))
    }
}

/// SignalWire's client of `project` in the space at `base`.
fn signalwire_client(
    base: &str,
    project: &str,
    token: &Secret,
    timeout: Duration,
) -> Result<Arc<dyn CallApi>, ApiError> {
    let cfg = TwilioApiConfig::signalwire(base, project, token.clone());
    Ok(Arc::new(TwilioApi::new(TwilioApiConfig { timeout, ..cfg })?))
}
