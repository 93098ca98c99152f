//! Twilio status callbacks: `X-Twilio-Signature` verification (SPEC §3) and the
//! `CallStatus` → event mapping (SPEC §2). SignalWire's compatibility API speaks the
//! same format and is served by the same code through its own [`Scheme`].
//!
//! The signed string is the requested URL followed by every form field name and
//! value, names sorted, a repeated name's values sorted and de-duplicated (as
//! twilio-python's `RequestValidator` does). It is signed with HMAC-SHA1 and an auth
//! token, or — when `X-Twilio-Webhooks-Signature-Settings` names an algorithm — with
//! that algorithm and a shared key. JSON bodies sign the URL alone, which carries
//! `bodySHA256`. The URL is tried with and without the scheme's default port.
//!
//! SignalWire differs in two ways. A repeated form field's values may be signed in
//! arrival order (`@signalwire/compatibility-api`'s `validateRequest`) or sorted
//! (the `signalwire` Python package's `RequestValidator`, through twilio-python 6.54);
//! both are accepted. Its JSON callbacks (RELAY `calling.call.state`, SWML / Call
//! Fabric) are signed with a lowercase hex HMAC-SHA1 of the URL followed by the raw
//! body, under the project signing key (`@signalwire/web-api`'s `validateRequest`,
//! `signalwire.request_validator.RequestValidator.build_signature`); their call
//! states are mapped by [`signalwire_event_type`] (in `signalwire_json.rs`).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::form::{self, Fields};
use super::{keyring, Account, Correlation, InboundRequest, Verified, WebhookError};
use crate::domain::{CallEvent, EventType, Provider};
use crate::secret::Secret;

use super::signalwire_json;
pub use super::signalwire_json::signalwire_event_type;

pub const SIGNATURE_HEADER: &str = "x-twilio-signature";
pub const SETTINGS_HEADER: &str = "x-twilio-webhooks-signature-settings";

/// What differs between Twilio and a Twilio-compatible provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheme {
    pub provider: Provider,
    pub signature_header: &'static str,
    /// How a repeated form field's values are signed.
    pub repeated_values: RepeatedValues,
    /// Twilio's shared-key scheme (`X-Twilio-Webhooks-Signature-Settings`).
    pub shared_keys: bool,
    /// SignalWire's JSON scheme: a hex HMAC-SHA1 over the URL and the raw body.
    pub raw_body_hex: bool,
}

/// The order in which a repeated form field's values are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepeatedValues {
    /// Sorted and de-duplicated (Twilio, as twilio-python's `RequestValidator`).
    SortedDeduplicated,
    /// In arrival order or sorted, either accepted (SignalWire: its two official
    /// SDKs disagree, and no document says which its servers produce). Signing
    /// uses arrival order.
    ArrivalOrSorted,
}

pub const TWILIO: Scheme = Scheme {
    provider: Provider::Twilio,
    signature_header: SIGNATURE_HEADER,
    repeated_values: RepeatedValues::SortedDeduplicated,
    shared_keys: true,
    raw_body_hex: false,
};

/// SignalWire: `X-SignalWire-Signature`, keyed by the project's signing key.
pub const SIGNALWIRE: Scheme = Scheme {
    provider: Provider::SignalWire,
    signature_header: "x-signalwire-signature",
    repeated_values: RepeatedValues::ArrivalOrSorted,
    shared_keys: false,
    raw_body_hex: true,
};

/// Twilio credentials. Several of each may be configured, so a token or key can be
/// rotated without refusing callbacks signed with the old one.
#[derive(Debug, Clone, Default)]
pub struct TwilioConfig {
    pub auth_tokens: Vec<Secret>,
    pub shared_keys: Vec<Secret>,
    /// Several accounts (SignalWire: projects), each with its own tokens; the
    /// callback's `AccountSid` selects one.
    pub accounts: Vec<Account>,
}

/// The account a callback's body names: Twilio's and SignalWire's `AccountSid`,
/// or a SignalWire RELAY event's `project_id`.
pub fn claimed_account(body: &TwilioBody) -> Option<&str> {
    form::non_empty(&body.fields, "AccountSid").or_else(|| form::non_empty(&body.fields, "project_id")).map(str::trim)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    HmacSha1,
    HmacSha256,
}

/// The decoded body: form fields, or a JSON document's top-level fields.
#[derive(Debug, Clone)]
pub struct TwilioBody {
    pub fields: Fields,
    pub json: Option<Value>,
}

