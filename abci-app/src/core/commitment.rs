//! The app hash: the root of a Jellyfish Merkle Tree over every committed key (ADR 0014).
//!
//! Each block's [`WriteSet`] becomes tree version `height` (genesis is version 0); the app hash
//! is that version's root. Keys are hashed with SHA-256 (`KeyHash`), values are stored whole, so
//! an answer about any key at any height can be proven against the header's app hash with an
//! ICS-23 proof ([`ics23_spec`], [`verify`]). Blocks that write nothing still make a version
//! (the tree copies its root), so every height has a root.
//!
//! Pure: the tree's nodes are read through [`NodeRead`]; the new nodes come back as a
//! [`TreeUpdate`] that the store persists with the block.

use std::collections::BTreeMap;

use jmt::storage::{HasPreimage, LeafNode, Node, NodeKey, TreeReader, TreeUpdateBatch};
use jmt::{KeyHash, OwnedValue, Sha256Jmt, Version};
use sha2::Sha256;

use super::writes::{KvRead, WriteSet};

/// The new nodes and values of one tree version, to persist with the block's writes.
pub type TreeUpdate = TreeUpdateBatch;

/// The ICS-23 proof type name a proved query carries in its `ProofOp`.
pub const PROOF_OP_TYPE: &str = "ics23:jmt-sha256";

/// Read access to the committed tree's nodes (the store, or [`Memory`]).
pub trait NodeRead {
    /// The node under `key`, if stored.
    fn node(&self, key: &NodeKey) -> Option<Node>;
}

/// What the core reads while applying a block: committed records and the committed tree.
pub trait Committed: KvRead + NodeRead {}
impl<T: KvRead + NodeRead> Committed for T {}

/// The hash of a state key, as the tree indexes it.
#[must_use]
pub fn key_hash(key: &[u8]) -> KeyHash {
    KeyHash::with::<Sha256>(key)
}

/// A [`NodeRead`] as the tree library's reader. Only node reads happen while a version is
/// built; values and the rightmost leaf are read by proofs and restores, which use the store.
struct Nodes<'a>(&'a dyn NodeRead);

impl TreeReader for Nodes<'_> {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        Ok(self.0.node(node_key))
    }
    fn get_value_option(&self, _max_version: Version, _key_hash: KeyHash) -> anyhow::Result<Option<OwnedValue>> {
        anyhow::bail!("building a tree version reads no values")
    }
    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        anyhow::bail!("building a tree version reads no rightmost leaf")
    }
}

/// The root after applying `writes` as version `version` on top of version `version - 1`
/// (on the empty tree for version 0), and the nodes to persist.
///
/// # Panics
/// If a node of version `version - 1` is missing from `nodes`: the store is corrupt, which is
/// a local fault (the process stops; a panic in the node exits 70).
#[must_use]
pub fn update(nodes: &dyn NodeRead, version: u64, writes: &WriteSet) -> ([u8; 32], TreeUpdate) {
    let reader = Nodes(nodes);
    let tree = Sha256Jmt::new(&reader);
    // Inserting a sorted batch touches each node once; the library's batch path takes no
    // deletes, so a block that deletes goes key by key (the same tree either way).
    let deletes = writes.iter().any(|(_, v)| v.is_none());
    let result = if writes.is_empty() || deletes {
        tree.put_value_set(writes.iter().map(|(k, v)| (key_hash(k), v.clone())), version)
    } else {
        let set = writes.iter().filter_map(|(k, v)| Some((key_hash(k), v.clone()?))).collect();
        tree.batch_put_value_sets(vec![set], None, version).map(|(roots, batch)| (roots[0], batch))
    };
    let (root, batch) =
        result.unwrap_or_else(|e| panic!("state tree version {version}: {e:#} (the state store is corrupt)"));
    (root.0, batch)
}

/// The tree's proof specification: what a verifier needs besides the proof and the root.
#[must_use]
pub fn ics23_spec() -> ics23::ProofSpec {
    jmt::ics23_spec()
}

/// Why a proof does not prove an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The proof bytes do not decode as an ICS-23 commitment proof.
    #[error("the proof does not decode: {0}")]
    Malformed(String),
    /// The proof does not lead from `(key, value)` to the root.
    #[error("the proof does not match the app hash for this {0}")]
    Mismatch(&'static str),
}

