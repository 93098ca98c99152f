//! Vonage Voice API: "Get detail of a specific call".
//!
//! Sources:
//! - Vonage Voice API OpenAPI (Nexmo/api-specification `definitions/voice.yml`,
//!   operation `getCall`; <https://developer.vonage.com/en/api/voice#getCall>):
//!   `GET https://api.nexmo.com/v1/calls/{uuid}`, bearer JWT; `GetCallResponse` =
//!   `_links`, `uuid`, `conversation_uuid`, `to`, `from`, `status`, `direction`, and
//!   for completed calls `rate`, `price`, `duration` (strings), `start_time`,
//!   `end_time` (`YYYY-MM-DD HH:MM:SS`), `network`.
//! - Vonage/vonage-python-sdk `voice/src/vonage_voice/models/responses.py`
//!   (`CallInfo`), `voice/src/vonage_voice/models/enums.py` (`CallState`: `started
//!   ringing answered machine completed busy cancelled failed rejected timeout
//!   unanswered`) and `voice/tests/data/get_call.json` (which writes the times as
//!   `2024-04-19T01:34:18.000Z`: both forms are read).
//! - JWT: vonage-python-sdk `jwt/src/vonage_jwt/jwt.py` (`generate_application_jwt`:
//!   header `{"alg": "RS256", "typ": "JWT"}`, claims `application_id`, `iat`, `jti`
//!   (a UUID4), `exp` = `iat` + 15 min, signed with the application's private key)
//!   and `http_client/src/vonage_http_client/auth.py` (`Authorization: Bearer <jwt>`).
//! - Error bodies (RFC 7807: `type`, `title`, `detail`, `instance`): vonage-python-sdk
//!   `http_client/tests/data/{401,403,404,429,500}.json`.
//!
//! The status maps through [`crate::providers::vonage::classify`] (`machine` is
//! answered by a machine, `rejected` is busy, `timeout`/`unanswered` no answer,
//! `cancelled` failed), and a failed status is its own error code, as in callbacks.
//! The private key may be PKCS#8 (`BEGIN PRIVATE KEY`, what the Vonage dashboard
//! hands out) or PKCS#1 (`BEGIN RSA PRIVATE KEY`).

use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;

use super::{ApiError, CallApi, CallSnapshot};
use crate::domain::{EventType, Provider};
use crate::providers::vonage::classify;
use crate::secret::Secret;

pub const VONAGE_DEFAULT_BASE: &str = "https://api.nexmo.com";

/// How long a generated JWT is valid, as Vonage's SDKs set it.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone)]
pub struct VonageApiConfig {
    /// `https://api.nexmo.com` (or a regional host); `/v1/calls/…` is appended.
    pub base_url: String,
    pub application_id: String,
    /// The application's RSA private key, PEM.
    pub private_key: Secret,
    pub token_ttl: Duration,
    pub timeout: Duration,
}

impl VonageApiConfig {
    pub fn new(application_id: impl Into<String>, private_key: Secret) -> Self {
        VonageApiConfig {
            base_url: VONAGE_DEFAULT_BASE.to_owned(),
            application_id: application_id.into(),
            private_key,
            token_ttl: DEFAULT_TOKEN_TTL,
            timeout: super::DEFAULT_TIMEOUT,
        }
    }
}

/// Reads one call from the Vonage Voice API.
pub struct VonageApi {
    calls_url: String,
    application_id: String,
    key: EncodingKey,
    token_ttl: Duration,
    client: reqwest::Client,
}

impl std::fmt::Debug for VonageApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VonageApi")
            .field("calls_url", &self.calls_url)
            .field("application_id", &self.application_id)
            .finish()
    }
}

impl VonageApi {
    pub fn new(config: VonageApiConfig) -> Result<Self, ApiError> {
        let base = super::base_url(&config.base_url, "Vonage API base URL")?;
        let application_id = config.application_id.trim().to_owned();
        if application_id.is_empty() {
            return Err(ApiError::NotConfigured("Vonage application ID"));
        }
        if config.token_ttl.is_zero() {
            return Err(ApiError::NotConfigured("Vonage JWT lifetime must be positive"));
        }
        let der = rsa_private_key_der(config.private_key.expose())
            .ok_or(ApiError::NotConfigured("Vonage private key (an RSA key in PEM, PKCS#8 or PKCS#1)"))?;
        let key = EncodingKey::from_rsa_der(&der);
        let api = VonageApi {
            calls_url: format!("{base}/v1/calls/"),
            application_id,
            key,
            token_ttl: config.token_ttl,
            client: super::http_client(config.timeout)?,
        };
        // A key that parses as DER but cannot sign is found now, not on every call.
        api.token(Utc::now().timestamp())
            .map_err(|_| ApiError::NotConfigured("Vonage private key (an RSA key in PEM, PKCS#8 or PKCS#1)"))?;
        Ok(api)
    }

    /// An application JWT issued at `iat`, as Vonage's SDKs make it.
    fn token(&self, iat: i64) -> Result<String, jsonwebtoken::errors::Error> {
        let ttl = i64::try_from(self.token_ttl.as_secs()).unwrap_or(i64::MAX);
        let claims = serde_json::json!({
            "application_id": self.application_id,
            "iat": iat,
            "jti": uuid::Uuid::new_v4().to_string(),
            "exp": iat.saturating_add(ttl),
        });
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("JWT".to_owned());
        jsonwebtoken::encode(&header, &claims, &self.key)
    }
}

#[async_trait]
impl CallApi for VonageApi {
    fn provider(&self) -> Provider {
        Provider::Vonage
    }

