#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| voxgate_fuzz::websocket(data));
