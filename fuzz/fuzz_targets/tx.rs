//! libFuzzer target: `hashmesh_fuzz::tx` on every input (`fuzz/run`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hashmesh_fuzz::tx(data));
