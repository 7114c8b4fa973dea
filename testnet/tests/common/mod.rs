//! What the cluster tests share: running `hashmesh-testnet`, and stopping the cluster however a
//! test ends.

use std::path::{Path, PathBuf};
use std::process::Command;

const TESTNET: &str = env!("CARGO_BIN_EXE_hashmesh-testnet");

/// Run `hashmesh-testnet --dir DIR ARGS…`: exit code, stdout, stderr.
pub fn testnet(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(TESTNET)
        .arg("--dir")
        .arg(dir)
        .args(args)
        .env("HASHMESH_LOG", "info")
        .output()
        .expect("run hashmesh-testnet");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Stops the cluster (by the pids in its cluster.json) however the test ends.
pub struct Down(pub PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = testnet(&self.0, &["down"]);
    }
}
