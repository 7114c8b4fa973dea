//! `hashmesh start` stops rather than run on wrongly: a panic on any worker thread ends the
//! process with exit 70; a config asking for the testnet's synthetic model is refused.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const HASHMESH: &str = env!("CARGO_BIN_EXE_hashmesh");

/// A node home in `dir` that binds no fixed port (ABCI on port 0, no plane, no metrics).
fn init_home(dir: &Path) -> PathBuf {
    let home = dir.join("node");
    let init = Command::new(HASHMESH)
        .args(["init", "--home", home.to_str().unwrap(), "--moniker", "t", "--abci-listen", "127.0.0.1:0"])
        .args(["--plane-listen", "none", "--metrics-listen", "none"])
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    home
}

/// Run `hashmesh start --home home` with `env`; its exit code and stderr. Kills it (by the pid
/// we spawned) and fails with `still_running` if it has not stopped within 20 s.
fn start_until_exit(home: &Path, env: &[(&str, &str)], still_running: &str) -> (Option<i32>, String) {
    let mut child = Command::new(HASHMESH)
        .args(["start", "--home", home.to_str().unwrap()])
        .envs(env.iter().copied())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            let _ = child.wait();
            panic!("{still_running}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (status.code(), err)
}

#[test]
fn a_panicking_worker_thread_stops_the_node_with_exit_70() {
    let dir = tempfile::tempdir().unwrap();
    let home = init_home(dir.path());
    let (code, err) = start_until_exit(
        &home,
        &[("HASHMESH_FAULT_PANIC_AFTER_MS", "300")],
        "the node kept running after a thread panicked",
    );
    assert_eq!(code, Some(70), "{err}");
    assert!(err.contains("injected fault") && err.contains("exit 70"), "{err}");
    // Logs to a file or a pipe are plain text: no terminal colour codes.
    assert!(err.contains("hashmesh node started") && !err.contains('\x1b'), "{err:?}");
}

#[test]
fn hashmesh_start_refuses_the_testnet_model() {
    let dir = tempfile::tempdir().unwrap();
    let home = init_home(dir.path());
    let cfg = home.join("config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text =
        text.replace("enabled = false", "enabled = true").replace("source = \"agents\"", "source = \"synthetic\"");
    assert!(text.contains("source = \"synthetic\""), "{text}");
    std::fs::write(&cfg, text).unwrap();
    let (code, err) = start_until_exit(&home, &[], "hashmesh start ran with the synthetic model");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("hashmesh-testnet"), "the error says what to run instead: {err}");
}
