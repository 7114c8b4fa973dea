//! Start and stop a cluster's processes. Every process is tracked by the pid we spawned
//! (never by name); logs go to `<node>/cometbft.log` and `<node>/hashmesh.log`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::cluster::Cluster;
use hashmesh_node::rpc::Rpc;

/// Whether a process with this pid is alive: any of its threads is not yet a zombie. The main
/// thread of a killed multi-threaded process can be a zombie while other threads are still
/// exiting and holding its files (a database lock): until the last one is gone the process
/// counts as alive, so a restart never races its predecessor's locks.
#[must_use]
pub fn alive(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    let running =
        |stat: &str| stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']));
    match std::fs::read_dir(format!("/proc/{pid}/task")) {
        Ok(tasks) => tasks.flatten().any(|t| std::fs::read_to_string(t.path().join("stat")).is_ok_and(|s| running(&s))),
        // Field 3 is the state; `Z` is a zombie.
        Err(_) => std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| running(&s)),
    }
}

/// Send `signal` (e.g. `TERM`, `KILL`) to `pid`.
pub fn signal(pid: u32, signal: &str) {
    if pid != 0 {
        let _ = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).stderr(Stdio::null()).status();
    }
}

/// Stop `pid`: TERM, wait up to `grace`, then KILL.
pub fn stop_pid(pid: u32, grace: Duration) {
    if !alive(pid) {
        return;
    }
    signal(pid, "TERM");
    let deadline = Instant::now() + grace;
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive(pid) {
        signal(pid, "KILL");
    }
}

/// Start `program` in its own session (it outlives the command that started it), logging to
/// `log`.
///
/// # Errors
/// If it cannot be started.
pub fn spawn_detached(program: &Path, args: &[&str], log: &Path) -> Result<Child> {
    spawn(program, args, log, true)
}

fn spawn(program: &Path, args: &[&str], log: &Path, detach: bool) -> Result<Child> {
    spawn_with(program, args, log, detach, Log::Truncate, &[])
}

/// Whether a spawned process's log starts afresh or continues (a restart in the fault suite).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Log {
    Truncate,
    Append,
}

fn spawn_with(
    program: &Path,
    args: &[&str],
    log: &Path,
    detach: bool,
    mode: Log,
    env: &[(&str, String)],
) -> Result<Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(mode == Log::Append)
        .truncate(mode == Log::Truncate)
        .open(log)
        .with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone()?;
    let mut cmd = if detach {
        // setsid puts the process in its own session so it outlives the script's terminal.
        let mut c = Command::new("setsid");
        c.arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args).envs(env.iter().map(|(k, v)| (k, v))).stdin(Stdio::null()).stdout(out).stderr(err);
    cmd.spawn().with_context(|| format!("starting {}", program.display()))
}

/// Start node `i` (hashmesh first, then CometBFT, then its Stratum endpoints and fleet, then its
/// agents). Returns the children, CometBFT first (no hashmesh, Stratum or agent children for a
/// kvstore cluster); their pids are
/// recorded in the cluster (the caller saves it).
///
/// # Errors
/// If a process cannot be spawned.
pub fn start_node(cluster: &mut Cluster, i: usize, detach: bool) -> Result<Vec<Child>> {
    let n = &cluster.nodes[i];
    let node_dir = n.home.parent().expect("node dir").to_owned();
    let mut hashmesh = None;
    if cluster.runs_hashmesh() {
        let hm_home = n.hashmesh_home.display().to_string();
        let mut args: Vec<&str> = cluster.node_args.iter().map(String::as_str).collect();
        args.extend(["--home", &hm_home]);
        let hm = spawn(&cluster.hashmesh, &args, &node_dir.join("hashmesh.log"), detach)?;
        wait_for_port(&n.abci, Duration::from_secs(10));
        hashmesh = Some(hm);
    }
    let cmt_home = n.home.display().to_string();
    let cmt = spawn(&cluster.cometbft, &["start", "--home", &cmt_home], &node_dir.join("cometbft.log"), detach)?;
    let mut stratum = None;
    if let Some(spec) = cluster.stratum.as_ref().filter(|_| cluster.runs_hashmesh()) {
        let dir = cluster.dir.display().to_string();
        let args = ["--dir", &dir, "stratum", &n.name];
        stratum = Some(spawn(&spec.program, &args, &node_dir.join("stratum.log"), detach)?);
    }
    let mut agents = Vec::new();
    if cluster.runs_hashmesh() {
        let (plane, pool_id) = (n.abci.clone(), n.pool_id.clone());
        for a in &n.agents {
            let home = a.home.display().to_string();
            let args = ["agent", "start", "--home", &home, "--node", &plane, "--node-id", &pool_id];
            agents.push(spawn(&cluster.hashmesh, &args, &a.home.join("agent.log"), detach)?);
        }
    }
    cluster.nodes[i].pids.cometbft = cmt.id();
    cluster.nodes[i].pids.hashmesh = hashmesh.as_ref().map_or(0, Child::id);
    cluster.nodes[i].pids.stratum = stratum.as_ref().map_or(0, Child::id);
    for (a, child) in cluster.nodes[i].agents.iter_mut().zip(&agents) {
        a.pid = child.id();
    }
    Ok(std::iter::once(cmt).chain(hashmesh).chain(stratum).chain(agents).collect())
}

