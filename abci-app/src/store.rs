//! The state store: the only module that names sled.
//!
//! One sled tree holds every record under the key layout of [`crate::core::keys`], and beside
//! them (under prefixes starting with 0x00) the state tree: its nodes of every version, every
//! version of every value, and each key behind its hash (ADR 0014). A block's writes, its tree
//! nodes and its `(height, app_hash)` go in one atomic batch, followed by a flush, so after a
//! crash the store holds exactly some committed height and CometBFT replays the rest.

use std::path::Path;

use hashmesh_protocol::codec;

use jmt::storage::{HasPreimage, LeafNode, Node, NodeKey, TreeReader};
use jmt::{KeyHash, OwnedValue, Version};

use crate::core::commitment::{self, NodeRead, TreeUpdate};
use crate::core::keys;
use crate::core::writes::{KvRead, WriteSet};

/// A local storage fault. Never a transaction result: the node stops instead.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed (disk, permissions, another process holds the database).
    #[error("state store at {path}: {source}")]
    Io {
        /// The database directory.
        path: String,
        /// What sled said.
        #[source]
        source: sled::Error,
    },
    /// A stored record does not decode: the database is corrupt.
    #[error("state store at {path}: record {key} is corrupt: {reason}")]
    Corrupt {
        /// The database directory.
        path: String,
        /// The key, hex.
        key: String,
        /// Why it does not decode.
        reason: String,
    },
}

/// A key's value at some height (`None`: absent) and its proof against that height's root.
pub type Proved = (Option<Vec<u8>>, ics23::CommitmentProof);

/// A `(key, value)` pair as stored.
pub type Entry = (Vec<u8>, Vec<u8>);

/// How much memory and history the store keeps (`[store]` in the node's config, ADR 0015).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// sled's page cache, bytes.
    pub cache_bytes: u64,
    /// State-tree versions kept for proofs: the last `keep_heights` heights can be proven at;
    /// older tree nodes and replaced values are deleted as blocks commit. 0 keeps every version
    /// (an archive node). Current records are never pruned.
    pub keep_heights: u64,
}

impl StoreOptions {
    /// The default page cache: 128 MiB.
    pub const CACHE_BYTES_DEFAULT: u64 = 128 * 1024 * 1024;
    /// The default history: 100 000 heights (about 6 days at 5 s blocks).
    pub const KEEP_HEIGHTS_DEFAULT: u64 = 100_000;
    /// The least history that still lets the next block build on the last one and a proof be
    /// checked against the header that follows it.
    pub const KEEP_HEIGHTS_MIN: u64 = 2;
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { cache_bytes: Self::CACHE_BYTES_DEFAULT, keep_heights: Self::KEEP_HEIGHTS_DEFAULT }
    }
}

/// At most this many stale index entries are pruned per commit, so a node that turns pruning
/// on (or lowers `keep_heights`) over a long history catches up over several blocks instead of
/// in one huge batch.
pub const PRUNE_PER_COMMIT_MAX: usize = 20_000;

/// The committed state on disk. Cheap to clone; clones share the database.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    path: String,
    keep_heights: u64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.path)
    }
}