/// Decodes the body by its content type, without trusting it yet.
pub fn decode_body(request: &InboundRequest) -> Result<TwilioBody, WebhookError> {
    match request.media_type().as_deref() {
        Some("application/x-www-form-urlencoded") => {
            let fields = form::decode(&request.body).map_err(|e| WebhookError::Malformed(e.0))?;
            Ok(TwilioBody { fields, json: None })
        }
        Some("application/json") => {
            let json: Value = serde_json::from_slice(&request.body)
                .map_err(|e| WebhookError::Malformed(format!("invalid JSON: {e}")))?;
            let Value::Object(map) = &json else {
                return Err(WebhookError::Malformed("JSON body must be an object".into()));
            };
            let fields =
                map.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect();
            Ok(TwilioBody { fields, json: Some(json) })
        }
        other => Err(WebhookError::UnsupportedMediaType(other.unwrap_or("none").to_owned())),
    }
}

/// Checks a Twilio request's signature against every configured key, then decodes it.
pub fn verify(config: &TwilioConfig, request: InboundRequest) -> Result<Verified<TwilioBody>, WebhookError> {
    verify_scheme(&TWILIO, config, request)
}

/// [`verify`] for any Twilio-compatible [`Scheme`].
pub fn verify_scheme(
    scheme: &Scheme,
    config: &TwilioConfig,
    request: InboundRequest,
) -> Result<Verified<TwilioBody>, WebhookError> {
    let body = decode_body(&request)?;
    let header =
        request.header(scheme.signature_header).ok_or(WebhookError::MissingSignature(scheme.signature_header))?;
    // SignalWire's JSON scheme: 40 hex digits (a Twilio-style signature is base64,
    // 28 characters).
    let claimed = claimed_account(&body).map(str::to_owned);
    if scheme.raw_body_hex && body.json.is_some() && is_hex_sha1(header.trim()) {
        let keys = keyring(scheme.provider, &config.auth_tokens, None, &config.accounts, claimed.as_deref())?;
        let signature = header.trim().to_owned();
        let urls = url_variants(&request.url);
        let matched = keys.iter().find(|(_, key)| {
            urls.iter().any(|url| {
                let expected = raw_body_signature(key.expose(), url, &request.body);
                bool::from(expected.as_bytes().ct_eq(signature.as_bytes()))
            })
        });
        let Some((account, _)) = matched else {
            return Err(WebhookError::InvalidSignature("signature does not match the URL and body".into()));
        };
        let account = account.or(claimed.as_deref()).map(str::to_owned);
        return Ok(Verified::new(request, body).with_account(account.as_deref()));
    }
    let signature =
        BASE64.decode(header.trim()).map_err(|_| WebhookError::InvalidSignature("signature is not base64".into()))?;
    // Shared keys (webhook signature settings) belong to no account in particular.
    let settings = request.header(SETTINGS_HEADER).filter(|_| scheme.shared_keys);
    let (algorithm, keys) = match settings {
        None => (
            Algorithm::HmacSha1,
            keyring(scheme.provider, &config.auth_tokens, None, &config.accounts, claimed.as_deref())?,
        ),
        Some(settings) => {
            (settings_algorithm(settings)?, keyring(scheme.provider, &config.shared_keys, None, &[], None)?)
        }
    };

    let signed_fields: &[(String, String)] = if body.json.is_some() {
        check_body_hash(&request)?;
        &[]
    } else {
        &body.fields
    };
    let signed_by = |url: &str| {
        let strings = signing_strings(scheme, url, signed_fields);
        keys.iter().find(|(_, key)| {
            strings.iter().any(|data| mac_matches(algorithm, key.expose().as_bytes(), data.as_bytes(), &signature))
        })
    };
    let candidates = url_variants(&request.url);
    let Some((account, _)) = candidates.iter().find_map(|url| signed_by(url)) else {
        return Err(explain_mismatch(&request, &candidates, |url| signed_by(url).is_some()));
    };
    // A shared key belongs to no account in particular: with accounts configured
    // its callback's claim is not vouched for, and it names no account (so it can
    // drive no call of a configured account).
    let claimed = if settings.is_some() && !config.accounts.is_empty() { None } else { claimed };
    let account = account.or(claimed.as_deref()).map(str::to_owned);
    Ok(Verified::new(request, body).with_account(account.as_deref()))
}

