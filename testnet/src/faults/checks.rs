//! The fault suite's checks: one state root everywhere, nothing committed lost, no
//! transaction twice, receipts recorded, agents' tables as the chain says.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use hashmesh_abci::core::{commitment, keys};
use hashmesh_node::rpc::Rpc;
use hashmesh_protocol::Body;

use super::height;
use crate::cluster::Cluster;

/// The state root of `n` at `h`, from its own proof of `m:genesis`.
pub(super) fn root_at(n: &crate::cluster::NodeInfo, h: u64) -> Result<[u8; 32]> {
    let a = Rpc::new(&n.rpc).proved_key(keys::META_GENESIS, h)?;
    if a.code != 0 || a.height != h {
        bail!("{}: /store m:genesis at {h} answered code {} at height {}: {}", n.name, a.code, a.height, a.log);
    }
    let (_, proof) = a.proof.first().with_context(|| format!("{}: no proof", n.name))?;
    commitment::root_of(keys::META_GENESIS, &a.value, proof).map_err(|e| anyhow!("{}: {e}", n.name))
}

/// One root on every node at a common height, equal to the app hash in the next header.
pub(super) fn same_roots(cluster: &Cluster) -> Result<u64> {
    let h = cluster.nodes.iter().map(height).min().unwrap_or(0).saturating_sub(1);
    if h == 0 {
        bail!("no common height");
    }
    let roots: Vec<[u8; 32]> = cluster.nodes.iter().map(|n| root_at(n, h)).collect::<Result<_>>()?;
    let header = Rpc::new(&cluster.nodes[0].rpc).raw_block(h + 1)?.header;
    for (n, r) in cluster.nodes.iter().zip(&roots) {
        if r.as_slice() != header.app_hash.as_bytes() {
            bail!(
                "{} has state root {} at height {h}; header {} says {}",
                n.name,
                hex::encode(r),
                h + 1,
                header.app_hash
            );
        }
    }
    Ok(h)
}

/// Every id in `ids` is a directive in `n`'s state.
pub(super) fn present(n: &crate::cluster::NodeInfo, ids: &[String]) -> Result<()> {
    let rpc = Rpc::new(&n.rpc);
    for id in ids {
        let id = id.to_lowercase();
        let v = rpc.abci_query("/directive", id.as_bytes()).with_context(|| format!("{}: directive {id}", n.name))?;
        if v["id"].as_str().map(str::to_lowercase) != Some(id.clone()) {
            bail!("{}: committed directive {id} is missing from its state", n.name);
        }
    }
    Ok(())
}
/// An agent's name and its persisted table.
pub(super) type AgentTables = Vec<(String, Vec<String>, hashmesh_plane::core::agent::AgentState)>;

/// Wait (up to 30 s) until every agent's persisted routes name the directives of its groups'
/// committed assignments (the scheduling loops keep moving them, so a mismatch is retried).
pub(super) fn agents_converged(cluster: &Cluster) -> Result<AgentTables> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut tables = Vec::new();
        let mut differ = Vec::new();
        for n in &cluster.nodes {
            let rpc = Rpc::new(&n.rpc);
            for (k, a) in n.agents.iter().enumerate() {
                let name = format!("{}/agent-{}", n.name, k + 1);
                let state = hashmesh_agent::home::load_state(&a.home)?;
                for g in &a.groups {
                    let key = keys::assignment(&g.parse()?);
                    let committed = rpc.proved_key(&key, 0)?;
                    let want = (committed.code == 0)
                        .then(|| {
                            hashmesh_protocol::codec::decode_trusted::<hashmesh_abci::core::model::Assignment>(
                                &committed.value,
                            )
                        })
                        .transpose()
                        .map_err(|e| anyhow!("assignment of {g}: {e}"))?
                        .map(|x| x.directive);
                    let have = state.routes.get(&g.parse()?).map(|r| r.directive);
                    if want != have {
                        differ.push(format!("{name} {g}: applied {have:?}, committed {want:?}"));
                    }
                }
                tables.push((name, a.groups.clone(), state));
            }
        }
        if differ.is_empty() {
            return Ok(tables);
        }
        if Instant::now() > deadline {
            bail!("agents did not converge in 30 s: {}", differ.join("; "));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Each agent's count of routes that took effect is at most the routes committed for its groups.
pub(super) fn applied_at_most_committed(tables: &AgentTables, routes: &BTreeMap<String, usize>) -> Result<()> {
    for (name, groups, state) in tables {
        let committed: usize = groups.iter().map(|g| routes.get(g).copied().unwrap_or(0)).sum();
        if state.applied_count > committed as u64 {
            bail!("{name} applied {} routes; the chain committed {committed} for its groups", state.applied_count);
        }
    }
    Ok(())
}

/// What [`walk_blocks`] found.
pub(super) struct Walk {
    /// Receipt entries recorded.
    pub(super) receipts: usize,
    /// Applied routes per group.
    pub(super) routes: BTreeMap<String, usize>,
}

/// Walk blocks `1..=end` on `n`: no transaction in two blocks; every receipt entry of an applied
/// `Receipt` transaction is recorded in the state (none lost to a restart). How many entries,
/// and how many routes each group was given.
pub(super) fn walk_blocks(n: &crate::cluster::NodeInfo, end: u64) -> Result<Walk> {
    let rpc = Rpc::new(&n.rpc);
    let mut seen: BTreeSet<[u8; 32]> = BTreeSet::new();
    let mut receipts: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut routes: BTreeMap<String, usize> = BTreeMap::new();
    for h in 1..=end {
        let txs = rpc.raw_block(h)?.data;
        let results = rpc.committed_results(h)?;
        for (tx, r) in txs.iter().zip(&results) {
            let id = hashmesh_protocol::DirectiveId::of_tx_bytes(tx);
            if !seen.insert(id.0) {
                bail!("transaction {} is in block {h} and in an earlier one", hex::encode(id.0));
            }
            if let (0, Ok(t)) = (r.code, hashmesh_protocol::SignedTx::decode(tx)) {
                match t.body {
                    Body::Receipt { receipts: entries } => {
                        receipts.extend(entries.iter().map(|e| keys::receipt(&e.directive, &e.agent)));
                    }
                    Body::Route { group, .. } => *routes.entry(group.to_string()).or_default() += 1,
                    _ => {}
                }
            }
        }
    }
    for key in &receipts {
        let a = rpc.proved_key(key, end)?;
        if a.code != 0 {
            bail!("a committed receipt ({}) is not in the state", hex::encode(key));
        }
    }
    Ok(Walk { receipts: receipts.len(), routes })
}
