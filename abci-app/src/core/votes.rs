//! The vote path of cross-pool routes: counting votes, activating a route every targeted pool
//! approved (its targets re-checked), and expiring routes whose vote window passed.

use hashmesh_protocol::{codec, Body, DirectiveId, PoolId, SignedTx};

use super::apply::directive_event;
use super::events::Event;
use super::keys;
use super::model::{DirectiveRecord, DirectiveStatus};
use super::state::State;
use super::writes::WriteSet;

impl State {
    /// Count a vote; returns the target's record after the vote and the `loan` events of an
    /// activation.
    pub(crate) fn count_vote(
        &mut self,
        target: DirectiveId,
        voter: PoolId,
        approve: bool,
        height: u64,
        writes: &mut WriteSet,
    ) -> (DirectiveRecord, Vec<Event>) {
        let mut rec = self.pending.remove(&target).expect("planned vote targets a pending directive");
        if approve {
            rec.approvals.push(voter);
            rec.approvals.sort_unstable();
        }
        let mut events = Vec::new();
        let new_status = if !approve {
            rec.reason = format!("rejected by pool {voter}");
            Some(DirectiveStatus::Rejected)
        } else if rec.approvals.len() == rec.voters_required.len() {
            Some(self.activate(&mut rec, height, writes, &mut events))
        } else {
            None
        };
        match new_status {
            Some(status) => self.decide(&mut rec, status, height, writes),
            None => {
                writes.put(keys::directive(&target), codec::encode(&rec));
                self.pending.insert(target, rec.clone());
            }
        }
        (rec, events)
    }

    /// Every targeted pool approved: re-check the targets and set the assignment.
    fn activate(
        &mut self,
        rec: &mut DirectiveRecord,
        height: u64,
        writes: &mut WriteSet,
        events: &mut Vec<Event>,
    ) -> DirectiveStatus {
        let tx = SignedTx::decode(&rec.tx).expect("stored directive bytes decode");
        let Body::Route { group, targets } = tx.body else { unreachable!("only routes are pending") };
        if let Some(t) = targets.iter().find(|t| self.endpoints.get(&t.endpoint).is_none_or(|e| e.drained)) {
            rec.reason = format!("target {} was drained before approval", t.endpoint);
            return DirectiveStatus::Rejected;
        }
        // Health and load may have changed while the votes came in.
        let g = self.groups[&group].clone();
        if let Err(r) = self.check_targets_fit(&g, &targets) {
            rec.reason = format!("no longer fits at approval: {}", r.log);
            return DirectiveStatus::Rejected;
        }
        events.extend(self.set_assignment(group, targets, rec.id, height, writes));
        DirectiveStatus::Active
    }

    /// Move a pending record to a final status.
    fn decide(&mut self, rec: &mut DirectiveRecord, status: DirectiveStatus, height: u64, writes: &mut WriteSet) {
        self.counts.bump(DirectiveStatus::Pending, false);
        self.counts.bump(status, true);
        rec.status = status;
        rec.decided_height = height;
        writes.delete(keys::pending(&rec.id));
        writes.put(keys::directive(&rec.id), codec::encode(&*rec));
    }

    /// Expire every pending route whose vote window ended before `height`.
    pub(crate) fn expire_overdue(&mut self, height: u64, writes: &mut WriteSet) -> Vec<Event> {
        let overdue: Vec<DirectiveId> =
            self.pending.values().filter(|d| d.vote_deadline_height < height).map(|d| d.id).collect();
        let mut events = Vec::new();
        for id in overdue {
            let mut rec = self.pending.remove(&id).expect("listed above");
            rec.reason = format!("vote window ended at height {}", rec.vote_deadline_height);
            self.decide(&mut rec, DirectiveStatus::Expired, height, writes);
            events.push(directive_event(&rec));
        }
        events
    }
}