/// A signature that matches none of the URL's variants. The most common cause by
/// far is a proxy or tunnel in front of callhook (the provider signed
/// `https://public-host/…`, callhook rebuilt `http://internal-host/…`): when the
/// signature matches the URL with another scheme or the host the proxy forwarded,
/// say so — in the log only, never in the answer — and count it as `url_mismatch`.
fn explain_mismatch(request: &InboundRequest, tried: &[String], signed_over: impl Fn(&str) -> bool) -> WebhookError {
    let mut others = vec![];
    if let Some((scheme, rest)) = request.url.split_once("://") {
        let other_scheme = if scheme.eq_ignore_ascii_case("https") { "http" } else { "https" };
        others.push(format!("{other_scheme}://{rest}"));
        let path = rest.find('/').map_or("", |i| &rest[i..]);
        let forwarded_proto = request.header("x-forwarded-proto").map(|p| p.split(',').next().unwrap_or(p).trim());
        for host in ["x-forwarded-host", "host"].iter().filter_map(|h| request.header(h)) {
            let host = host.split(',').next().unwrap_or(host).trim();
            for proto in [Some(scheme), Some(other_scheme), forwarded_proto].into_iter().flatten() {
                others.push(format!("{proto}://{host}{path}"));
            }
        }
    }
    let matching = others.iter().flat_map(|url| url_variants(url)).find(|url| !tried.contains(url) && signed_over(url));
    match matching {
        Some(url) => {
            tracing::warn!(
                tried = ?tried,
                would_match = %url,
                "signature matches another URL than the one rebuilt: set CALLHOOK_PUBLIC_BASE_URL to the public \
                 origin the provider calls, or CALLHOOK_TRUST_FORWARDED_HEADERS=true behind a proxy you control"
            );
            WebhookError::UrlMismatch
        }
        None => {
            tracing::warn!(
                tried = ?tried,
                "signature matches none of these URLs (wrong token, altered body, or a URL rewritten on the way: \
                 see CALLHOOK_PUBLIC_BASE_URL / CALLHOOK_TRUST_FORWARDED_HEADERS)"
            );
            WebhookError::InvalidSignature("signature does not match".into())
        }
    }
}

fn settings_algorithm(settings: &str) -> Result<Algorithm, WebhookError> {
    let algorithm = settings
        .split(',')
        .filter_map(|part| part.trim().split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case("algorithm"))
        .map(|(_, v)| v.trim());
    match algorithm {
        Some("HMAC_SHA256") => Ok(Algorithm::HmacSha256),
        Some("HMAC_SHA1") => Ok(Algorithm::HmacSha1),
        other => Err(WebhookError::InvalidSignature(format!(
            "unsupported signature algorithm `{}`",
            other.unwrap_or("none")
        ))),
    }
}

/// JSON callbacks carry the body's hex SHA-256 in the signed URL's `bodySHA256`.
fn check_body_hash(request: &InboundRequest) -> Result<(), WebhookError> {
    let query = form::decode(request.query().unwrap_or("").as_bytes()).unwrap_or_default();
    let expected = form::first(&query, "bodySHA256")
        .ok_or_else(|| WebhookError::InvalidSignature("JSON body without `bodySHA256` in the URL".into()))?;
    let actual = body_sha256(&request.body);
    if bool::from(actual.as_bytes().ct_eq(expected.to_ascii_lowercase().as_bytes())) {
        Ok(())
    } else {
        Err(WebhookError::InvalidSignature("body does not match `bodySHA256`".into()))
    }
}

