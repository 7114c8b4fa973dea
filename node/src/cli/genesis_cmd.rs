//! `hashmesh genesis init|add-pool|add-endpoint|add-group|validate`: the consortium's shared
//! genesis.json, built one pool at a time and checked before anyone starts.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use hashmesh_abci::core::genesis::{GenesisEndpoint, GenesisGroup};
use hashmesh_node::genesis_file::{GenesisDoc, ValidatorKey, POWER_DEFAULT};
use hashmesh_node::home::Home;
use hashmesh_node::output::{print_json, table};
use hashmesh_protocol::PoolId;
use serde_json::json;

pub(super) const GENESIS_HELP: &str = "\
Build the one genesis.json every pool's CometBFT and node share, then copy it to each
CometBFT home's config/ (docs/operations.md, \"3. Agree on a genesis\"):

  hashmesh genesis init --file genesis.json --chain-id hashmesh-1 --from ~/.cometbft-a/config/genesis.json
  hashmesh genesis add-pool --file genesis.json --name pool-a --home ~/.hashmesh-a --cometbft-home ~/.cometbft-a
  hashmesh genesis add-endpoint --file genesis.json --pool pool-a --id pool-a/ep-1 \\
      --stratum-url stratum+tcp://stratum-a1.example:3333 --capacity-hs 200000000000000 --region eu
  hashmesh genesis add-group --file genesis.json --pool pool-a --id pool-a/g-1 --hashrate-hs 100000000000000
  hashmesh genesis validate --file genesis.json --home ~/.hashmesh-a";

