//! Provider adapters: each one verifies a callback over the raw request and only
//! then parses it into a [`CallEvent`]. The parse step takes a [`Verified`] value,
//! which only the verifiers (or the explicit insecure switch) can create, so an
//! unverified request cannot reach the core.

pub mod api;
pub mod form;
pub mod plivo;
mod signalwire_json;
pub mod simulate;
pub mod telnyx;
pub mod twilio;
pub mod vonage;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::HeaderMap;
use uuid::Uuid;

use crate::domain::{CallEvent, Provider};
use crate::secret::Secret;

/// A webhook request as received, before anything is trusted.
#[derive(Debug, Clone)]
pub struct InboundRequest {
    /// The absolute URL the provider requested: external base URL, path and the raw
    /// query string, exactly as signed.
    pub url: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl InboundRequest {
    /// The raw query string, if the URL has one.
    pub fn query(&self) -> Option<&str> {
        self.url.split_once('?').map(|(_, q)| q)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The media type of the body, lower-cased and without parameters.
    pub fn media_type(&self) -> Option<String> {
        let ct = self.header("content-type")?;
        Some(ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
    }
}

/// A request whose signature checked out, with the body its verifier decoded.
#[derive(Debug)]
pub struct Verified<T> {
    request: InboundRequest,
    body: T,
    account: Option<String>,
}

impl<T> Verified<T> {
    /// Only this module tree may vouch for a request.
    fn new(request: InboundRequest, body: T) -> Self {
        Verified { request, body, account: None }
    }

    /// The provider account the callback came from, when known.
    fn with_account(mut self, account: Option<&str>) -> Self {
        self.account = account.map(str::to_owned);
        self
    }

    pub fn request(&self) -> &InboundRequest {
        &self.request
    }

    pub fn body(&self) -> &T {
        &self.body
    }
}

/// Why a callback was rejected before it reached the store.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("missing signature header `{0}`")]
    MissingSignature(&'static str),
    #[error("invalid signature: {0}")]
    InvalidSignature(String),
    /// The signature is right for another URL than the one callhook rebuilt (a
    /// proxy or tunnel changed the scheme or host): the URLs are logged, not sent.
    #[error("invalid signature: signature does not match this URL (it matches another scheme or host; see the log)")]
    UrlMismatch,
    #[error("no signing credentials are configured for provider `{0}`")]
    NotConfigured(Provider),
    /// Accounts are configured and the callback names none of them.
    #[error("account `{0}` is not configured")]
    UnknownAccount(String),
    #[error("provider `{0}` is not supported yet")]
    UnsupportedProvider(String),
    #[error("unsupported content type `{0}`")]
    UnsupportedMediaType(String),
    #[error("malformed body: {0}")]
    Malformed(String),
    #[error("missing required field `{0}`")]
    MissingField(&'static str),
    #[error("invalid `{field}`: {reason}")]
    InvalidField { field: &'static str, reason: String },
}

/// The longest provider call id or provider status accepted, in bytes. Real ones
/// are far shorter. They are indexed (alone and in the dedupe key), and PostgreSQL
/// refuses a B-tree entry over about 2.7 kB — a 500 — where SQLite stores it.
pub const MAX_IDENTIFIER_BYTES: usize = 256;

/// The longest dedupe key accepted (Telnyx's is its event id), in bytes.
pub const MAX_DEDUPE_KEY_BYTES: usize = 768;

/// The longest `call_id` in the callback URL: as long as registration accepts.
pub const MAX_CALL_ID_BYTES: usize = 128;

/// The correlation the dialer put in the callback URL (covered by the signature).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Correlation {
    pub call_id: Option<String>,
    pub campaign_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
}

impl Correlation {
    pub fn from_query(query: Option<&str>) -> Result<Self, WebhookError> {
        let fields = form::decode(query.unwrap_or("").as_bytes())
            .map_err(|e| WebhookError::Malformed(format!("query string: {e}")))?;
        let uuid = |field: &'static str| -> Result<Option<Uuid>, WebhookError> {
            form::non_empty(&fields, field)
                .map(|v| {
                    Uuid::parse_str(v)
                        .map_err(|e| WebhookError::InvalidField { field, reason: format!("`{v}` is not a UUID: {e}") })
                })
                .transpose()
        };
        let call_id = form::non_empty(&fields, "call_id");
        if call_id.is_some_and(|c| c.len() > MAX_CALL_ID_BYTES) {
            let reason = format!("longer than {MAX_CALL_ID_BYTES} bytes, so no call attempt can have it");
            return Err(WebhookError::InvalidField { field: "call_id", reason });
        }
        Ok(Correlation {
            call_id: call_id.map(str::to_owned),
            campaign_id: uuid("campaign_id")?,
            contact_id: uuid("contact_id")?,
        })
    }
}

/// Lower-case hex SHA-256 (Twilio's `bodySHA256`, Vonage's `payload_hash`).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A JSON body that must be an object (Telnyx, Vonage).
fn json_object(request: &InboundRequest) -> Result<serde_json::Value, WebhookError> {
    match request.media_type().as_deref() {
        Some("application/json") => {}
        other => return Err(WebhookError::UnsupportedMediaType(other.unwrap_or("none").to_owned())),
    }
    let value: serde_json::Value =
        serde_json::from_slice(&request.body).map_err(|e| WebhookError::Malformed(format!("invalid JSON: {e}")))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(WebhookError::Malformed("JSON body must be an object".into()))
    }
}

/// Refuses (400) an event that one of the stores cannot hold, so that both answer
/// alike: identifiers past [`MAX_IDENTIFIER_BYTES`] or [`MAX_DEDUPE_KEY_BYTES`], and
/// U+0000 anywhere (PostgreSQL `text` and `jsonb` cannot hold it; SQLite can).
fn storable(event: &CallEvent) -> Result<(), WebhookError> {
    let too_long = |field: &'static str, limit: usize| WebhookError::InvalidField {
        field,
        reason: format!("longer than {limit} bytes"),
    };
    if event.provider_call_id.len() > MAX_IDENTIFIER_BYTES {
        return Err(too_long("provider call id", MAX_IDENTIFIER_BYTES));
    }
    if event.provider_status.len() > MAX_IDENTIFIER_BYTES {
        return Err(too_long("provider status", MAX_IDENTIFIER_BYTES));
    }
    if event.dedupe_key.len() > MAX_DEDUPE_KEY_BYTES {
        return Err(too_long("event id", MAX_DEDUPE_KEY_BYTES));
    }
    // Every other text of the event comes from the payload, except the URL's call id.
    if crate::text::json_has_nul(&event.payload) || event.call_id.as_deref().is_some_and(|c| c.contains('\0')) {
        return Err(WebhookError::Malformed("the callback contains U+0000 (NUL), which cannot be stored".into()));
    }
    Ok(())
}

/// One provider account: its id (Twilio `AccountSid`, SignalWire project id, Plivo
/// auth id) and the secrets its callbacks are signed with (several for rotation).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Account {
    pub id: String,
    pub tokens: Vec<Secret>,
}

