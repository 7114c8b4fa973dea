//! Every input kept in `fuzz/corpus/<target>/` (what the fuzzers found interesting, minimized)
//! replayed through its target's checks: a decoder change that panics or stops being canonical
//! on any of them fails here, without a fuzzer.

use std::path::Path;

#[test]
fn every_kept_input_passes_its_targets_checks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (name, check) in hashmesh_fuzz::TARGETS {
        let dir = root.join(name);
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.unwrap().path();
            check(&std::fs::read(&p).unwrap());
            n += 1;
        }
        assert!(n >= 10, "{name}: only {n} inputs kept in {}", dir.display());
    }
}
