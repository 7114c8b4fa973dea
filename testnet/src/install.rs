//! Where the `cometbft` binary comes from, for the end-to-end tests of every crate.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `HASHMESH_COMETBFT`, else the project's installer (`testnet/install-cometbft`): it reuses
/// the per-machine cache (`~/.cache/hashmesh/tools/bin/cometbft`), or `go install`s v0.38.25 the first time.
///
/// # Panics
/// If the installer fails (a test cannot run without CometBFT).
#[must_use]
pub fn cometbft() -> PathBuf {
    if let Ok(p) = std::env::var("HASHMESH_COMETBFT") {
        return PathBuf::from(p);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("install-cometbft");
    let out = Command::new(&script).output().expect("run testnet/install-cometbft");
    assert!(out.status.success(), "installing cometbft failed: {}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}
