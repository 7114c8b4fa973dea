//! libFuzzer target: `hashmesh_fuzz::plane_frames` on every input (`fuzz/run`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hashmesh_fuzz::plane_frames(data));
