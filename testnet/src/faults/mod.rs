//! `hashmesh-testnet faults`: perturb a running cluster under load and check that nothing
//! committed is lost or corrupted.
//!
//! Perturbations, in an order drawn from the seed:
//! - `kill`: SIGKILL of a random node's CometBFT, hashmesh or both, at a random moment; the
//!   node's other core process is stopped too, then both restart (CometBFT's handshake replays
//!   what the app is missing);
//! - `pause`: SIGSTOP of a validator's CometBFT and hashmesh for 1.5–4 s (many block
//!   intervals), then SIGCONT;
//! - `crash`: the store's crash window — the node restarts with `HASHMESH_FAULT_CRASH` so that
//!   hashmesh aborts inside its `n`th `Commit`, before or after persisting the block, then
//!   restarts normally;
//! - `agent`: SIGKILL of a random agent, restarted after a moment (only with agents);
//! - `partition`: every p2p link from and to a random validator cut for 3–8 s, then healed
//!   (only when the cluster's links go through Toxiproxy: `testnet/up --links` or `--wan`).
//!
//! Load: a generator signs and broadcasts routes from every pool (to a live node, round robin)
//! beside whatever the cluster runs itself (scheduling loops, telemetry, receipts).
//!
//! After each perturbation: every node reaches 3 blocks past the height the perturbation
//! started at; every node has the same state root at a common height (computed from its own
//! proof of `m:genesis`) and it is the app hash in the next header; every directive the
//! generator saw committed before the perturbation is in the perturbed node's state. At the
//! end: every generated directive that committed is in every node's state, no transaction is in
//! two blocks, every agent's routing table converges to the committed assignments of its groups
//! and it applied no more routes than the chain committed for them (a route applied twice in
//! effect would count twice), and `audit verify` from the genesis file passes against every
//! node.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use hashmesh_node::home::Home;
use hashmesh_node::rpc::Rpc;
use hashmesh_node::verify::{self, Trust, VerifyOptions};
use hashmesh_protocol::{Body, RouteTarget, SigningKey, UnsignedTx};
use serde::Serialize;

use crate::cluster::Cluster;
use crate::procs;
use crate::rng::Rng;

mod checks;
use checks::{agents_converged, applied_at_most_committed, present, same_roots, walk_blocks};

/// What to run.
#[derive(Debug, Clone)]
pub struct FaultSpec {
    /// Seed of every random choice (which node, which process, when, how long).
    pub seed: u64,
    /// SIGKILLs of a node's processes.
    pub kills: usize,
    /// SIGSTOP / SIGCONT of a validator.
    pub pauses: usize,
    /// Aborts inside `Commit` (alternating before / after persisting).
    pub crashes: usize,
    /// SIGKILLs of an agent (ignored when the cluster has none).
    pub agent_kills: usize,
    /// Partitions of a validator (ignored without Toxiproxy links).
    pub partitions: usize,
    /// Directives per second the generator sends.
    pub load_per_sec: f64,
    /// Time between perturbations (`None`: 0.5–3 s drawn from the seed; the soak uses a
    /// minute).
    pub every: Option<Duration>,
}

/// One row of the table: a kind of perturbation and what held.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRow {
    /// `kill`, `pause`, `crash`, `agent`, `partition`.
    pub perturbation: String,
    /// How many were run.
    pub count: usize,
    /// What each one was (node, process, duration), in order.
    pub detail: Vec<String>,
    /// Worst time for every node to be 3 blocks past the perturbation's start, ms.
    pub recovery_ms_max: u64,
    /// What was checked.
    pub checked: String,
    /// `ok`, or the first failure.
    pub result: String,
}

/// The run.
#[derive(Debug, Clone, Serialize)]
pub struct FaultReport {
    /// The seed (rerun with `--seed` to repeat the same choices).
    pub seed: u64,
    /// The load.
    pub load: String,
    /// Heights at the start and the end.
    pub heights: (u64, u64),
    /// Directives the generator sent, and how many committed.
    pub directives_sent: u64,
    /// Of which committed.
    pub directives_committed: u64,
    /// Per perturbation kind.
    pub rows: Vec<FaultRow>,
    /// The final checks.
    pub final_checks: Vec<(String, String)>,
    /// Whether everything held.
    pub ok: bool,
}

