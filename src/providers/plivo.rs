//! Plivo voice callbacks (form-encoded `CallUUID`, `CallStatus`, `HangupCause`, …)
//! verified with `X-Plivo-Signature-V3` and its nonce, per Plivo's V3 rules for
//! POST: base URL (scheme, host, path), then `?` and the URL's query parameters
//! sorted as `k=v&…` followed by `.` when there are any, then every POST parameter
//! name and value sorted by name, then `.` and the nonce; HMAC-SHA256 with the auth
//! token, base64. The header may carry several comma-separated signatures (one per
//! active token); any one matching is enough.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::form::{self, Fields};
use super::{keyring, Account, Correlation, InboundRequest, Verified, WebhookError};
use crate::domain::{CallEvent, EventType, Provider};
use crate::secret::Secret;

pub const SIGNATURE_HEADER: &str = "x-plivo-signature-v3";
pub const NONCE_HEADER: &str = "x-plivo-signature-v3-nonce";

#[derive(Debug, Clone, Default)]
pub struct PlivoConfig {
    pub auth_tokens: Vec<Secret>,
    /// The auth id `auth_tokens` belong to (`CALLHOOK_PLIVO_AUTH_ID`), when set:
    /// callbacks they verify are that account's.
    pub auth_id: Option<String>,
    /// Several accounts, by auth id.
    pub accounts: Vec<Account>,
}

pub fn decode_body(request: &InboundRequest) -> Result<Fields, WebhookError> {
    match request.media_type().as_deref() {
        Some("application/x-www-form-urlencoded") => {
            form::decode(&request.body).map_err(|e| WebhookError::Malformed(e.0))
        }
        other => Err(WebhookError::UnsupportedMediaType(other.unwrap_or("none").to_owned())),
    }
}

fn sorted(fields: &[(String, String)]) -> Vec<(&str, &str)> {
    let mut v: Vec<(&str, &str)> = fields.iter().map(|(k, val)| (k.as_str(), val.as_str())).collect();
    v.sort_unstable();
    v
}

/// The string Plivo signs for a POST to `url` with `params` (nonce excluded).
pub fn signed_base(url: &str, params: &[(String, String)]) -> Result<String, WebhookError> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let base = base.split('#').next().unwrap_or(base);
    let query = form::decode(query.as_bytes()).map_err(|e| WebhookError::Malformed(format!("query string: {e}")))?;
    let query: Vec<String> = sorted(&query).iter().map(|(k, v)| format!("{k}={v}")).collect();
    let query = query.join("&");
    let mut out = base.to_owned();
    if !params.is_empty() || !query.is_empty() {
        out.push('?');
        out.push_str(&query);
    }
    if !params.is_empty() && !query.is_empty() {
        out.push('.');
    }
    for (k, v) in sorted(params) {
        out.push_str(k);
        out.push_str(v);
    }
    Ok(out)
}

/// The V3 signature Plivo would send (tests and tools).
pub fn sign(token: &str, url: &str, params: &[(String, String)], nonce: &str) -> String {
    let base = signed_base(url, params).expect("a decodable URL");
    BASE64.encode(mac(token, &base, nonce).finalize().into_bytes())
}

fn mac(token: &str, base: &str, nonce: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(token.as_bytes()).expect("any key length");
    mac.update(base.as_bytes());
    mac.update(b".");
    mac.update(nonce.as_bytes());
    mac
}

pub fn verify(config: &PlivoConfig, request: InboundRequest) -> Result<Verified<Fields>, WebhookError> {
    let fields = decode_body(&request)?;
    let header = request.header(SIGNATURE_HEADER).ok_or(WebhookError::MissingSignature(SIGNATURE_HEADER))?;
    let nonce = request.header(NONCE_HEADER).ok_or(WebhookError::MissingSignature(NONCE_HEADER))?;
    // Plivo's callbacks do not name the account: the key that verifies tells it.
    let keys = keyring(Provider::Plivo, &config.auth_tokens, config.auth_id.as_deref(), &config.accounts, None)?;
    let base = signed_base(&request.url, &fields)?;
    let candidates: Vec<Vec<u8>> = header.split(',').filter_map(|s| BASE64.decode(s.trim()).ok()).collect();
    let matched = keys
        .iter()
        .find(|(_, token)| candidates.iter().any(|sig| mac(token.expose(), &base, nonce).verify_slice(sig).is_ok()));
    match matched {
        Some((account, _)) => Ok(Verified::new(request, fields).with_account(*account)),
        None => Err(WebhookError::InvalidSignature("signature does not match".into())),
    }
}

