//! Checking a share in the proxy, as a pool checks it: the coinbase from the job and the miner's
//! extranonces, the merkle root up its branch, the 80-byte block header (version bits only
//! inside the negotiated mask), SHA-256d, and the hash against the miner's target. Shares that
//! fail are answered locally and never forwarded.

use sha2::{Digest, Sha256};

use crate::message::Notify;

/// Difficulty 1's target as a float: `0xffff × 2^208` (the pools' "pdiff").
const DIFF1_TARGET: f64 = 26_959_535_291_011_309_493_156_476_344_723_991_336_010_898_738_574_164_086_137_773_096_960.0;

/// SHA-256 applied twice.
#[must_use]
pub fn sha256d(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(Sha256::digest(bytes)).into()
}

/// The coinbase transaction: `coinb1 ‖ extranonce1 ‖ extranonce2 ‖ coinb2`.
#[must_use]
pub fn coinbase(coinb1: &[u8], extranonce1: &[u8], extranonce2: &[u8], coinb2: &[u8]) -> Vec<u8> {
    [coinb1, extranonce1, extranonce2, coinb2].concat()
}

/// The merkle root from the coinbase and the job's branch (internal byte order).
#[must_use]
pub fn merkle_root(coinbase: &[u8], branch: &[[u8; 32]]) -> [u8; 32] {
    branch.iter().fold(sha256d(coinbase), |root, h| sha256d(&[root.as_slice(), h.as_slice()].concat()))
}

/// Stratum sends the previous block hash as eight 4-byte words each byte-swapped relative to
/// the header's order; this is the header's order.
#[must_use]
pub fn header_prevhash(stratum_prevhash: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (o, w) in out.chunks_exact_mut(4).zip(stratum_prevhash.chunks_exact(4)) {
        o.copy_from_slice(&[w[3], w[2], w[1], w[0]]);
    }
    out
}

/// The 80-byte block header.
#[must_use]
pub fn header(
    version: u32,
    stratum_prevhash: &[u8; 32],
    merkle_root: &[u8; 32],
    ntime: u32,
    nbits: u32,
    nonce: u32,
) -> [u8; 80] {
    let mut h = [0u8; 80];
    h[..4].copy_from_slice(&version.to_le_bytes());
    h[4..36].copy_from_slice(&header_prevhash(stratum_prevhash));
    h[36..68].copy_from_slice(merkle_root);
    h[68..72].copy_from_slice(&ntime.to_le_bytes());
    h[72..76].copy_from_slice(&nbits.to_le_bytes());
    h[76..80].copy_from_slice(&nonce.to_le_bytes());
    h
}

/// The difficulty a block hash (internal byte order, a little-endian 256-bit number) meets:
/// difficulty 1's target divided by the hash. A hash of zero meets any difficulty.
#[must_use]
pub fn hash_difficulty(hash: &[u8; 32]) -> f64 {
    let value = hash.iter().rev().fold(0.0f64, |acc, b| acc * 256.0 + f64::from(*b));
    if value == 0.0 {
        f64::INFINITY
    } else {
        DIFF1_TARGET / value
    }
}

/// Why a share is refused in the proxy.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ShareFault {
    /// The extranonce2 does not have the size the miner was given.
    #[error("extranonce2 is {got} bytes, expected {want}")]
    Extranonce2Size {
        /// Bytes sent.
        got: usize,
        /// Bytes expected.
        want: usize,
    },
    /// Version bits outside the negotiated mask.
    #[error("version bits {bits:08x} outside the mask {mask:08x}")]
    VersionBits {
        /// Bits sent.
        bits: u32,
        /// The negotiated mask.
        mask: u32,
    },
    /// The hash does not meet the miner's difficulty.
    #[error("share difficulty {got:.3} is below {want}")]
    LowDifficulty {
        /// What the share meets.
        got: f64,
        /// What is required.
        want: f64,
    },
}

/// A share's inputs beyond the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareInput<'a> {
    /// The miner's extranonce1 (the upstream's, plus the proxy's per-miner prefix).
    pub extranonce1: &'a [u8],
    /// The miner's extranonce2.
    pub extranonce2: &'a [u8],
    /// Extranonce2 size the miner was given.
    pub extranonce2_size: usize,
    /// The ntime it used.
    pub ntime: u32,
    /// The nonce.
    pub nonce: u32,
    /// Rolled version bits, if any.
    pub version_bits: Option<u32>,
    /// The negotiated version-rolling mask (0 when none).
    pub version_mask: u32,
}

/// A checked share: its header hash and the difficulty it meets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckedShare {
    /// SHA-256d of the header (internal byte order).
    pub hash: [u8; 32],
    /// The difficulty it meets.
    pub difficulty: f64,
}

/// Check a share against `job` and the miner's `difficulty`.
///
/// # Errors
/// A [`ShareFault`]: answer the miner locally, never forward.
pub fn check(job: &Notify, s: &ShareInput<'_>, difficulty: f64) -> Result<CheckedShare, ShareFault> {
    if s.extranonce2.len() != s.extranonce2_size {
        return Err(ShareFault::Extranonce2Size { got: s.extranonce2.len(), want: s.extranonce2_size });
    }
    let version = match s.version_bits {
        Some(bits) if bits & !s.version_mask != 0 => {
            return Err(ShareFault::VersionBits { bits, mask: s.version_mask })
        }
        Some(bits) => (job.version & !s.version_mask) | bits,
        None => job.version,
    };
    let cb = coinbase(&job.coinb1, s.extranonce1, s.extranonce2, &job.coinb2);
    let root = merkle_root(&cb, &job.merkle_branch);
    let hash = sha256d(&header(version, &job.prevhash, &root, s.ntime, job.nbits, s.nonce));
    let got = hash_difficulty(&hash);
    if got < difficulty {
        return Err(ShareFault::LowDifficulty { got, want: difficulty });
    }
    Ok(CheckedShare { hash, difficulty: got })
}
