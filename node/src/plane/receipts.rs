//! Puts acknowledgements on chain: every 250 ms, up to 16 pending receipts become one signed
//! `Receipt` transaction. A receipt leaves the outbox when its commit is seen (the commit hook),
//! so a crash anywhere only causes a resend, which the chain deduplicates.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashmesh_protocol::{AgentId, Body, DirectiveId, RejectCode, SigningKey, UnsignedTx, RECEIPTS_PER_TX_MAX};
use tracing::{info, warn};

use super::service::Plane;
use crate::rpc::Rpc;
use crate::tx_cmd::fresh_nonce;

/// How long a sent receipt waits for its commit before it is sent again.
pub const RESEND_AFTER: Duration = Duration::from_secs(5);

/// Start the sender thread. `chain_id` empty means "ask CometBFT".
///
/// # Errors
/// If the thread cannot be spawned.
pub fn spawn_sender(plane: Arc<Plane>, rpc: Rpc, key: SigningKey, chain_id: String) -> anyhow::Result<()> {
    std::thread::Builder::new().name("receipts".into()).spawn(move || {
        let chain_id = loop {
            match rpc.status() {
                Ok((chain, _, _)) if chain_id.is_empty() => break chain,
                Ok(_) => break chain_id.clone(),
                Err(_) => std::thread::sleep(Duration::from_secs(1)),
            }
        };
        info!("receipt sender started");
        let mut sent: BTreeMap<(DirectiveId, AgentId), Instant> = BTreeMap::new();
        let mut last_nonce = 0;
        loop {
            std::thread::sleep(Duration::from_millis(250));
            let pending = match plane.outbox.lock().expect("outbox lock").pending_receipts(4 * RECEIPTS_PER_TX_MAX) {
                Ok(p) => p,
                Err(e) => {
                    warn!(error = %e, "reading pending receipts");
                    continue;
                }
            };
            sent.retain(|k, _| pending.iter().any(|r| (r.directive, r.agent) == *k));
            let batch: Vec<_> = pending
                .into_iter()
                .filter(|r| sent.get(&(r.directive, r.agent)).is_none_or(|t| t.elapsed() > RESEND_AFTER))
                .take(RECEIPTS_PER_TX_MAX)
                .collect();
            if batch.is_empty() {
                continue;
            }
            last_nonce = fresh_nonce(last_nonce);
            let body = Body::Receipt { receipts: batch.clone() };
            let (_, bytes) =
                key.sign(UnsignedTx { chain_id: chain_id.clone(), signer: key.pool_id(), nonce: last_nonce, body });
            match rpc.broadcast_sync(&bytes) {
                Ok(b) if b.code == 0 => {
                    for r in &batch {
                        sent.insert((r.directive, r.agent), Instant::now());
                    }
                }
                Ok(b) if b.code == RejectCode::ReceiptDuplicate.code() => {
                    // All of them are on chain already (sent before a restart).
                    let outbox = plane.outbox.lock().expect("outbox lock");
                    for r in &batch {
                        let _ = outbox.receipt_committed(&r.directive, &r.agent);
                    }
                }
                Ok(b) => {
                    warn!(code = b.code, log = %b.log, "receipt refused; will retry");
                    for r in &batch {
                        sent.insert((r.directive, r.agent), Instant::now());
                    }
                }
                Err(e) => warn!(error = %format!("{e:#}"), "sending receipts"),
            }
        }
    })?;
    Ok(())
}
