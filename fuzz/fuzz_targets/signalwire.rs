#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| callhook_fuzz::run(callhook::domain::Provider::SignalWire, data));
