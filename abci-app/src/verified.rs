//! A bounded, node-local memo of transaction bytes whose signature this node has verified.
//!
//! `CheckTx` verifies every new transaction; when the same bytes arrive in a block,
//! `FinalizeBlock` need not verify them again. Verification is a pure function of the bytes
//! (pool keys never change), so the memo changes speed, never results: a miss just verifies.

use std::collections::{HashSet, VecDeque};

/// How many verified transaction hashes are remembered (oldest forgotten first).
pub const VERIFIED_MEMO_MAX: usize = 200_000;

/// The memo. Not replicated state: each node has its own.
#[derive(Debug, Default)]
pub struct VerifiedMemo {
    set: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

impl VerifiedMemo {
    /// Remember that the transaction with this SHA-256 verified.
    pub fn insert(&mut self, hash: [u8; 32]) {
        if self.set.insert(hash) {
            self.order.push_back(hash);
            if self.order.len() > VERIFIED_MEMO_MAX {
                let old = self.order.pop_front().expect("non-empty");
                self.set.remove(&old);
            }
        }
    }

    /// Whether the transaction with this SHA-256 verified here before.
    #[must_use]
    pub fn contains(&self, hash: &[u8; 32]) -> bool {
        self.set.contains(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memo_is_bounded_and_forgets_oldest_first() {
        let mut m = VerifiedMemo::default();
        for i in 0..=VERIFIED_MEMO_MAX as u64 {
            let mut h = [0u8; 32];
            h[..8].copy_from_slice(&i.to_be_bytes());
            m.insert(h);
        }
        assert_eq!(m.set.len(), VERIFIED_MEMO_MAX);
        assert!(!m.contains(&[0u8; 32]));
        let mut last = [0u8; 32];
        last[..8].copy_from_slice(&(VERIFIED_MEMO_MAX as u64).to_be_bytes());
        assert!(m.contains(&last));
    }
}
