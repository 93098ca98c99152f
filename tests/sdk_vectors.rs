//! Telnyx and Vonage signing checked against the providers' official SDK code, not only
//! against callhook's own simulator: `tests/fixtures/sdk_vectors/{telnyx,vonage}.json`
//! hold signed callbacks that `scripts/sdk-vectors.py` put to the Telnyx Python SDK
//! (`verify_webhook_signature`) and to `vonage-jwt` (`verify_signature`) at a fixed
//! "now", with each SDK's verdict. callhook verifies every vector at that same "now" and
//! must accept exactly what the reference accepts.
//!
//! The reference is the SDK's verdict, and for Vonage also the `payload_hash` comparison
//! that Vonage's docs require of the receiver but `vonage-jwt` leaves out (recorded by the
//! generator as `payload_hash_matches`). Where callhook deliberately differs from it, the
//! vector is listed in [`DIVERGENCES`] with the reason; nothing else may differ.
//!
//! SignalWire's vectors (`signalwire.json`, from `scripts/sdk-vectors-signalwire.py`)
//! carry two verdicts: the `signalwire` Python package's `RequestValidator` and the
//! Node packages `@signalwire/compatibility-api` / `@signalwire/web-api`. The two
//! disagree on a repeated form field's order (Python sorts the values, Node keeps
//! arrival order), and callhook accepts what either official SDK accepts.

use std::collections::{BTreeMap, BTreeSet};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use callhook::domain::Provider;
use callhook::providers::{sha256_hex, InboundRequest, Providers, WebhookError};
use callhook::secret::Secret;

/// A vector where callhook's verdict differs from the reference on purpose.
struct Divergence {
    provider: Provider,
    vector: &'static str,
    callhook_accepts: bool,
    /// Text callhook's refusal must contain.
    refusal: &'static str,
    why: &'static str,
}

const DIVERGENCES: &[Divergence] = &[
    Divergence {
        provider: Provider::Plivo,
        vector: "two_signatures_with_space",
        callhook_accepts: true,
        refusal: "",
        why: "plivo-python splits the header on `,` only; callhook also trims the spaces RFC 9110 list syntax \
              allows after a comma. Every listed value is a whole HMAC under the auth token, so trimming \
              accepts nothing that was not signed",
    },
    Divergence {
        provider: Provider::Vonage,
        vector: "missing_iat",
        callhook_accepts: false,
        refusal: "iat",
        why: "vonage-jwt accepts a JWT without iat, which could be replayed forever",
    },
    Divergence {
        provider: Provider::Vonage,
        vector: "stale_iat",
        callhook_accepts: false,
        refusal: "300",
        why: "vonage-jwt has no replay window; callhook wants iat within ±300 s",
    },
    Divergence {
        provider: Provider::Vonage,
        vector: "iat_60s_ahead",
        callhook_accepts: true,
        refusal: "",
        why: "PyJWT refuses any iat in the future; callhook's ±300 s window tolerates a sender clock running ahead",
    },
    Divergence {
        provider: Provider::SignalWire,
        vector: "json_flat_signed_as_form",
        callhook_accepts: false,
        refusal: "bodySHA256",
        why: "both SDKs fall back to checking a JSON body's parsed fields as a form (a convenience for frameworks \
              that hand over parsed bodies; the Python SDK raises on a nested value); SignalWire's JSON callbacks \
              sign the raw body, and callhook keeps JSON under the raw-body or `bodySHA256` schemes only",
    },
];

#[derive(Debug, Deserialize)]
struct VectorFile {
    provider: String,
    generator: String,
    sdk: Sdk,
    vectors: Vec<Vector>,
}

#[derive(Debug, Deserialize)]
struct Sdk {
    package: String,
    version: String,
}

#[derive(Debug, Deserialize)]
struct Vector {
    name: String,
    now: i64,
    url: String,
    headers: BTreeMap<String, String>,
    body: String,
    /// Telnyx: the base64 Ed25519 public key.
    public_key: Option<String>,
    /// Vonage: the signature secret.
    secret: Option<String>,
    /// Plivo: the auth token.
    auth_token: Option<String>,
    /// SignalWire: the project signing key.
    key: Option<String>,
    sdk_accepts: bool,
    sdk_says: String,
    /// SignalWire: the Node SDK's verdict beside the Python one.
    node_sdk_accepts: Option<bool>,
    /// Vonage: whether the JWT's `payload_hash` is the body's hex SHA-256.
    payload_hash_matches: Option<bool>,
}

impl Vector {
    fn reference_accepts(&self) -> bool {
        (self.sdk_accepts || self.node_sdk_accepts == Some(true)) && self.payload_hash_matches.unwrap_or(true)
    }

