#![no_main]
// Form/query decoding must never panic, and whatever it decodes must survive a
// re-encode/decode round trip unchanged.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(fields) = callhook::providers::form::decode(data) {
        let encoded: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}={}", callhook::providers::form::encode_component(k), callhook::providers::form::encode_component(v)))
            .collect();
        let again = callhook::providers::form::decode(encoded.join("&").as_bytes()).expect("re-encoded form decodes");
        assert_eq!(again, fields);
        let _ = callhook::providers::form::to_json(&again);
    }
});