/// The keys that may have signed a callback, each with the account it belongs to
/// (`None`: the single-account keys). `claimed` is the account the body names:
/// a configured account is checked with its own keys only, so a callback signed
/// with one account's token cannot pass as another's; an account not configured
/// is refused when only accounts are configured, and checked with the
/// single-account keys otherwise (the configuration before accounts existed).
/// `single_account` is the single-account keys' account, when the configuration
/// says which it is (Plivo's `CALLHOOK_PLIVO_AUTH_ID`).
pub(crate) fn keyring<'a>(
    provider: Provider,
    single: &'a [Secret],
    single_account: Option<&'a str>,
    accounts: &'a [Account],
    claimed: Option<&str>,
) -> Result<Vec<(Option<&'a str>, &'a Secret)>, WebhookError> {
    let of = |a: &'a Account| a.tokens.iter().map(move |t| (Some(a.id.as_str()), t));
    let singles = || single.iter().map(move |t| (single_account, t));
    let keys: Vec<_> = match claimed.map(|c| (c, accounts.iter().find(|a| a.id == c))) {
        Some((_, Some(account))) => of(account).collect(),
        Some((claimed, None)) if single.is_empty() && !accounts.is_empty() => {
            return Err(WebhookError::UnknownAccount(claimed.to_owned()))
        }
        Some((_, None)) => singles().collect(),
        None => singles().chain(accounts.iter().flat_map(of)).collect(),
    };
    if keys.is_empty() {
        return Err(WebhookError::NotConfigured(provider));
    }
    Ok(keys)
}

/// Parses a verified callback and records its account as its verifier decided:
/// the one whose key verified it, or the one its body names where that claim is
/// vouched for.
fn with_account<T>(
    verified: Verified<T>,
    parse: impl FnOnce(Verified<T>) -> Result<CallEvent, WebhookError>,
) -> Result<CallEvent, WebhookError> {
    let account = verified.account.clone();
    let mut event = parse(verified)?;
    event.account_sid = account;
    Ok(event)
}

/// Every provider's credentials and the insecure switch: turns raw requests into
/// events.
#[derive(Debug, Clone, Default)]
pub struct Providers {
    pub twilio: twilio::TwilioConfig,
    /// SignalWire project signing keys (in `auth_tokens`).
    pub signalwire: twilio::TwilioConfig,
    pub telnyx: telnyx::TelnyxConfig,
    pub vonage: vonage::VonageConfig,
    pub plivo: plivo::PlivoConfig,
    /// Skip signature checks entirely. Only for local experiments; warned about at
    /// start and on every request.
    pub insecure_skip_verification: bool,
}