/// The generator's record: directive id (upper-case hex, as CometBFT prints tx hashes) →
/// committed height, or 0 while unknown.
type Sent = Arc<Mutex<BTreeMap<String, u64>>>;

/// Sign and broadcast routes from every pool until `stop`.
fn generator(cluster: Cluster, per_sec: f64, seed: u64, sent: Sent, stop: Arc<AtomicBool>) -> Result<()> {
    let pools: Vec<(SigningKey, String, Vec<String>)> = cluster
        .nodes
        .iter()
        .map(|n| Ok((Home::load(&n.hashmesh_home)?.signing_key()?, n.groups[0].clone(), n.endpoints.clone())))
        .collect::<Result<_>>()?;
    let rpcs: Vec<Rpc> = cluster.nodes.iter().map(|n| Rpc::new(&n.rpc)).collect();
    let mut rng = Rng(seed ^ 0x10AD);
    let mut last_nonce = 0;
    let gap = Duration::from_secs_f64(1.0 / per_sec.max(0.01));
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(gap);
        let p = i % pools.len();
        i += 1;
        let (key, group, endpoints) = &pools[p];
        let w = 1 + u16::try_from(rng.below(9_999)).expect("below 10 000");
        let body = Body::Route {
            group: group.parse()?,
            targets: vec![
                RouteTarget { endpoint: endpoints[0].parse()?, weight_bp: w },
                RouteTarget { endpoint: endpoints[1].parse()?, weight_bp: 10_000 - w },
            ],
        };
        last_nonce = hashmesh_node::signer::fresh_nonce(last_nonce);
        let (_, bytes) =
            key.sign(UnsignedTx { chain_id: cluster.chain_id.clone(), signer: key.pool_id(), nonce: last_nonce, body });
        // Any node that answers: the one whose turn it is, else the next.
        for k in 0..rpcs.len() {
            if let Ok(b) = rpcs[(i + k) % rpcs.len()].broadcast_sync(&bytes) {
                if b.code == 0 {
                    sent.lock().expect("sent lock").insert(b.hash.to_uppercase(), 0);
                }
                break;
            }
        }
    }
    Ok(())
}

/// Resolve which sent directives committed (and at which height), through any live node.
fn resolve(cluster: &Cluster, sent: &Sent) {
    let pending: Vec<String> =
        sent.lock().expect("sent lock").iter().filter(|(_, h)| **h == 0).map(|(k, _)| k.clone()).collect();
    for id in pending {
        for n in &cluster.nodes {
            if let Ok(Some(t)) = Rpc::new(&n.rpc).tx(&id) {
                if t.code == 0 {
                    sent.lock().expect("sent lock").insert(id.clone(), t.height);
                } else {
                    sent.lock().expect("sent lock").remove(&id);
                }
                break;
            }
        }
    }
}

fn committed(sent: &Sent) -> Vec<String> {
    sent.lock().expect("sent lock").iter().filter(|(_, h)| **h > 0).map(|(k, _)| k.clone()).collect()
}

fn height(n: &crate::cluster::NodeInfo) -> u64 {
    Rpc::new(&n.rpc).status().map(|s| s.1).unwrap_or(0)
}

/// Every node 3 blocks past `from`, within 90 s: how long it took.
fn recovered(cluster: &Cluster, from: u64, t0: Instant) -> Result<u64> {
    let all: Vec<usize> = (0..cluster.nodes.len()).collect();
    procs::wait_for_height(cluster, &all, from + 3, Duration::from_secs(90))?;
    Ok(u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX))
}

fn kill_node(cluster: &mut Cluster, i: usize, what: u64, rng: &mut Rng) -> Result<String> {
    let p = cluster.nodes[i].pids.clone();
    let (label, first) = match what {
        0 => ("cometbft", vec![p.cometbft]),
        1 => ("hashmesh", vec![p.hashmesh]),
        _ => ("both", vec![p.cometbft, p.hashmesh]),
    };
    for pid in first {
        procs::signal(pid, "KILL");
    }
    let down = rng.millis(200, 2_000);
    std::thread::sleep(down);
    procs::stop_pid(p.cometbft, Duration::from_secs(10));
    procs::stop_pid(p.hashmesh, Duration::from_secs(10));
    procs::restart_core(cluster, i, &[])?;
    cluster.save()?;
    Ok(format!("{} {label} down {} ms", cluster.nodes[i].name, down.as_millis()))
}

