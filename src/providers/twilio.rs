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

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::form::{self, Fields};
use super::{Correlation, InboundRequest, Verified, WebhookError};
use crate::domain::{CallEvent, EventType, Provider};
use crate::secret::Secret;

pub const SIGNATURE_HEADER: &str = "x-twilio-signature";
pub const SETTINGS_HEADER: &str = "x-twilio-webhooks-signature-settings";

/// What differs between Twilio and a Twilio-compatible provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheme {
    pub provider: Provider,
    pub signature_header: &'static str,
    /// Twilio sorts (and de-duplicates) a repeated field's values before signing;
    /// SignalWire signs them in the order they were sent.
    pub sort_repeated_values: bool,
    /// Twilio's shared-key scheme (`X-Twilio-Webhooks-Signature-Settings`).
    pub shared_keys: bool,
}

pub const TWILIO: Scheme = Scheme {
    provider: Provider::Twilio,
    signature_header: SIGNATURE_HEADER,
    sort_repeated_values: true,
    shared_keys: true,
};

/// SignalWire: `X-SignalWire-Signature`, keyed by the project's signing key.
pub const SIGNALWIRE: Scheme = Scheme {
    provider: Provider::SignalWire,
    signature_header: "x-signalwire-signature",
    sort_repeated_values: false,
    shared_keys: false,
};

/// Twilio credentials. Several of each may be configured, so a token or key can be
/// rotated without refusing callbacks signed with the old one.
#[derive(Debug, Clone, Default)]
pub struct TwilioConfig {
    pub auth_tokens: Vec<Secret>,
    pub shared_keys: Vec<Secret>,
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
    let signature =
        BASE64.decode(header.trim()).map_err(|_| WebhookError::InvalidSignature("signature is not base64".into()))?;
    let (algorithm, keys) = match request.header(SETTINGS_HEADER).filter(|_| scheme.shared_keys) {
        None => (Algorithm::HmacSha1, &config.auth_tokens),
        Some(settings) => (settings_algorithm(settings)?, &config.shared_keys),
    };
    if keys.is_empty() {
        return Err(WebhookError::NotConfigured(scheme.provider));
    }

    let signed_fields: &[(String, String)] = if body.json.is_some() {
        check_body_hash(&request)?;
        &[]
    } else {
        &body.fields
    };
    let candidates = url_variants(&request.url);
    let matched = candidates.iter().any(|url| {
        let data = signing_string_for(scheme, url, signed_fields);
        keys.iter().any(|key| mac_matches(algorithm, key.expose().as_bytes(), data.as_bytes(), &signature))
    });
    if !matched {
        return Err(WebhookError::InvalidSignature("signature does not match".into()));
    }
    Ok(Verified::new(request, body))
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
    let mut sorted: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    if scheme.sort_repeated_values {
        sorted.sort_unstable();
        sorted.dedup();
    } else {
        sorted.sort_by_key(|(k, _)| *k);
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
    let call_sid = form::non_empty(fields, "CallSid").ok_or(WebhookError::MissingField("CallSid"))?;
    if call_sid.len() > 128 || call_sid.chars().any(|c| c.is_whitespace() || c.is_control()) {
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
            text("ErrorCode").or_else(|| text("SipResponseCode").map(|c| format!("sip:{c}")))
        } else {
            None
        },
        error_message: if failed { text("ErrorMessage") } else { None },
        payload: body.json.clone().unwrap_or_else(|| form::to_json(fields)),
        source: crate::domain::EventSource::Callback,
    })
}

#[cfg(test)]
#[path = "twilio_tests.rs"]
mod tests;
