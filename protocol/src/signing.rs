//! Signing over domain-separated canonical bytes, and strict ed25519 verification.
//!
//! Signed payload: [`DOMAIN_TAG`] ‖ the transaction bytes without the trailing signature.
//! Verification is strict (`verify_strict`: no small-order keys or `R`, canonical `s`).
//! [`verify_batch`] gives the same answers faster for a whole block.

use curve25519_dalek::edwards::CompressedEdwardsY;
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

/// `verify_strict` refuses a small-order or undecodable `R`; the batch equation does not
/// look at that, so check it here.
fn r_is_acceptable(sig: &Signature) -> bool {
    CompressedEdwardsY(*sig.r_bytes()).decompress().is_some_and(|r| !r.is_small_order())
}