/// Encode a proof for the wire (protobuf, as ICS-23 defines it).
#[must_use]
pub fn encode_proof(proof: &ics23::CommitmentProof) -> Vec<u8> {
    prost013::Message::encode_to_vec(proof)
}

/// Check that `proof` shows `key` holding `value` (or, for `None`, holding nothing) in the tree
/// whose root is `root`.
///
/// # Errors
/// [`ProofError`] when the proof is malformed or does not lead to `root`.
pub fn verify(root: &[u8; 32], key: &[u8], value: Option<&[u8]>, proof: &[u8]) -> Result<(), ProofError> {
    let proof: ics23::CommitmentProof =
        prost013::Message::decode(proof).map_err(|e| ProofError::Malformed(e.to_string()))?;
    let spec = ics23_spec();
    let ok = match value {
        Some(v) => ics23::verify_membership::<ics23::HostFunctionsManager>(&proof, &spec, &root.to_vec(), key, v),
        None => ics23::verify_non_membership::<ics23::HostFunctionsManager>(&proof, &spec, &root.to_vec(), key),
    };
    if ok {
        Ok(())
    } else {
        Err(ProofError::Mismatch(if value.is_some() { "value" } else { "absence" }))
    }
}

/// The root that a proof of presence of `(key, value)` leads to — to compare the state of
/// several nodes at one height without trusting any of them.
///
/// # Errors
/// [`ProofError`] when the proof is malformed, is not a proof of presence, or is not about
/// `(key, value)`.
pub fn root_of(key: &[u8], value: &[u8], proof: &[u8]) -> Result<[u8; 32], ProofError> {
    let proof: ics23::CommitmentProof =
        prost013::Message::decode(proof).map_err(|e| ProofError::Malformed(e.to_string()))?;
    let Some(ics23::commitment_proof::Proof::Exist(exist)) = proof.proof else {
        return Err(ProofError::Mismatch("value"));
    };
    if exist.key != key || exist.value != value {
        return Err(ProofError::Mismatch("value"));
    }
    let root = ics23::calculate_existence_root::<ics23::HostFunctionsManager>(&exist)
        .map_err(|e| ProofError::Malformed(e.to_string()))?;
    root.try_into().map_err(|_| ProofError::Malformed("the root is not 32 bytes".into()))
}

/// Committed records and tree held in memory: tests, benchmarks and tools use it as the store.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    /// The latest committed value of every key.
    pub kv: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Every tree node of every version.
    pub nodes: BTreeMap<NodeKey, Node>,
    /// Every value of every version (`None`: deleted at that version).
    pub values: BTreeMap<(KeyHash, Version), Option<Vec<u8>>>,
    /// The key behind each key hash.
    pub preimages: BTreeMap<KeyHash, Vec<u8>>,
}

impl Memory {
    /// Apply one version's writes and tree update, as `Commit` does.
    pub fn apply(&mut self, writes: &WriteSet, tree: &TreeUpdate) {
        super::writes::apply_to_map(&mut self.kv, writes);
        for (k, _) in writes.iter() {
            self.preimages.insert(key_hash(k), k.clone());
        }
        for (k, n) in tree.node_batch.nodes() {
            self.nodes.insert(k.clone(), n.clone());
        }
        for ((version, hash), v) in tree.node_batch.values() {
            self.values.insert((*hash, *version), v.clone());
        }
    }

    /// `key`'s value at `version` with its proof against that version's root.
    ///
    /// # Errors
    /// If `version` was never built.
    pub fn prove(&self, key: &[u8], version: u64) -> anyhow::Result<(Option<Vec<u8>>, ics23::CommitmentProof)> {
        Sha256Jmt::new(self).get_with_ics23_proof(key.to_vec(), version)
    }

    /// The root of `version`, if built.
    ///
    /// # Errors
    /// On a missing node.
    pub fn root(&self, version: u64) -> anyhow::Result<Option<[u8; 32]>> {
        Ok(Sha256Jmt::new(self).get_root_hash_option(version)?.map(|r| r.0))
    }
}

impl KvRead for Memory {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.kv.get(key).cloned()
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.kv.scan_prefix(prefix)
    }
}

