//! `hashmesh genesis …`: build and check the one genesis.json a consortium shares — CometBFT's
//! file (chain id, validators, consensus parameters) with hashmesh's `app_state` (pools, their
//! endpoints and groups, network parameters) inside. Pure edits on the JSON document; the
//! command reads and writes the file.

use anyhow::{bail, Context, Result};
use hashmesh_abci::core::genesis::{GenesisAppState, GenesisEndpoint, GenesisGroup, GenesisPool};
use hashmesh_abci::core::Params;
use hashmesh_protocol::PoolId;
use serde::Serialize;
use serde_json::{json, Value};

/// Voting power a validator gets unless told otherwise (every pool the same).
pub const POWER_DEFAULT: u64 = 10;

/// A CometBFT validator's public identity, as `priv_validator_key.json` holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorKey {
    /// Address, upper-case hex.
    pub address: String,
    /// The `pub_key` object (`{"type": "tendermint/PubKeyEd25519", "value": base64}`).
    pub pub_key: Value,
}

impl ValidatorKey {
    /// Read it from a CometBFT home's `config/priv_validator_key.json` (only the public part
    /// is kept).
    ///
    /// # Errors
    /// If the file is missing or not a validator key.
    pub fn from_cometbft_home(home: &std::path::Path) -> Result<Self> {
        let path = home.join("config/priv_validator_key.json");
        let v: Value = serde_json::from_slice(&std::fs::read(&path).with_context(|| {
            format!("reading {}; run `cometbft init --home {}` first", path.display(), home.display())
        })?)
        .with_context(|| format!("{} is not JSON", path.display()))?;
        let address = v["address"].as_str().with_context(|| format!("{} has no address", path.display()))?;
        if !v["pub_key"]["value"].is_string() {
            bail!("{} has no pub_key", path.display());
        }
        Ok(Self { address: address.to_uppercase(), pub_key: v["pub_key"].clone() })
    }
}

/// A consortium genesis being built or checked.
#[derive(Debug, Clone)]
pub struct GenesisDoc {
    /// The whole genesis.json.
    pub doc: Value,
}

/// One problem `check` found, with what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What is wrong.
    pub problem: String,
    /// What to do about it.
    pub fix: String,
}

impl GenesisDoc {
    /// A new genesis for `chain_id`: CometBFT's own genesis.json from `cometbft init` when given
    /// (its time and consensus parameters are kept, its validators replaced as pools join),
    /// else a minimal one CometBFT fills in.
    #[must_use]
    pub fn new(chain_id: &str, base: Option<Value>) -> Self {
        let mut doc = base.unwrap_or_else(|| json!({"genesis_time": "2026-01-01T00:00:00Z", "initial_height": "1"}));
        doc["chain_id"] = json!(chain_id);
        doc["validators"] = json!([]);
        doc["app_state"] = serde_json::to_value(GenesisAppState { params: Params::default(), pools: Vec::new() })
            .expect("app state serializes");
        Self { doc }
    }

    /// The `app_state`, parsed but not validated (a genesis being built may have no pool yet).
    ///
    /// # Errors
    /// If it is not hashmesh's `app_state` shape.
    pub fn app_state(&self) -> Result<GenesisAppState> {
        serde_json::from_value(self.doc["app_state"].clone()).context("app_state is not hashmesh's genesis shape")
    }

    fn set_app_state(&mut self, a: &GenesisAppState) {
        self.doc["app_state"] = serde_json::to_value(a).expect("app state serializes");
    }

