//! Puts acknowledgements on chain: every 250 ms, up to 16 pending receipts become one signed
//! `Receipt` transaction through the process's one [`Signer`]. A receipt leaves the plane's
//! database when its commit is seen (the commit hook), so a crash anywhere only causes a resend,
//! which the chain deduplicates.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashmesh_protocol::{AgentId, Body, DirectiveId, RejectCode, RECEIPTS_PER_TX_MAX};
use tracing::{info, warn};

use super::service::{Plane, RECEIPTS_PUBLISHED_MAX};
use crate::signer::Signer;

/// How long a sent receipt waits for its commit before it is sent again.
pub const RESEND_AFTER: Duration = Duration::from_secs(5);

/// Start the sender thread.
///
/// # Errors
/// If the thread cannot be spawned.
pub fn spawn_sender(plane: Arc<Plane>, signer: Arc<Signer>) -> anyhow::Result<()> {
    std::thread::Builder::new().name("receipts".into()).spawn(move || {
        info!("receipt sender started");
        let mut sent: BTreeMap<(DirectiveId, AgentId), Instant> = BTreeMap::new();
        loop {
            std::thread::sleep(Duration::from_millis(250));
            let pending = plane.pending_receipts(RECEIPTS_PUBLISHED_MAX);
            sent.retain(|k, _| pending.iter().any(|r| (r.directive, r.agent) == *k));
            let batch: Vec<_> = pending
                .into_iter()
                .filter(|r| sent.get(&(r.directive, r.agent)).is_none_or(|t| t.elapsed() > RESEND_AFTER))
                .take(RECEIPTS_PER_TX_MAX)
                .collect();
            if batch.is_empty() {
                continue;
            }
            match signer.broadcast(Body::Receipt { receipts: batch.clone() }) {
                Ok(b) if b.code == RejectCode::ReceiptDuplicate.code() => {
                    // All of them are on chain already (sent before a restart).
                    plane.receipts_on_chain(batch);
                }
                Ok(b) => {
                    if b.code != 0 {
                        warn!(code = b.code, log = %b.log, "receipt refused; will retry");
                    }
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
