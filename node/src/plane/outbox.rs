//! The node's persistent outbox (a node-local sled database, separate from consensus state):
//! per agent, the instructions it must apply, in order, numbered from 1; what it acknowledged;
//! and the receipts waiting to go on chain.
//!
//! Keys: `i:` agent ‖ seq → instruction; `m:` agent → (next seq, acked seq); `l:` agent ‖ group
//! → last directive queued (so the same route is never queued twice); `r:` directive ‖ agent →
//! applied-at ms (receipts not yet committed). Node to node: `c:` borrower ‖ directive ‖
//! endpoint → credentials still to deliver (lender side); `k:` directive ‖ endpoint →
//! credentials received (borrower side); `s:` endpoint → this pool's worker password for it.
//! None of it ever goes on chain.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use hashmesh_protocol::plane::{Instruction, WorkerCredential};
use hashmesh_protocol::{codec, AgentId, DirectiveId, EndpointId, GroupId, PoolId, Receipt, RouteTarget};
use sha2::{Digest, Sha256};

/// A route to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// The miner group.
    pub group: GroupId,
    /// The directive that set the route.
    pub directive: DirectiveId,
    /// Its activation height.
    pub height: u64,
    /// The split.
    pub routes: Vec<RouteTarget>,
    /// Worker credentials for other pools' endpoints (cross-pool routes).
    pub credentials: Vec<WorkerCredential>,
    /// Endpoints of `routes` that are drained.
    pub drained: Vec<EndpointId>,
}

/// A credential a lender still has to deliver: the route, the borrower's group, the credential.
pub type CredentialToSend = (DirectiveId, GroupId, WorkerCredential);

/// The outbox. Not shared across processes; wrap it in a mutex within one.
pub struct Outbox {
    db: sled::Db,
}

