//! The transaction envelope `{chain_id, signer, nonce, body, signature}`.
//!
//! The signature is the last field and always 64 bytes, so the signed payload is the
//! domain tag followed by the transaction's own bytes without their last 64
//! (see [`crate::signing`]).

use bincode::{Decode, Encode};

use crate::body::Body;
use crate::codec::{self, DecodeError};
use crate::ids::{DirectiveId, PoolId};
use crate::limits::{CHAIN_ID_BYTES_MAX, ROUTES_PER_GROUP_MAX, TX_BYTES_MAX};
use crate::telemetry::TELEMETRY_ENTRIES_PER_TX_MAX;

/// Length of an ed25519 signature, the last field of every transaction.
pub const SIGNATURE_BYTES: usize = 64;

/// A transaction before signing.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct UnsignedTx {
    /// The network this transaction is for; replaying it on another chain fails.
    pub chain_id: String,
    /// The signing mining pool.
    pub signer: PoolId,
    /// Replay protection: unique per signer (see `limits::NONCES_RETAINED_PER_POOL`).
    pub nonce: u64,
    /// What to do.
    pub body: Body,
}

/// A signed transaction, as CometBFT carries it.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct SignedTx {
    /// See [`UnsignedTx::chain_id`].
    pub chain_id: String,
    /// See [`UnsignedTx::signer`].
    pub signer: PoolId,
    /// See [`UnsignedTx::nonce`].
    pub nonce: u64,
    /// See [`UnsignedTx::body`].
    pub body: Body,
    /// Ed25519 signature over `signing::DOMAIN_TAG ‖ bytes[..len - 64]`.
    pub signature: [u8; SIGNATURE_BYTES],
}

impl SignedTx {
    /// Decode untrusted bytes: size limit, canonical form, structural limits.
    ///
    /// # Errors
    /// [`DecodeError`] saying what is wrong; nothing about signatures is checked here.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let tx: SignedTx = codec::decode_canonical(bytes, TX_BYTES_MAX)?;
        tx.check_structure()?;
        Ok(tx)
    }

    /// The canonical bytes.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// The directive id of these bytes.
    #[must_use]
    pub fn id_of(bytes: &[u8]) -> DirectiveId {
        DirectiveId::of_tx_bytes(bytes)
    }

    fn check_structure(&self) -> Result<(), DecodeError> {
        if self.chain_id.is_empty() || self.chain_id.len() > CHAIN_ID_BYTES_MAX {
            return Err(DecodeError::Structure(format!("chain id must be 1..={CHAIN_ID_BYTES_MAX} bytes")));
        }
        match &self.body {
            Body::Route { targets, .. } if targets.is_empty() || targets.len() > ROUTES_PER_GROUP_MAX => {
                Err(DecodeError::Structure(format!(
                    "a route needs 1..={ROUTES_PER_GROUP_MAX} targets, got {}",
                    targets.len()
                )))
            }
            Body::ReportTelemetryBatch { entries, .. }
                if entries.is_empty() || entries.len() > TELEMETRY_ENTRIES_PER_TX_MAX =>
            {
                Err(DecodeError::Structure(format!(
                    "a telemetry batch needs 1..={TELEMETRY_ENTRIES_PER_TX_MAX} entries, got {}",
                    entries.len()
                )))
            }
            Body::ReportTelemetryBatch { entries, .. }
                if entries.windows(2).any(|w| w[0].endpoint >= w[1].endpoint) =>
            {
                Err(DecodeError::Structure("telemetry batch entries must be strictly increasing by endpoint".into()))
            }
            _ => Ok(()),
        }
    }
}
