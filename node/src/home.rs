//! A node's home directory: `config.toml` and the pool key file (`pool_key.json`, mode 0600).

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use hashmesh_protocol::{PoolId, SigningKey};
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
    /// Address the ABCI server listens on (CometBFT's `proxy_app`), `HOST:PORT`.
    pub abci_listen: SocketAddr,
    /// CometBFT RPC URL used by `tx`, `query`, `status` and `audit`.
    pub rpc: String,
    /// Address of the Prometheus `/metrics` endpoint; `""` (written for `None`) disables it.
    #[serde(default, with = "optional_addr")]
    pub metrics_listen: Option<SocketAddr>,
    /// State directory, relative to the home unless absolute.
    pub state_dir: String,
    /// The live scheduling loop.
    #[serde(default)]
    pub scheduler: crate::live::SchedulerSettings,
    /// The instruction plane (QUIC to agents).
    #[serde(default)]
    pub plane: PlaneSettings,
    /// The state store's memory and history.
    #[serde(default)]
    pub store: StoreSettings,
}

/// `[store]` in `config.toml`: how much memory and state history the node keeps (ADR 0015).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// sled's page cache, MiB.
    pub cache_mib: u64,
    /// Heights whose state can be proven (`/store` at a height, `audit verify --to-height`);
    /// older state-tree versions are pruned as blocks commit. 0 keeps every height (archive).
    /// Blocks themselves are CometBFT's and are never pruned by this.
    pub keep_heights: u64,
}

impl Default for StoreSettings {
    fn default() -> Self {
        let d = hashmesh_abci::store::StoreOptions::default();
        Self { cache_mib: d.cache_bytes >> 20, keep_heights: d.keep_heights }
    }
}

impl StoreSettings {
    /// The store's options.
    ///
    /// # Errors
    /// If `keep_heights` is 1 or the cache is 0 or absurdly large.
    pub fn options(&self) -> Result<hashmesh_abci::store::StoreOptions> {
        use hashmesh_abci::store::StoreOptions;
        if self.keep_heights != 0 && self.keep_heights < StoreOptions::KEEP_HEIGHTS_MIN {
            bail!(
                "[store] keep_heights = {} keeps too little: use 0 (every height) or at least {}",
                self.keep_heights,
                StoreOptions::KEEP_HEIGHTS_MIN
            );
        }
        if !(1..=1 << 20).contains(&self.cache_mib) {
            bail!("[store] cache_mib = {} is out of range: use 1..=1048576 (MiB)", self.cache_mib);
        }
        Ok(StoreOptions { cache_bytes: self.cache_mib << 20, keep_heights: self.keep_heights })
    }
}

/// `[plane]` in `config.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlaneSettings {
    /// UDP address for QUIC; `""` (written for `None`) disables the plane.
    #[serde(with = "optional_addr")]
    pub listen: Option<SocketAddr>,
    /// Phi above which an agent is judged lost.
    pub phi_threshold: f64,
    /// Other pools' plane addresses, by pool id (hex): where to send worker credentials when
    /// one of their groups is routed onto this pool's endpoints.
    pub peers: BTreeMap<PoolId, SocketAddr>,
}

impl Default for PlaneSettings {
    fn default() -> Self {
        Self { listen: None, phi_threshold: 8.0, peers: BTreeMap::new() }
    }
}

/// An optional listen address in `config.toml`: `"HOST:PORT"`, or `""` for none (TOML has no
/// null; older configs already used `""` to disable).
mod optional_addr {
    use std::net::SocketAddr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.map(|a| a.to_string()).unwrap_or_default())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|_| {
            serde::de::Error::custom(format!("{text:?} is not HOST:PORT with a numeric host (or \"\" to disable)"))
        })
    }
}

impl Config {
    /// Defaults for a single node on this machine.
    #[must_use]
    pub fn new(moniker: &str) -> Self {
        Self {
            moniker: moniker.to_owned(),
            chain_id: String::new(),
            abci_listen: SocketAddr::from(([127, 0, 0, 1], 26658)),
            rpc: "http://127.0.0.1:26657".into(),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 26660))),
            state_dir: "data/state".into(),
            scheduler: crate::live::SchedulerSettings::default(),
            plane: PlaneSettings {
                listen: Some(SocketAddr::from(([127, 0, 0, 1], 26658))),
                ..PlaneSettings::default()
            },
            store: StoreSettings::default(),
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

    #[test]
    fn configs_with_older_keys_and_empty_addresses_still_load() {
        let text = r#"
            moniker = "pool-a"
            abci_listen = "127.0.0.1:26658"
            rpc = "http://127.0.0.1:26657"
            metrics_listen = ""
            state_dir = "data/state"
            [scheduler]
            min_dwell_ms = 1234
            max_moves_per_epoch = 2
            source = "synthetic"
            [plane]
            listen = ""
            [plane.peers]
            1111111111111111111111111111111111111111111111111111111111111111 = "127.0.0.1:9"
        "#;
        let c: Config = toml::from_str(text).unwrap();
        assert_eq!((c.metrics_listen, c.plane.listen), (None, None));
        assert_eq!((c.scheduler.dwell_ms_min, c.scheduler.moves_per_epoch_max), (1234, 2));
        assert_eq!(c.scheduler.source, crate::live::Source::Synthetic);
        assert_eq!(c.plane.peers.values().next(), Some(&"127.0.0.1:9".parse().unwrap()));
        let round: Config = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(round.plane.peers, c.plane.peers);
        let bad = text.replace(r#"listen = """#, r#"listen = "localhost""#);
        let e = toml::from_str::<Config>(&bad).unwrap_err().to_string();
        assert!(e.contains("HOST:PORT"), "{e}");
    }
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

    #[test]
    fn store_settings_default_and_refuse_what_cannot_work() {
        let d = StoreSettings::default().options().unwrap();
        assert_eq!((d.cache_bytes, d.keep_heights), (128 << 20, 100_000));
        let archive = StoreSettings { cache_mib: 64, keep_heights: 0 }.options().unwrap();
        assert_eq!((archive.cache_bytes, archive.keep_heights), (64 << 20, 0));
        let e = StoreSettings { cache_mib: 64, keep_heights: 1 }.options().unwrap_err().to_string();
        assert!(e.contains("keep_heights = 1") && e.contains("at least 2"), "{e}");
        let e = StoreSettings { cache_mib: 0, keep_heights: 10 }.options().unwrap_err().to_string();
        assert!(e.contains("cache_mib = 0"), "{e}");
        let text = "moniker = \"x\"\nabci_listen = \"127.0.0.1:1\"\nrpc = \"http://127.0.0.1:2\"\nstate_dir = \"s\"\n\n[store]\nkeep_heights = 500\n";
        let c: Config = toml::from_str(text).unwrap();
        assert_eq!(c.store, StoreSettings { cache_mib: 128, keep_heights: 500 });
    }
}