/// Start node `i`'s hashmesh (with `env` added) and CometBFT again, detached, appending to their
/// logs — after the fault suite killed or stopped them; its Stratum endpoints and agents are left
/// as they are. Records the pids (the caller saves the cluster).
///
/// # Errors
/// If a process cannot be spawned.
pub fn restart_core(cluster: &mut Cluster, i: usize, env: &[(&str, String)]) -> Result<()> {
    let n = &cluster.nodes[i];
    let node_dir = n.home.parent().expect("node dir").to_owned();
    if cluster.runs_hashmesh() {
        let hm_home = n.hashmesh_home.display().to_string();
        let mut args: Vec<&str> = cluster.node_args.iter().map(String::as_str).collect();
        args.extend(["--home", &hm_home]);
        let hm = spawn_with(&cluster.hashmesh, &args, &node_dir.join("hashmesh.log"), true, Log::Append, env)?;
        wait_for_port(&n.abci, Duration::from_secs(10));
        cluster.nodes[i].pids.hashmesh = hm.id();
    }
    let n = &cluster.nodes[i];
    let cmt_home = n.home.display().to_string();
    let cmt = spawn_with(
        &cluster.cometbft,
        &["start", "--home", &cmt_home],
        &node_dir.join("cometbft.log"),
        true,
        Log::Append,
        &[],
    )?;
    cluster.nodes[i].pids.cometbft = cmt.id();
    Ok(())
}

/// Start agent `a` of node `i` again, detached, appending to its log. Records its pid (the
/// caller saves the cluster).
///
/// # Errors
/// If it cannot be spawned.
pub fn restart_agent(cluster: &mut Cluster, i: usize, a: usize) -> Result<()> {
    let n = &cluster.nodes[i];
    let agent = &n.agents[a];
    let home = agent.home.display().to_string();
    let args = ["agent", "start", "--home", &home, "--node", &n.abci, "--node-id", &n.pool_id];
    let child = spawn_with(&cluster.hashmesh, &args, &agent.home.join("agent.log"), true, Log::Append, &[])?;
    cluster.nodes[i].agents[a].pid = child.id();
    Ok(())
}

/// Stop node `i` (CometBFT first, then hashmesh) and clear its pids.
pub fn stop_node(cluster: &mut Cluster, i: usize) {
    let p = cluster.nodes[i].pids.clone();
    stop_pid(p.cometbft, Duration::from_secs(10));
    stop_pid(p.hashmesh, Duration::from_secs(5));
    for a in &mut cluster.nodes[i].agents {
        stop_pid(a.pid, Duration::from_secs(5));
        a.pid = 0;
    }
    stop_pid(p.stratum, Duration::from_secs(5));
    cluster.nodes[i].pids = Default::default();
}

fn wait_for_port(addr: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait until every listed node's RPC reports at least `height`.
///
/// # Errors
/// If the deadline passes first; names the nodes that lag.
pub fn wait_for_height(cluster: &Cluster, nodes: &[usize], height: u64, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let lagging: Vec<String> = nodes
            .iter()
            .filter_map(|&i| {
                let n = &cluster.nodes[i];
                let h = Rpc::new(&n.rpc).status().map(|(_, h, _)| h).unwrap_or(0);
                (h < height).then(|| format!("{} at {h}", n.name))
            })
            .collect();
        if lagging.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "nodes did not reach height {height} within {timeout:?}: {}; see the logs in {}",
                lagging.join(", "),
                cluster.dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