    fn providers(&self, provider: Provider) -> Providers {
        let mut p = Providers::default();
        match provider {
            Provider::Telnyx => {
                p.telnyx.public_keys = vec![self.public_key.clone().expect("telnyx vector has public_key")]
            }
            Provider::Vonage => {
                p.vonage.signature_secrets = vec![Secret::new(self.secret.clone().expect("vonage vector has secret"))]
            }
            Provider::Plivo => {
                p.plivo.auth_tokens = vec![Secret::new(self.auth_token.clone().expect("plivo vector has auth_token"))]
            }
            Provider::SignalWire => {
                p.signalwire.auth_tokens = vec![Secret::new(self.key.clone().expect("signalwire vector has key"))]
            }
            other => panic!("no SDK vectors for {other}"),
        }
        p
    }

    fn request(&self) -> InboundRequest {
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            headers.insert(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
        }
        InboundRequest { url: self.url.clone(), headers, body: self.body.clone().into_bytes().into() }
    }

    /// callhook's verdict on this vector with the clock at `now`.
    fn callhook(&self, provider: Provider, now: i64) -> Result<(), WebhookError> {
        let at: DateTime<Utc> = DateTime::from_timestamp(now, 0).unwrap();
        let event = self.providers(provider).handle(provider, self.request(), at)?;
        assert_eq!(event.provider, provider, "{provider} {}", self.name);
        Ok(())
    }
}

fn load(provider: Provider) -> VectorFile {
    let path = format!("{}/tests/fixtures/sdk_vectors/{provider}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let file: VectorFile = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(file.provider, provider.as_str(), "{path}");
    let expected_generator = match provider {
        Provider::SignalWire => "scripts/sdk-vectors-signalwire.py",
        _ => "scripts/sdk-vectors.py",
    };
    assert_eq!(file.generator, expected_generator, "{path}");
    let expected_package = match provider {
        Provider::Telnyx => "telnyx",
        Provider::Plivo => "plivo",
        Provider::SignalWire => "signalwire",
        _ => "vonage-jwt",
    };
    assert_eq!(file.sdk.package, expected_package, "{path}");
    assert!(!file.sdk.version.is_empty(), "{path}: no SDK version");
    let names: BTreeSet<&str> = file.vectors.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names.len(), file.vectors.len(), "{path}: vector names repeat");
    assert!(file.vectors.iter().any(|v| v.reference_accepts()), "{path}: no accepted vector");
    assert!(file.vectors.iter().any(|v| !v.reference_accepts()), "{path}: no refused vector");
    file
}

fn divergence(provider: Provider, name: &str) -> Option<&'static Divergence> {
    DIVERGENCES.iter().find(|d| d.provider == provider && d.vector == name)
}