impl Store {
    /// Open (or create) the store in directory `path` with the default [`StoreOptions`].
    ///
    /// # Errors
    /// [`StoreError`] if sled cannot open it (permissions, another process holds it).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, StoreOptions::default())
    }

    /// Open (or create) the store in directory `path`.
    ///
    /// # Errors
    /// [`StoreError`] if sled cannot open it (permissions, another process holds it).
    ///
    /// # Panics
    /// If `options.keep_heights` is 1 (the configuration refuses it before).
    pub fn open_with(path: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        assert!(
            options.keep_heights == 0 || options.keep_heights >= StoreOptions::KEEP_HEIGHTS_MIN,
            "keep_heights must be 0 or at least {}",
            StoreOptions::KEEP_HEIGHTS_MIN
        );
        let p = path.display().to_string();
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(options.cache_bytes)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(|source| StoreError::Io { path: p.clone(), source })?;
        Ok(Self { db, path: p, keep_heights: options.keep_heights })
    }

    /// The oldest height whose state can still be proven once `last` is committed (0 on an
    /// archive node).
    #[must_use]
    pub fn oldest_provable(&self, last: u64) -> u64 {
        if self.keep_heights == 0 {
            0
        } else {
            last.saturating_sub(self.keep_heights - 1)
        }
    }

    fn err(&self, source: sled::Error) -> StoreError {
        StoreError::Io { path: self.path.clone(), source }
    }

    pub(crate) fn corrupt(&self, key: &[u8], reason: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt { path: self.path.clone(), key: hex::encode(key), reason: reason.to_string() }
    }

    /// The committed value under `key`.
    ///
    /// # Errors
    /// [`StoreError`] on a sled failure.
    pub fn try_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get(key).map_err(|e| self.err(e))?.map(|v| v.to_vec()))
    }

    /// Every committed `(key, value)` whose key starts with `prefix`, in key order.
    ///
    /// # Errors
    /// [`StoreError`] on a sled failure.
    pub fn try_scan_prefix(&self, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        self.db.scan_prefix(prefix).map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(|e| self.err(e))).collect()
    }

    /// The record under `key`, decoded.
    ///
    /// # Errors
    /// [`StoreError`] on a sled failure or a record that does not decode.
    pub fn record<T: codec::Decode<()>>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        self.try_get(key)?.map(|v| codec::decode_trusted(&v).map_err(|e| self.corrupt(key, e))).transpose()
    }

    /// Every record under `prefix`, decoded, in key order.
    ///
    /// # Errors
    /// [`StoreError`] on a sled failure or a record that does not decode.
    pub fn records<T: codec::Decode<()>>(&self, prefix: &[u8]) -> Result<Vec<T>, StoreError> {
        self.try_scan_prefix(prefix)?
            .iter()
            .map(|(k, v)| codec::decode_trusted(v).map_err(|e| self.corrupt(k, e)))
            .collect()
    }

    /// Persist `writes` and the state tree's `tree` with `(height, app_hash)` atomically, then
    /// flush to disk.
    ///
    /// # Errors
    /// [`StoreError`] on any sled failure.
    pub fn commit(
        &self,
        writes: &WriteSet,
        tree: &TreeUpdate,
        height: u64,
        app_hash: &[u8; 32],
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (k, v) in writes.iter() {
            match v {
                Some(v) => batch.insert(k.as_slice(), v.as_slice()),
                None => batch.remove(k.as_slice()),
            }
            batch.insert(tree_key(keys::TREE_PREIMAGE, &commitment::key_hash(k).0, None), k.as_slice());
        }
        for (k, n) in tree.node_batch.nodes() {
            batch.insert(node_key(k), borsh::to_vec(n).expect("a tree node serializes"));
        }
        for ((version, hash), v) in tree.node_batch.values() {
            let stored = match v {
                Some(v) => [&[1u8][..], v].concat(),
                None => vec![0u8],
            };
            batch.insert(tree_key(keys::TREE_VALUE, &hash.0, Some(*version)), stored);
            // The value this one replaces is still read by older versions: index it for pruning.
            if let Some(replaced) = self.value_version_before(hash, *version)? {
                batch.insert(stale_value_key(*version, hash, replaced), &[1u8][..]);
            }
        }
        for stale in &tree.stale_node_index_batch {
            let mut k = keys::TREE_STALE_NODE.to_vec();
            k.extend_from_slice(&stale.stale_since_version.to_be_bytes());
            k.extend_from_slice(&node_key(&stale.node_key)[keys::TREE_NODE.len()..]);
            batch.insert(k, &[1u8][..]);
        }
        if self.keep_heights != 0 {
            self.prune(&mut batch, self.oldest_provable(height))?;
        }
        batch.insert(keys::META_LAST, codec::encode(&(height, *app_hash)));
        self.db.apply_batch(batch).map_err(|e| self.err(e))?;
        self.db.flush().map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The newest version below `version` at which the value under `hash` was written.
    fn value_version_before(&self, hash: &KeyHash, version: Version) -> Result<Option<Version>, StoreError> {
        let start = tree_key(keys::TREE_VALUE, &hash.0, Some(0));
        let end = tree_key(keys::TREE_VALUE, &hash.0, Some(version));
        let Some(found) = self.db.range(start..end).next_back() else { return Ok(None) };
        let (k, _) = found.map_err(|e| self.err(e))?;
        let tail: [u8; 8] = k[k.len() - 8..].try_into().expect("8 bytes");
        Ok(Some(u64::from_be_bytes(tail)))
    }

    /// Delete the tree nodes and values that no version from `oldest` on reads: those replaced
    /// at or before `oldest` (at most [`PRUNE_PER_COMMIT_MAX`] of them per call).
    fn prune(&self, batch: &mut sled::Batch, oldest: u64) -> Result<(), StoreError> {
        let mut budget = PRUNE_PER_COMMIT_MAX;
        for (index, value_entries) in [(keys::TREE_STALE_NODE, false), (keys::TREE_STALE_VALUE, true)] {
            let end = [index, &(oldest + 1).to_be_bytes()[..]].concat();
            for entry in self.db.range(index.to_vec()..end).take(budget) {
                let (k, _) = entry.map_err(|e| self.err(e))?;
                let rest = &k[index.len() + 8..];
                if value_entries {
                    let (hash, version) = rest.split_at(32);
                    batch.remove([keys::TREE_VALUE, hash, version].concat());
                } else {
                    batch.remove([keys::TREE_NODE, rest].concat());
                }
                batch.remove(k);
                budget -= 1;
            }
        }
        Ok(())
    }

    /// The last committed `(height, app_hash)`, if any.
    ///
    /// # Errors
    /// [`StoreError`] on a sled failure or a corrupt record.
    pub fn last_committed(&self) -> Result<Option<(u64, [u8; 32])>, StoreError> {
        self.record(keys::META_LAST)
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
    pub fn range(&self, start: &[u8], end: &[u8]) -> impl Iterator<Item = Result<Entry, StoreError>> + '_ {
        self.db.range(start..end).map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(|e| self.err(e)))
    }
}

