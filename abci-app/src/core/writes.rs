//! A block's writes, and the read-only view of committed state the core may consult.

use std::collections::BTreeMap;

/// Read access to committed key-value state (the store, or a map in tests).
pub trait KvRead {
    /// The committed value under `key`.
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
    /// Every committed `(key, value)` whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)>;
}

impl KvRead for BTreeMap<Vec<u8>, Vec<u8>> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        BTreeMap::get(self, key).cloned()
    }
    fn scan_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Apply a write set to an in-memory map (tests and tools use this as their "store").
pub fn apply_to_map(map: &mut BTreeMap<Vec<u8>, Vec<u8>>, writes: &WriteSet) {
    for (k, v) in writes.iter() {
        match v {
            Some(v) => {
                map.insert(k.clone(), v.clone());
            }
            None => {
                map.remove(k);
            }
        }
    }
}

/// The changes one block (or genesis) makes: key to new value, or `None` for a delete.
/// Sorted by key, last write wins, so hashing and persisting it is deterministic.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WriteSet(BTreeMap<Vec<u8>, Option<Vec<u8>>>);

impl WriteSet {
    /// Set `key` to `value` (never empty: the state tree cannot prove an empty value).
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        debug_assert!(!value.is_empty(), "an empty value under {key:?} could not be proven");
        self.0.insert(key, Some(value));
    }
    /// Delete `key`.
    pub fn delete(&mut self, key: Vec<u8>) {
        self.0.insert(key, None);
    }
    /// The value this write set gives `key`: `Some(Some(v))` written, `Some(None)` deleted,
    /// `None` untouched.
    #[must_use]
    pub fn get(&self, key: &[u8]) -> Option<Option<&Vec<u8>>> {
        self.0.get(key).map(Option::as_ref)
    }
    /// All writes in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &Option<Vec<u8>>)> {
        self.0.iter()
    }
    /// Number of keys touched.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether nothing was written.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// How many keys under `prefix` exist once this write set is applied to `committed`.
    #[must_use]
    pub fn count_through(&self, committed: &dyn KvRead, prefix: &[u8]) -> usize {
        let mut keys: std::collections::BTreeSet<Vec<u8>> =
            committed.scan_prefix(prefix).into_iter().map(|(k, _)| k).collect();
        for (k, v) in self.0.range(prefix.to_vec()..).take_while(|(k, _)| k.starts_with(prefix)) {
            if v.is_some() {
                keys.insert(k.clone());
            } else {
                keys.remove(k);
            }
        }
        keys.len()
    }
    /// Read through this write set to committed state.
    #[must_use]
    pub fn read_through(&self, committed: &dyn KvRead, key: &[u8]) -> Option<Vec<u8>> {
        match self.get(key) {
            Some(v) => v.cloned(),
            None => committed.get(key),
        }
    }
}
