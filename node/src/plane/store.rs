//! The plane's node-local database (sled, separate from consensus state): it makes the
//! [`NodePlane`](hashmesh_plane::core::node::NodePlane)'s [`Persist`] batches durable and gives
//! them back after a restart. The node-to-node channel keeps its own keys in the same database
//! ([`super::peers`]). Nothing here ever goes on chain.
//!
//! Keys: `i:` agent ‖ seq → instruction (unacknowledged); `m:` agent → (next seq, acked seq);
//! `l:` agent ‖ group → last instruction queued; `r:` directive ‖ agent → applied-at ms
//! (receipts not yet committed); `k:` directive ‖ endpoint → credentials received.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use hashmesh_plane::core::node::{Persist, PersistBatch, Restored};
use hashmesh_protocol::plane::{Instruction, WorkerCredential};
use hashmesh_protocol::{codec, AgentId, DirectiveId, Receipt};

/// The plane database.
#[derive(Clone)]
pub struct PlaneStore {
    db: sled::Db,
}

pub(crate) fn key(prefix: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

fn u64_at(b: &[u8], at: usize) -> Result<u64> {
    Ok(u64::from_be_bytes(b.get(at..at + 8).context("stored value too short")?.try_into().expect("8 bytes")))
}

/// The plane database's page cache (sled's default is 1 GiB; the outbox is pruned on
/// acknowledgement and stays small).
pub const PLANE_STORE_CACHE_BYTES: u64 = 16 * 1024 * 1024;

fn id32(b: &[u8], at: usize) -> Result<[u8; 32]> {
    Ok(b.get(at..at + 32).context("stored key too short")?.try_into().expect("32 bytes"))
}

impl PlaneStore {
    /// Open (or create) the database in `dir`.
    ///
    /// # Errors
    /// If it cannot be opened (for example, another process holds it).
    pub fn open(dir: &Path) -> Result<Self> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(PLANE_STORE_CACHE_BYTES)
            .open()
            .with_context(|| format!("opening the plane database in {}", dir.display()))?;
        // It holds worker passwords (loans' and offers' standby credentials): this user only.
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .with_context(|| format!("making {} private", dir.display()))?;
        Ok(Self { db })
    }

    /// The underlying database (the node-to-node channel keeps its keys here too).
    #[must_use]
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Everything persisted, for [`NodePlane::new`](hashmesh_plane::core::node::NodePlane::new).
    ///
    /// # Errors
    /// On storage errors or undecodable records.
    pub fn load(&self) -> Result<Restored> {
        let mut r = Restored::default();
        for kv in self.db.scan_prefix(b"m:") {
            let (k, v) = kv?;
            let agent = AgentId(id32(&k, 2)?);
            let cursor = (u64_at(&v, 0)?, u64_at(&v, 8)?);
            r.queues.entry(agent).or_default().0 = cursor;
        }
        for kv in self.db.scan_prefix(b"i:") {
            let (k, v) = kv?;
            let agent = AgentId(id32(&k, 2)?);
            let i: Instruction = codec::decode_trusted(&v).context("stored instruction")?;
            r.queues.entry(agent).or_insert(((1, 0), Vec::new())).1.push(i);
        }
        for kv in self.db.scan_prefix(b"l:") {
            let (k, v) = kv?;
            let agent = AgentId(id32(&k, 2)?);
            r.last.entry(agent).or_default().push(codec::decode_trusted(&v).context("stored last route")?);
        }
        for kv in self.db.scan_prefix(b"r:") {
            let (k, v) = kv?;
            r.receipts.push(Receipt {
                directive: DirectiveId(id32(&k, 2)?),
                agent: AgentId(id32(&k, 34)?),
                applied_at_ms: u64_at(&v, 0)?,
            });
        }
        for kv in self.db.scan_prefix(b"k:") {
            let (k, v) = kv?;
            let c: WorkerCredential = codec::decode_trusted(&v).context("stored credential")?;
            r.credentials.entry(DirectiveId(id32(&k, 2)?)).or_default().push(c);
        }
        Ok(r)
    }

    /// Apply `batch` atomically; flush when it is `durable` (others reach the disk with sled's
    /// periodic flush).
    ///
    /// # Errors
    /// On storage errors (a local fault: the node stops).
    pub fn apply(&self, batch: &PersistBatch) -> Result<()> {
        // Ops apply in order: a prune also removes what an earlier op of this batch inserted.
        let mut w: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        for op in &batch.ops {
            match op {
                Persist::Instruction { agent, instruction } => {
                    let k = key(b"i:", &[agent.as_bytes(), &instruction.seq.to_be_bytes()]);
                    w.insert(k, Some(codec::encode(instruction)));
                }
                Persist::Last { agent, instruction } => {
                    let k = key(b"l:", &[agent.as_bytes(), instruction.group.as_str().as_bytes()]);
                    w.insert(k, Some(codec::encode(instruction)));
                }
                Persist::Prune { agent, seqs } => {
                    for seq in seqs {
                        w.insert(key(b"i:", &[agent.as_bytes(), &seq.to_be_bytes()]), None);
                    }
                }
                Persist::Cursor { agent, next_seq, acked_seq } => {
                    let v = [next_seq.to_be_bytes(), acked_seq.to_be_bytes()].concat();
                    w.insert(key(b"m:", &[agent.as_bytes()]), Some(v));
                }
                Persist::Receipt(r) => {
                    let k = key(b"r:", &[r.directive.as_bytes(), r.agent.as_bytes()]);
                    w.insert(k, Some(r.applied_at_ms.to_be_bytes().to_vec()));
                }
                Persist::ReceiptDone { directive, agent } => {
                    w.insert(key(b"r:", &[directive.as_bytes(), agent.as_bytes()]), None);
                }
                Persist::Credential { directive, credential } => {
                    let k = key(b"k:", &[directive.as_bytes(), credential.endpoint.as_str().as_bytes()]);
                    w.insert(k, Some(codec::encode(credential)));
                }
            }
        }
        let mut b = sled::Batch::default();
        for (k, v) in w {
            match v {
                Some(v) => b.insert(k, v),
                None => b.remove(k),
            }
        }
        self.db.apply_batch(b)?;
        if batch.durable {
            self.db.flush()?;
        }
        Ok(())
    }
}
