//! The genesis `app_state`: mining pools with their endpoints and miner groups, and params.

use std::collections::BTreeSet;

use hashmesh_protocol::limits::{ENDPOINTS_PER_POOL_MAX, GROUPS_PER_POOL_MAX, POOLS_MAX, VOTE_WINDOW_BLOCKS_MAX};
use hashmesh_protocol::{EndpointId, GroupId, PoolId, PoolKey};
use serde::{Deserialize, Serialize};

use super::model::Params;

/// Longest pool name, region or URL accepted in genesis, in bytes.
pub const GENESIS_TEXT_BYTES_MAX: usize = 256;

/// The `app_state` object of CometBFT's genesis.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisAppState {
    /// Network parameters.
    #[serde(default)]
    pub params: Params,
    /// Participating mining pools.
    pub pools: Vec<GenesisPool>,
}

/// One mining pool in genesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisPool {
    /// Its ed25519 public key, hex.
    pub id: PoolId,
    /// Readable name.
    pub name: String,
    /// CometBFT validator address (hex), may be empty for a non-validating pool.
    #[serde(default)]
    pub validator_address: String,
    /// Its endpoints.
    pub endpoints: Vec<GenesisEndpoint>,
    /// Its miner groups.
    pub groups: Vec<GenesisGroup>,
}

/// One endpoint in genesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisEndpoint {
    /// e.g. `pool-a/ep-1`.
    pub id: EndpointId,
    /// e.g. `stratum+tcp://127.0.0.1:3333`.
    pub stratum_url: String,
    /// Capacity, H/s.
    pub capacity_hs: u64,
    /// Region label.
    #[serde(default)]
    pub region: String,
}

/// One miner group in genesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisGroup {
    /// e.g. `pool-a/g-1`.
    pub id: GroupId,
    /// Nominal hashrate, H/s.
    pub hashrate_hs: u64,
}

/// Why a genesis `app_state` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    /// Not valid JSON of the expected shape.
    #[error("app_state is not valid hashmesh genesis JSON: {0}")]
    Json(String),
    /// A rule of the genesis is broken.
    #[error("invalid genesis: {0}")]
    Invalid(String),
}

impl GenesisAppState {
    /// Parse and validate `app_state` bytes.
    ///
    /// # Errors
    /// [`GenesisError`] naming the first problem found.
    pub fn from_json(bytes: &[u8]) -> Result<Self, GenesisError> {
        let g: Self = serde_json::from_slice(bytes).map_err(|e| GenesisError::Json(e.to_string()))?;
        g.validate()?;
        Ok(g)
    }

    /// Check every rule: limits, unique ids, usable keys, positive capacities.
    ///
    /// # Errors
    /// [`GenesisError::Invalid`] naming the first problem found.
    pub fn validate(&self) -> Result<(), GenesisError> {
        let bad = |m: String| Err(GenesisError::Invalid(m));
        if self.pools.is_empty() || self.pools.len() > POOLS_MAX {
            return bad(format!("need 1..={POOLS_MAX} pools, got {}", self.pools.len()));
        }
        let w = self.params.vote_window_blocks;
        if w == 0 || w > VOTE_WINDOW_BLOCKS_MAX {
            return bad(format!("vote_window_blocks must be 1..={VOTE_WINDOW_BLOCKS_MAX}, got {w}"));
        }
        let p = &self.params;
        if p.health_floor_bp > 10_000 || p.max_utilization_bp == 0 || p.max_utilization_bp > 10_000 {
            return bad("health_floor_bp must be 0..=10000 and max_utilization_bp 1..=10000".into());
        }
        if p.telemetry_stale_blocks == 0 {
            return bad("telemetry_stale_blocks must be at least 1".into());
        }
        let (mut pools, mut eps, mut groups) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for p in &self.pools {
            if !pools.insert(p.id) {
                return bad(format!("pool {} listed twice", p.id));
            }
            if let Err(e) = PoolKey::from_pool_id(&p.id) {
                return bad(format!("pool {} key unusable: {e}", p.id));
            }
            for text in [&p.name, &p.validator_address] {
                if text.len() > GENESIS_TEXT_BYTES_MAX {
                    return bad(format!("pool {} has a field over {GENESIS_TEXT_BYTES_MAX} bytes", p.id));
                }
            }
            if p.endpoints.len() > ENDPOINTS_PER_POOL_MAX || p.groups.len() > GROUPS_PER_POOL_MAX {
                return bad(format!("pool {} has too many endpoints or groups", p.name));
            }
            for e in &p.endpoints {
                if !eps.insert(e.id.clone()) {
                    return bad(format!("endpoint {} listed twice", e.id));
                }
                if e.capacity_hs == 0 {
                    return bad(format!("endpoint {} has zero capacity", e.id));
                }
                if e.stratum_url.len() > GENESIS_TEXT_BYTES_MAX || e.region.len() > GENESIS_TEXT_BYTES_MAX {
                    return bad(format!("endpoint {} has a field over {GENESIS_TEXT_BYTES_MAX} bytes", e.id));
                }
            }
            for g in &p.groups {
                if !groups.insert(g.id.clone()) {
                    return bad(format!("group {} listed twice", g.id));
                }
            }
        }
        Ok(())
    }
}
