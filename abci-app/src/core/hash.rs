//! The app hash: a hash chain over each block's sorted write set.
//!
//! `H(h) = SHA-256("hashmesh/apphash/v1" ‖ H(h-1) ‖ h ‖ writes(h))`, with `H(-1)` all zeros and
//! genesis at height 0. Every validator that applies the same blocks writes the same keys and
//! values, so it reaches the same hash; a single differing write changes every later hash.
//! See docs/adr/0003-app-hash.md.

use sha2::{Digest, Sha256};

use super::writes::WriteSet;

const TAG: &[u8] = b"hashmesh/apphash/v1";

/// The app hash after applying `writes` at `height` on top of `previous`.
#[must_use]
pub fn chain(previous: &[u8; 32], height: u64, writes: &WriteSet) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(TAG);
    h.update(previous);
    h.update(height.to_be_bytes());
    for (k, v) in writes.iter() {
        h.update((k.len() as u64).to_be_bytes());
        h.update(k);
        match v {
            Some(v) => {
                h.update([1u8]);
                h.update((v.len() as u64).to_be_bytes());
                h.update(v);
            }
            None => h.update([0u8]),
        }
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_and_delete_of_same_key_hash_differently() {
        let mut a = WriteSet::default();
        a.put(b"k".to_vec(), Vec::new());
        let mut b = WriteSet::default();
        b.delete(b"k".to_vec());
        assert_ne!(chain(&[0; 32], 1, &a), chain(&[0; 32], 1, &b));
        assert_ne!(chain(&[0; 32], 1, &a), chain(&[0; 32], 2, &a));
        assert_ne!(chain(&[0; 32], 1, &a), chain(&[1; 32], 1, &a));
    }
}
