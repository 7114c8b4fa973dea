//! Signing over domain-separated canonical bytes, and strict ed25519 verification.
//!
//! Signed payload: [`DOMAIN_TAG`] ‖ the transaction bytes without the trailing signature.
//! Verification is strict (`verify_strict`: no small-order keys or `R`, canonical `s`).
//! [`verify_batch`] gives the same answers faster for a whole block.

use std::sync::OnceLock;

use ed25519_dalek::{Signature, Signer, VerifyingKey};

use crate::codec;
use crate::ids::PoolId;
use crate::tx::{SignedTx, UnsignedTx, SIGNATURE_BYTES};

/// Prefix of every signed payload, so a hashmesh signature can never be valid elsewhere.
pub const DOMAIN_TAG: &[u8] = b"hashmesh/tx/v1\0";

/// Why a signature or key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The 32 bytes are not a valid ed25519 point.
    #[error("public key is not a valid ed25519 point")]
    InvalidKey,
    /// The key is a small-order point; nobody can be held to its signatures.
    #[error("public key is a weak (small-order) point")]
    WeakKey,
    /// The signature does not verify under strict rules.
    #[error("signature does not verify")]
    BadSignature,
    /// The bytes are too short to hold a signature.
    #[error("transaction too short to carry a signature")]
    Truncated,
}

/// A mining pool's verified public key, ready for repeated verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolKey(VerifyingKey);

impl PoolKey {
    /// Validate a pool id as a usable key.
    ///
    /// # Errors
    /// [`VerifyError::InvalidKey`] or [`VerifyError::WeakKey`].
    pub fn from_pool_id(id: &PoolId) -> Result<Self, VerifyError> {
        let key = VerifyingKey::from_bytes(id.as_bytes()).map_err(|_| VerifyError::InvalidKey)?;
        if key.is_weak() {
            return Err(VerifyError::WeakKey);
        }
        Ok(Self(key))
    }
}

/// A mining pool's signing key.
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// The key with this 32-byte seed.
    #[must_use]
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// The 32-byte seed (secret).
    #[must_use]
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The mining pool this key speaks for.
    #[must_use]
    pub fn pool_id(&self) -> PoolId {
        PoolId(self.0.verifying_key().to_bytes())
    }

    /// Sign a transaction; returns it with its canonical bytes.
    ///
    /// # Panics
    /// If `tx.signer` is not this key's pool id (a programming error).
    #[must_use]
    pub fn sign(&self, tx: UnsignedTx) -> (SignedTx, Vec<u8>) {
        assert_eq!(tx.signer, self.pool_id(), "signer must be the signing key's pool id");
        let unsigned = codec::encode(&tx);
        let mut payload = Vec::with_capacity(DOMAIN_TAG.len() + unsigned.len());
        payload.extend_from_slice(DOMAIN_TAG);
        payload.extend_from_slice(&unsigned);
        let signature = self.0.sign(&payload).to_bytes();
        let signed = SignedTx { chain_id: tx.chain_id, signer: tx.signer, nonce: tx.nonce, body: tx.body, signature };
        let bytes = signed.encode();
        debug_assert_eq!(&bytes[..unsigned.len()], &unsigned[..]);
        (signed, bytes)
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.pool_id())
    }
}

/// The exact bytes a transaction's signature covers.
///
/// # Errors
/// [`VerifyError::Truncated`] if `tx_bytes` is shorter than a signature.
pub fn signed_payload(tx_bytes: &[u8]) -> Result<Vec<u8>, VerifyError> {
    let body_len = tx_bytes.len().checked_sub(SIGNATURE_BYTES).ok_or(VerifyError::Truncated)?;
    let mut payload = Vec::with_capacity(DOMAIN_TAG.len() + body_len);
    payload.extend_from_slice(DOMAIN_TAG);
    payload.extend_from_slice(&tx_bytes[..body_len]);
    Ok(payload)
}

fn signature_of(tx_bytes: &[u8]) -> Result<Signature, VerifyError> {
    let start = tx_bytes.len().checked_sub(SIGNATURE_BYTES).ok_or(VerifyError::Truncated)?;
    let raw: [u8; SIGNATURE_BYTES] = tx_bytes[start..].try_into().map_err(|_| VerifyError::Truncated)?;
    Ok(Signature::from_bytes(&raw))
}

/// Strictly verify the signature carried by canonical transaction bytes.
///
/// # Errors
/// [`VerifyError::BadSignature`] (or `Truncated`).
pub fn verify(key: &PoolKey, tx_bytes: &[u8]) -> Result<(), VerifyError> {
    let payload = signed_payload(tx_bytes)?;
    let sig = signature_of(tx_bytes)?;
    key.0.verify_strict(&payload, &sig).map_err(|_| VerifyError::BadSignature)
}

