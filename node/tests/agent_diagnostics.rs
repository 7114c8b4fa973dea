//! An agent that cannot get a session says why and what to do: its key not registered at the
//! node, the wrong `--node-id`, a node that does not answer. Logs to a pipe are plain text.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const HASHMESH: &str = env!("CARGO_BIN_EXE_hashmesh");

/// A free UDP port on 127.0.0.1 (bound and released; the race is harmless here).
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn run(args: &[&str]) -> String {
    let out = Command::new(HASHMESH).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A child process whose stderr lines arrive on a channel; killed (by its pid) when dropped.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(HASHMESH).args(args).stderr(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
        let err = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Self { child, lines, seen: Vec::new() }
    }

    /// Wait up to `secs` for a line containing `needle`; the line.
    fn expect(&mut self, needle: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(l) => self.seen.push(l),
                Err(_) => panic!("no line with {needle:?} within {secs} s; saw:\n{}", self.seen.join("\n")),
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent_start(agent: &Path, port: u16, node_id: &str) -> Running {
    let node = format!("127.0.0.1:{port}");
    Running::start(&["agent", "start", "--home", agent.to_str().unwrap(), "--node", &node, "--node-id", node_id])
}

#[test]
fn an_agent_that_gets_no_session_says_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let (node, agent) = (dir.path().join("node"), dir.path().join("agent"));
    let port = free_udp_port();
    let plane = format!("127.0.0.1:{port}");
    let init = run(&[
        "init",
        "--home",
        node.to_str().unwrap(),
        "--moniker",
        "t",
        "--abci-listen",
        "127.0.0.1:0",
        "--plane-listen",
        &plane,
        "--metrics-listen",
        "none",
        "--json",
    ]);
    let node_id = serde_json::from_str::<serde_json::Value>(&init).unwrap()["pool_id"].as_str().unwrap().to_owned();
    let agent_init = run(&["agent", "init", "--home", agent.to_str().unwrap(), "--json"]);
    let agent_id =
        serde_json::from_str::<serde_json::Value>(&agent_init).unwrap()["agent_id"].as_str().unwrap().to_owned();
    let mut n = Running::start(&["start", "--home", node.to_str().unwrap()]);
    n.expect("instruction plane listening", 20);

    // Not registered at the node: the node refuses the key; the agent names the command.
    let mut a = agent_start(&agent, port, &node_id);
    let l = a.expect("refused this agent's key", 15);
    assert!(l.contains(&format!("hashmesh agents add --home NODE_HOME --key {agent_id}")), "{l}");
    assert!(!a.seen.iter().any(|l| l.contains("connected to node")), "not connected: {:?}", a.seen);
    assert!(!l.contains('\x1b'), "plain text in a pipe: {l:?}");
    drop(a);

    // The wrong --node-id (the agent's own key here): it names both keys.
    let mut a = agent_start(&agent, port, &agent_id);
    let l = a.expect("but --node-id is", 15);
    assert!(l.contains(&format!("proved pool key {node_id}")) && l.contains("hashmesh keys show"), "{l}");
    drop(a);

    // Nobody answers at the address: said within the connect wait, and retried.
    let silent = free_udp_port();
    let mut a = agent_start(&agent, silent, &node_id);
    let l = a.expect("no answer from the node", 15);
    assert!(l.contains(&format!("127.0.0.1:{silent}")) && l.contains("[plane] listen"), "{l}");
}
