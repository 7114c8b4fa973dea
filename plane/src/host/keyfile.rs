//! The one key-file type, for pool keys and agent keys alike: an ed25519 seed and the public
//! key it must produce, in a 0600 JSON file. Older files that name the public key `pool_id` or
//! `agent_id` still load.

use std::path::Path;

use anyhow::{bail, Context, Result};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

use super::files::{create_secret_file, read_secret_file};

/// The on-disk form.
#[derive(Debug, Serialize, Deserialize)]
struct KeyFile {
    #[serde(alias = "pool_id", alias = "agent_id")]
    public_key: String,
    secret_seed: String,
}

/// A fresh random seed.
#[must_use]
pub fn random_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    seed
}

/// Write a new key file for `seed` at `path` (0600); refuses to overwrite an existing key.
///
/// # Errors
/// If the file exists or cannot be written.
pub fn create(path: &Path, seed: &[u8; 32]) -> Result<ed25519_dalek::SigningKey> {
    if path.exists() {
        bail!("{} already exists; refusing to overwrite a key (use another --home)", path.display());
    }
    let key = ed25519_dalek::SigningKey::from_bytes(seed);
    let file = KeyFile { public_key: hex::encode(key.verifying_key().as_bytes()), secret_seed: hex::encode(seed) };
    create_secret_file(path, &serde_json::to_string_pretty(&file)?)?;
    Ok(key)
}

/// Load the key at `path`; refuses a file others can read, or whose public key does not match
/// its seed.
///
/// # Errors
/// If the file is missing, malformed, loose or inconsistent.
pub fn load(path: &Path) -> Result<ed25519_dalek::SigningKey> {
    let file: KeyFile =
        serde_json::from_slice(&read_secret_file(path)?).with_context(|| format!("parsing {}", path.display()))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(&file.secret_seed, &mut seed)
        .with_context(|| format!("{}: secret_seed must be 64 hex characters", path.display()))?;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    if hex::encode(key.verifying_key().as_bytes()) != file.public_key.to_ascii_lowercase() {
        bail!("{}: the public key does not match secret_seed", path.display());
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_old_field_names() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.json");
        let k = create(&p, &[7; 32]).unwrap();
        assert_eq!(load(&p).unwrap().verifying_key(), k.verifying_key());
        assert!(create(&p, &[8; 32]).is_err());
        let old = dir.path().join("old.json");
        let text = format!(
            "{{\"agent_id\":\"{}\",\"secret_seed\":\"{}\"}}",
            hex::encode(k.verifying_key().as_bytes()),
            hex::encode([7u8; 32])
        );
        create_secret_file(&old, &text).unwrap();
        assert_eq!(load(&old).unwrap().verifying_key(), k.verifying_key());
        let wrong = dir.path().join("wrong.json");
        create_secret_file(&wrong, &text.replace("\"secret_seed\":\"07", "\"secret_seed\":\"08")).unwrap();
        assert!(load(&wrong).unwrap_err().to_string().contains("does not match"));
    }
}
