//! `stratum.json` in the agent home: where the agent listens for miners, where it reaches each
//! endpoint, and the pool's own logins. Typed and checked when the agent starts; unknown keys
//! are refused (a typo must not silently disable a setting). The file is 0600: it holds the
//! pool's own passwords.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;

use anyhow::{bail, Context, Result};
use hashmesh_protocol::{EndpointId, GroupId};
use serde::{Deserialize, Serialize};

use super::core::ProxyConfig;

/// The file name in the agent home.
pub const STRATUM_FILE: &str = "stratum.json";

/// A login at an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// Worker name.
    pub user: String,
    /// Password.
    #[serde(default = "default_password")]
    pub password: String,
}

fn default_password() -> String {
    "x".into()
}

/// The agent's Stratum settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StratumConfig {
    /// Where miners connect (e.g. `0.0.0.0:3333`); their worker names say their group.
    pub listen: SocketAddr,
    /// More listeners, each serving one group whatever the worker names say.
    #[serde(default)]
    pub group_listeners: BTreeMap<SocketAddr, GroupId>,
    /// Each endpoint's Stratum address as this agent reaches it (own and lenders').
    pub endpoints: BTreeMap<EndpointId, SocketAddr>,
    /// The pool's login at its own endpoints (one account for the agent's upstream sessions).
    pub login: Login,
    /// Per-endpoint logins overriding `login`.
    #[serde(default)]
    pub logins: BTreeMap<EndpointId, Login>,
    /// Own endpoints in order of preference for the hot standby (default: every own endpoint
    /// in `endpoints`, by name).
    #[serde(default)]
    pub standby: Vec<EndpointId>,
    /// Groups this agent serves (miners name them as `<group>.<worker>`).
    pub groups: BTreeSet<GroupId>,
    /// Worker-name prefixes mapped to groups (`{"rigs": "pool-a/g-1"}` puts `rigs.s19-17` in
    /// `pool-a/g-1`).
    #[serde(default)]
    pub worker_groups: BTreeMap<String, GroupId>,
    /// How long a recovered endpoint must stay up before work goes back, ms.
    #[serde(default = "default_fail_back_ms")]
    pub fail_back_ms: u64,
    /// Difficulty for miners before an upstream sets one.
    #[serde(default = "default_start_difficulty")]
    pub start_difficulty: f64,
    /// Where to serve Prometheus `/metrics` (none by default).
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// A miner must finish a line it started within this, ms (a one-byte-a-minute trickle is
    /// closed).
    #[serde(default = "default_partial_line_ms")]
    pub partial_line_ms: u64,
    /// Most workers with statistics of their own — totals, hashrate, last share in the status
    /// and `hashmesh_agent_worker_*` series in `/metrics` (0 turns per-worker statistics off;
    /// at most 100 000). Shares of workers past the bound still count per endpoint.
    #[serde(default = "default_workers_max")]
    pub workers_max: usize,
    /// Serve per-worker series in `/metrics` (`hashmesh_agent_worker_*`, one set per worker
    /// with statistics, so at most `workers_max`). Off by default: a large farm's worker count
    /// is a large number of series.
    #[serde(default)]
    pub worker_metrics: bool,
}

fn default_workers_max() -> usize {
    super::core::WORKERS_MAX_DEFAULT
}

fn default_partial_line_ms() -> u64 {
    super::driver::PARTIAL_LINE_MS_DEFAULT
}

fn default_fail_back_ms() -> u64 {
    10_000
}

fn default_start_difficulty() -> f64 {
    1.0
}

impl StratumConfig {
    /// Load `stratum.json` from `home`; `None` when there is none (the agent then applies
    /// routes without proxying).
    ///
    /// # Errors
    /// If it does not parse or is inconsistent, with what to fix.
    pub fn load(home: &Path) -> Result<Option<Self>> {
        let path = home.join(STRATUM_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let c: Self = serde_json::from_slice(&hashmesh_plane::host::files::read_secret_file(&path)?)
            .with_context(|| format!("{} is not a valid Stratum configuration", path.display()))?;
        c.check().with_context(|| format!("in {}", path.display()))?;
        Ok(Some(c))
    }

    /// Create it (0600; never overwrites).
    ///
    /// # Errors
    /// If it exists or cannot be written.
    pub fn create(&self, home: &Path) -> Result<()> {
        hashmesh_plane::host::files::create_secret_file(&home.join(STRATUM_FILE), &serde_json::to_string_pretty(self)?)
    }

    /// Replace it (0600, atomically): tooling that edits an agent's configuration.
    ///
    /// # Errors
    /// If it is inconsistent or cannot be written.
    pub fn save(&self, home: &Path) -> Result<()> {
        self.check()?;
        hashmesh_plane::host::files::write_atomic_private(
            &home.join(STRATUM_FILE),
            serde_json::to_string_pretty(self)?.as_bytes(),
        )
    }

    fn check(&self) -> Result<()> {
        if self.groups.is_empty() {
            bail!("\"groups\" is empty: list the miner groups this agent serves");
        }
        for s in &self.standby {
            if !self.endpoints.contains_key(s) {
                bail!("standby endpoint {s} has no address in \"endpoints\"");
            }
        }
        if self.partial_line_ms == 0 {
            bail!("\"partial_line_ms\" must be positive");
        }
        if self.workers_max > hashmesh_protocol::limits::STRATUM_WORKERS_TRACKED_MAX {
            bail!(
                "\"workers_max\" is {}; at most {} workers can have statistics of their own",
                self.workers_max,
                hashmesh_protocol::limits::STRATUM_WORKERS_TRACKED_MAX
            );
        }
        if !(self.start_difficulty.is_finite() && self.start_difficulty > 0.0) {
            bail!("\"start_difficulty\" must be a positive number");
        }
        Ok(())
    }

    /// The proxy core's settings. Without an explicit `standby`, the pool's own endpoints
    /// (those named like its groups, `pool-a/…`) are the standby candidates.
    #[must_use]
    pub fn proxy_config(&self) -> ProxyConfig {
        let pools: BTreeSet<&str> = self.groups.iter().filter_map(|g| g.as_str().split('/').next()).collect();
        let standby = if self.standby.is_empty() {
            self.endpoints
                .keys()
                .filter(|e| e.as_str().split('/').next().is_some_and(|p| pools.contains(p)))
                .cloned()
                .collect()
        } else {
            self.standby.clone()
        };
        ProxyConfig {
            logins: self.logins.iter().map(|(e, l)| (e.clone(), (l.user.clone(), l.password.clone()))).collect(),
            default_login: (self.login.user.clone(), self.login.password.clone()),
            standby,
            groups: self.groups.clone(),
            own_pools: pools.iter().map(|p| (*p).to_owned()).collect(),
            worker_groups: self.worker_groups.clone(),
            start_difficulty: self.start_difficulty,
            fail_back_ms: self.fail_back_ms,
            workers_max: self.workers_max,
            ..ProxyConfig::default()
        }
    }
}