/// Verify many signatures at once with the same answers as [`verify`].
///
/// Runs one ed25519 batch check (cofactorless, deterministic coefficients) plus the strict
/// extras (`R` not small-order; keys were checked by [`PoolKey`]). If the batch fails, each
/// signature is checked alone so the answer names exactly the bad ones.
#[must_use]
pub fn verify_batch(items: &[(PoolKey, &[u8])]) -> Vec<Result<(), VerifyError>> {
    let mut payloads = Vec::with_capacity(items.len());
    let mut sigs = Vec::with_capacity(items.len());
    let mut keys = Vec::with_capacity(items.len());
    let mut prechecked = true;
    for (key, bytes) in items {
        match (signed_payload(bytes), signature_of(bytes)) {
            (Ok(p), Ok(s)) if r_is_acceptable(&s) => {
                payloads.push(p);
                sigs.push(s);
                keys.push(key.0);
            }
            _ => prechecked = false,
        }
    }
    if prechecked && !items.is_empty() {
        let msgs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        if ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok() {
            return vec![Ok(()); items.len()];
        }
    }
    items.iter().map(|(key, bytes)| verify(key, bytes)).collect()
}

/// `verify_strict` refuses a small-order `R`; the batch equation does not look at that, so
/// check it here — without decompressing `R` a second time (the batch does that, and refuses an
/// `R` that is not a curve point).
fn r_is_acceptable(sig: &Signature) -> bool {
    !encodes_small_order_point(sig.r_bytes())
}

/// Whether 32 bytes decode to a point of small order (one of the 8 torsion points), by
/// looking at the bytes: decompression ignores the sign bit's meaning for `x = 0` and reduces
/// `y` modulo p, so only `y mod p` matters, and it must be one of the torsion points' 5 y values.
#[must_use]
pub fn encodes_small_order_point(bytes: &[u8; 32]) -> bool {
    static SMALL_ORDER_Y: OnceLock<Vec<[u8; 32]>> = OnceLock::new();
    let ys = SMALL_ORDER_Y.get_or_init(|| {
        let mut ys: Vec<[u8; 32]> = curve25519_dalek::constants::EIGHT_TORSION
            .iter()
            .map(|t| {
                let mut y = t.compress().to_bytes();
                y[31] &= 0x7f;
                y
            })
            .collect();
        ys.sort_unstable();
        ys.dedup();
        ys
    });
    let mut y = *bytes;
    y[31] &= 0x7f;
    // Non-canonical y in [p, 2^255): p = 2^255 - 19, so y - p = y[0] - 0xed is 0..=18, and of
    // those only 0 and 1 are torsion y values.
    if y[31] == 0x7f && y[1..31].iter().all(|&b| b == 0xff) && y[0] >= 0xed {
        return y[0] - 0xed <= 1;
    }
    ys.contains(&y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::edwards::CompressedEdwardsY;

    fn slow(bytes: &[u8; 32]) -> Option<bool> {
        CompressedEdwardsY(*bytes).decompress().map(|p| p.is_small_order())
    }

    #[test]
    fn small_order_check_by_bytes_matches_decompression() {
        let p_minus: [u8; 32] = {
            let mut p = [0xffu8; 32];
            p[0] = 0xed;
            p[31] = 0x7f;
            p
        };
        let mut cases: Vec<[u8; 32]> = Vec::new();
        for t in curve25519_dalek::constants::EIGHT_TORSION {
            let c = t.compress().to_bytes();
            cases.push(c);
            let mut flipped = c;
            flipped[31] ^= 0x80;
            cases.push(flipped);
        }
        // Every non-canonical y = p + k, with both sign bits.
        for k in 0u8..19 {
            let mut b = p_minus;
            b[0] = 0xed + k;
            cases.push(b);
            b[31] |= 0x80;
            cases.push(b);
        }
        // Real signature R values and pseudo-random bytes.
        let mut x = [7u8; 32];
        for i in 0..2000u32 {
            let k = SigningKey::from_seed(&x);
            let sig = k.0.sign(&i.to_le_bytes()).to_bytes();
            cases.push(sig[..32].try_into().unwrap());
            x = sig[32..].try_into().unwrap();
            cases.push(x);
        }
        let mut small = 0;
        for c in &cases {
            if let Some(is_small) = slow(c) {
                assert_eq!(encodes_small_order_point(c), is_small, "{}", hex::encode(c));
                small += usize::from(is_small);
            }
        }
        assert!(small >= 16, "the torsion encodings were exercised ({small})");
    }
}
