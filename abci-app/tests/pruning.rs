//! State history retention (ADR 0015): a store that keeps the last `keep_heights` versions of
//! the state tree builds the same roots as an archive store, proves every key at every kept
//! height, refuses heights it pruned, and holds a bounded number of tree nodes and values.

mod common;

use std::collections::BTreeMap;

use common::Rng;

use hashmesh_abci::core::commitment;
use hashmesh_abci::core::keys;
use hashmesh_abci::core::writes::WriteSet;
use hashmesh_abci::store::{Store, StoreOptions};
use tendermint_proto::v0_38::abci::RequestQuery;

const KEEP: u64 = 5;
/// The state as the test expects it at one version.
type Model = BTreeMap<Vec<u8>, Vec<u8>>;
const VERSIONS: u64 = 80;

fn open(dir: &std::path::Path, keep_heights: u64) -> Store {
    Store::open_with(dir, StoreOptions { cache_bytes: 8 << 20, keep_heights }).unwrap()
}

fn count(store: &Store, prefix: &[u8]) -> usize {
    store.try_scan_prefix(prefix).unwrap().len()
}

#[test]
fn a_pruned_store_proves_what_it_keeps_refuses_what_it_pruned_and_stays_bounded() {
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (pruned, archive) = (open(dirs.0.path(), KEEP), open(dirs.1.path(), 0));
    let mut rng = Rng(0x5eed);
    let mut model = Model::new();
    let mut history: Vec<(Model, [u8; 32])> = Vec::new();
    let mut nodes_max = 0;
    for version in 0..VERSIONS {
        let mut writes = WriteSet::default();
        for _ in 0..1 + rng.below(8) {
            let key = format!("t:key-{:02}", rng.below(40)).into_bytes();
            if rng.below(5) == 0 && model.contains_key(&key) {
                writes.delete(key.clone());
                model.remove(&key);
            } else {
                let value = format!("value {} at {version}", rng.below(1000)).into_bytes();
                writes.put(key.clone(), value.clone());
                model.insert(key, value);
            }
        }
        let (root, tree) = commitment::update(&pruned, version, &writes);
        let (archive_root, archive_tree) = commitment::update(&archive, version, &writes);
        assert_eq!(root, archive_root, "version {version}: pruning changed the root");
        pruned.commit(&writes, &tree, version, &root).unwrap();
        archive.commit(&writes, &archive_tree, version, &archive_root).unwrap();
        history.push((model.clone(), root));

        let oldest = pruned.oldest_provable(version);
        assert_eq!(oldest, version.saturating_sub(KEEP - 1));
        for (v, (state, root)) in history.iter().enumerate() {
            let v = v as u64;
            let key = format!("t:key-{:02}", rng.below(40)).into_bytes();
            if v < oldest {
                assert!(
                    pruned.prove(&key, v).unwrap().is_none(),
                    "version {v} was kept past its retention at {version}"
                );
                // The archive still proves it.
                assert!(archive.prove(&key, v).unwrap().is_some());
                continue;
            }
            let (value, proof) = pruned.prove(&key, v).unwrap().unwrap_or_else(|| panic!("version {v} pruned early"));
            assert_eq!(value.as_ref(), state.get(&key), "key {key:?} at version {v}");
            commitment::verify(root, &key, value.as_deref(), &commitment::encode_proof(&proof))
                .unwrap_or_else(|e| panic!("key {key:?} at version {v}: {e:?}"));
        }
        nodes_max = nodes_max.max(count(&pruned, keys::TREE_NODE));
    }
    let (pruned_nodes, archive_nodes) = (count(&pruned, keys::TREE_NODE), count(&archive, keys::TREE_NODE));
    let (pruned_values, archive_values) = (count(&pruned, keys::TREE_VALUE), count(&archive, keys::TREE_VALUE));
    eprintln!("tree nodes: pruned {pruned_nodes} (max {nodes_max}), archive {archive_nodes}; values: pruned {pruned_values}, archive {archive_values}");
    // 40 keys: a live tree of at most 40 leaves and their internal nodes, plus what KEEP
    // versions of at most 8 writes each replaced.
    assert!(nodes_max < 400, "the pruned tree grew to {nodes_max} nodes");
    assert!(archive_nodes > 2 * pruned_nodes, "archive {archive_nodes} nodes vs pruned {pruned_nodes}");
    assert!(pruned_values <= 40 + KEEP as usize * 8, "{pruned_values} values kept");
    assert!(archive_values > 2 * pruned_values);
}

#[test]
fn the_stale_indexes_are_consumed_by_pruning() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), 2);
    for version in 0..30u64 {
        let mut writes = WriteSet::default();
        writes.put(b"t:one".to_vec(), format!("{version}").into_bytes());
        let (root, tree) = commitment::update(&store, version, &writes);
        store.commit(&writes, &tree, version, &root).unwrap();
    }
    // Only what the last two versions replaced is still indexed.
    let stale_nodes = store.try_scan_prefix(keys::TREE_STALE_NODE).unwrap();
    let stale_values = store.try_scan_prefix(keys::TREE_STALE_VALUE).unwrap();
    assert!(stale_nodes.len() <= 2, "{} stale node entries", stale_nodes.len());
    assert!(stale_values.len() <= 2, "{} stale value entries", stale_values.len());
    assert_eq!(count(&store, keys::TREE_VALUE), 2);
    assert!(store.prove(b"t:one", 27).unwrap().is_none());
    assert_eq!(store.prove(b"t:one", 28).unwrap().unwrap().0, Some(b"28".to_vec()));
    assert_eq!(store.prove(b"t:one", 29).unwrap().unwrap().0, Some(b"29".to_vec()));

    // The `/store` query says which heights it still proves.
    let ask = |height: i64| {
        let req = RequestQuery { data: b"t:one".to_vec().into(), path: "/store".into(), height, prove: true };
        hashmesh_abci::query::store(&store, &req, 29).unwrap()
    };
    let refused = ask(27);
    assert_eq!(refused.code, hashmesh_abci::query::code::PRUNED, "{}", refused.log);
    assert!(refused.log.contains("heights 28..=29") && refused.log.contains("keep_heights"), "{}", refused.log);
    let answered = ask(28);
    assert_eq!((answered.code, &answered.value[..]), (0, &b"28"[..]), "{}", answered.log);
    assert!(answered.proof_ops.is_some());
}