/// The raw HMAC of `data` under `algorithm`.
fn hmac(algorithm: Algorithm, key: &[u8], data: &[u8]) -> Vec<u8> {
    match algorithm {
        Algorithm::HmacSha1 => {
            let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes any key length");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        Algorithm::HmacSha256 => {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
    }
}

fn mac_matches(algorithm: Algorithm, key: &[u8], data: &[u8], signature: &[u8]) -> bool {
    bool::from(hmac(algorithm, key, data).ct_eq(signature))
}

/// The string Twilio signs: URL, then each name and value, sorted.
pub fn signing_string(url: &str, fields: &[(String, String)]) -> String {
    signing_string_for(&TWILIO, url, fields)
}

/// The signed string under `scheme`: names sorted; a repeated name's values sorted
/// and de-duplicated (Twilio) or in arrival order (SignalWire).
pub fn signing_string_for(scheme: &Scheme, url: &str, fields: &[(String, String)]) -> String {
    let order = match scheme.repeated_values {
        RepeatedValues::SortedDeduplicated => Order::SortedDeduplicated,
        RepeatedValues::ArrivalOrSorted => Order::Arrival,
    };
    ordered_signing_string(order, url, fields)
}

/// Every string a signature under `scheme` may cover: one for Twilio; for
/// SignalWire the arrival-order string and, when a field repeats with its values
/// out of order, the sorted one.
pub fn signing_strings(scheme: &Scheme, url: &str, fields: &[(String, String)]) -> Vec<String> {
    match scheme.repeated_values {
        RepeatedValues::SortedDeduplicated => vec![ordered_signing_string(Order::SortedDeduplicated, url, fields)],
        RepeatedValues::ArrivalOrSorted => {
            let arrival = ordered_signing_string(Order::Arrival, url, fields);
            let sorted = ordered_signing_string(Order::Sorted, url, fields);
            if sorted == arrival {
                vec![arrival]
            } else {
                vec![arrival, sorted]
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Order {
    Arrival,
    Sorted,
    SortedDeduplicated,
}

fn ordered_signing_string(order: Order, url: &str, fields: &[(String, String)]) -> String {
    let mut sorted: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    match order {
        // A stable sort by name keeps a repeated name's values as they arrived.
        Order::Arrival => sorted.sort_by_key(|(k, _)| *k),
        Order::Sorted => sorted.sort_unstable(),
        Order::SortedDeduplicated => {
            sorted.sort_unstable();
            sorted.dedup();
        }
    }
    let mut data = String::with_capacity(url.len() + sorted.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>());
    data.push_str(url);
    for (name, value) in sorted {
        data.push_str(name);
        data.push_str(value);
    }
    data
}

/// The signature Twilio would send for `url` and `fields` (used by tests, the demo
/// and the benchmark client).
pub fn sign(algorithm: Algorithm, key: &str, url: &str, fields: &[(String, String)]) -> String {
    sign_scheme(&TWILIO, algorithm, key, url, fields)
}

/// [`sign`] for any Twilio-compatible [`Scheme`].
pub fn sign_scheme(scheme: &Scheme, algorithm: Algorithm, key: &str, url: &str, fields: &[(String, String)]) -> String {
    let data = signing_string_for(scheme, url, fields);
    BASE64.encode(hmac(algorithm, key.as_bytes(), data.as_bytes()))
}

/// SignalWire's JSON signature: lowercase hex HMAC-SHA1 of the URL followed by the
/// raw body, keyed by the project signing key.
pub fn raw_body_signature(key: &str, url: &str, body: &[u8]) -> String {
    let mut data = Vec::with_capacity(url.len() + body.len());
    data.extend_from_slice(url.as_bytes());
    data.extend_from_slice(body);
    hmac(Algorithm::HmacSha1, key.as_bytes(), &data).iter().map(|b| format!("{b:02x}")).collect()
}

fn is_hex_sha1(signature: &str) -> bool {
    signature.len() == 40 && signature.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Hex SHA-256 of a JSON body, for the `bodySHA256` query parameter.
pub fn body_sha256(body: &[u8]) -> String {
    super::sha256_hex(body)
}

/// The URL as requested plus its twin with the default port added or removed:
/// Twilio may sign either form depending on how the callback URL was written.
pub fn url_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_owned()];
    let Some((scheme, rest)) = url.split_once("://") else { return variants };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return variants,
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host_start = authority.rfind('@').map_or(0, |i| i + 1);
    let host = &authority[host_start..];
    let port_sep = host.rfind(':').filter(|i| !host[*i..].contains(']'));
    match port_sep {
        Some(i) if &host[i + 1..] == default_port => {
            variants.push(format!("{scheme}://{}{}{tail}", &authority[..host_start], &host[..i]));
        }
        Some(_) => {}
        None => variants.push(format!("{scheme}://{authority}:{default_port}{tail}")),
    }
    variants
}

/// Twilio `CallStatus` → domain event (SPEC §2); `None` for a status we don't know.
pub fn event_type(call_status: &str) -> Option<EventType> {
    Some(match call_status {
        "queued" | "initiated" => EventType::Initiated,
        "ringing" => EventType::Ringing,
        "in-progress" => EventType::Answered,
        "completed" => EventType::Completed,
        "busy" => EventType::Busy,
        "no-answer" => EventType::NoAnswer,
        "failed" | "canceled" => EventType::Failed,
        _ => return None,
    })
}

/// Twilio's `AnsweredBy` values (SignalWire sends the same); another value in an
/// asynchronous verdict is stored and answered `ignored`.
pub const AMD_VERDICTS: &[&str] =
    &["human", "machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax", "unknown"];

/// Normalises a verified Twilio callback into a [`CallEvent`].
pub fn parse(verified: Verified<TwilioBody>, received_at: DateTime<Utc>) -> Result<CallEvent, WebhookError> {
    parse_scheme(&TWILIO, verified, received_at)
}

/// [`parse`] for any Twilio-compatible [`Scheme`].
pub fn parse_scheme(
    scheme: &Scheme,
    verified: Verified<TwilioBody>,
    received_at: DateTime<Utc>,
) -> Result<CallEvent, WebhookError> {
    let correlation = Correlation::from_query(verified.request().query())?;
    let body = verified.body();
    let fields = &body.fields;
    if let Some(json) = body.json.as_ref().filter(|_| scheme.raw_body_hex && form::first(fields, "CallSid").is_none()) {
        if let Some(call) = signalwire_json::call(json) {
            return signalwire_json::event(scheme, call, json, correlation, received_at);
        }
    }
    let call_sid = form::non_empty(fields, "CallSid").ok_or(WebhookError::MissingField("CallSid"))?;
    if !crate::text::is_token(call_sid, 128) {
        return Err(WebhookError::InvalidField { field: "CallSid", reason: "not a call identifier".into() });
    }
    let call_status = form::non_empty(fields, "CallStatus").map(str::trim);
    let answered_by = form::non_empty(fields, "AnsweredBy").map(str::trim);
    // The asynchronous answering-machine verdict (`AsyncAmdStatusCallback`) has no
    // `CallStatus`: it is the answer's verdict, an `answered` event of its own, keyed
    // by its value so a redelivery is a duplicate and a contradicting one is stale.
    let (status, event_type, dedupe_key) = match (call_status, answered_by) {
        (Some(status), _) => {
            (status.to_owned(), event_type(status), format!("{}:{call_sid}:{status}", scheme.provider))
        }
        (None, Some(verdict)) => (
            format!("amd:{verdict}"),
            AMD_VERDICTS.contains(&verdict).then_some(EventType::Answered),
            format!("{}:{call_sid}:amd:{verdict}", scheme.provider),
        ),
        (None, None) => return Err(WebhookError::MissingField("CallStatus")),
    };
    let status = status.as_str();
    fn number<T: std::str::FromStr>(fields: &[(String, String)], name: &str) -> Option<T> {
        form::non_empty(fields, name).and_then(|v| v.trim().parse().ok())
    }
    let text = |name: &str| form::non_empty(fields, name).map(str::to_owned);
    let failed = matches!(event_type, Some(EventType::Failed | EventType::Busy | EventType::NoAnswer));

    Ok(CallEvent {
        provider: scheme.provider,
        dedupe_key,
        event_type,
        provider_status: status.to_owned(),
        provider_call_id: call_sid.to_owned(),
        call_id: correlation.call_id,
        campaign_id: correlation.campaign_id,
        contact_id: correlation.contact_id,
        sequence_number: number(fields, "SequenceNumber"),
        // Twilio's `Timestamp` is RFC 2822; an unreadable one falls back to receipt time.
        occurred_at: form::non_empty(fields, "Timestamp")
            .and_then(|t| DateTime::parse_from_rfc2822(t.trim()).ok())
            .map(|t| t.with_timezone(&Utc)),
        received_at,
        duration_seconds: number(fields, "CallDuration"),
        answered_by: text("AnsweredBy"),
        error_code: if failed {
            // SignalWire's form callbacks name the SIP code `SipResultCode`.
            text("ErrorCode")
                .or_else(|| text("SipResponseCode").or_else(|| text("SipResultCode")).map(|c| format!("sip:{c}")))
        } else {
            None
        },
        error_message: if failed { text("ErrorMessage") } else { None },
        payload: body.json.clone().unwrap_or_else(|| form::to_json(fields)),
        source: crate::domain::EventSource::Callback,
        // The verifier decides which account a callback is of (`Verified::account`).
        account_sid: None,
        account_checked: false,
    })
}

#[cfg(test)]
#[path = "twilio_tests.rs"]
mod tests;
