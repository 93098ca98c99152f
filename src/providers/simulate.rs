//! The provider's side of the wire, for the demo, tests and load generators:
//! realistic callback bodies for each provider, signed exactly as that provider
//! signs them, with keys whose verifying half [`Signer::providers`] configures.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ed25519_dalek::{Signer as _, SigningKey};
use sha2::{Digest, Sha256};

use super::twilio::{self, Algorithm};
use super::{form, plivo, telnyx, Providers};
use crate::domain::{EventType, Provider};
use crate::secret::Secret;

/// One callback to simulate.
#[derive(Debug, Clone, Default)]
pub struct Callback<'a> {
    pub provider_call_id: &'a str,
    /// `None` sends a status callhook does not recognise.
    pub event: Option<EventType>,
    /// Answering-machine verdict (`human`, `machine`, `fax`).
    pub answered_by: Option<&'a str>,
    pub duration_seconds: Option<i32>,
}

/// A ready-to-send request body with its headers.
#[derive(Debug, Clone)]
pub struct Signed {
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl Signed {
    /// A POST of this callback to `url` (content type, signature headers, body).
    pub fn post(&self, client: &reqwest::Client, url: &str) -> reqwest::RequestBuilder {
        let mut request = client.post(url).header("content-type", self.content_type).body(self.body.clone());
        for (name, value) in &self.headers {
            request = request.header(*name, value);
        }
        request
    }
}

/// Credentials for every provider, on both sides.
pub struct Signer {
    /// The `AccountSid` Twilio callbacks name (SignalWire: the project id).
    pub twilio_account: String,
    pub signalwire_project: String,
    pub twilio_token: String,
    pub signalwire_key: String,
    pub telnyx_key: SigningKey,
    pub vonage_secret: String,
    pub plivo_token: String,
}

impl Signer {
    /// Keys derived from `seed`, so two runs with one seed agree.
    pub fn from_seed(seed: &str) -> Self {
        let digest: [u8; 32] = Sha256::digest(seed.as_bytes()).into();
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        Signer {
            twilio_account: format!("AC{hex}"),
            signalwire_project: format!(
                "{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            ),
            twilio_token: format!("{seed}-twilio"),
            signalwire_key: format!("PSK{seed}-signalwire"),
            telnyx_key: SigningKey::from_bytes(&digest),
            vonage_secret: format!("{seed}-vonage"),
            plivo_token: format!("{seed}-plivo"),
        }
    }

    /// The verifying configuration that accepts what this signer signs.
    pub fn providers(&self) -> Providers {
        let mut p = Providers::default();
        p.twilio.auth_tokens = vec![Secret::new(&self.twilio_token)];
        p.signalwire.auth_tokens = vec![Secret::new(&self.signalwire_key)];
        p.telnyx.public_keys = vec![self.telnyx_public_key()];
        p.vonage.signature_secrets = vec![Secret::new(&self.vonage_secret)];
        p.plivo.auth_tokens = vec![Secret::new(&self.plivo_token)];
        p
    }

    pub fn telnyx_public_key(&self) -> String {
        BASE64.encode(self.telnyx_key.verifying_key().as_bytes())
    }

    /// `body` for `url`, signed as `provider` signs it at `now` (unix seconds).
    pub fn sign(&self, provider: Provider, url: &str, content_type: &'static str, body: Vec<u8>, now: i64) -> Signed {
        // A provider requests, and signs, the URL without its fragment (where the
        // connection overrides callhook hands out live).
        let url = url.split_once('#').map_or(url, |(requested, _)| requested);
        let headers = match provider {
            Provider::Twilio | Provider::SignalWire => {
                let scheme = if provider == Provider::Twilio { &twilio::TWILIO } else { &twilio::SIGNALWIRE };
                let key = if provider == Provider::Twilio { &self.twilio_token } else { &self.signalwire_key };
                let fields = form::decode(&body).unwrap_or_default();
                vec![(scheme.signature_header, twilio::sign_scheme(scheme, Algorithm::HmacSha1, key, url, &fields))]
            }
            Provider::Telnyx => {
                let mut message = format!("{now}|").into_bytes();
                message.extend_from_slice(&body);
                let signature = BASE64.encode(self.telnyx_key.sign(&message).to_bytes());
                vec![(telnyx::SIGNATURE_HEADER, signature), (telnyx::TIMESTAMP_HEADER, now.to_string())]
            }
            Provider::Vonage => {
                let hash = super::sha256_hex(&body);
                let claims = serde_json::json!({
                    "iat": now, "jti": uuid::Uuid::new_v4(), "iss": "Vonage", "payload_hash": hash,
                    "api_key": "simulated", "application_id": "simulated",
                });
                let key = jsonwebtoken::EncodingKey::from_secret(self.vonage_secret.as_bytes());
                let jwt =
                    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256), &claims, &key)
                        .expect("HS256 signing cannot fail");
                vec![("authorization", format!("Bearer {jwt}"))]
            }
            Provider::Plivo => {
                let fields = form::decode(&body).unwrap_or_default();
                let nonce = uuid::Uuid::new_v4().simple().to_string();
                vec![
                    (plivo::SIGNATURE_HEADER, plivo::sign(&self.plivo_token, url, &fields, &nonce)),
                    (plivo::NONCE_HEADER, nonce),
                ]
            }
        };
        Signed { content_type, body, headers }
    }