impl Providers {
    /// Verifies `request` as a callback of `provider`, then normalises it.
    pub fn handle(
        &self,
        provider: Provider,
        request: InboundRequest,
        received_at: DateTime<Utc>,
    ) -> Result<CallEvent, WebhookError> {
        let insecure = self.insecure_skip_verification;
        // Without verification the body is still decoded the way the verifier would.
        fn unchecked<T>(
            request: InboundRequest,
            decode: fn(&InboundRequest) -> Result<T, WebhookError>,
        ) -> Result<Verified<T>, WebhookError> {
            let body = decode(&request)?;
            Ok(Verified::new(request, body))
        }
        let mut event = match provider {
            Provider::Twilio | Provider::SignalWire => {
                let (scheme, config) = if provider == Provider::Twilio {
                    (&twilio::TWILIO, &self.twilio)
                } else {
                    (&twilio::SIGNALWIRE, &self.signalwire)
                };
                let verified = if insecure {
                    let verified = unchecked(request, twilio::decode_body)?;
                    let claimed = twilio::claimed_account(verified.body()).map(str::to_owned);
                    verified.with_account(claimed.as_deref())
                } else {
                    twilio::verify_scheme(scheme, config, request)?
                };
                with_account(verified, |v| twilio::parse_scheme(scheme, v, received_at))?
            }
            Provider::Telnyx => {
                let verified = if insecure {
                    unchecked(request, telnyx::decode_body)?
                } else {
                    telnyx::verify(&self.telnyx, request, received_at)?
                };
                with_account(verified, |v| telnyx::parse(v, received_at))?
            }
            Provider::Vonage => {
                let verified = if insecure {
                    unchecked(request, vonage::decode_body)?
                } else {
                    vonage::verify(&self.vonage, request, received_at)?
                };
                with_account(verified, |v| vonage::parse(v, received_at))?
            }
            Provider::Plivo => {
                let verified = if insecure {
                    unchecked(request, plivo::decode_body)?
                } else {
                    plivo::verify(&self.plivo, request)?
                };
                with_account(verified, |v| plivo::parse(v, received_at))?
            }
        };
        storable(&event)?;
        event.account_checked = self.has_accounts(provider);
        Ok(event)
    }

    /// May a call be registered under `account`? Only an account whose callbacks
    /// can be told apart: a configured one, or — Twilio and SignalWire, whose
    /// callbacks name their account — any when none is configured. The error says
    /// why not.
    pub fn knows_account(&self, provider: Provider, account: &str) -> Result<(), String> {
        let Some(accounts) = self.accounts(provider) else {
            return Err(format!("account_sid applies to twilio, signalwire and plivo calls, not {provider}"));
        };
        let single = if provider == Provider::Plivo { self.plivo.auth_id.as_deref() } else { None };
        let named_in_callbacks = provider != Provider::Plivo;
        if accounts.iter().any(|a| a.id == account)
            || single == Some(account)
            || (accounts.is_empty() && named_in_callbacks)
        {
            return Ok(());
        }
        Err(format!("account `{account}` is not configured for {provider} (CALLHOOK_ACCOUNTS_FILE)"))
    }

    /// Whether several accounts are configured for `provider` (the accounts file).
    pub fn has_accounts(&self, provider: Provider) -> bool {
        self.accounts(provider).is_some_and(|a| !a.is_empty())
    }

    /// The accounts configured for `provider`; `None` where callhook has no
    /// accounts for it (Telnyx, Vonage).
    fn accounts(&self, provider: Provider) -> Option<&[Account]> {
        match provider {
            Provider::Twilio => Some(&self.twilio.accounts),
            Provider::SignalWire => Some(&self.signalwire.accounts),
            Provider::Plivo => Some(&self.plivo.accounts),
            Provider::Telnyx | Provider::Vonage => None,
        }
    }

    /// Providers with at least one credential configured.
    pub fn configured(&self) -> Vec<Provider> {
        let mut out = vec![];
        if !self.twilio.auth_tokens.is_empty()
            || !self.twilio.shared_keys.is_empty()
            || !self.twilio.accounts.is_empty()
        {
            out.push(Provider::Twilio);
        }
        if !self.signalwire.auth_tokens.is_empty() || !self.signalwire.accounts.is_empty() {
            out.push(Provider::SignalWire);
        }
        if !self.telnyx.public_keys.is_empty() {
            out.push(Provider::Telnyx);
        }
        if !self.vonage.signature_secrets.is_empty() {
            out.push(Provider::Vonage);
        }
        if !self.plivo.auth_tokens.is_empty() || !self.plivo.accounts.is_empty() {
            out.push(Provider::Plivo);
        }
        out
    }
}