/// Every vector: callhook's verdict at the vector's "now" is the reference's, or the
/// listed divergence; a refusal is a signature refusal, not some other failure.
fn agrees_with_the_sdk(provider: Provider) {
    let file = load(provider);
    let mut failures = vec![];
    for v in &file.vectors {
        let (expected, needle) = match divergence(provider, &v.name) {
            Some(d) => {
                let listed = format!("{provider} {}: listed as a divergence ({}) but no longer differs", v.name, d.why);
                assert_ne!(d.callhook_accepts, v.reference_accepts(), "{listed}");
                (d.callhook_accepts, d.refusal)
            }
            // Signed by the SDK's lights but not matching the body: refused for payload_hash.
            None if v.sdk_accepts && v.payload_hash_matches == Some(false) => (false, "payload_hash"),
            None => (v.reference_accepts(), ""),
        };
        let outcome = v.callhook(provider, v.now);
        let ok = match (&outcome, expected) {
            (Ok(()), true) => true,
            (Err(WebhookError::InvalidSignature(m)), false) => m.contains(needle),
            (Err(WebhookError::MissingSignature(_)), false) => needle.is_empty(),
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{provider} {}: SDK {} says {:?}, expected callhook to {}, got {outcome:?}",
                v.name,
                file.sdk.package,
                v.sdk_says,
                if expected { "accept".to_owned() } else { format!("refuse ({needle:?})") },
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn callhook_accepts_exactly_the_telnyx_vectors_the_telnyx_sdk_accepts() {
    agrees_with_the_sdk(Provider::Telnyx);
}

#[test]
fn callhook_accepts_exactly_the_plivo_vectors_the_plivo_sdk_accepts() {
    agrees_with_the_sdk(Provider::Plivo);
}

#[test]
fn callhook_accepts_exactly_the_vonage_vectors_the_sdk_and_payload_hash_accept() {
    agrees_with_the_sdk(Provider::Vonage);
}

#[test]
fn callhook_accepts_exactly_the_signalwire_vectors_either_sdk_accepts() {
    agrees_with_the_sdk(Provider::SignalWire);
}

/// Why callhook accepts either order of a repeated form field: each official SDK
/// accepts one order and refuses the other.
#[test]
fn signalwire_sdks_disagree_on_repeated_form_fields() {
    let file = load(Provider::SignalWire);
    let verdicts = |name: &str| {
        let v = file.vectors.iter().find(|v| v.name == name).unwrap_or_else(|| panic!("no vector {name}"));
        assert!(v.body.contains("Tag=zeta&Tag=alpha"), "{name}: {}", v.body);
        (v.sdk_accepts, v.node_sdk_accepts)
    };
    assert_eq!(verdicts("form_repeated_sorted"), (true, Some(false)), "Python sorts, Node keeps arrival order");
    assert_eq!(verdicts("form_repeated_arrival_order"), (false, Some(true)), "Node keeps arrival order");
    assert!(file.vectors.iter().all(|v| v.node_sdk_accepts.is_some()), "every vector has the Node verdict");
}

/// The accepted SignalWire vectors become the events their bodies describe.
#[test]
fn signalwire_vectors_parse_to_their_call_states() {
    use callhook::domain::EventType;
    let at = DateTime::from_timestamp(1_795_514_520, 0).unwrap();
    let form_sid = "8ad8f7b1-0d3f-4c5a-9a4c-6b7f0c1d2e3f";
    let relay_id = "3f1c2b7e-5a4d-4e8f-9b6a-2c1d0e9f8a7b";
    let expected: &[(&str, EventType, String, Option<&str>)] = &[
        (
            "form_completed",
            EventType::Completed,
            format!("signalwire:{form_sid}:completed"),
            Some("2026-11-24T10:01:18+00:00"),
        ),
        (
            "form_repeated_sorted",
            EventType::Ringing,
            format!("signalwire:{form_sid}:ringing"),
            Some("2026-11-24T10:00:02+00:00"),
        ),
        (
            "form_repeated_arrival_order",
            EventType::Ringing,
            format!("signalwire:{form_sid}:ringing"),
            Some("2026-11-24T10:00:02+00:00"),
        ),
        (
            "json_relay_answered",
            EventType::Answered,
            format!("signalwire:{relay_id}:answered"),
            Some("2026-11-24T10:00:07.511+00:00"),
        ),
        (
            "json_relay_ended",
            EventType::NoAnswer,
            format!("signalwire:{relay_id}:ended:noAnswer"),
            Some("2026-11-24T10:01:18.102+00:00"),
        ),
        (
            "json_swml_created",
            EventType::Initiated,
            "signalwire:b5d63b2e-f75b-4dc8-b6d4-269b635f96c0:created".to_owned(),
            None,
        ),
    ];
    let file = load(Provider::SignalWire);
    for (name, event_type, dedupe_key, occurred_at) in expected {
        let v = file.vectors.iter().find(|v| v.name == *name).unwrap_or_else(|| panic!("no vector {name}"));
        let event = v.providers(Provider::SignalWire).handle(Provider::SignalWire, v.request(), at).unwrap();
        assert_eq!(event.event_type, Some(*event_type), "{name}");
        assert_eq!(&event.dedupe_key, dedupe_key, "{name}");
        assert_eq!(event.call_id.as_deref(), Some("c-1"), "{name}");
        assert_eq!(event.occurred_at.map(|t| t.to_rfc3339()).as_deref(), *occurred_at, "{name}");
    }
}

#[test]
fn every_divergence_names_a_vector() {
    for d in DIVERGENCES {
        assert!(!d.why.is_empty(), "{}: say why", d.vector);
        assert!(
            load(d.provider).vectors.iter().any(|v| v.name == d.vector),
            "{} {}: no such vector",
            d.provider,
            d.vector
        );
    }
}

/// The vectors are time-bound and the verdicts above were taken at each vector's own
/// "now": an hour either side, callhook refuses even what it accepted.
#[test]
fn accepted_vectors_are_refused_an_hour_away_from_their_now() {
    for provider in [Provider::Telnyx, Provider::Vonage] {
        for v in load(provider).vectors.iter().filter(|v| v.callhook(provider, v.now).is_ok()) {
            for shift in [-3600, 3600] {
                let result = v.callhook(provider, v.now + shift);
                assert!(
                    matches!(result, Err(WebhookError::InvalidSignature(ref m)) if m.contains("300")),
                    "{provider} {} at now{shift:+}: {result:?}",
                    v.name,
                );
            }
        }
    }
}

/// `payload_hash_matches` is the generator's own check, not the SDK's: recompute it from
/// the token's (unverified) claims and the body.
#[test]
fn vonage_payload_hash_matches_is_what_it_says() {
    for v in load(Provider::Vonage).vectors {
        let token = v.headers["authorization"].strip_prefix("Bearer ").unwrap();
        let claims = token.split('.').nth(1).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
        let matches = claims["payload_hash"].as_str() == Some(sha256_hex(v.body.as_bytes()).as_str());
        assert_eq!(v.payload_hash_matches, Some(matches), "{}", v.name);
    }
}