/// Plivo `CallStatus` → domain event.
pub fn event_type(call_status: &str) -> Option<EventType> {
    Some(match call_status {
        "queued" => EventType::Initiated,
        "ringing" => EventType::Ringing,
        "in-progress" => EventType::Answered,
        "completed" => EventType::Completed,
        "busy" => EventType::Busy,
        "no-answer" | "timeout" => EventType::NoAnswer,
        "failed" | "cancel" | "canceled" => EventType::Failed,
        _ => return None,
    })
}

/// Plivo times are `YYYY-MM-DD HH:MM:SS` in UTC.
fn plivo_time(v: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(v.trim(), "%Y-%m-%d %H:%M:%S").ok().map(|t| t.and_utc())
}

pub fn parse(verified: Verified<Fields>, received_at: DateTime<Utc>) -> Result<CallEvent, WebhookError> {
    let correlation = Correlation::from_query(verified.request().query())?;
    let fields = verified.body();
    let text = |k: &str| form::non_empty(fields, k).map(str::to_owned);
    let uuid = text("CallUUID").ok_or(WebhookError::MissingField("CallUUID"))?;
    let status = text("CallStatus").ok_or(WebhookError::MissingField("CallStatus"))?;
    let event_type = event_type(&status);
    let failed = matches!(event_type, Some(EventType::Failed | EventType::Busy | EventType::NoAnswer));
    let occurred_at = match event_type {
        Some(EventType::Answered) => text("AnswerTime"),
        Some(t) if t.status().is_terminal() => text("EndTime"),
        _ => text("StartTime"),
    }
    .and_then(|t| plivo_time(&t));
    let answered_by = match text("Machine").as_deref() {
        Some("true") => Some("machine".to_owned()),
        Some("false") => Some("human".to_owned()),
        _ => None,
    };
    Ok(CallEvent {
        provider: Provider::Plivo,
        // The machine-detection callback (`machine_detection_url`: `Machine` on an
        // in-progress call) is an event of its own beside the answer's, although
        // both carry `CallStatus=in-progress`.
        dedupe_key: match (&answered_by, event_type) {
            (Some(verdict), Some(EventType::Answered)) => format!("plivo:{uuid}:amd:{verdict}"),
            _ => format!("plivo:{uuid}:{status}"),
        },
        event_type,
        provider_status: status,
        provider_call_id: uuid,
        call_id: correlation.call_id,
        campaign_id: correlation.campaign_id,
        contact_id: correlation.contact_id,
        sequence_number: None,
        occurred_at,
        received_at,
        duration_seconds: text("Duration").and_then(|d| d.parse().ok()),
        answered_by,
        error_code: if failed { text("HangupCauseCode").or_else(|| text("HangupCause")) } else { None },
        error_message: if failed { text("HangupCause") } else { None },
        payload: form::to_json(fields),
        source: crate::domain::EventSource::Callback,
        account_sid: None,
        account_checked: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn request(url: &str, body: &str, sig: Option<&str>, nonce: Option<&str>) -> InboundRequest {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/x-www-form-urlencoded"));
        if let Some(sig) = sig {
            headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(sig).unwrap());
        }
        if let Some(nonce) = nonce {
            headers.insert(NONCE_HEADER, HeaderValue::from_str(nonce).unwrap());
        }
        InboundRequest { url: url.into(), headers, body: bytes::Bytes::from(body.to_owned()) }
    }

    fn config(token: &str) -> PlivoConfig {
        PlivoConfig { auth_tokens: vec![Secret::new(token)], ..PlivoConfig::default() }
    }

    // Vectors computed with a Python transcription of plivo-python's V3 helpers.
    #[test]
    fn signed_base_follows_plivos_v3_rules() {
        let url = "https://hooks.example.com/webhooks/telephony/plivo/events?call_id=c-1&campaign_id=x";
        let params =
            fields(&[("CallUUID", "b1a2"), ("CallStatus", "completed"), ("Duration", "12"), ("To", "+14155550100")]);
        assert_eq!(
            signed_base(url, &params).unwrap(),
            "https://hooks.example.com/webhooks/telephony/plivo/events?call_id=c-1&campaign_id=x.CallStatuscompletedCallUUIDb1a2Duration12To+14155550100"
        );
        assert_eq!(
            sign("MAXXXXXXXXXXXXXXXXXX-token", url, &params, "12345678901234567890"),
            "m4uUADQmCnwgCnLBZgdpCASyjbyymuWTUAcnU2SXLvo="
        );
        let no_query = fields(&[("CallUUID", "u"), ("CallStatus", "ringing")]);
        assert_eq!(
            sign("tok", "https://hooks.example.com/cb", &no_query, "n1"),
            "muVxbsOjD9ZcQe0ETHS8VPDlqqXLskbm4IxSpsKatmI="
        );
        assert_eq!(
            sign("tok", "https://hooks.example.com/cb?b=2&a=1&a=0", &[], "n1"),
            "08G/1WMhOqi4zx+p8cBOp+SQnCI+eWZay7u9cTK8bZg="
        );
    }

    #[test]
    fn any_of_several_signatures_may_match() {
        let url = "https://hooks.example.com/cb";
        let body = "CallUUID=u&CallStatus=ringing";
        let good = "muVxbsOjD9ZcQe0ETHS8VPDlqqXLskbm4IxSpsKatmI=";
        let header = format!("c29tZXRoaW5nIGVsc2U=, {good}");
        assert!(verify(&config("tok"), request(url, body, Some(&header), Some("n1"))).is_ok());
        let forged = request(url, body, Some("c29tZXRoaW5nIGVsc2U="), Some("n1"));
        assert!(matches!(verify(&config("tok"), forged), Err(WebhookError::InvalidSignature(_))));
        let other_nonce = request(url, body, Some(good), Some("n2"));
        assert!(matches!(verify(&config("tok"), other_nonce), Err(WebhookError::InvalidSignature(_))));
        let no_nonce = request(url, body, Some(good), None);
        assert!(matches!(verify(&config("tok"), no_nonce), Err(WebhookError::MissingSignature(NONCE_HEADER))));
        assert!(matches!(
            verify(&PlivoConfig::default(), request(url, body, Some(good), Some("n1"))),
            Err(WebhookError::NotConfigured(_))
        ));
    }

    #[test]
    fn parses_a_hangup_callback() {
        let url = "https://h/cb?call_id=c-9";
        let body = "CallUUID=u-9&CallStatus=no-answer&HangupCause=NO_ANSWER&HangupCauseCode=3010&Duration=0&EndTime=2026-11-24+10%3A00%3A30";
        let params = form::decode(body.as_bytes()).unwrap();
        let sig = sign("tok", url, &params, "n");
        let e = parse(verify(&config("tok"), request(url, body, Some(&sig), Some("n"))).unwrap(), Utc::now()).unwrap();
        assert_eq!((e.event_type, e.dedupe_key.as_str()), (Some(EventType::NoAnswer), "plivo:u-9:no-answer"));
        assert_eq!((e.error_code.as_deref(), e.error_message.as_deref()), (Some("3010"), Some("NO_ANSWER")));
        assert_eq!(e.occurred_at.unwrap().to_rfc3339(), "2026-11-24T10:00:30+00:00");
        assert_eq!(e.call_id.as_deref(), Some("c-9"));
        for (status, expected) in [
            ("in-progress", Some(EventType::Answered)),
            ("timeout", Some(EventType::NoAnswer)),
            ("cancel", Some(EventType::Failed)),
            ("odd", None),
        ] {
            assert_eq!(event_type(status), expected, "{status}");
        }
    }
}
