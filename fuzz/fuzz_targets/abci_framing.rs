//! libFuzzer target: `hashmesh_fuzz::abci_framing` on every input (`fuzz/run`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hashmesh_fuzz::abci_framing(data));
