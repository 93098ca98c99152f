//! Shared driver of the fuzz targets: turns fuzz bytes into a webhook request and
//! runs it through a provider's verifier, and through its parser (insecure mode),
//! asserting only what must always hold: no panic, and no unsigned input verified.

use callhook::domain::Provider;
use callhook::providers::simulate::Signer;
use callhook::providers::InboundRequest;

const CONTENT_TYPES: [&str; 3] = ["application/x-www-form-urlencoded", "application/json", "text/plain"];

/// The webhook request fuzz input `data` stands for, or `None` when it is too short.
///
/// Layout: byte 0 picks the content type (modulo 3: form, JSON, text), byte 1 the
/// query length, then the query; then a signature header value and `\n`, and the
/// body. Without a `\n` the signature is empty and the rest is the body. The seeds
/// in `fuzz/seeds/` are in this layout (`scripts/fuzz-seeds.py` writes them, and
/// `tests/robustness.rs` checks them through this function).
pub fn request(provider: Provider, data: &[u8]) -> Option<InboundRequest> {
    let (&ct, rest) = data.split_first()?;
    let (&qlen, rest) = rest.split_first()?;
    let qlen = usize::from(qlen).min(rest.len());
    let (query, rest) = rest.split_at(qlen);
    let (signature, body) = match rest.iter().position(|b| *b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&rest[..0], rest),
    };

    let mut headers = http::HeaderMap::new();
    headers.insert("content-type", CONTENT_TYPES[usize::from(ct) % 3].parse().unwrap());
    if let Ok(value) = http::HeaderValue::from_bytes(signature) {
        for name in [
            "x-twilio-signature",
            "x-signalwire-signature",
            "telnyx-signature-ed25519",
            "x-plivo-signature-v3",
            "x-plivo-signature-v3-nonce",
            "authorization",
        ] {
            headers.insert(name, value.clone());
        }
    }
    headers.insert("telnyx-timestamp", chrono::Utc::now().timestamp().to_string().parse().unwrap());
    let url =
        format!("https://hooks.example.com/webhooks/telephony/{provider}/events?{}", String::from_utf8_lossy(query));
    Some(InboundRequest { url, headers, body: bytes::Bytes::copy_from_slice(body) })
}

/// Runs fuzz input `data` (see [`request`]) through `provider`'s verifier, which must
/// refuse it, and through its parser without verification: neither may panic.
pub fn run(provider: Provider, data: &[u8]) {
    let Some(request) = request(provider, data) else { return };
    let mut providers = Signer::from_seed("fuzz").providers();
    let verified = providers.handle(provider, request.clone(), chrono::Utc::now());
    assert!(verified.is_err(), "fuzz input passed signature verification");
    providers.insecure_skip_verification = true;
    let _ = providers.handle(provider, request, chrono::Utc::now());
}