    /// A realistic callback for `provider`, signed for `url`.
    pub fn callback(&self, provider: Provider, url: &str, cb: &Callback<'_>, now: i64) -> Signed {
        self.callback_at(provider, url, cb, now, now)
    }

    /// [`Signer::callback`] reporting an event that happened at `happened` (unix
    /// seconds) while signed at `now`: a simulation running on a clock of its own.
    pub fn callback_at(&self, provider: Provider, url: &str, cb: &Callback<'_>, now: i64, happened: i64) -> Signed {
        let (content_type, body) = self.body(provider, cb, happened);
        self.sign(provider, url, content_type, body, now)
    }
}

fn encode_form(fields: &[(&str, String)]) -> Vec<u8> {
    let pairs: Vec<String> =
        fields.iter().map(|(k, v)| format!("{}={}", form::encode_component(k), form::encode_component(v))).collect();
    pairs.join("&").into_bytes()
}

/// The provider's own status word for an event.
fn word(provider: Provider, event: Option<EventType>, machine: bool) -> &'static str {
    use EventType::*;
    match (provider, event) {
        (_, None) => "transferred",
        (Provider::Twilio | Provider::SignalWire | Provider::Plivo, Some(e)) => match e {
            Initiated if provider == Provider::Plivo => "queued",
            Initiated => "initiated",
            Ringing => "ringing",
            Answered => "in-progress",
            Completed => "completed",
            Busy => "busy",
            NoAnswer => "no-answer",
            Failed => "failed",
        },
        (Provider::Vonage, Some(e)) => match e {
            Initiated => "started",
            Ringing => "ringing",
            Answered if machine => "machine",
            Answered => "answered",
            Completed => "completed",
            Busy => "busy",
            NoAnswer => "unanswered",
            Failed => "failed",
        },
        (Provider::Telnyx, Some(e)) => match e {
            Initiated | Ringing => "call.initiated",
            Answered if machine => "call.machine.detection.ended",
            Answered => "call.answered",
            Completed => "normal_clearing",
            Busy => "user_busy",
            NoAnswer => "timeout",
            Failed => "unallocated_number",
        },
    }
}