impl NodeRead for Memory {
    fn node(&self, key: &NodeKey) -> Option<Node> {
        self.nodes.get(key).cloned()
    }
}

impl TreeReader for Memory {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        Ok(self.nodes.get(node_key).cloned())
    }
    fn get_value_option(&self, max_version: Version, key_hash: KeyHash) -> anyhow::Result<Option<OwnedValue>> {
        Ok(self.values.range((key_hash, 0)..=(key_hash, max_version)).next_back().and_then(|(_, v)| v.clone()))
    }
    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        anyhow::bail!("not kept in memory")
    }
}

impl HasPreimage for Memory {
    fn preimage(&self, key_hash: KeyHash) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.preimages.get(&key_hash).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(pairs: &[(&[u8], Option<&[u8]>)]) -> WriteSet {
        let mut w = WriteSet::default();
        for (k, v) in pairs {
            match v {
                Some(v) => w.put(k.to_vec(), v.to_vec()),
                None => w.delete(k.to_vec()),
            }
        }
        w
    }

    #[test]
    fn the_batch_path_and_the_key_by_key_path_build_the_same_tree() {
        // The same inserts, once as one batch and once with a delete of an absent key that
        // sends them key by key: the same root, and proofs from either verify against it.
        let mut a = Memory::default();
        let mut b = Memory::default();
        let base = ws(&[(b"x", Some(b"0"))]);
        for m in [&mut a, &mut b] {
            let (_, t) = update(m, 0, &base);
            m.apply(&base, &t);
        }
        let pairs: Vec<(Vec<u8>, Vec<u8>)> =
            (0..300u32).map(|i| (i.to_be_bytes().to_vec(), vec![i as u8; 3])).collect();
        let mut inserts = WriteSet::default();
        for (k, v) in &pairs {
            inserts.put(k.clone(), v.clone());
        }
        let mut with_delete = inserts.clone();
        with_delete.delete(b"never-written".to_vec());
        let (ra, ta) = update(&a, 1, &inserts);
        let (rb, tb) = update(&b, 1, &with_delete);
        assert_eq!(ra, rb);
        a.apply(&inserts, &ta);
        b.apply(&with_delete, &tb);
        for (k, v) in pairs.iter().step_by(37) {
            let (_, p) = a.prove(k, 1).unwrap();
            verify(&rb, k, Some(v), &encode_proof(&p)).unwrap();
        }
    }

    #[test]
    fn every_version_has_a_root_and_proofs_hold_at_each() {
        let mut m = Memory::default();
        let blocks = [
            ws(&[(b"a", Some(b"1")), (b"b", Some(b"2"))]),
            ws(&[]),
            ws(&[(b"a", Some(b"3")), (b"b", None), (b"c", Some(b"4"))]),
        ];
        let mut roots = Vec::new();
        for (v, w) in blocks.iter().enumerate() {
            let (root, batch) = update(&m, v as u64, w);
            m.apply(w, &batch);
            roots.push(root);
        }
        assert_eq!(roots[0], roots[1], "an empty block keeps the root");
        assert_ne!(roots[1], roots[2]);
        for (v, key, want) in [
            (0u64, &b"a"[..], Some(&b"1"[..])),
            (0, b"b", Some(b"2")),
            (0, b"c", None),
            (2, b"a", Some(b"3")),
            (2, b"b", None),
            (2, b"c", Some(b"4")),
        ] {
            let (value, proof) = m.prove(key, v).unwrap();
            assert_eq!(value.as_deref(), want, "version {v} key {key:?}");
            let bytes = encode_proof(&proof);
            verify(&roots[v as usize], key, want, &bytes).unwrap();
            if let Some(value) = want {
                assert_eq!(root_of(key, value, &bytes).unwrap(), roots[v as usize]);
                assert!(root_of(key, b"other", &bytes).is_err());
            }
            // The same proof does not prove another value, nor the answer against another root.
            assert!(verify(&roots[v as usize], key, Some(b"forged"), &bytes).is_err());
            if roots[v as usize] != roots[2 - v as usize] {
                assert!(verify(&roots[2 - v as usize], key, want, &bytes).is_err());
            }
        }
        assert!(matches!(verify(&roots[2], b"a", Some(b"3"), b"\xff\xff"), Err(ProofError::Malformed(_))));
    }
}
