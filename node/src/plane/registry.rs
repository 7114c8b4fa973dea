//! The agents an operator registered with this node (`<home>/agents.json`), and the status the
//! running node publishes about them (`<home>/plane-status.json`, rewritten every second).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use hashmesh_protocol::{AgentId, GroupId};
use serde::{Deserialize, Serialize};

/// File name of the registry in a node home.
pub const REGISTRY_FILE: &str = "agents.json";
/// File name of the live status in a node home.
pub const STATUS_FILE: &str = "plane-status.json";

/// One registered agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentEntry {
    /// The agent's key.
    pub id: AgentId,
    /// The miner groups it serves.
    pub groups: Vec<GroupId>,
}

/// Registered agents, by key.
pub type Registry = BTreeMap<AgentId, AgentEntry>;

/// Load the registry (empty when the file does not exist).
///
/// # Errors
/// If the file exists but cannot be read or parsed.
pub fn load(home: &Path) -> Result<Registry> {
    let path = home.join(REGISTRY_FILE);
    if !path.exists() {
        return Ok(Registry::new());
    }
    let list: Vec<AgentEntry> = serde_json::from_slice(&std::fs::read(&path)?)
        .with_context(|| format!("parsing {}; fix or remove it", path.display()))?;
    if let Some(a) = list.iter().find(|a| a.groups.len() > hashmesh_protocol::limits::GROUPS_PER_AGENT_MAX) {
        bail!(
            "{}: agent {} serves {} groups, at most {} are allowed; split them over more agents",
            path.display(),
            a.id,
            a.groups.len(),
            hashmesh_protocol::limits::GROUPS_PER_AGENT_MAX
        );
    }
    Ok(list.into_iter().map(|a| (a.id, a)).collect())
}

/// Register `id` for `groups` (replacing its groups if it is already registered). Takes effect
/// when the node starts.
///
/// # Errors
/// If `groups` is empty or the file cannot be written.
pub fn add(home: &Path, id: AgentId, groups: Vec<GroupId>) -> Result<AgentEntry> {
    if groups.is_empty() {
        bail!("give the agent at least one group: --groups pool-a/g-1,pool-a/g-2");
    }
    if groups.len() > hashmesh_protocol::limits::GROUPS_PER_AGENT_MAX {
        bail!(
            "an agent serves at most {} groups, got {}; split them over more agents",
            hashmesh_protocol::limits::GROUPS_PER_AGENT_MAX,
            groups.len()
        );
    }
    let mut reg = load(home)?;
    let entry = AgentEntry { id, groups };
    reg.insert(id, entry.clone());
    let list: Vec<&AgentEntry> = reg.values().collect();
    hashmesh_plane::host::files::write_atomic(&home.join(REGISTRY_FILE), &serde_json::to_vec_pretty(&list)?)?;
    Ok(entry)
}

/// What the node knows about one agent right now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// The agent.
    pub id: String,
    /// Groups it serves.
    pub groups: Vec<String>,
    /// A connection is open.
    pub connected: bool,
    /// Judged lost by the phi-accrual detector.
    pub lost: bool,
    /// Current phi.
    pub phi: f64,
    /// Node clock at the last heartbeat, ms since the Unix epoch.
    pub last_heartbeat_ms: Option<u64>,
    /// Last acknowledged instruction.
    pub acked_seq: u64,
    /// Directive of the last acknowledged instruction.
    pub last_directive: Option<String>,
    /// Instructions queued and not yet acknowledged.
    pub outstanding: u64,
}

/// Read the node's published status (empty when the node has not written one).
///
/// # Errors
/// If the file exists but cannot be parsed.
pub fn read_status(home: &Path) -> Result<Vec<AgentStatus>> {
    let path = home.join(STATUS_FILE);
    if !path.exists() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&std::fs::read(&path)?).with_context(|| format!("parsing {}", path.display()))
}

/// Publish the status atomically.
///
/// # Errors
/// If the file cannot be written.
pub fn write_status(home: &Path, status: &[AgentStatus]) -> Result<()> {
    hashmesh_plane::host::files::write_atomic(&home.join(STATUS_FILE), &serde_json::to_vec_pretty(status)?)
}