impl Signer {
    fn body(&self, provider: Provider, cb: &Callback<'_>, now: i64) -> (&'static str, Vec<u8>) {
        const FORM: &str = "application/x-www-form-urlencoded";
        const JSON: &str = "application/json";
        let machine = cb.answered_by.is_some_and(|a| a != "human");
        let status = word(provider, cb.event, machine);
        let at = chrono::DateTime::from_timestamp(now, 0).unwrap_or_default();
        let duration = cb.duration_seconds.unwrap_or(0).to_string();
        match provider {
            Provider::Twilio | Provider::SignalWire => {
                let mut f = vec![
                    (
                        "AccountSid",
                        if provider == Provider::Twilio { &self.twilio_account } else { &self.signalwire_project }
                            .clone(),
                    ),
                    ("CallSid", cb.provider_call_id.to_owned()),
                    ("CallStatus", status.to_owned()),
                    ("Direction", "outbound-api".to_owned()),
                    ("From", "+15005550006".to_owned()),
                    ("To", "+14155550100".to_owned()),
                    ("Timestamp", at.to_rfc2822()),
                ];
                if let Some(a) = cb.answered_by {
                    f.push(("AnsweredBy", if a == "machine" { "machine_start".to_owned() } else { a.to_owned() }));
                }
                if cb.duration_seconds.is_some() {
                    f.push(("CallDuration", duration));
                }
                (FORM, encode_form(&f))
            }
            Provider::Plivo => {
                let mut f = vec![
                    ("CallUUID", cb.provider_call_id.to_owned()),
                    ("CallStatus", status.to_owned()),
                    ("Direction", "outbound".to_owned()),
                    ("From", "15005550006".to_owned()),
                    ("To", "14155550100".to_owned()),
                    ("EndTime", at.format("%Y-%m-%d %H:%M:%S").to_string()),
                ];
                if let Some(a) = cb.answered_by {
                    f.push(("Machine", (a != "human").to_string()));
                }
                if cb.duration_seconds.is_some() {
                    f.push(("Duration", duration));
                }
                (FORM, encode_form(&f))
            }
            Provider::Vonage => {
                let mut b = serde_json::json!({
                    "uuid": cb.provider_call_id, "conversation_uuid": format!("CON-{}", cb.provider_call_id),
                    "status": status, "direction": "outbound", "from": "15005550006", "to": "14155550100",
                    "timestamp": at.to_rfc3339(),
                });
                if cb.duration_seconds.is_some() {
                    b["duration"] = duration.into();
                }
                (JSON, serde_json::to_vec(&b).expect("JSON"))
            }
            Provider::Telnyx => {
                let (event_type, mut payload) = if status.starts_with("call.") {
                    (status.to_owned(), serde_json::json!({}))
                } else {
                    ("call.hangup".to_owned(), serde_json::json!({ "hangup_cause": status }))
                };
                payload["call_control_id"] = cb.provider_call_id.into();
                if machine || cb.answered_by == Some("human") {
                    payload["result"] = if machine { "machine" } else { "human" }.into();
                }
                if let Some(d) = cb.duration_seconds {
                    let start = at - chrono::Duration::seconds(i64::from(d));
                    payload["start_time"] = start.to_rfc3339().into();
                    payload["end_time"] = at.to_rfc3339().into();
                }
                let b = serde_json::json!({
                    "data": {"event_type": event_type, "id": format!("{}:{}", cb.provider_call_id, status),
                             "occurred_at": at.to_rfc3339(), "payload": payload, "record_type": "event"},
                    "meta": {"attempt": 1},
                });
                (JSON, serde_json::to_vec(&b).expect("JSON"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::InboundRequest;

    /// Every simulated callback of every provider verifies and parses back into the
    /// event it simulates.
    #[test]
    fn every_provider_round_trips_through_its_own_verifier() {
        let signer = Signer::from_seed("round-trip");
        let providers = signer.providers();
        let now = chrono::Utc::now();
        for provider in Provider::ALL {
            for event in EventType::ALL {
                if *provider == Provider::Telnyx && *event == EventType::Ringing {
                    continue; // Telnyx has no ringing event.
                }
                let url = format!("https://hooks.example.com/webhooks/telephony/{provider}/events?call_id=c-1");
                let cb = Callback {
                    provider_call_id: "pc-1",
                    event: Some(*event),
                    duration_seconds: Some(42),
                    ..Default::default()
                };
                let signed = signer.callback(*provider, &url, &cb, now.timestamp());
                let mut headers = http::HeaderMap::new();
                headers.insert("content-type", signed.content_type.parse().unwrap());
                for (k, v) in &signed.headers {
                    headers.insert(*k, v.parse().unwrap());
                }
                let request = InboundRequest { url: url.clone(), headers, body: signed.body.into() };
                let e =
                    providers.handle(*provider, request, now).unwrap_or_else(|err| panic!("{provider} {event}: {err}"));
                assert_eq!((e.event_type, e.provider_call_id.as_str()), (Some(*event), "pc-1"), "{provider}");
                assert_eq!(e.call_id.as_deref(), Some("c-1"));
            }
        }
    }
}
