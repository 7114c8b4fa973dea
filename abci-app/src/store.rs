//! The state store: the only module that names sled.
//!
//! One sled tree holds every record under the key layout of [`crate::core::keys`]. A block's
//! writes and its `(height, app_hash)` go in one atomic batch, followed by a flush, so after a
//! crash the store holds exactly some committed height and CometBFT replays the rest.

use std::path::Path;

use hashmesh_protocol::codec;

use crate::core::keys;
use crate::core::writes::{KvRead, WriteSet};

/// A local storage fault. Never a transaction result: the node stops instead.
#[derive(Debug, thiserror::Error)]
#[error("state store at {path}: {source}")]
pub struct StoreError {
    path: String,
    #[source]
    source: sled::Error,
}

/// The committed state on disk. Cheap to clone; clones share the database.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    path: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.path)
    }
}

impl Store {
    /// Open (or create) the store in directory `path`.
    ///
    /// # Errors
    /// [`StoreError`] if sled cannot open it (permissions, another process holds it).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let p = path.display().to_string();
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(256 * 1024 * 1024)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(|source| StoreError { path: p.clone(), source })?;
        Ok(Self { db, path: p })
    }

    fn err(&self, source: sled::Error) -> StoreError {
        StoreError { path: self.path.clone(), source }
    }

    /// Persist `writes` with `(height, app_hash)` atomically, then flush to disk.
    ///
    /// # Errors
    /// [`StoreError`] on any sled failure.
    pub fn commit(&self, writes: &WriteSet, height: u64, app_hash: &[u8; 32]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (k, v) in writes.iter() {
            match v {
                Some(v) => batch.insert(k.as_slice(), v.as_slice()),
                None => batch.remove(k.as_slice()),
            }
        }
        batch.insert(keys::META_LAST, codec::encode(&(height, *app_hash)));
        self.db.apply_batch(batch).map_err(|e| self.err(e))?;
        self.db.flush().map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The last committed `(height, app_hash)`, if any.
    ///
    /// # Panics
    /// If the stored value is corrupt (a local fault).
    #[must_use]
    pub fn last_committed(&self) -> Option<(u64, [u8; 32])> {
        KvRead::get(self, keys::META_LAST)
            .map(|b| codec::decode_trusted(&b).expect("m:last decodes; the state store is corrupt"))
    }

    /// Remove everything (used when CometBFT re-runs `InitChain` at height 0).
    ///
    /// # Errors
    /// [`StoreError`] on any sled failure.
    pub fn clear(&self) -> Result<(), StoreError> {
        self.db.clear().map_err(|e| self.err(e))?;
        self.db.flush().map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Committed `(key, value)` pairs with `start <= key < end`, in key order.
    pub fn range(&self, start: &[u8], end: &[u8]) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
        self.db.range(start..end).map(|r| {
            let (k, v) = r.expect("sled read failed; the state store is unusable");
            (k.to_vec(), v.to_vec())
        })
    }
}

impl KvRead for Store {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.db.get(key).expect("sled read failed; the state store is unusable").map(|v| v.to_vec())
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.db
            .scan_prefix(prefix)
            .map(|r| {
                let (k, v) = r.expect("sled read failed; the state store is unusable");
                (k.to_vec(), v.to_vec())
            })
            .collect()
    }
}
