//! Extranonce subdivision: many miners share one upstream session, each with its own prefix
//! carved from the upstream's extranonce2 (slush's proxy and SRI's translator use 2 bytes:
//! 65 536 miners per upstream). A miner's extranonce1 is the upstream's extranonce1 followed by
//! its prefix; it rolls the rest of the extranonce2. When the prefixes run out, the proxy opens
//! another upstream session.

use std::collections::BTreeSet;

/// Prefix bytes per miner by default.
pub const PREFIX_BYTES_DEFAULT: usize = 2;
/// Fewest extranonce2 bytes left to a miner (it needs room to roll).
pub const MINER_EXTRANONCE2_BYTES_MIN: usize = 2;

/// Why an upstream's extranonce cannot be subdivided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtranonceError {
    /// The upstream's extranonce2 is too small for the prefix and a miner's rolling room.
    #[error("upstream extranonce2 of {size} bytes leaves less than {MINER_EXTRANONCE2_BYTES_MIN} after a {prefix}-byte prefix")]
    TooSmall {
        /// Upstream extranonce2 size.
        size: usize,
        /// Prefix bytes.
        prefix: usize,
    },
}

/// One upstream session's extranonce, handed out in prefixes.
#[derive(Debug, Clone)]
pub struct ExtranonceSpace {
    extranonce1: Vec<u8>,
    extranonce2_size: usize,
    prefix_bytes: usize,
    used: BTreeSet<u64>,
    next: u64,
}

impl ExtranonceSpace {
    /// Subdivide `extranonce1` / `extranonce2_size` of an upstream with `prefix_bytes`-byte
    /// prefixes (1..=4).
    ///
    /// # Errors
    /// [`ExtranonceError::TooSmall`] when too little extranonce2 would be left to a miner.
    pub fn new(extranonce1: Vec<u8>, extranonce2_size: usize, prefix_bytes: usize) -> Result<Self, ExtranonceError> {
        let prefix_bytes = prefix_bytes.clamp(1, 4);
        if extranonce2_size < prefix_bytes + MINER_EXTRANONCE2_BYTES_MIN {
            return Err(ExtranonceError::TooSmall { size: extranonce2_size, prefix: prefix_bytes });
        }
        Ok(Self { extranonce1, extranonce2_size, prefix_bytes, used: BTreeSet::new(), next: 0 })
    }

    /// How many miners fit.
    #[must_use]
    pub fn capacity(&self) -> u64 {
        1u64 << (8 * self.prefix_bytes)
    }

    /// Miners placed now.
    #[must_use]
    pub fn used(&self) -> u64 {
        self.used.len() as u64
    }

    /// A free prefix: the miner's (extranonce1, extranonce2 size), and the prefix to release
    /// later; `None` when full.
    pub fn allocate(&mut self) -> Option<(Vec<u8>, usize, u64)> {
        if self.used() >= self.capacity() {
            return None;
        }
        while self.used.contains(&self.next) {
            self.next = (self.next + 1) % self.capacity();
        }
        let prefix = self.next;
        self.used.insert(prefix);
        self.next = (prefix + 1) % self.capacity();
        let bytes = prefix.to_be_bytes();
        let mut en1 = self.extranonce1.clone();
        en1.extend_from_slice(&bytes[8 - self.prefix_bytes..]);
        Some((en1, self.extranonce2_size - self.prefix_bytes, prefix))
    }

    /// A miner left: its prefix is free again.
    pub fn release(&mut self, prefix: u64) {
        self.used.remove(&prefix);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_distinct_bounded_and_reused() {
        let mut s = ExtranonceSpace::new(vec![0xaa, 0xbb, 0xcc, 0xdd], 8, 1).unwrap();
        assert_eq!(s.capacity(), 256);
        let all: Vec<_> = (0..256).map(|_| s.allocate().unwrap()).collect();
        assert_eq!(all[0], (vec![0xaa, 0xbb, 0xcc, 0xdd, 0], 7, 0));
        let distinct: BTreeSet<_> = all.iter().map(|(e, _, _)| e.clone()).collect();
        assert_eq!(distinct.len(), 256);
        assert!(s.allocate().is_none(), "full: open another upstream session");
        s.release(17);
        assert_eq!(s.allocate().unwrap().2, 17);
        assert_eq!(ExtranonceSpace::new(vec![1], 3, 2).unwrap_err(), ExtranonceError::TooSmall { size: 3, prefix: 2 });
        assert_eq!(ExtranonceSpace::new(vec![1], 8, PREFIX_BYTES_DEFAULT).unwrap().capacity(), 65_536);
    }
}
