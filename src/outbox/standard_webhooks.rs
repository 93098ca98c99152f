//! Standard Webhooks signing (<https://www.standardwebhooks.com>): the signed
//! content is `{webhook-id}.{webhook-timestamp}.{body}`, the signature
//! `v1,` + base64(HMAC-SHA256(secret, content)), the secret `whsec_` + base64.
//! Used by the http sink, and by receivers (tests, the demo) to check it.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The key bytes of a `whsec_…` secret; any other string is used as raw bytes.
pub fn secret_bytes(secret: &str) -> Vec<u8> {
    secret.strip_prefix("whsec_").and_then(|b64| BASE64.decode(b64).ok()).unwrap_or_else(|| secret.as_bytes().to_vec())
}

fn mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `webhook-signature` header value.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    format!("v1,{}", BASE64.encode(mac(key, id, timestamp, body).finalize().into_bytes()))
}

/// Checks a `webhook-signature` header (space-separated `v1,…` entries) in
/// constant time, and that the timestamp is within `tolerance_secs` of `now`.
pub fn verify(key: &[u8], id: &str, timestamp: i64, body: &[u8], header: &str, now: i64, tolerance_secs: i64) -> bool {
    if (now - timestamp).abs() > tolerance_secs {
        return false;
    }
    header
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|sig| BASE64.decode(sig).is_ok_and(|bytes| mac(key, id, timestamp, body).verify_slice(&bytes).is_ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_specification_example() {
        // The example from the Standard Webhooks specification.
        let key = secret_bytes("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let body = br#"{"test": 2432232314}"#;
        let sig = sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
            &format!("v1,bogus {sig}"),
            1614265330,
            300
        ));
        assert!(!verify(&key, "msg_other", 1614265330, body, &sig, 1614265330, 300));
        assert!(!verify(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, &sig, 1614265330 + 301, 300));
    }
}
