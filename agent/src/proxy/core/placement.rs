//! Where a group's work goes: the live targets of its route (else the pool's standby, else an
//! offered endpoint of another pool), the split over them, and moving a miner at a job
//! boundary.

use hashmesh_protocol::{EndpointId, GroupId};
use hashmesh_stratum::message::Notify;

use super::{Group, Link, MinerId, Proxy, PREFIX_BYTES};
use crate::proxy::split::{rebalance, SplitMiner};

impl Proxy {
    pub(super) fn usable(&self, e: &EndpointId, now_ms: u64) -> bool {
        self.may_log_in(e)
            && self
                .upstreams
                .get(e)
                .is_some_and(|u| u.link == Link::Ready && u.job.is_some() && now_ms >= u.usable_from_ms)
    }

    /// Where a group's work goes now: its route's live targets with their weights; else the
    /// first live standby endpoint; else the first live offered endpoint of another pool (the
    /// fallback, logged in with the offer's standby credential until a loan commits); else
    /// nowhere.
    pub(super) fn live_targets(&self, g: &Group, now_ms: u64) -> Vec<(EndpointId, f64)> {
        let live: Vec<(EndpointId, f64)> = g
            .route
            .as_ref()
            .map(|r| {
                r.effective()
                    .into_iter()
                    .filter(|t| self.usable(&t.endpoint, now_ms))
                    .map(|t| (t.endpoint, f64::from(t.weight_bp)))
                    .collect()
            })
            .unwrap_or_default();
        if !live.is_empty() {
            return live;
        }
        self.cfg
            .standby
            .iter()
            .chain(&self.fallback)
            .find(|s| self.usable(s, now_ms))
            .map(|s| vec![(s.clone(), 1.0)])
            .unwrap_or_default()
    }

    pub(super) fn rebalance_all(&mut self, now_ms: u64) {
        let groups: Vec<GroupId> = self.groups.keys().cloned().collect();
        for g in groups {
            self.rebalance_group(&g, now_ms);
        }
    }

    pub(super) fn rebalance_group(&mut self, gid: &GroupId, now_ms: u64) {
        let Some(g) = self.groups.get(gid) else { return };
        let targets = self.live_targets(g, now_ms);
        let live: Vec<EndpointId> = targets.iter().map(|(e, _)| e.clone()).collect();
        if live != g.live {
            let g = self.groups.get_mut(gid).expect("present");
            g.live = live;
            g.accepted.clear();
        }
        let g = &self.groups[gid];
        let members: Vec<(MinerId, Option<EndpointId>, Option<f64>)> = self
            .miners
            .iter()
            .filter(|(_, m)| m.group.as_ref() == Some(gid) && !m.worker.is_empty())
            .map(|(id, m)| (*id, m.at.clone(), m.rate(now_ms)))
            .collect();
        if members.is_empty() {
            return;
        }
        if targets.is_empty() {
            for (id, at, _) in members {
                if at.is_some() {
                    self.miners.get_mut(&id).expect("listed").at = None;
                }
            }
            return;
        }
        let known: Vec<f64> = members.iter().filter_map(|(_, _, r)| *r).collect();
        let typical = if known.is_empty() { 1.0 } else { known.iter().sum::<f64>() / known.len() as f64 };
        let split: Vec<SplitMiner> = members
            .iter()
            .map(|(id, at, r)| SplitMiner { id: *id, at: at.clone(), rate: r.unwrap_or(typical) })
            .collect();
        for (id, to) in rebalance(&targets, &g.accepted, &split, self.cfg.split) {
            self.move_miner(id, &to);
        }
    }

    /// Switch a miner's work to `e` at a job boundary: difficulty and a clean job from there.
    pub(super) fn move_miner(&mut self, id: MinerId, e: &EndpointId) {
        let u = &self.upstreams[e];
        let (size, difficulty, mask, job) =
            (u.extranonce2_size - PREFIX_BYTES, u.difficulty, u.version_mask, u.job.clone().expect("usable"));
        let m = self.miners.get_mut(&id).expect("member");
        if m.session.extranonce2_size() != size {
            let en1 = m.session.extranonce1().to_vec();
            if !m.session.set_extranonce(en1, size) {
                m.session.reconnect();
                self.flush_miner(id);
                return;
            }
        }
        m.session.set_version_mask(mask);
        m.session.handle_difficulty(difficulty);
        m.session.handle_job(Notify { clean_jobs: true, ..job });
        m.at = Some(e.clone());
        self.flush_miner(id);
    }
}
