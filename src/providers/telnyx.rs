//! Telnyx Call Control webhooks: Ed25519 over `{telnyx-timestamp}|{raw body}` with
//! the account's public key, timestamps accepted within ±300 s; JSON events
//! normalised by `data.event_type` (hangups by `hangup_cause`), deduplicated on the
//! event id `data.id`. The provider call id is `payload.call_control_id`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde_json::Value;

use super::{json_object, Correlation, InboundRequest, Verified, WebhookError};
use crate::domain::{CallEvent, EventType, Provider};

pub const SIGNATURE_HEADER: &str = "telnyx-signature-ed25519";
pub const TIMESTAMP_HEADER: &str = "telnyx-timestamp";
pub const TOLERANCE_SECS: i64 = 300;

/// Telnyx public keys (base64, from the portal); several allow rotation.
#[derive(Debug, Clone, Default)]
pub struct TelnyxConfig {
    pub public_keys: Vec<String>,
}

pub fn decode_body(request: &InboundRequest) -> Result<Value, WebhookError> {
    json_object(request)
}

pub fn verify(
    config: &TelnyxConfig,
    request: InboundRequest,
    now: DateTime<Utc>,
) -> Result<Verified<Value>, WebhookError> {
    let body = decode_body(&request)?;
    let signature = request.header(SIGNATURE_HEADER).ok_or(WebhookError::MissingSignature(SIGNATURE_HEADER))?;
    let timestamp = request.header(TIMESTAMP_HEADER).ok_or(WebhookError::MissingSignature(TIMESTAMP_HEADER))?;
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| WebhookError::InvalidSignature("telnyx-timestamp is not a number".into()))?;
    if now.timestamp().abs_diff(ts) > TOLERANCE_SECS.unsigned_abs() {
        return Err(WebhookError::InvalidSignature(format!("timestamp is more than {TOLERANCE_SECS} s off")));
    }
    let signature = BASE64
        .decode(signature.trim())
        .ok()
        .and_then(|bytes| Signature::from_slice(&bytes).ok())
        .ok_or_else(|| WebhookError::InvalidSignature("signature is not a base64 Ed25519 signature".into()))?;
    let keys: Vec<VerifyingKey> = config.public_keys.iter().filter_map(|k| parse_key(k)).collect();
    if keys.is_empty() {
        return Err(WebhookError::NotConfigured(Provider::Telnyx));
    }
    let mut message = Vec::with_capacity(timestamp.len() + 1 + request.body.len());
    message.extend_from_slice(timestamp.trim().as_bytes());
    message.push(b'|');
    message.extend_from_slice(&request.body);
    if keys.iter().any(|key| key.verify(&message, &signature).is_ok()) {
        Ok(Verified::new(request, body))
    } else {
        Err(WebhookError::InvalidSignature("signature does not match".into()))
    }
}

