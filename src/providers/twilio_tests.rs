//! Signature vectors (Twilio's published ones, and ones derived independently with
//! Python's `hmac` from Twilio's documented algorithm) and parsing tests.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};

use super::*;

const TOKEN: &str = "12345";
const DOC_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

fn doc_fields() -> Fields {
    [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675309"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn config() -> TwilioConfig {
    TwilioConfig { auth_tokens: vec![Secret::new(TOKEN)], shared_keys: vec![], accounts: vec![] }
}

fn form_body(fields: &[(String, String)]) -> Bytes {
    let mut s = String::new();
    for (k, v) in fields {
        if !s.is_empty() {
            s.push('&');
        }
        s.push_str(&percent_encoding::utf8_percent_encode(k, percent_encoding::NON_ALPHANUMERIC).to_string());
        s.push('=');
        s.push_str(&percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string());
    }
    Bytes::from(s)
}

fn request(url: &str, content_type: &str, body: Bytes, headers: &[(&'static str, &str)]) -> InboundRequest {
    let mut map = HeaderMap::new();
    map.insert("content-type", HeaderValue::from_str(content_type).unwrap());
    for (k, v) in headers {
        map.insert(*k, HeaderValue::from_str(v).unwrap());
    }
    InboundRequest { url: url.to_owned(), headers: map, body }
}

fn form_request(url: &str, fields: &[(String, String)], signature: &str) -> InboundRequest {
    request(url, "application/x-www-form-urlencoded", form_body(fields), &[(SIGNATURE_HEADER, signature)])
}

#[test]
fn published_vector_signs_and_verifies() {
    assert_eq!(sign(Algorithm::HmacSha1, TOKEN, DOC_URL, &doc_fields()), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
    let req = form_request(DOC_URL, &doc_fields(), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
    assert!(verify(&config(), req).is_ok());
}

#[test]
fn field_order_in_the_body_does_not_matter() {
    let mut reversed = doc_fields();
    reversed.reverse();
    assert!(verify(&config(), form_request(DOC_URL, &reversed, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")).is_ok());
}

#[test]
fn default_port_is_accepted_either_way() {
    // Signed with :443, requested without: the server sees no port.
    let with_port = "kvajT1Ptam85bY51eRf/AJRuM3w=";
    assert!(verify(&config(), form_request(DOC_URL, &doc_fields(), with_port)).is_ok());
    // Signed without, requested with :443.
    let req =
        form_request("https://mycompany.com:443/myapp.php?foo=1&bar=2", &doc_fields(), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
    assert!(verify(&config(), req).is_ok());
    // Twilio's published vector for http with :80 added.
    let req = form_request("http://mycompany.com/myapp.php?foo=1&bar=2", &doc_fields(), "0ZXoZLH/DfblKGATFgpif+LLRf4=");
    assert!(verify(&config(), req).is_ok());
}

#[test]
fn non_default_port_is_never_stripped() {
    assert_eq!(url_variants("https://h:8443/x"), vec!["https://h:8443/x"]);
    assert_eq!(url_variants("https://u:p@h/x?a=1"), vec!["https://u:p@h/x?a=1", "https://u:p@h:443/x?a=1"]);
    assert_eq!(url_variants("http://[::1]:80/x"), vec!["http://[::1]:80/x", "http://[::1]/x"]);
    let signed = sign(Algorithm::HmacSha1, TOKEN, "https://mycompany.com/myapp.php", &doc_fields());
    let req = form_request("https://mycompany.com:8443/myapp.php", &doc_fields(), &signed);
    assert!(matches!(verify(&config(), req), Err(WebhookError::InvalidSignature(_))));
}

#[test]
fn repeated_fields_sort_their_values() {
    let fields: Fields = [("Tag", "beta"), ("CallStatus", "ringing"), ("Tag", "alpha"), ("CallSid", "CA1")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(sign(Algorithm::HmacSha1, TOKEN, "https://mycompany.com/cb", &fields), "FNcAlHK5qI1CdrOdecZSqa/+zmY=");
}

#[test]
fn unicode_values_sign_as_utf8() {
    let url = "https://mycompany.com/cb?call_id=c1";
    let fields: Fields = [("CallSid", "CA1"), ("CallStatus", "ringing"), ("CallerName", "Renée Ørsted 日本")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert!(verify(&config(), form_request(url, &fields, "PnSe14YQYPmeOJomE3HfMJPDYA8=")).is_ok());
}

#[test]
fn json_body_is_covered_by_body_sha256() {
    let body = r#"{"property": "value", "boolean": true}"#;
    let url = format!("{DOC_URL}&bodySHA256={}", body_sha256(body.as_bytes()));
    assert!(url.ends_with("0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"));
    let sig = [(SIGNATURE_HEADER, "a9nBmqA0ju/hNViExpshrM61xv4=")];
    assert!(verify(&config(), request(&url, "application/json", Bytes::from(body), &sig)).is_ok());

    let tampered = request(&url, "application/json", Bytes::from(r#"{"property": "evil"}"#), &sig);
    assert!(matches!(verify(&config(), tampered), Err(WebhookError::InvalidSignature(m)) if m.contains("bodySHA256")));
    let no_hash = request(DOC_URL, "application/json", Bytes::from(body), &sig);
    assert!(matches!(verify(&config(), no_hash), Err(WebhookError::InvalidSignature(_))));
}

#[test]
fn shared_key_scheme_uses_the_named_algorithm() {
    let settings = [
        (SIGNATURE_HEADER, "YKvYGg1AYc86d6f3qf+2R3YijMBTWMuqIzEg9uwb3AQ="),
        (SETTINGS_HEADER, "key=KS123,algorithm=HMAC_SHA256"),
    ];
    let req = || request(DOC_URL, "application/x-www-form-urlencoded", form_body(&doc_fields()), &settings);
    assert!(matches!(verify(&config(), req()), Err(WebhookError::NotConfigured(Provider::Twilio))));

    let cfg = TwilioConfig {
        auth_tokens: vec![],
        shared_keys: vec![Secret::new("old"), Secret::new("sk_secret")],
        accounts: vec![],
    };
    assert!(verify(&cfg, req()).is_ok());

    let bad = [
        (SIGNATURE_HEADER, "YKvYGg1AYc86d6f3qf+2R3YijMBTWMuqIzEg9uwb3AQ="),
        (SETTINGS_HEADER, "key=KS1,algorithm=MD5"),
    ];
    let req = request(DOC_URL, "application/x-www-form-urlencoded", form_body(&doc_fields()), &bad);
    assert!(matches!(verify(&cfg, req), Err(WebhookError::InvalidSignature(m)) if m.contains("MD5")));
}

#[test]
fn rotation_accepts_any_configured_token() {
    let cfg = TwilioConfig {
        auth_tokens: vec![Secret::new("new-token"), Secret::new(TOKEN)],
        shared_keys: vec![],
        accounts: vec![],
    };
    assert!(verify(&cfg, form_request(DOC_URL, &doc_fields(), "RSOYDt4T1cUTdK1PDd93/VVr8B8=")).is_ok());
}

#[test]
fn forged_missing_and_garbled_signatures_are_rejected() {
    let forged = form_request(DOC_URL, &doc_fields(), "RSOYDt4T1cUTdK1PDd93/VVr8B9=");
    assert!(matches!(verify(&config(), forged), Err(WebhookError::InvalidSignature(_))));
    let mut tampered = doc_fields();
    tampered[2].1 = "9999".into();
    let tampered = form_request(DOC_URL, &tampered, "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
    assert!(matches!(verify(&config(), tampered), Err(WebhookError::InvalidSignature(_))));
    let garbled = form_request(DOC_URL, &doc_fields(), "not base64!");
    assert!(matches!(verify(&config(), garbled), Err(WebhookError::InvalidSignature(_))));
    let missing = request(DOC_URL, "application/x-www-form-urlencoded", form_body(&doc_fields()), &[]);
    assert!(matches!(verify(&config(), missing), Err(WebhookError::MissingSignature(_))));
    let unconfigured = form_request(DOC_URL, &doc_fields(), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
    assert!(matches!(verify(&TwilioConfig::default(), unconfigured), Err(WebhookError::NotConfigured(_))));
}

#[test]
fn wrong_content_type_is_unsupported_media() {
    let req = request(DOC_URL, "text/plain", Bytes::from("CallSid=CA1"), &[]);
    assert!(matches!(verify(&config(), req), Err(WebhookError::UnsupportedMediaType(t)) if t == "text/plain"));
}

fn parse_fields(url: &str, fields: &[(&str, &str)]) -> Result<CallEvent, WebhookError> {
    let fields: Fields = fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let signature = sign(Algorithm::HmacSha1, TOKEN, url, &fields);
    let verified = verify(&config(), form_request(url, &fields, &signature))?;
    parse(verified, Utc::now())
}

#[test]
fn parses_a_status_callback() {
    let url = "https://hooks.example.com/webhooks/telephony/events?call_id=c-1&campaign_id=7f6c1e0e-4a8f-4c39-9d43-1b2a3c4d5e6f";
    let e = parse_fields(
        url,
        &[
            ("CallSid", "CA42"),
            ("CallStatus", "no-answer"),
            ("Timestamp", "Tue, 24 Nov 2026 19:37:33 +0000"),
            ("SequenceNumber", "3"),
            ("CallDuration", "0"),
            ("SipResponseCode", "487"),
            ("AccountSid", "AC1"),
        ],
    )
    .unwrap();
    assert_eq!(e.event_type, Some(EventType::NoAnswer));
    assert_eq!(e.dedupe_key, "twilio:CA42:no-answer");
    assert_eq!(e.call_id.as_deref(), Some("c-1"));
    assert_eq!(e.campaign_id.unwrap().to_string(), "7f6c1e0e-4a8f-4c39-9d43-1b2a3c4d5e6f");
    assert_eq!(e.sequence_number, Some(3));
    assert_eq!(e.occurred_at.unwrap().to_rfc3339(), "2026-11-24T19:37:33+00:00");
    assert_eq!(e.error_code.as_deref(), Some("sip:487"));
    assert_eq!(e.payload["AccountSid"], "AC1");
}

/// SignalWire's form callbacks name the SIP code `SipResultCode`; Twilio's
/// `ErrorCode` wins over any SIP code (permanent failures are read from these).
#[test]
fn the_failure_code_is_the_error_code_else_either_sip_field() {
    let url = "https://hooks.example.com/webhooks/telephony/events?call_id=c-9";
    let code = |fields: &[(&str, &str)]| parse_fields(url, fields).unwrap().error_code;
    let failed = [("CallSid", "CA9"), ("CallStatus", "failed")];
    assert_eq!(code(&[failed[0], failed[1], ("SipResultCode", "404")]).as_deref(), Some("sip:404"));
    assert_eq!(code(&[failed[0], failed[1], ("SipResponseCode", "410")]).as_deref(), Some("sip:410"));
    assert_eq!(
        code(&[failed[0], failed[1], ("ErrorCode", "13224"), ("SipResponseCode", "404")]).as_deref(),
        Some("13224")
    );
    assert_eq!(code(&[failed[0], ("CallStatus", "completed"), ("SipResponseCode", "200")]), None);
}

#[test]
fn maps_every_documented_status() {
    let expected = [
        ("queued", Some(EventType::Initiated)),
        ("initiated", Some(EventType::Initiated)),
        ("ringing", Some(EventType::Ringing)),
        ("in-progress", Some(EventType::Answered)),
        ("completed", Some(EventType::Completed)),
        ("busy", Some(EventType::Busy)),
        ("no-answer", Some(EventType::NoAnswer)),
        ("failed", Some(EventType::Failed)),
        ("canceled", Some(EventType::Failed)),
        ("transferred", None),
    ];
    for (status, event) in expected {
        assert_eq!(event_type(status), event, "{status}");
    }
}

#[test]
fn missing_fields_and_bad_uuids_are_client_errors() {
    let url = "https://h/cb";
    assert!(matches!(parse_fields(url, &[("CallStatus", "ringing")]), Err(WebhookError::MissingField("CallSid"))));
    assert!(matches!(parse_fields(url, &[("CallSid", "CA1")]), Err(WebhookError::MissingField("CallStatus"))));
    let bad = parse_fields("https://h/cb?contact_id=42", &[("CallSid", "CA1"), ("CallStatus", "ringing")]);
    assert!(matches!(bad, Err(WebhookError::InvalidField { field: "contact_id", .. })));
}

#[test]
fn signalwire_signs_repeated_values_in_arrival_order_with_its_own_header() {
    let url = "https://example.signalwire.com/cb?call_id=c1";
    let fields: Fields = [("Tag", "zeta"), ("CallStatus", "ringing"), ("Tag", "alpha"), ("CallSid", "abc")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // Python: HMAC-SHA1 over URL + CallSidabc + CallStatusringing + Tagzeta + Tagalpha.
    assert_eq!(
        sign_scheme(&SIGNALWIRE, Algorithm::HmacSha1, "PSK_signing_key", url, &fields),
        "PC0o+vaMeXCn7cb+kR7AkDSNdpY="
    );
    let cfg = TwilioConfig { auth_tokens: vec![Secret::new("PSK_signing_key")], shared_keys: vec![], accounts: vec![] };
    let req = request(
        url,
        "application/x-www-form-urlencoded",
        form_body(&fields),
        &[("x-signalwire-signature", "PC0o+vaMeXCn7cb+kR7AkDSNdpY=")],
    );
    let event = parse_scheme(&SIGNALWIRE, verify_scheme(&SIGNALWIRE, &cfg, req).unwrap(), Utc::now()).unwrap();
    assert_eq!((event.provider, event.dedupe_key.as_str()), (Provider::SignalWire, "signalwire:abc:ringing"));
    // The Twilio header is not SignalWire's.
    let req = request(
        url,
        "application/x-www-form-urlencoded",
        form_body(&fields),
        &[(SIGNATURE_HEADER, "PC0o+vaMeXCn7cb+kR7AkDSNdpY=")],
    );
    assert!(matches!(
        verify_scheme(&SIGNALWIRE, &cfg, req),
        Err(WebhookError::MissingSignature("x-signalwire-signature"))
    ));
}

#[test]
fn signalwire_accepts_repeated_values_sorted_too_and_twilio_only_sorted() {
    let url = "https://example.signalwire.com/cb?call_id=c1";
    let fields: Fields = [("Tag", "zeta"), ("CallStatus", "ringing"), ("Tag", "alpha"), ("CallSid", "abc")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // Python: HMAC-SHA1 over URL + CallSidabc + CallStatusringing + Tagalpha + Tagzeta.
    let sorted = "6lJAlN3XY+HwUv9YNdI3DOzDaMc=";
    let arrival = "PC0o+vaMeXCn7cb+kR7AkDSNdpY=";
    let cfg = TwilioConfig { auth_tokens: vec![Secret::new("PSK_signing_key")], shared_keys: vec![], accounts: vec![] };
    let req = |header: &'static str, sig: &str| {
        request(url, "application/x-www-form-urlencoded", form_body(&fields), &[(header, sig)])
    };
    assert!(verify_scheme(&SIGNALWIRE, &cfg, req("x-signalwire-signature", sorted)).is_ok());
    assert!(verify_scheme(&SIGNALWIRE, &cfg, req("x-signalwire-signature", arrival)).is_ok());
    assert_eq!(signing_strings(&SIGNALWIRE, url, &fields).len(), 2);
    // Twilio sorts: the arrival-order signature is not Twilio's.
    assert!(verify(&cfg, req(SIGNATURE_HEADER, sorted)).is_ok());
    assert!(matches!(verify(&cfg, req(SIGNATURE_HEADER, arrival)), Err(WebhookError::InvalidSignature(_))));
    // Neither order is a signature over other values.
    let mut reversed = fields.clone();
    reversed.swap(0, 2);
    let swapped =
        request(url, "application/x-www-form-urlencoded", form_body(&reversed), &[("x-signalwire-signature", arrival)]);
    assert!(matches!(verify_scheme(&SIGNALWIRE, &cfg, swapped), Err(WebhookError::InvalidSignature(_))));
}

fn signalwire_json(url: &str, body: &str, signature: &str) -> InboundRequest {
    request(url, "application/json", Bytes::from(body.to_owned()), &[("x-signalwire-signature", signature)])
}

#[test]
fn signalwire_json_is_a_hex_hmac_over_url_and_raw_body() {
    // The vector in signalwire-python's and @signalwire/web-api's own tests.
    let url = "https://81f2-2-45-18-191.ngrok-free.app/";
    let body = r#"{"call":{"call_id":"b5d63b2e-f75b-4dc8-b6d4-269b635f96c0","node_id":"fa3570ae-f8bd-42c2-83f4-9950d906c91b@us-west","segment_id":"b5d63b2e-f75b-4dc8-b6d4-269b635f96c0","call_state":"created","direction":"inbound","type":"phone","from":"+12135877632","to":"+12089806814","from_number":"+12135877632","to_number":"+12089806814","project_id":"4b7ae78a-d02e-4889-a63b-08b156d5916e","space_id":"62615f44-2a34-4235-b38b-76b5a1de6ef8"},"vars":{}}"#;
    let sig = "b18500437ebb010220ddd770cbe6fd531ea0ba0d";
    let key = "PSK_7TruNcSNTxp4zNrykMj4EPzF";
    assert_eq!(raw_body_signature(key, url, body.as_bytes()), sig);
    let cfg = TwilioConfig {
        auth_tokens: vec![Secret::new("PSK_old"), Secret::new(key)],
        shared_keys: vec![],
        accounts: vec![],
    };
    let event = parse_scheme(
        &SIGNALWIRE,
        verify_scheme(&SIGNALWIRE, &cfg, signalwire_json(url, body, sig)).unwrap(),
        Utc::now(),
    )
    .unwrap();
    assert_eq!(event.event_type, Some(EventType::Initiated));
    assert_eq!(event.dedupe_key, "signalwire:b5d63b2e-f75b-4dc8-b6d4-269b635f96c0:created");
    assert_eq!(event.payload["vars"], serde_json::json!({}));

    let refused = |req| matches!(verify_scheme(&SIGNALWIRE, &cfg, req), Err(WebhookError::InvalidSignature(_)));
    assert!(refused(signalwire_json(url, &body.replace("created", "answered"), sig)));
    assert!(refused(signalwire_json(url, body, &sig.to_ascii_uppercase())));
    assert!(refused(signalwire_json("https://81f2-2-45-18-191.ngrok-free.app/x", body, sig)));
    let unconfigured = verify_scheme(&SIGNALWIRE, &TwilioConfig::default(), signalwire_json(url, body, sig));
    assert!(matches!(unconfigured, Err(WebhookError::NotConfigured(Provider::SignalWire))));
    // Twilio has no such scheme: its JSON callbacks need `bodySHA256`.
    let cfg_twilio = TwilioConfig { auth_tokens: vec![Secret::new(key)], shared_keys: vec![], accounts: vec![] };
    let req = request(url, "application/json", Bytes::from(body), &[(SIGNATURE_HEADER, sig)]);
    assert!(matches!(verify(&cfg_twilio, req), Err(WebhookError::InvalidSignature(m)) if m.contains("bodySHA256")));
}

#[test]
fn signalwire_json_keeps_the_body_sha256_scheme() {
    let body = r#"{"property": "value", "boolean": true}"#;
    let url = format!("{DOC_URL}&bodySHA256={}", body_sha256(body.as_bytes()));
    let req = signalwire_json(&url, body, "a9nBmqA0ju/hNViExpshrM61xv4=");
    assert!(verify_scheme(&SIGNALWIRE, &config(), req).is_ok());
}

fn parse_signalwire_json(body: serde_json::Value) -> Result<CallEvent, WebhookError> {
    let url = "https://hooks.example.com/cb?call_id=c-9";
    let body = body.to_string();
    let sig = raw_body_signature(TOKEN, url, body.as_bytes());
    parse_scheme(&SIGNALWIRE, verify_scheme(&SIGNALWIRE, &config(), signalwire_json(url, &body, &sig))?, Utc::now())
}

#[test]
fn signalwire_relay_call_states_map_to_events() {
    let state = |call_state: &str, end_reason: Option<&str>| {
        let mut params = serde_json::json!({"call_id": "sw-1", "node_id": "n", "call_state": call_state});
        if let Some(r) = end_reason {
            params["end_reason"] = r.into();
        }
        let body = serde_json::json!({"event_type": "calling.call.state", "timestamp": 1795514407.5, "params": params});
        parse_signalwire_json(body).unwrap()
    };
    let expected = [
        ("created", None, Some(EventType::Initiated), "created"),
        ("ringing", None, Some(EventType::Ringing), "ringing"),
        ("answered", None, Some(EventType::Answered), "answered"),
        ("ending", None, None, "ending"),
        ("ended", Some("hangup"), Some(EventType::Completed), "ended:hangup"),
        ("ended", Some("busy"), Some(EventType::Busy), "ended:busy"),
        ("ended", Some("decline"), Some(EventType::Busy), "ended:decline"),
        ("ended", Some("noAnswer"), Some(EventType::NoAnswer), "ended:noAnswer"),
        ("ended", Some("cancel"), Some(EventType::Failed), "ended:cancel"),
        ("ended", Some("error"), Some(EventType::Failed), "ended:error"),
        ("ended", None, Some(EventType::Failed), "ended"),
        ("parked", None, None, "parked"),
    ];
    for (call_state, reason, event_type, status) in expected {
        let e = state(call_state, reason);
        assert_eq!(e.event_type, event_type, "{call_state} {reason:?}");
        assert_eq!(e.provider_status, status);
        assert_eq!(e.dedupe_key, format!("signalwire:sw-1:{status}"));
        assert_eq!(e.provider_call_id, "sw-1");
        assert_eq!(e.call_id.as_deref(), Some("c-9"));
        assert_eq!(e.occurred_at.unwrap().to_rfc3339(), "2026-11-24T10:00:07.500+00:00");
        let failed = matches!(event_type, Some(EventType::Failed | EventType::Busy | EventType::NoAnswer));
        assert_eq!(e.error_code.as_deref(), if failed { reason } else { None }, "{call_state} {reason:?}");
    }
}

#[test]
fn signalwire_json_without_a_call_is_a_client_error() {
    let missing_state = serde_json::json!({"params": {"call_id": "sw-1"}});
    assert!(matches!(parse_signalwire_json(missing_state), Err(WebhookError::MissingField("call_state"))));
    let no_call = serde_json::json!({"event_type": "calling.call.state", "params": {"call_state": "ended"}});
    assert!(matches!(parse_signalwire_json(no_call), Err(WebhookError::MissingField("call_id"))));
    let bad_id = serde_json::json!({"call": {"call_id": "a b", "call_state": "created"}});
    assert!(matches!(parse_signalwire_json(bad_id), Err(WebhookError::InvalidField { field: "call_id", .. })));
}