#[derive(Subcommand)]
pub(super) enum GenesisCmd {
    /// Start a genesis: CometBFT's genesis.json (time, consensus parameters) with an empty
    /// hashmesh app_state and no validators yet.
    Init {
        /// The file to write.
        #[arg(long)]
        file: PathBuf,
        /// The consortium's chain id (every node and CometBFT uses it).
        #[arg(long)]
        chain_id: String,
        /// A genesis.json from `cometbft init` to start from (default: a minimal one).
        #[arg(long)]
        from: Option<PathBuf>,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Add a pool: its key (from its node home, or --id) and, for a validating pool, its
    /// CometBFT validator (from its CometBFT home).
    AddPool {
        /// The genesis file.
        #[arg(long)]
        file: PathBuf,
        /// The pool's name (prefixes its endpoint and group ids: `pool-a/ep-1`).
        #[arg(long)]
        name: String,
        /// The pool's node home (its key gives the pool id).
        #[arg(long, conflicts_with = "id")]
        home: Option<PathBuf>,
        /// The pool id (64 hex), when its node home is on another host.
        #[arg(long)]
        id: Option<String>,
        /// The pool's CometBFT home: its validator key joins `validators`.
        #[arg(long)]
        cometbft_home: Option<PathBuf>,
        /// The validator's voting power.
        #[arg(long, default_value_t = POWER_DEFAULT)]
        power: u64,
    },
    /// Add an endpoint to a pool.
    AddEndpoint {
        /// The genesis file.
        #[arg(long)]
        file: PathBuf,
        /// The pool's name.
        #[arg(long)]
        pool: String,
        /// The endpoint id, `<pool>/<name>`.
        #[arg(long)]
        id: String,
        /// Where miners and agents reach it.
        #[arg(long)]
        stratum_url: String,
        /// Capacity, H/s.
        #[arg(long)]
        capacity_hs: u64,
        /// Region label.
        #[arg(long, default_value = "")]
        region: String,
    },
    /// Add a miner group to a pool.
    AddGroup {
        /// The genesis file.
        #[arg(long)]
        file: PathBuf,
        /// The pool's name.
        #[arg(long)]
        pool: String,
        /// The group id, `<pool>/<name>`.
        #[arg(long)]
        id: String,
        /// Nominal hashrate, H/s.
        #[arg(long)]
        hashrate_hs: u64,
    },
    /// Check a genesis: app_state rules, validators against pools, ids against their pools,
    /// and with --home that this node's pool is in it and its chain id matches.
    Validate {
        /// The genesis file.
        #[arg(long)]
        file: PathBuf,
        /// This node's home.
        #[arg(long)]
        home: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn load(file: &Path) -> Result<GenesisDoc> {
    let bytes = std::fs::read(file)
        .with_context(|| format!("reading {}; start one with `hashmesh genesis init`", file.display()))?;
    Ok(GenesisDoc { doc: serde_json::from_slice(&bytes).with_context(|| format!("{} is not JSON", file.display()))? })
}

fn save(file: &Path, g: &GenesisDoc) -> Result<()> {
    hashmesh_plane::host::files::write_atomic(file, serde_json::to_string_pretty(&g.doc)?.as_bytes())
}

pub(super) fn run(cmd: GenesisCmd) -> Result<i32> {
    match cmd {
        GenesisCmd::Init { file, chain_id, from, force } => {
            if file.exists() && !force {
                bail!("{} exists; pass --force to start over", file.display());
            }
            let base = match &from {
                Some(p) => Some(
                    serde_json::from_slice(&std::fs::read(p).with_context(|| format!("reading {}", p.display()))?)
                        .with_context(|| format!("{} is not JSON", p.display()))?,
                ),
                None => None,
            };
            save(&file, &GenesisDoc::new(&chain_id, base))?;
            eprintln!("next: `hashmesh genesis add-pool --file {}` for every pool", file.display());
            Ok(0)
        }
        GenesisCmd::AddPool { file, name, home, id, cometbft_home, power } => {
            let mut g = load(&file)?;
            let id: PoolId = match (&home, &id) {
                (Some(h), _) => Home::load(h)?.signing_key()?.pool_id(),
                (None, Some(hex)) => hex.parse().with_context(|| format!("--id {hex:?} must be a 64-hex pool id"))?,
                (None, None) => bail!("give the pool's key: --home NODE_HOME, or --id POOL_ID"),
            };
            let validator = cometbft_home.as_deref().map(ValidatorKey::from_cometbft_home).transpose()?;
            g.add_pool(&name, id, validator.as_ref(), power)?;
            save(&file, &g)?;
            print_json(&json!({"pool": name, "id": id, "validator_address": validator.map(|v| v.address)}));
            Ok(0)
        }
        GenesisCmd::AddEndpoint { file, pool, id, stratum_url, capacity_hs, region } => {
            let mut g = load(&file)?;
            let e = GenesisEndpoint {
                id: id.parse().with_context(|| format!("--id {id:?}"))?,
                stratum_url,
                capacity_hs,
                region,
            };
            g.add_endpoint(&pool, e)?;
            save(&file, &g)?;
            Ok(0)
        }
        GenesisCmd::AddGroup { file, pool, id, hashrate_hs } => {
            let mut g = load(&file)?;
            g.add_group(&pool, GenesisGroup { id: id.parse().with_context(|| format!("--id {id:?}"))?, hashrate_hs })?;
            save(&file, &g)?;
            Ok(0)
        }
        GenesisCmd::Validate { file, home, json } => {
            let g = load(&file)?;
            let mut own = None;
            let mut findings = Vec::new();
            if let Some(h) = &home {
                let h = Home::load(h)?;
                own = Some(h.signing_key()?.pool_id());
                let chain = g.doc["chain_id"].as_str().unwrap_or_default();
                if !h.config.chain_id.is_empty() && h.config.chain_id != chain {
                    findings.push(hashmesh_node::genesis_file::Finding {
                        problem: format!(
                            "this node's config says chain {:?}, the genesis {chain:?}",
                            h.config.chain_id
                        ),
                        fix: "set chain_id in the node's config.toml to the genesis chain id".into(),
                    });
                }
            }
            findings.extend(g.check(own.as_ref()));
            let a = g.app_state().ok();
            if json {
                print_json(&json!({
                    "file": file, "ok": findings.is_empty(), "findings": findings,
                    "pools": a.as_ref().map_or(0, |a| a.pools.len()),
                    "validators": g.doc["validators"].as_array().map_or(0, Vec::len),
                }));
            } else if findings.is_empty() {
                let a = a.expect("checked");
                let rows: Vec<Vec<String>> = a
                    .pools
                    .iter()
                    .map(|p| {
                        vec![
                            p.name.clone(),
                            p.id.to_hex()[..12].to_owned(),
                            if p.validator_address.is_empty() { "-".into() } else { p.validator_address.clone() },
                            p.endpoints.len().to_string(),
                            p.groups.len().to_string(),
                        ]
                    })
                    .collect();
                println!("{}: usable, chain {}", file.display(), g.doc["chain_id"].as_str().unwrap_or_default());
                print!("{}", table(&["POOL", "ID", "VALIDATOR", "ENDPOINTS", "GROUPS"], &rows));
            } else {
                for f in &findings {
                    println!("problem: {}\n    fix: {}", f.problem, f.fix);
                }
            }
            Ok(i32::from(!findings.is_empty()))
        }
    }
}