fn key(prefix: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl Outbox {
    /// Open (or create) the outbox in `dir`.
    ///
    /// # Errors
    /// If the database cannot be opened (for example, another process holds it).
    pub fn open(dir: &Path) -> Result<Self> {
        let db = sled::open(dir).with_context(|| format!("opening the outbox in {}", dir.display()))?;
        Ok(Self { db })
    }

    fn meta(&self, agent: &AgentId) -> Result<(u64, u64)> {
        Ok(match self.db.get(key(b"m:", &[agent.as_bytes()]))? {
            Some(v) => (u64_at(&v, 0), u64_at(&v, 8)),
            None => (1, 0),
        })
    }

    fn meta_value(next: u64, acked: u64) -> Vec<u8> {
        [next.to_be_bytes(), acked.to_be_bytes()].concat()
    }

    /// Queue the route `directive` for `agent` unless it is the last one queued for `group`;
    /// returns the new sequence number. Durable when it returns.
    ///
    /// # Errors
    /// On storage errors.
    pub fn enqueue(
        &self,
        agent: &AgentId,
        group: &GroupId,
        directive: DirectiveId,
        height: u64,
        routes: &[RouteTarget],
    ) -> Result<Option<u64>> {
        let item = Queued {
            group: group.clone(),
            directive,
            height,
            routes: routes.to_vec(),
            credentials: Vec::new(),
            drained: Vec::new(),
        };
        let seq = self.stage(agent, std::slice::from_ref(&item))?.pop().flatten();
        self.db.flush()?;
        Ok(seq)
    }

    /// Queue several routes for `agent` in one durable write. Per item: its new sequence
    /// number, or `None` when skipped (the same or an older route than the last one queued for
    /// the group).
    ///
    /// # Errors
    /// On storage errors.
    pub fn enqueue_all(&self, agent: &AgentId, items: &[Queued]) -> Result<Vec<Option<u64>>> {
        let seqs = self.stage(agent, items)?;
        self.db.flush()?;
        Ok(seqs)
    }

    /// Like [`Outbox::enqueue_all`] but atomic only, not yet durable: call [`Outbox::flush`]
    /// before sending anything staged (one flush for a whole commit, for every agent).
    ///
    /// # Errors
    /// On storage errors.
    pub fn stage(&self, agent: &AgentId, items: &[Queued]) -> Result<Vec<Option<u64>>> {
        let (mut next, acked) = self.meta(agent)?;
        let mut batch = sled::Batch::default();
        let mut latest_now: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut out = Vec::with_capacity(items.len());
        for it in items {
            let latest = key(b"l:", &[agent.as_bytes(), it.group.as_str().as_bytes()]);
            let digest: [u8; 32] = Sha256::digest(codec::encode(&(&it.credentials, &it.drained))).into();
            let last = match latest_now.get(&latest) {
                Some(x) => Some(x.clone()),
                None => self.db.get(&latest)?.map(|v| v.to_vec()),
            };
            // Skip the same route with the same credentials and drained endpoints, and older routes.
            let skip = last.as_ref().is_some_and(|v| {
                (v[..32] == it.directive.0 && v.get(40..72) == Some(&digest[..])) || u64_at(v, 32) > it.height
            });
            if skip {
                out.push(None);
                continue;
            }
            let instr = Instruction {
                seq: next,
                directive: it.directive,
                height: it.height,
                group: it.group.clone(),
                routes: it.routes.clone(),
                credentials: it.credentials.clone(),
                drained: it.drained.clone(),
            };
            batch.insert(key(b"i:", &[agent.as_bytes(), &next.to_be_bytes()]), codec::encode(&instr));
            let value = [it.directive.0.as_slice(), &it.height.to_be_bytes(), &digest].concat();
            batch.insert(latest.clone(), value.clone());
            latest_now.insert(latest, value);
            out.push(Some(next));
            next += 1;
        }
        if out.iter().any(Option::is_some) {
            batch.insert(key(b"m:", &[agent.as_bytes()]), Self::meta_value(next, acked));
            self.db.apply_batch(batch)?;
        }
        Ok(out)
    }

    /// Up to `max` instructions for `agent` after `after_seq`, in order.
    ///
    /// # Errors
    /// On storage errors.
    pub fn after(&self, agent: &AgentId, after_seq: u64, max: usize) -> Result<Vec<Instruction>> {
        let start = key(b"i:", &[agent.as_bytes(), &(after_seq + 1).to_be_bytes()]);
        let end = key(b"i:", &[agent.as_bytes(), &u64::MAX.to_be_bytes()]);
        self.db
            .range(start..end)
            .take(max)
            .map(|r| {
                let (_, v) = r?;
                codec::decode_trusted(&v).context("stored instruction decodes")
            })
            .collect()
    }

    /// The highest sequence `agent` acknowledged (0: none).
    ///
    /// # Errors
    /// On storage errors.
    pub fn acked(&self, agent: &AgentId) -> Result<u64> {
        Ok(self.meta(agent)?.1)
    }

    /// Instructions queued for `agent` and not yet acknowledged.
    ///
    /// # Errors
    /// On storage errors.
    pub fn outstanding(&self, agent: &AgentId) -> Result<u64> {
        let (next, acked) = self.meta(agent)?;
        Ok(next - 1 - acked.min(next - 1))
    }

    /// `agent` applied instruction `seq` (directive `directive`) at `applied_at_ms`. Returns
    /// `false` (and changes nothing) for an acknowledgement that matches no queued instruction.
    /// Acknowledgements are idempotent; a receipt is queued the first time.
    ///
    /// # Errors
    /// On storage errors.
    pub fn ack(&self, agent: &AgentId, seq: u64, directive: &DirectiveId, applied_at_ms: u64) -> Result<bool> {
        let Some(v) = self.db.get(key(b"i:", &[agent.as_bytes(), &seq.to_be_bytes()]))? else {
            return Ok(false);
        };
        let instr: Instruction = codec::decode_trusted(&v).context("stored instruction decodes")?;
        if instr.directive != *directive {
            return Ok(false);
        }
        let (next, acked) = self.meta(agent)?;
        let mut batch = sled::Batch::default();
        if seq > acked {
            batch.insert(key(b"m:", &[agent.as_bytes()]), Self::meta_value(next, seq));
            batch.insert(key(b"r:", &[directive.as_bytes(), agent.as_bytes()]), applied_at_ms.to_be_bytes().to_vec());
        }
        self.db.apply_batch(batch)?;
        Ok(true)
    }

    /// Up to `max` receipts waiting to be committed, ordered by (directive, agent).
    ///
    /// # Errors
    /// On storage errors.
    pub fn pending_receipts(&self, max: usize) -> Result<Vec<Receipt>> {
        self.db
            .scan_prefix(b"r:")
            .take(max)
            .map(|r| {
                let (k, v) = r?;
                Ok(Receipt {
                    directive: DirectiveId(k[2..34].try_into().expect("32 bytes")),
                    agent: AgentId(k[34..66].try_into().expect("32 bytes")),
                    applied_at_ms: u64_at(&v, 0),
                })
            })
            .collect()
    }

    /// A receipt is on chain: forget it.
    ///
    /// # Errors
    /// On storage errors.
    pub fn receipt_committed(&self, directive: &DirectiveId, agent: &AgentId) -> Result<()> {
        self.db.remove(key(b"r:", &[directive.as_bytes(), agent.as_bytes()]))?;
        Ok(())
    }

    /// Lender side: remember to send `borrower`'s node credentials for one of our endpoints in
    /// its active route `directive`.
    ///
    /// # Errors
    /// On storage errors.
    pub fn queue_credential(
        &self,
        borrower: &PoolId,
        directive: &DirectiveId,
        group: &GroupId,
        c: &WorkerCredential,
    ) -> Result<()> {
        let k = key(b"c:", &[borrower.as_bytes(), directive.as_bytes(), c.endpoint.as_str().as_bytes()]);
        self.db.insert(k, codec::encode(&(group.clone(), c.clone())))?;
        self.db.flush()?;
        Ok(())
    }

    /// Lender side: credentials still to deliver, per borrowing pool.
    ///
    /// # Errors
    /// On storage errors.
    pub fn credentials_to_send(&self) -> Result<BTreeMap<PoolId, Vec<CredentialToSend>>> {
        let mut out: BTreeMap<PoolId, Vec<_>> = BTreeMap::new();
        for r in self.db.scan_prefix(b"c:") {
            let (k, v) = r?;
            let pool = PoolId(k[2..34].try_into().expect("32 bytes"));
            let directive = DirectiveId(k[34..66].try_into().expect("32 bytes"));
            let (group, c): (GroupId, WorkerCredential) = codec::decode_trusted(&v).context("stored credential")?;
            out.entry(pool).or_default().push((directive, group, c));
        }
        Ok(out)
    }

    /// Lender side: the borrower stored it.
    ///
    /// # Errors
    /// On storage errors.
    pub fn credential_delivered(
        &self,
        borrower: &PoolId,
        directive: &DirectiveId,
        endpoint: &EndpointId,
    ) -> Result<()> {
        self.db.remove(key(b"c:", &[borrower.as_bytes(), directive.as_bytes(), endpoint.as_str().as_bytes()]))?;
        Ok(())
    }

    /// Borrower side: keep a credential received for `directive`; returns all of them.
    ///
    /// # Errors
    /// On storage errors.
    pub fn store_credential(&self, directive: &DirectiveId, c: &WorkerCredential) -> Result<Vec<WorkerCredential>> {
        self.db.insert(key(b"k:", &[directive.as_bytes(), c.endpoint.as_str().as_bytes()]), codec::encode(c))?;
        self.credentials_of(directive)
    }

    /// Borrower side: the credentials received for `directive`.
    ///
    /// # Errors
    /// On storage errors.
    pub fn credentials_of(&self, directive: &DirectiveId) -> Result<Vec<WorkerCredential>> {
        self.db
            .scan_prefix(key(b"k:", &[directive.as_bytes()]))
            .map(|r| codec::decode_trusted(&r?.1).context("stored credential"))
            .collect()
    }

    /// Lender side: this pool's worker password for `endpoint` (created on first use).
    ///
    /// # Errors
    /// On storage errors.
    pub fn endpoint_secret(&self, endpoint: &EndpointId) -> Result<String> {
        let k = key(b"s:", &[endpoint.as_str().as_bytes()]);
        if let Some(v) = self.db.get(&k)? {
            return Ok(String::from_utf8_lossy(&v).into_owned());
        }
        let mut raw = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut raw);
        let secret = hex::encode(raw);
        self.db.insert(k, secret.as_bytes())?;
        self.db.flush()?;
        Ok(secret)
    }

    /// Make everything durable now.
    ///
    /// # Errors
    /// On storage errors.
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_ack_receipt_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let agent = AgentId([1; 32]);
        let g: GroupId = "pool-a/g-1".parse().unwrap();
        let r = vec![RouteTarget { endpoint: "pool-a/ep-1".parse().unwrap(), weight_bp: 10_000 }];
        {
            let o = Outbox::open(dir.path()).unwrap();
            assert_eq!(o.enqueue(&agent, &g, DirectiveId([7; 32]), 5, &r).unwrap(), Some(1));
            assert_eq!(o.enqueue(&agent, &g, DirectiveId([7; 32]), 5, &r).unwrap(), None, "same route twice");
            assert_eq!(o.enqueue(&agent, &g, DirectiveId([6; 32]), 4, &r).unwrap(), None, "older route");
            assert_eq!(o.enqueue(&agent, &g, DirectiveId([8; 32]), 9, &r).unwrap(), Some(2));
            assert_eq!(o.outstanding(&agent).unwrap(), 2);
            assert!(!o.ack(&agent, 1, &DirectiveId([8; 32]), 1).unwrap(), "wrong directive for seq 1");
            assert!(!o.ack(&agent, 3, &DirectiveId([8; 32]), 1).unwrap(), "no seq 3");
            assert!(o.ack(&agent, 1, &DirectiveId([7; 32]), 111).unwrap());
            assert!(o.ack(&agent, 1, &DirectiveId([7; 32]), 222).unwrap(), "idempotent");
            o.flush().unwrap();
        }
        let o = Outbox::open(dir.path()).unwrap();
        assert_eq!(o.acked(&agent).unwrap(), 1);
        let left = o.after(&agent, o.acked(&agent).unwrap(), 100).unwrap();
        assert_eq!(left.iter().map(|i| i.seq).collect::<Vec<_>>(), vec![2]);
        let rs = o.pending_receipts(16).unwrap();
        assert_eq!(rs, vec![Receipt { directive: DirectiveId([7; 32]), agent, applied_at_ms: 111 }]);
        o.receipt_committed(&rs[0].directive, &agent).unwrap();
        assert!(o.pending_receipts(16).unwrap().is_empty());
    }
}