    async fn fetch_call(&self, provider_call_id: &str) -> Result<CallSnapshot, ApiError> {
        let url = format!("{}{}", self.calls_url, super::path_segment(provider_call_id)?);
        let jwt =
            self.token(Utc::now().timestamp()).map_err(|e| ApiError::Transport(format!("signing the JWT: {e}")))?;
        let answer = super::send(self.client.get(&url).bearer_auth(jwt)).await?;
        tracing::debug!(provider = "vonage", call = provider_call_id, status = answer.status.as_u16(), "fetched call");
        if !answer.status.is_success() {
            return Err(answer.error(describe_error));
        }
        snapshot(provider_call_id, answer.json_object()?)
    }
}

/// RFC 7807: `{"title": "Unauthorized", "detail": "You did not provide correct credentials.", …}`.
fn describe_error(body: &Value) -> Option<String> {
    let title = super::text(body, "title");
    let detail = super::text(body, "detail");
    match (title, detail) {
        (Some(t), Some(d)) => Some(format!("{t}: {d}")),
        (t, d) => t.or(d),
    }
}

/// The call detail as a snapshot.
pub fn snapshot(asked: &str, raw: Value) -> Result<CallSnapshot, ApiError> {
    super::check_id(&raw, "uuid", asked)?;
    let status = super::required_text(&raw, "status")?;
    let (event_type, answered_by) = classify(&status);
    let failed = matches!(event_type, Some(EventType::Failed | EventType::Busy | EventType::NoAnswer));
    let time = |key: &str| super::text(&raw, key).and_then(|t| parse_time(&t));
    Ok(CallSnapshot {
        provider: Provider::Vonage,
        provider_call_id: asked.to_owned(),
        event_type,
        duration_seconds: super::seconds(&raw, "duration"),
        answered_by: answered_by.map(str::to_owned),
        started_at: time("start_time"),
        answered_at: None,
        ended_at: time("end_time"),
        // As the callback parser: no `detail` here, so the status is the code.
        error_code: if failed { Some(status.clone()) } else { None },
        error_message: None,
        account: None,
        raw_status: status,
        raw,
    })
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) as documented, or RFC 3339 as the SDK's test data.
pub fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    let value = value.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Some(t.to_utc());
    }
    NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S%.f").ok().map(|t| t.and_utc())
}

/// The PKCS#1 DER of an RSA private key given as PEM, PKCS#1 or PKCS#8 (unencrypted).
pub fn rsa_private_key_der(pem: &str) -> Option<Vec<u8>> {
    let (label, der) = pem_decode(pem)?;
    match label.as_str() {
        "RSA PRIVATE KEY" => Some(der),
        "PRIVATE KEY" => pkcs8_rsa_key(&der).map(<[u8]>::to_vec),
        _ => None,
    }
}

/// The label and payload of the first PEM block.
fn pem_decode(pem: &str) -> Option<(String, Vec<u8>)> {
    // Keys pasted into environment variables often carry literal `\n`.
    let pem = pem.replace("\\n", "\n");
    let start = pem.find("-----BEGIN ")?;
    let rest = &pem[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_owned();
    let body_and_end = &rest[label_end + 5..];
    let end = body_and_end.find(&format!("-----END {label}-----"))?;
    let body: String = body_and_end[..end].chars().filter(|c| !c.is_whitespace()).collect();
    Some((label, BASE64.decode(body).ok()?))
}

/// One DER TLV: (tag, contents, rest).
fn der_item(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        rest = &rest[n..];
        len
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// `PrivateKeyInfo ::= SEQUENCE { version INTEGER, algorithm AlgorithmIdentifier,
/// privateKey OCTET STRING, … }` with algorithm rsaEncryption: the inner PKCS#1 key.
fn pkcs8_rsa_key(der: &[u8]) -> Option<&[u8]> {
    const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    let (0x30, info, _) = der_item(der)? else { return None };
    let (0x02, _version, rest) = der_item(info)? else { return None };
    let (0x30, algorithm, rest) = der_item(rest)? else { return None };
    let (0x06, oid, _) = der_item(algorithm)? else { return None };
    if oid != RSA_ENCRYPTION {
        return None;
    }
    let (0x04, key, _) = der_item(rest)? else { return None };
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_time_forms() {
        let t = DateTime::parse_from_rfc3339("2020-01-01T12:00:00Z").unwrap().to_utc();
        assert_eq!(parse_time("2020-01-01 12:00:00"), Some(t));
        assert_eq!(parse_time("2020-01-01T12:00:00.000Z"), Some(t));
        assert_eq!(parse_time("01/01/2020"), None);
    }

    #[test]
    fn refuses_keys_that_are_not_rsa_pem() {
        assert!(rsa_private_key_der("not a key").is_none());
        assert!(rsa_private_key_der("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----").is_none());
        let config = VonageApiConfig::new(
            "app",
            Secret::new("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----"),
        );
        assert!(matches!(VonageApi::new(config), Err(ApiError::NotConfigured(_))));
    }

    #[test]
    fn der_lengths_are_bounded() {
        assert_eq!(der_item(&[0x04, 0x02, 1, 2, 3]), Some((0x04, &[1u8, 2][..], &[3u8][..])));
        assert_eq!(der_item(&[0x04, 0x82, 0x00, 0x01, 9]), Some((0x04, &[9u8][..], &[][..])));
        assert_eq!(der_item(&[0x04, 0x05, 1]), None);
        assert_eq!(der_item(&[0x04, 0x85, 1, 1, 1, 1, 1]), None);
    }
}
