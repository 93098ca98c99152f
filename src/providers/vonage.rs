//! Vonage Voice event webhooks: signed webhooks carry `Authorization: Bearer <JWT>`
//! (HS256 with the account's signature secret) whose `payload_hash` claim is the
//! hex SHA-256 of the raw body; `iat` is required and must be within ±300 s. Events
//! are normalised by `status` and deduplicated on call leg `uuid` + `status`.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use subtle::ConstantTimeEq;

use super::{json_object, Correlation, InboundRequest, Verified, WebhookError};
use crate::domain::{CallEvent, EventType, Provider};
use crate::secret::Secret;

pub const TOLERANCE_SECS: i64 = 300;

#[derive(Debug, Clone, Default)]
pub struct VonageConfig {
    /// Signature secrets; several allow rotation.
    pub signature_secrets: Vec<Secret>,
}

#[derive(Debug, Deserialize)]
struct Claims {
    payload_hash: Option<String>,
    iat: Option<i64>,
    exp: Option<i64>,
    nbf: Option<i64>,
}

pub fn decode_body(request: &InboundRequest) -> Result<Value, WebhookError> {
    json_object(request)
}

pub fn verify(
    config: &VonageConfig,
    request: InboundRequest,
    now: DateTime<Utc>,
) -> Result<Verified<Value>, WebhookError> {
    let body = decode_body(&request)?;
    let token = request
        .header("authorization")
        // The auth scheme is case-insensitive (RFC 9110 §11.1).
        .and_then(|v| v.split_once(' ').filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer")))
        .map(|(_, token)| token.trim())
        .ok_or(WebhookError::MissingSignature("authorization"))?;
    if config.signature_secrets.is_empty() {
        return Err(WebhookError::NotConfigured(Provider::Vonage));
    }
    let mut validation = Validation::new(Algorithm::HS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let claims = config
        .signature_secrets
        .iter()
        .find_map(|secret| {
            jsonwebtoken::decode::<Claims>(
                token.trim(),
                &DecodingKey::from_secret(secret.expose().as_bytes()),
                &validation,
            )
            .ok()
        })
        .ok_or_else(|| WebhookError::InvalidSignature("JWT does not verify with any signature secret".into()))?
        .claims;
    // Without `iat` a captured callback could be replayed forever: refuse it.
    let iat = claims.iat.ok_or_else(|| WebhookError::InvalidSignature("JWT has no iat claim".into()))?;
    if now.timestamp().abs_diff(iat) > TOLERANCE_SECS.unsigned_abs() {
        return Err(WebhookError::InvalidSignature(format!("JWT issued more than {TOLERANCE_SECS} s from now")));
    }
    // `exp` and `nbf`, as the SDK enforces them, with the same leeway for clocks.
    if claims.exp.is_some_and(|exp| now.timestamp() > exp.saturating_add(TOLERANCE_SECS)) {
        return Err(WebhookError::InvalidSignature("JWT has expired (exp)".into()));
    }
    if claims.nbf.is_some_and(|nbf| now.timestamp().saturating_add(TOLERANCE_SECS) < nbf) {
        return Err(WebhookError::InvalidSignature("JWT is not valid yet (nbf)".into()));
    }
    let expected =
        claims.payload_hash.ok_or_else(|| WebhookError::InvalidSignature("JWT has no payload_hash".into()))?;
    let actual = super::sha256_hex(&request.body);
    if !bool::from(actual.as_bytes().ct_eq(expected.to_ascii_lowercase().as_bytes())) {
        return Err(WebhookError::InvalidSignature("body does not match payload_hash".into()));
    }
    Ok(Verified::new(request, body))
}

/// Vonage `status` → domain event and AMD verdict.
pub fn classify(status: &str) -> (Option<EventType>, Option<&'static str>) {
    match status {
        "started" => (Some(EventType::Initiated), None),
        "ringing" => (Some(EventType::Ringing), None),
        "answered" => (Some(EventType::Answered), None),
        "human" => (Some(EventType::Answered), Some("human")),
        "machine" => (Some(EventType::Answered), Some("machine")),
        "completed" => (Some(EventType::Completed), None),
        "busy" | "rejected" => (Some(EventType::Busy), None),
        "unanswered" | "timeout" => (Some(EventType::NoAnswer), None),
        "failed" | "cancelled" => (Some(EventType::Failed), None),
        _ => (None, None),
    }
}

pub fn parse(verified: Verified<Value>, received_at: DateTime<Utc>) -> Result<CallEvent, WebhookError> {
    let correlation = Correlation::from_query(verified.request().query())?;
    let body = verified.body();
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned).filter(|s| !s.is_empty());
    let uuid = text("uuid").ok_or(WebhookError::MissingField("uuid"))?;
    let status = text("status").ok_or(WebhookError::MissingField("status"))?;
    let (event_type, answered_by) = classify(&status);
    let failed = matches!(event_type, Some(EventType::Failed | EventType::Busy | EventType::NoAnswer));
    // `duration` arrives as a string ("23") or a number.
    let duration = body
        .get("duration")
        .and_then(|d| d.as_i64().or_else(|| d.as_str()?.parse().ok()))
        .and_then(|d| i32::try_from(d).ok());
    Ok(CallEvent {
        provider: Provider::Vonage,
        dedupe_key: format!("vonage:{uuid}:{status}"),
        event_type,
        provider_status: status.clone(),
        provider_call_id: uuid,
        call_id: correlation.call_id,
        campaign_id: correlation.campaign_id,
        contact_id: correlation.contact_id,
        sequence_number: None,
        occurred_at: text("timestamp").and_then(|t| DateTime::parse_from_rfc3339(&t).ok()).map(|t| t.to_utc()),
        received_at,
        duration_seconds: duration,
        answered_by: answered_by.map(str::to_owned),
        error_code: if failed { text("detail").or_else(|| Some(status.clone())) } else { None },
        error_message: if failed { text("reason").or_else(|| text("detail")) } else { None },
        payload: body.clone(),
        source: crate::domain::EventSource::Callback,
        account_sid: None,
        account_checked: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};
    use jsonwebtoken::{EncodingKey, Header};

    const SECRET: &str = "vonage-signature-secret";
    const BODY: &str = r#"{"from":"447700900000","to":"447700900001","uuid":"63f61863-4a51-4f6b-86e1-46edebcf9356","conversation_uuid":"CON-f972836a","status":"completed","direction":"outbound","timestamp":"2026-11-24T10:00:30.000Z","duration":"23"}"#;

    fn claims(body: &str, iat: i64) -> Value {
        let hash = crate::providers::sha256_hex(body.as_bytes());
        serde_json::json!({"iat": iat, "jti": "j1", "iss": "Vonage", "payload_hash": hash, "api_key": "abc"})
    }

    fn sign(secret: &str, claims: &Value) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes()))
            .unwrap()
    }

    fn jwt(secret: &str, body: &str, iat: i64) -> String {
        sign(secret, &claims(body, iat))
    }

    fn request(body: &str, token: Option<String>) -> InboundRequest {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        if let Some(t) = token {
            headers.insert("authorization", HeaderValue::from_str(&format!("Bearer {t}")).unwrap());
        }
        InboundRequest { url: "https://h/cb".into(), headers, body: bytes::Bytes::from(body.to_owned()) }
    }

    fn config() -> VonageConfig {
        VonageConfig { signature_secrets: vec![Secret::new("old"), Secret::new(SECRET)] }
    }

    #[test]
    fn verifies_the_jwt_and_payload_hash() {
        let now = Utc::now();
        let e = parse(verify(&config(), request(BODY, Some(jwt(SECRET, BODY, now.timestamp()))), now).unwrap(), now)
            .unwrap();
        assert_eq!((e.event_type, e.duration_seconds), (Some(EventType::Completed), Some(23)));
        assert_eq!(e.dedupe_key, "vonage:63f61863-4a51-4f6b-86e1-46edebcf9356:completed");
    }

    #[test]
    fn rejects_forged_expired_tampered_and_missing_tokens() {
        let now = Utc::now();
        let ts = now.timestamp();
        assert!(matches!(
            verify(&config(), request(BODY, Some(jwt("wrong", BODY, ts))), now),
            Err(WebhookError::InvalidSignature(_))
        ));
        assert!(
            matches!(verify(&config(), request(BODY, Some(jwt(SECRET, BODY, ts - 3600))), now), Err(WebhookError::InvalidSignature(m)) if m.contains("300"))
        );
        let tampered = BODY.replace("completed", "answered");
        assert!(
            matches!(verify(&config(), request(&tampered, Some(jwt(SECRET, BODY, ts))), now), Err(WebhookError::InvalidSignature(m)) if m.contains("payload_hash"))
        );
        assert!(matches!(verify(&config(), request(BODY, None), now), Err(WebhookError::MissingSignature(_))));
    }

    #[test]
    fn refuses_a_token_without_iat() {
        let now = Utc::now();
        let mut no_iat = claims(BODY, now.timestamp());
        no_iat.as_object_mut().unwrap().remove("iat");
        let result = verify(&config(), request(BODY, Some(sign(SECRET, &no_iat))), now);
        assert!(matches!(result, Err(WebhookError::InvalidSignature(ref m)) if m.contains("iat")), "{result:?}");
        // The same token with `iat` put back verifies: only the missing claim was refused.
        assert!(verify(&config(), request(BODY, Some(sign(SECRET, &claims(BODY, now.timestamp())))), now).is_ok());
    }

    #[test]
    fn enforces_exp_and_nbf_with_the_iat_leeway() {
        let now = Utc::now();
        let ts = now.timestamp();
        let with = |claim: &str, value: i64| {
            let mut c = claims(BODY, ts);
            c.as_object_mut().unwrap().insert(claim.into(), value.into());
            verify(&config(), request(BODY, Some(sign(SECRET, &c))), now)
        };
        for (claim, value, ok) in [
            ("exp", ts + 900, true),
            ("exp", ts - TOLERANCE_SECS, true),
            ("exp", ts - TOLERANCE_SECS - 1, false),
            ("exp", i64::MIN, false),
            ("nbf", ts + TOLERANCE_SECS, true),
            ("nbf", ts + TOLERANCE_SECS + 1, false),
            ("nbf", i64::MAX, false),
        ] {
            let result = with(claim, value);
            assert_eq!(result.is_ok(), ok, "{claim} = {value}: {result:?}");
            if !ok {
                assert!(
                    matches!(result, Err(WebhookError::InvalidSignature(ref m)) if m.contains(claim)),
                    "{result:?}"
                );
            }
        }
    }

    #[test]
    fn accepts_iat_at_the_window_edges_and_survives_extreme_values() {
        let now = Utc::now();
        let ts = now.timestamp();
        for iat in [ts - TOLERANCE_SECS, ts + TOLERANCE_SECS] {
            assert!(verify(&config(), request(BODY, Some(jwt(SECRET, BODY, iat))), now).is_ok(), "iat {iat}");
        }
        for iat in [ts - TOLERANCE_SECS - 1, ts + TOLERANCE_SECS + 1, i64::MIN, i64::MAX] {
            let result = verify(&config(), request(BODY, Some(jwt(SECRET, BODY, iat))), now);
            assert!(
                matches!(result, Err(WebhookError::InvalidSignature(ref m)) if m.contains("300")),
                "iat {iat}: {result:?}"
            );
        }
    }

    #[test]
    fn maps_statuses() {
        assert_eq!(classify("machine"), (Some(EventType::Answered), Some("machine")));
        assert_eq!(classify("unanswered").0, Some(EventType::NoAnswer));
        assert_eq!(classify("rejected").0, Some(EventType::Busy));
        assert_eq!(classify("cancelled").0, Some(EventType::Failed));
        assert_eq!(classify("input").0, None);
    }
}