    fn pool_mut<'a>(a: &'a mut GenesisAppState, name: &str) -> Result<&'a mut GenesisPool> {
        let known: Vec<String> = a.pools.iter().map(|p| p.name.clone()).collect();
        a.pools.iter_mut().find(|p| p.name == name).with_context(|| {
            format!(
                "no pool named {name:?} in this genesis (pools: {}); add it with `hashmesh genesis add-pool`",
                known.join(", ")
            )
        })
    }

    /// Add a pool (and its validator, when given, with `power`).
    ///
    /// # Errors
    /// If the name or key is taken, or the name cannot prefix endpoint and group ids.
    pub fn add_pool(&mut self, name: &str, id: PoolId, validator: Option<&ValidatorKey>, power: u64) -> Result<()> {
        if name.is_empty() || name.contains('/') || name.len() > hashmesh_abci::core::genesis::GENESIS_TEXT_BYTES_MAX {
            bail!("pool name {name:?} must be non-empty, without '/', at most 256 bytes (it prefixes its endpoint and group ids)");
        }
        format!("{name}/x")
            .parse::<hashmesh_protocol::EndpointId>()
            .map_err(|e| anyhow::anyhow!("pool name {name:?} cannot prefix an endpoint id: {e}"))?;
        let mut a = self.app_state()?;
        if a.pools.iter().any(|p| p.name == name) {
            bail!("a pool named {name:?} is already in this genesis");
        }
        if a.pools.iter().any(|p| p.id == id) {
            bail!("pool key {id} is already in this genesis");
        }
        let validator_address = validator.map(|v| v.address.clone()).unwrap_or_default();
        if let Some(v) = validator {
            let list = self.doc["validators"].as_array_mut().context("validators is not a list")?;
            if list.iter().any(|x| x["address"].as_str().is_some_and(|a| a.eq_ignore_ascii_case(&v.address))) {
                bail!("validator {} is already in this genesis", v.address);
            }
            list.push(json!({"address": v.address, "pub_key": v.pub_key, "power": power.to_string(), "name": name}));
        }
        a.pools.push(GenesisPool {
            id,
            name: name.to_owned(),
            validator_address,
            endpoints: Vec::new(),
            groups: Vec::new(),
        });
        self.set_app_state(&a);
        Ok(())
    }

    /// Add an endpoint to the pool named `pool`.
    ///
    /// # Errors
    /// If the pool is unknown, the id is not `<pool>/…`, or it is taken.
    pub fn add_endpoint(&mut self, pool: &str, e: GenesisEndpoint) -> Result<()> {
        let mut a = self.app_state()?;
        if a.pools.iter().flat_map(|p| &p.endpoints).any(|x| x.id == e.id) {
            bail!("endpoint {} is already in this genesis", e.id);
        }
        if !e.id.as_str().starts_with(&format!("{pool}/")) {
            bail!("endpoint id {} must start with its pool's name: {pool}/…", e.id);
        }
        if e.capacity_hs == 0 {
            bail!("endpoint {} needs a capacity above 0 H/s", e.id);
        }
        Self::pool_mut(&mut a, pool)?.endpoints.push(e);
        self.set_app_state(&a);
        Ok(())
    }

    /// Add a miner group to the pool named `pool`.
    ///
    /// # Errors
    /// If the pool is unknown, the id is not `<pool>/…`, or it is taken.
    pub fn add_group(&mut self, pool: &str, g: GenesisGroup) -> Result<()> {
        let mut a = self.app_state()?;
        if a.pools.iter().flat_map(|p| &p.groups).any(|x| x.id == g.id) {
            bail!("group {} is already in this genesis", g.id);
        }
        if !g.id.as_str().starts_with(&format!("{pool}/")) {
            bail!("group id {} must start with its pool's name: {pool}/…", g.id);
        }
        Self::pool_mut(&mut a, pool)?.groups.push(g);
        self.set_app_state(&a);
        Ok(())
    }

    /// Everything wrong with this genesis for a consortium (empty when it is usable); with
    /// `own`, also that this operator's pool is in it.
    #[must_use]
    pub fn check(&self, own: Option<&PoolId>) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut add = |problem: String, fix: &str| out.push(Finding { problem, fix: fix.to_owned() });
        if self.doc["chain_id"].as_str().is_none_or(str::is_empty) {
            add("no chain_id".into(), "set one with `hashmesh genesis init --chain-id ID`");
        }
        let validators: Vec<(String, String)> = self.doc["validators"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| {
                (
                    v["address"].as_str().unwrap_or_default().to_uppercase(),
                    v["name"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        if validators.is_empty() {
            add(
                "no validators".into(),
                "add each validating pool with `hashmesh genesis add-pool --cometbft-home DIR`",
            );
        }
        let a = match self.app_state() {
            Ok(a) => a,
            Err(e) => {
                add(format!("{e:#}"), "rebuild app_state with `hashmesh genesis init` and `add-pool`");
                return out;
            }
        };
        if let Err(e) = a.validate() {
            add(e.to_string(), "fix app_state (the message names the entry)");
        }
        for p in &a.pools {
            let addr = p.validator_address.to_uppercase();
            if !addr.is_empty() && !validators.iter().any(|(v, _)| *v == addr) {
                add(
                    format!("pool {} names validator {} that is not in validators", p.name, p.validator_address),
                    "add the pool with --cometbft-home (its priv_validator_key.json) so both agree",
                );
            }
            for id in p.endpoints.iter().map(|e| e.id.as_str()).chain(p.groups.iter().map(|g| g.id.as_str())) {
                if !id.starts_with(&format!("{}/", p.name)) {
                    add(format!("{id} belongs to pool {} but does not start with {}/", p.name, p.name), "rename it");
                }
            }
        }
        for (v, name) in &validators {
            if !a.pools.iter().any(|p| p.validator_address.eq_ignore_ascii_case(v)) {
                add(
                    format!("validator {v} ({name}) is no pool's validator_address"),
                    "every validator is a pool's: add its pool with `hashmesh genesis add-pool --cometbft-home DIR`",
                );
            }
        }
        if let Some(me) = own {
            if !a.pools.iter().any(|p| p.id == *me) {
                add(
                    format!("this node's pool {me} is not in the genesis"),
                    "add it with `hashmesh genesis add-pool --home NODE_HOME` (else every transaction it signs is refused)",
                );
            }
        }
        out
    }
}
