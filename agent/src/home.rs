//! The agent's home directory: its key and its routing table.

use std::path::Path;

use anyhow::{Context, Result};
use hashmesh_plane::core::agent::AgentState;
use hashmesh_plane::host::{files, keyfile};
use hashmesh_protocol::AgentId;

/// The agent's key file (0600).
pub const KEY_FILE: &str = "agent_key.json";
/// The routing table and delivery cursor.
pub const STATE_FILE: &str = "state.json";

/// Create an agent home with a new key; returns the agent id to register with the node.
///
/// # Errors
/// If the directory cannot be written or already holds a key.
pub fn init(dir: &Path) -> Result<AgentId> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let key = keyfile::create(&dir.join(KEY_FILE), &keyfile::random_seed())?;
    Ok(AgentId(key.verifying_key().to_bytes()))
}

/// The agent's key.
///
/// # Errors
/// If the key file is missing, malformed or readable by others.
pub fn load_key(dir: &Path) -> Result<ed25519_dalek::SigningKey> {
    let path = dir.join(KEY_FILE);
    if !path.exists() {
        anyhow::bail!("no agent key at {}; run `hashmesh-agent init --home {}` first", path.display(), dir.display());
    }
    keyfile::load(&path)
}

/// Load `state.json` (empty when absent).
///
/// # Errors
/// If it exists and does not parse.
pub fn load_state(dir: &Path) -> Result<AgentState> {
    let path = dir.join(STATE_FILE);
    if !path.exists() {
        return Ok(AgentState::default());
    }
    serde_json::from_slice(&std::fs::read(&path)?).with_context(|| format!("parsing {}", path.display()))
}

/// Persist the routing table atomically and durably, readable by the agent's user only (it
/// holds the worker credentials of cross-pool routes).
///
/// # Errors
/// If the file cannot be written.
pub fn save_state(dir: &Path, state: &AgentState) -> Result<()> {
    files::write_atomic_private(&dir.join(STATE_FILE), &serde_json::to_vec_pretty(state)?)
}