/// A base64 32-byte Ed25519 public key, or `None`.
pub fn parse_key(b64: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = BASE64.decode(b64.trim()).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// `hangup_cause` → terminal event. Unlisted causes count as failures.
pub fn hangup_event(cause: &str) -> EventType {
    match cause {
        "normal_clearing" | "time_limit" => EventType::Completed,
        "user_busy" | "call_rejected" => EventType::Busy,
        "no_answer" | "timeout" | "no_user_response" => EventType::NoAnswer,
        _ => EventType::Failed,
    }
}

/// Telnyx `data.event_type` (and hangup cause) → domain event, with the AMD verdict.
fn classify(event_type: &str, payload: &Value) -> (Option<EventType>, Option<String>) {
    let text = |k: &str| payload.get(k).and_then(Value::as_str);
    match event_type {
        "call.initiated" => (Some(EventType::Initiated), None),
        "call.answered" => (Some(EventType::Answered), None),
        "call.hangup" => (Some(hangup_event(text("hangup_cause").unwrap_or(""))), None),
        "call.machine.detection.ended" | "call.machine.premium.detection.ended" => {
            let verdict = match text("result").unwrap_or("not_sure") {
                r if r.starts_with("human") => "human",
                "machine" => "machine",
                "fax_detected" => "fax",
                _ => "unknown",
            };
            (Some(EventType::Answered), Some(verdict.to_owned()))
        }
        _ => (None, None),
    }
}

pub fn parse(verified: Verified<Value>, received_at: DateTime<Utc>) -> Result<CallEvent, WebhookError> {
    let correlation = Correlation::from_query(verified.request().query())?;
    let body = verified.body();
    let data = body.get("data").filter(|d| d.is_object()).ok_or(WebhookError::MissingField("data"))?;
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned).filter(|s| !s.is_empty());
    let id = text(data, "id").ok_or(WebhookError::MissingField("data.id"))?;
    let kind = text(data, "event_type").ok_or(WebhookError::MissingField("data.event_type"))?;
    let empty = Value::Null;
    let payload = data.get("payload").unwrap_or(&empty);
    let call_control_id =
        text(payload, "call_control_id").ok_or(WebhookError::MissingField("data.payload.call_control_id"))?;
    let (event_type, answered_by) = classify(&kind, payload);
    let cause = text(payload, "hangup_cause");
    let failed = matches!(event_type, Some(EventType::Failed | EventType::Busy | EventType::NoAnswer));
    let time = |k: &str| text(payload, k).and_then(|t| DateTime::parse_from_rfc3339(&t).ok()).map(|t| t.to_utc());
    let duration = match (time("start_time"), time("end_time")) {
        (Some(start), Some(end)) if end >= start => i32::try_from((end - start).num_seconds()).ok(),
        _ => None,
    };
    Ok(CallEvent {
        provider: Provider::Telnyx,
        dedupe_key: format!("telnyx:{id}"),
        event_type,
        provider_status: match &cause {
            Some(cause) if kind == "call.hangup" => format!("{kind}:{cause}"),
            _ => kind.clone(),
        },
        provider_call_id: call_control_id,
        call_id: correlation.call_id,
        campaign_id: correlation.campaign_id,
        contact_id: correlation.contact_id,
        sequence_number: None,
        occurred_at: text(data, "occurred_at").and_then(|t| DateTime::parse_from_rfc3339(&t).ok()).map(|t| t.to_utc()),
        received_at,
        duration_seconds: duration,
        answered_by,
        error_code: if failed {
            // `unspecified` stands for "no SIP response": the hangup cause says more.
            text(payload, "sip_hangup_cause")
                .filter(|c| c != "unspecified")
                .map(|c| format!("sip:{c}"))
                .or(cause.clone())
        } else {
            None
        },
        error_message: if failed { cause } else { None },
        payload: body.clone(),
        source: crate::domain::EventSource::Callback,
        account_sid: None,
        account_checked: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};
    use http::{HeaderMap, HeaderValue};

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    fn config() -> TelnyxConfig {
        TelnyxConfig { public_keys: vec![BASE64.encode(key().verifying_key().as_bytes())] }
    }

    const BODY: &str = r#"{"data":{"event_type":"call.hangup","id":"0ccc7b54-4df3-4bca-a65a-3da1ecc777f0","occurred_at":"2026-11-24T10:00:30.000000Z","payload":{"call_control_id":"v3:abc","hangup_cause":"user_busy","sip_hangup_cause":"486","start_time":"2026-11-24T10:00:00Z","end_time":"2026-11-24T10:00:30Z"},"record_type":"event"},"meta":{"attempt":1}}"#;

    fn request(ts: i64, body: &str, signature: Option<String>) -> InboundRequest {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert(TIMESTAMP_HEADER, HeaderValue::from_str(&ts.to_string()).unwrap());
        if let Some(sig) = signature {
            headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(&sig).unwrap());
        }
        InboundRequest { url: "https://h/cb?call_id=c-1".into(), headers, body: bytes::Bytes::from(body.to_owned()) }
    }

    fn signed(ts: i64, body: &str) -> String {
        BASE64.encode(key().sign(format!("{ts}|{body}").as_bytes()).to_bytes())
    }

    #[test]
    fn verifies_and_parses_a_hangup() {
        let now = Utc::now();
        let ts = now.timestamp();
        let e = parse(verify(&config(), request(ts, BODY, Some(signed(ts, BODY))), now).unwrap(), now).unwrap();
        assert_eq!(e.event_type, Some(EventType::Busy));
        assert_eq!(e.dedupe_key, "telnyx:0ccc7b54-4df3-4bca-a65a-3da1ecc777f0");
        assert_eq!((e.provider_call_id.as_str(), e.provider_status.as_str()), ("v3:abc", "call.hangup:user_busy"));
        assert_eq!((e.error_code.as_deref(), e.duration_seconds), (Some("sip:486"), Some(30)));

        // No SIP response (`unspecified`): the hangup cause is the code.
        let body = BODY
            .replace("user_busy", "not_found")
            .replace(r#""sip_hangup_cause":"486""#, r#""sip_hangup_cause":"unspecified""#);
        let e = parse(verify(&config(), request(ts, &body, Some(signed(ts, &body))), now).unwrap(), now).unwrap();
        assert_eq!(e.error_code.as_deref(), Some("not_found"));
    }

    #[test]
    fn rejects_forged_stale_and_unsigned_requests() {
        let now = Utc::now();
        let ts = now.timestamp();
        let tampered = BODY.replace("user_busy", "normal_clearing");
        assert!(matches!(
            verify(&config(), request(ts, &tampered, Some(signed(ts, BODY))), now),
            Err(WebhookError::InvalidSignature(_))
        ));
        let old = ts - 301;
        assert!(
            matches!(verify(&config(), request(old, BODY, Some(signed(old, BODY))), now), Err(WebhookError::InvalidSignature(m)) if m.contains("300"))
        );
        assert!(matches!(
            verify(&config(), request(ts, BODY, None), now),
            Err(WebhookError::MissingSignature(SIGNATURE_HEADER))
        ));
        // Extreme timestamps are refused, not an overflow (a panic in debug builds).
        for extreme in [i64::MIN, i64::MAX] {
            let refused = verify(&config(), request(extreme, BODY, Some(signed(extreme, BODY))), now);
            assert!(matches!(refused, Err(WebhookError::InvalidSignature(m)) if m.contains("300")));
        }
        let other = SigningKey::from_bytes(&[9u8; 32]);
        let foreign = BASE64.encode(other.sign(format!("{ts}|{BODY}").as_bytes()).to_bytes());
        assert!(matches!(
            verify(&config(), request(ts, BODY, Some(foreign)), now),
            Err(WebhookError::InvalidSignature(_))
        ));
        assert!(matches!(
            verify(&TelnyxConfig::default(), request(ts, BODY, Some(signed(ts, BODY))), now),
            Err(WebhookError::NotConfigured(_))
        ));
    }

    #[test]
    fn maps_events_and_hangup_causes() {
        for (cause, expected) in [
            ("normal_clearing", EventType::Completed),
            ("timeout", EventType::NoAnswer),
            ("call_rejected", EventType::Busy),
            ("unallocated_number", EventType::Failed),
        ] {
            assert_eq!(hangup_event(cause), expected, "{cause}");
        }
        let amd = serde_json::json!({"result": "machine"});
        assert_eq!(classify("call.machine.detection.ended", &amd), (Some(EventType::Answered), Some("machine".into())));
        assert_eq!(classify("call.bridged", &amd), (None, None));
    }
}
