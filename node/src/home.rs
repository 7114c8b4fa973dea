//! A node's home directory: `config.toml` and the pool key file (`pool_key.json`, mode 0600).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use hashmesh_protocol::SigningKey;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

/// Name of the config file inside a home.
pub const CONFIG_FILE: &str = "config.toml";
/// Name of the pool key file inside a home.
pub const KEY_FILE: &str = "pool_key.json";

/// `config.toml` of a node home.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Readable name of this pool's node.
    pub moniker: String,
    /// Chain id to sign for; empty means "ask CometBFT".
    #[serde(default)]
    pub chain_id: String,
    /// Address the ABCI server listens on (CometBFT's `proxy_app`).
    pub abci_listen: String,
    /// CometBFT RPC URL used by `tx`, `query`, `status` and `audit`.
    pub rpc: String,
    /// Address of the Prometheus `/metrics` endpoint; empty disables it.
    #[serde(default)]
    pub metrics_listen: String,
    /// State directory, relative to the home unless absolute.
    pub state_dir: String,
    /// The live scheduling loop.
    #[serde(default)]
    pub scheduler: crate::live::SchedulerSettings,
    /// The instruction plane (QUIC to agents).
    #[serde(default)]
    pub plane: PlaneSettings,
}

/// `[plane]` in `config.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlaneSettings {
    /// UDP address for QUIC; empty disables the plane.
    pub listen: String,
    /// Phi above which an agent is judged lost.
    pub phi_threshold: f64,
    /// Other pools' plane addresses, by pool id (hex): where to send worker credentials when
    /// one of their groups is routed onto this pool's endpoints.
    pub peers: std::collections::BTreeMap<String, String>,
}

impl Default for PlaneSettings {
    fn default() -> Self {
        Self { listen: String::new(), phi_threshold: 8.0, peers: std::collections::BTreeMap::new() }
    }
}

impl Config {
    /// Defaults for a single node on this machine.
    #[must_use]
    pub fn new(moniker: &str) -> Self {
        Self {
            moniker: moniker.to_owned(),
            chain_id: String::new(),
            abci_listen: "127.0.0.1:26658".into(),
            rpc: "http://127.0.0.1:26657".into(),
            metrics_listen: "127.0.0.1:26660".into(),
            state_dir: "data/state".into(),
            scheduler: crate::live::SchedulerSettings::default(),
            plane: PlaneSettings { listen: "127.0.0.1:26658".into(), ..PlaneSettings::default() },
        }
    }
}

/// A loaded home directory.
#[derive(Debug)]
pub struct Home {
    /// Its path.
    pub dir: PathBuf,
    /// Its config.
    pub config: Config,
}

impl Home {
    /// Create a new home: config and a fresh pool key. Refuses to overwrite an existing key.
    ///
    /// # Errors
    /// If the directory cannot be written or already holds a key.
    pub fn init(dir: &Path, config: Config) -> Result<(Self, SigningKey)> {
        let mut seed = [0u8; 32];
        OsRng.fill_bytes(&mut seed);
        Self::init_with_seed(dir, config, &seed)
    }

    /// Like [`Home::init`] with a given seed (tests and tooling).
    ///
    /// # Errors
    /// If the directory cannot be written or already holds a key.
    pub fn init_with_seed(dir: &Path, config: Config, seed: &[u8; 32]) -> Result<(Self, SigningKey)> {
        let key_path = dir.join(KEY_FILE);
        if key_path.exists() {
            bail!("{} already exists; refusing to overwrite a pool key (use another --home)", key_path.display());
        }
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        keyfile::create(&key_path, seed)?;
        let key = SigningKey::from_seed(seed);
        let text = toml::to_string_pretty(&config)?;
        fs::write(dir.join(CONFIG_FILE), text)
            .with_context(|| format!("writing {}", dir.join(CONFIG_FILE).display()))?;
        Ok((Self { dir: dir.to_owned(), config }, key))
    }

    /// Load an existing home.
    ///
    /// # Errors
    /// If `config.toml` is missing or invalid.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(CONFIG_FILE);
        let text = fs::read_to_string(&path).with_context(|| {
            format!("reading {}; run `hashmesh init --home {}` first", path.display(), dir.display())
        })?;
        let config: Config = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        Ok(Self { dir: dir.to_owned(), config })
    }

    /// Write the config back (after tooling changed it).
    ///
    /// # Errors
    /// If the file cannot be written.
    pub fn save_config(&self) -> Result<()> {
        hashmesh_plane::host::files::write_atomic(
            &self.dir.join(CONFIG_FILE),
            toml::to_string_pretty(&self.config)?.as_bytes(),
        )?;
        Ok(())
    }

    /// The pool signing key. Refuses a key file readable by others.
    ///
    /// # Errors
    /// If the file is missing, malformed, or has loose permissions.
    pub fn signing_key(&self) -> Result<SigningKey> {
        Ok(SigningKey::from_seed(&keyfile::load(&self.dir.join(KEY_FILE))?.to_bytes()))
    }

    /// The state directory.
    #[must_use]
    pub fn state_dir(&self) -> PathBuf {
        let p = Path::new(&self.config.state_dir);
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.dir.join(p)
        }
    }
}

pub use hashmesh_plane::host::files::{create_secret_file, read_secret_file};
use hashmesh_plane::host::keyfile;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn init_writes_a_private_key_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let (home, key) = Home::init(dir.path(), Config::new("pool-a")).unwrap();
        let mode = fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(home.signing_key().unwrap().pool_id(), key.pool_id());
        assert!(Home::init(dir.path(), Config::new("pool-a")).is_err());
        fs::set_permissions(dir.path().join(KEY_FILE), fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Home::load(dir.path()).unwrap().signing_key().is_err());
    }
}
