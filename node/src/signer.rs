//! The one signer of a node process: the pool key, the chain id, and one nonce sequence shared
//! by everything that signs in this process (the scheduling loop, the receipt sender, and any
//! later sender), so two senders never race for the same nonce.

use std::sync::{Mutex, OnceLock};

use anyhow::{Context, Result};
use hashmesh_plane::host::clock::now_us;
use hashmesh_protocol::{Body, DirectiveId, SigningKey, UnsignedTx};

use crate::rpc::{Broadcast, Rpc};

/// A fresh nonce: microseconds since the Unix epoch, and always above `after` (the last nonce
/// used), so one sequence never repeats itself even within a microsecond.
#[must_use]
pub fn fresh_nonce(after: u64) -> u64 {
    now_us().max(after + 1)
}

/// Signs and broadcasts this pool's transactions.
pub struct Signer {
    key: SigningKey,
    rpc: Rpc,
    configured_chain_id: String,
    chain_id: OnceLock<String>,
    last_nonce: Mutex<u64>,
}

impl Signer {
    /// A signer for `key`, sending through `rpc`. An empty `chain_id` is asked of CometBFT on
    /// first use.
    #[must_use]
    pub fn new(key: SigningKey, rpc: Rpc, chain_id: String) -> Self {
        Self { key, rpc, configured_chain_id: chain_id, chain_id: OnceLock::new(), last_nonce: Mutex::new(0) }
    }

    /// The pool this signer signs for.
    #[must_use]
    pub fn pool_id(&self) -> hashmesh_protocol::PoolId {
        self.key.pool_id()
    }

    /// The chain id: configured, or CometBFT's (asked once, when it first answers).
    ///
    /// # Errors
    /// If none is configured and CometBFT does not answer yet.
    pub fn chain_id(&self) -> Result<String> {
        if !self.configured_chain_id.is_empty() {
            return Ok(self.configured_chain_id.clone());
        }
        if let Some(c) = self.chain_id.get() {
            return Ok(c.clone());
        }
        let (chain, _, _) = self.rpc.status().context("asking CometBFT for the chain id")?;
        Ok(self.chain_id.get_or_init(|| chain).clone())
    }

    /// Sign `body` with the next nonce of this process.
    ///
    /// # Errors
    /// If the chain id is not known yet.
    pub fn sign(&self, body: Body) -> Result<(DirectiveId, Vec<u8>)> {
        let chain_id = self.chain_id()?;
        let nonce = {
            let mut last = self.last_nonce.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            *last = fresh_nonce(*last);
            *last
        };
        let (_, bytes) = self.key.sign(UnsignedTx { chain_id, signer: self.key.pool_id(), nonce, body });
        Ok((hashmesh_protocol::SignedTx::id_of(&bytes), bytes))
    }

    /// Sign `body` and broadcast it (`broadcast_tx_sync`: the `CheckTx` result).
    ///
    /// # Errors
    /// If the node cannot be reached.
    pub fn broadcast(&self, body: Body) -> Result<Broadcast> {
        let (_, bytes) = self.sign(body)?;
        self.rpc.broadcast_sync(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sequence_of_nonces_across_threads() {
        let s = std::sync::Arc::new(Signer::new(
            SigningKey::from_seed(&[3; 32]),
            Rpc::new("http://127.0.0.1:1"),
            "test-chain".into(),
        ));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let s = std::sync::Arc::clone(&s);
                std::thread::spawn(move || {
                    (0..200)
                        .map(|_| {
                            let (_, bytes) = s.sign(Body::Drain { endpoint: "pool-a/ep-1".parse().unwrap() }).unwrap();
                            hashmesh_protocol::SignedTx::decode(&bytes).unwrap().nonce
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<u64> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "no nonce used twice");
    }
}
