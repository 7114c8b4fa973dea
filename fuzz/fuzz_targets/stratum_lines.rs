//! libFuzzer target: `hashmesh_fuzz::stratum_lines` on every input (`fuzz/run`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hashmesh_fuzz::stratum_lines(data));