fn tree_key(prefix: &[u8], hash: &[u8; 32], version: Option<u64>) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 40);
    k.extend_from_slice(prefix);
    k.extend_from_slice(hash);
    if let Some(v) = version {
        k.extend_from_slice(&v.to_be_bytes());
    }
    k
}

fn stale_value_key(since: Version, hash: &KeyHash, replaced: Version) -> Vec<u8> {
    let mut k = keys::TREE_STALE_VALUE.to_vec();
    k.extend_from_slice(&since.to_be_bytes());
    k.extend_from_slice(&hash.0);
    k.extend_from_slice(&replaced.to_be_bytes());
    k
}

fn node_key(key: &NodeKey) -> Vec<u8> {
    let mut k = keys::TREE_NODE.to_vec();
    k.extend(borsh::to_vec(key).expect("a node key serializes"));
    k
}

impl Store {
    /// The state tree's node under `key`.
    ///
    /// # Errors
    /// [`StoreError`] on a sled failure or a node that does not decode.
    pub fn tree_node(&self, key: &NodeKey) -> Result<Option<Node>, StoreError> {
        let k = node_key(key);
        self.try_get(&k)?.map(|v| borsh::from_slice(&v).map_err(|e| self.corrupt(&k, e))).transpose()
    }

    /// `key`'s value at `version`, with its ICS-23 proof against that version's root (an
    /// absence proof when the key holds nothing then).
    ///
    /// # Errors
    /// `Ok(None)` if `version` is not in the tree; [`StoreError`] on a storage fault.
    pub fn prove(&self, key: &[u8], version: u64) -> Result<Option<Proved>, StoreError> {
        let tree = jmt::Sha256Jmt::new(self);
        match tree.get_root_hash_option(version) {
            Ok(None) => return Ok(None),
            Ok(Some(_)) => {}
            Err(e) => return Err(self.corrupt(key, format!("state tree root {version}: {e:#}"))),
        }
        tree.get_with_ics23_proof(key.to_vec(), version)
            .map(Some)
            .map_err(|e| self.corrupt(key, format!("proof at version {version}: {e:#}")))
    }
}

/// The tree library reads nodes, values and preimages through this (proofs).
impl TreeReader for Store {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        Ok(self.tree_node(node_key)?)
    }
    fn get_value_option(&self, max_version: Version, key_hash: KeyHash) -> anyhow::Result<Option<OwnedValue>> {
        let start = tree_key(keys::TREE_VALUE, &key_hash.0, Some(0));
        let end = tree_key(keys::TREE_VALUE, &key_hash.0, Some(max_version));
        let Some(found) = self.db.range(start..=end).next_back() else { return Ok(None) };
        let (k, v) = found.map_err(|e| self.err(e))?;
        match v.split_first() {
            Some((1, rest)) => Ok(Some(rest.to_vec())),
            Some((0, [])) => Ok(None),
            _ => Err(self.corrupt(&k, "a tree value is neither present (1) nor deleted (0)").into()),
        }
    }
    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        anyhow::bail!("the state tree is never restored from chunks")
    }
}

impl HasPreimage for Store {
    fn preimage(&self, key_hash: KeyHash) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.try_get(&tree_key(keys::TREE_PREIMAGE, &key_hash.0, None))?)
    }
}

/// Stop the process on a storage fault met inside the pure core's reads: the core cannot
/// return it (it would become a transaction result, which other validators did not see), so
/// the node stops with exit 70 and CometBFT replays the block after a restart.
fn stop(e: &StoreError) -> ! {
    tracing::error!(error = %e, "fatal: state store read failed");
    eprintln!("hashmesh: fatal: {e}");
    std::process::exit(70)
}

/// The core's read interface. Reads that fail stop the process (exit 70); they never panic and
/// never reach a transaction result.
impl KvRead for Store {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.try_get(key).unwrap_or_else(|e| stop(&e))
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.try_scan_prefix(prefix).unwrap_or_else(|e| stop(&e))
    }
}

/// The core's view of the committed tree; like [`KvRead`], a failing read stops the process.
impl NodeRead for Store {
    fn node(&self, key: &NodeKey) -> Option<Node> {
        self.tree_node(key).unwrap_or_else(|e| stop(&e))
    }
}