fn pause_node(cluster: &Cluster, i: usize, rng: &mut Rng) -> String {
    let p = &cluster.nodes[i].pids;
    let stopped = rng.millis(1_500, 4_000);
    procs::signal(p.cometbft, "STOP");
    procs::signal(p.hashmesh, "STOP");
    std::thread::sleep(stopped);
    procs::signal(p.hashmesh, "CONT");
    procs::signal(p.cometbft, "CONT");
    format!("{} stopped {} ms", cluster.nodes[i].name, stopped.as_millis())
}

fn crash_node(cluster: &mut Cluster, i: usize, before: bool, n: u64) -> Result<String> {
    let p = cluster.nodes[i].pids.clone();
    procs::stop_pid(p.cometbft, Duration::from_secs(10));
    procs::stop_pid(p.hashmesh, Duration::from_secs(10));
    let point = if before { "before" } else { "after" };
    procs::restart_core(cluster, i, &[("HASHMESH_FAULT_CRASH", format!("{point}:{n}"))])?;
    cluster.save()?;
    let hm = cluster.nodes[i].pids.hashmesh;
    let deadline = Instant::now() + Duration::from_secs(90);
    while procs::alive(hm) {
        if Instant::now() > deadline {
            bail!("{}: hashmesh did not abort in its commit {n} within 90 s", cluster.nodes[i].name);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    procs::stop_pid(cluster.nodes[i].pids.cometbft, Duration::from_secs(10));
    procs::restart_core(cluster, i, &[])?;
    cluster.save()?;
    Ok(format!("{} aborted in commit {n}, {point} persisting", cluster.nodes[i].name))
}

fn partition(cluster: &Cluster, i: usize, rng: &mut Rng) -> Result<String> {
    let links = cluster.links.as_ref().context("no Toxiproxy links")?;
    let cut = rng.millis(3_000, 8_000);
    let others = |c: &Cluster| (0..c.nodes.len()).filter(|&j| j != i).map(|j| height(&c.nodes[j])).max().unwrap_or(0);
    let (mine, theirs) = (height(&cluster.nodes[i]), others(cluster));
    crate::links::set_node(links, i, false)?;
    std::thread::sleep(cut);
    let (mine_after, theirs_after) = (height(&cluster.nodes[i]), others(cluster));
    crate::links::set_node(links, i, true)?;
    // The cut took: the node alone committed at most the block in flight; the others went on
    // (rounds whose proposer is the cut node wait out their timeouts, so a short cut may see only
    // one new block).
    if mine_after > mine + 1 {
        bail!(
            "{} went from height {mine} to {mine_after} while cut off: the partition did not hold",
            cluster.nodes[i].name
        );
    }
    if theirs_after <= theirs {
        bail!("the other validators stalled ({theirs} -> {theirs_after}) while one of them was cut off");
    }
    Ok(format!("{} cut off from every peer for {} ms", cluster.nodes[i].name, cut.as_millis()))
}

fn kill_agent(cluster: &mut Cluster, i: usize, a: usize, rng: &mut Rng) -> Result<String> {
    procs::signal(cluster.nodes[i].agents[a].pid, "KILL");
    let down = rng.millis(200, 2_000);
    std::thread::sleep(down);
    procs::restart_agent(cluster, i, a)?;
    cluster.save()?;
    Ok(format!("{} down {} ms", cluster.nodes[i].agents[a].home.display(), down.as_millis()))
}

/// Run `spec` against the cluster in `dir` (running).
///
/// # Errors
/// When there is no running cluster; a perturbation the cluster does not survive is a failed
/// row, not an error.
pub fn run(dir: &Path, spec: &FaultSpec) -> Result<FaultReport> {
    let mut cluster = Cluster::load(dir)?.with_context(|| format!("no cluster in {}", dir.display()))?;
    if cluster.nodes.len() < 4 {
        bail!(
            "the fault suite needs 4 validators or more (one may fail); {} has {}",
            dir.display(),
            cluster.nodes.len()
        );
    }
    for n in &cluster.nodes {
        if !procs::alive(n.pids.cometbft) || (cluster.runs_hashmesh() && !procs::alive(n.pids.hashmesh)) {
            bail!("{} is not running: start the cluster first (testnet/up)", n.name);
        }
    }
    let start = cluster.nodes.iter().map(height).max().unwrap_or(0);
    let mut rng = Rng(spec.seed);
    let mut plan: Vec<&str> = Vec::new();
    plan.extend(std::iter::repeat_n("kill", spec.kills));
    plan.extend(std::iter::repeat_n("pause", spec.pauses));
    plan.extend(std::iter::repeat_n("crash", spec.crashes));
    let agents = cluster.nodes.iter().map(|n| n.agents.len()).sum::<usize>();
    if agents > 0 {
        plan.extend(std::iter::repeat_n("agent", spec.agent_kills));
    }
    let mut skipped = Vec::new();
    if cluster.links.is_some() {
        plan.extend(std::iter::repeat_n("partition", spec.partitions));
    } else if spec.partitions > 0 {
        skipped.push(FaultRow {
            perturbation: "partition".into(),
            count: 0,
            detail: Vec::new(),
            recovery_ms_max: 0,
            checked: String::new(),
            result: "skipped: the p2p links do not go through Toxiproxy (start the testnet with --links or --wan)"
                .into(),
        });
    }
    for k in (1..plan.len()).rev() {
        plan.swap(k, usize::try_from(rng.below(k as u64 + 1)).expect("small"));
    }

    let sent: Sent = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let gen = {
        let (c, s, st, seed, rate) =
            (cluster.clone(), Arc::clone(&sent), Arc::clone(&stop), spec.seed, spec.load_per_sec);
        std::thread::spawn(move || generator(c, rate, seed, s, st))
    };
    let mut rows: BTreeMap<&str, FaultRow> = BTreeMap::new();
    let mut crashes = 0u64;
    for (step, kind) in plan.iter().enumerate() {
        let wait = rng.millis(500, 3_000);
        std::thread::sleep(spec.every.unwrap_or(wait));
        resolve(&cluster, &sent);
        let before: Vec<String> = committed(&sent);
        let from = cluster.nodes.iter().map(height).max().unwrap_or(0);
        let i = usize::try_from(rng.below(cluster.nodes.len() as u64)).expect("small");
        let t0 = Instant::now();
        let what = match *kind {
            "kill" => kill_node(&mut cluster, i, rng.below(3), &mut rng),
            "pause" => Ok(pause_node(&cluster, i, &mut rng)),
            "crash" => {
                crashes += 1;
                crash_node(&mut cluster, i, crashes % 2 == 1, 2 + rng.below(4))
            }
            "partition" => partition(&cluster, i, &mut rng),
            _ => {
                let with: Vec<usize> =
                    (0..cluster.nodes.len()).filter(|&j| !cluster.nodes[j].agents.is_empty()).collect();
                let j = with[usize::try_from(rng.below(with.len() as u64)).expect("small")];
                let a = usize::try_from(rng.below(cluster.nodes[j].agents.len() as u64)).expect("small");
                kill_agent(&mut cluster, j, a, &mut rng)
            }
        };
        let checked = what.and_then(|w| {
            let ms = recovered(&cluster, from, t0)?;
            let h = same_roots(&cluster)?;
            present(&cluster.nodes[i], &before)?;
            Ok((w, ms, h))
        });
        let row = rows.entry(kind).or_insert_with(|| FaultRow {
            perturbation: (*kind).to_owned(),
            count: 0,
            detail: Vec::new(),
            recovery_ms_max: 0,
            checked: "every node 3 blocks past the start ≤ 90 s; one state root at a common height on every node, equal to the next header's app hash; every directive committed before it is in the perturbed node's state".into(),
            result: "ok".into(),
        });
        row.count += 1;
        match checked {
            Ok((w, ms, h)) => {
                eprintln!("faults: {}/{} {kind}: {w}; recovered in {ms} ms; roots equal at {h}", step + 1, plan.len());
                row.detail.push(w);
                row.recovery_ms_max = row.recovery_ms_max.max(ms);
            }
            Err(e) => {
                eprintln!("faults: {}/{} {kind}: FAILED: {e:#}", step + 1, plan.len());
                if row.result == "ok" {
                    row.result = format!("FAILED: {e:#}");
                }
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    gen.join().map_err(|_| anyhow!("the load generator panicked"))??;
    std::thread::sleep(Duration::from_secs(2));
    resolve(&cluster, &sent);

    // Final checks.
    let mut final_checks = Vec::new();
    let ids = committed(&sent);
    let mut check = |name: String, r: Result<()>| {
        final_checks.push((name, r.map_or_else(|e| format!("FAILED: {e:#}"), |()| "ok".into())));
    };
    for n in &cluster.nodes {
        check(
            format!("{}: every committed generated directive ({}) in its state", n.name, ids.len()),
            present(n, &ids),
        );
    }
    // The agents' tables, read before the walk's end height, so that everything they applied
    // was committed at or below it.
    let agents = agents_converged(&cluster);
    let end = cluster.nodes.iter().map(height).min().unwrap_or(0);
    let walked = walk_blocks(&cluster.nodes[0], end);
    let receipts = walked.as_ref().map_or(0, |w| w.receipts);
    let routes = walked.as_ref().map(|w| w.routes.clone()).unwrap_or_default();
    check(
        format!("no transaction in two blocks, every committed receipt ({receipts}) in the state (heights 1..={end})"),
        walked.map(|_| ()),
    );
    let agent_count = cluster.nodes.iter().map(|n| n.agents.len()).sum::<usize>();
    if agent_count > 0 {
        check(
            format!(
                "every agent's ({agent_count}) routes are the committed assignments; none applied more routes than \
                 committed for its groups"
            ),
            agents.and_then(|states| applied_at_most_committed(&states, &routes)),
        );
    }
    for n in &cluster.nodes {
        let genesis = Trust::Genesis(n.home.join("config/genesis.json"));
        let r = verify::run(&Rpc::new(&n.rpc), &genesis, &VerifyOptions::default()).and_then(|v| {
            if v.ok() {
                Ok(())
            } else {
                Err(anyhow!("{}", v.failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")))
            }
        });
        check(format!("{}: audit verify from genesis", n.name), r);
    }
    let ok = rows.values().all(|r| r.result == "ok") && final_checks.iter().all(|(_, r)| r == "ok");
    let rows: Vec<FaultRow> = rows.into_values().chain(skipped).collect();
    let sent_n = sent.lock().expect("sent lock").len() as u64;
    Ok(FaultReport {
        seed: spec.seed,
        load: format!(
            "{:.1} signed routes/s from every pool (round robin over the nodes' RPC) + the cluster's own telemetry, routes and receipts",
            spec.load_per_sec
        ),
        heights: (start, end),
        directives_sent: sent_n,
        directives_committed: ids.len() as u64,
        rows,
        final_checks,
        ok,
    })
}

/// The table.
#[must_use]
pub fn render(r: &FaultReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "seed {} (rerun: --seed {}); heights {}..{}", r.seed, r.seed, r.heights.0, r.heights.1);
    let _ = writeln!(s, "load: {}; {} sent, {} committed", r.load, r.directives_sent, r.directives_committed);
    let _ = writeln!(s, "| perturbation | count | worst recovery | result |\n|---|---|---|---|");
    for row in &r.rows {
        let _ = writeln!(s, "| {} | {} | {} ms | {} |", row.perturbation, row.count, row.recovery_ms_max, row.result);
    }
    if let Some(row) = r.rows.first() {
        let _ = writeln!(s, "checked after each: {}", row.checked);
    }
    for row in &r.rows {
        for d in &row.detail {
            let _ = writeln!(s, "  {}: {d}", row.perturbation);
        }
    }
    let _ = writeln!(s, "final checks:");
    for (name, res) in &r.final_checks {
        let _ = writeln!(s, "  {name}: {res}");
    }
    let _ = writeln!(s, "{}", if r.ok { "ALL HELD" } else { "FAILED" });
    s
}
