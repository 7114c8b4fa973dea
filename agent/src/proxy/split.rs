//! The split of one miner group's hashrate over its live route targets — a pure function.
//!
//! Weight is the share of the group's *accepted difficulty*, not of its miners. Each rebalance
//! compares every endpoint's current load (the rates of the miners on it) with what it should
//! carry: its weight of the group's rate, plus a correction that pays back, over
//! [`SplitParams::horizon_ms`], what it received too little (or too much) since the route took
//! effect. Then it moves whole miners while a move shrinks the total distance from that aim.
//!
//! With many miners this places miners; with a few — down to one — the correction grows until
//! moving the miner pays off, so the miner's work alternates between endpoints at job
//! boundaries and the accepted difficulty converges to the weights over time.

use std::collections::BTreeMap;

use hashmesh_protocol::EndpointId;

/// Tuning of the split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitParams {
    /// Over how long an endpoint's accumulated shortfall is paid back, ms.
    pub horizon_ms: f64,
    /// Most miners moved in one rebalance beyond those that must move (smooths large groups).
    pub moves_max: usize,
}

impl Default for SplitParams {
    fn default() -> Self {
        Self { horizon_ms: 20_000.0, moves_max: 64 }
    }
}

/// One miner as the split sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitMiner {
    /// The proxy's id for it.
    pub id: u64,
    /// Where its work goes now (`None`: not placed yet).
    pub at: Option<EndpointId>,
    /// Its estimated accepted difficulty per second (> 0).
    pub rate: f64,
}

/// Place `miners` over `targets` (live endpoints with weights, any positive scale), given the
/// difficulty each endpoint accepted for this group since the route took effect (`accepted`).
/// Returns the moves `(miner, to)`; a miner on an endpoint outside `targets` always moves.
#[must_use]
pub fn rebalance(
    targets: &[(EndpointId, f64)],
    accepted: &BTreeMap<EndpointId, f64>,
    miners: &[SplitMiner],
    p: SplitParams,
) -> Vec<(u64, EndpointId)> {
    let total_w: f64 = targets.iter().map(|(_, w)| w.max(0.0)).sum();
    if targets.is_empty() || total_w <= 0.0 || miners.is_empty() {
        return Vec::new();
    }
    let w: Vec<f64> = targets.iter().map(|(_, x)| x.max(0.0) / total_w).collect();
    let rate: f64 = miners.iter().map(|m| m.rate).sum();
    let done: f64 = targets.iter().map(|(e, _)| accepted.get(e).copied().unwrap_or(0.0)).sum();
    // Aim per endpoint, per second: its weight of the group's rate, plus its shortfall repaid
    // over the horizon.
    let aim: Vec<f64> = targets
        .iter()
        .zip(&w)
        .map(|((e, _), wi)| {
            let shortfall = wi * done - accepted.get(e).copied().unwrap_or(0.0);
            (wi * rate + shortfall / (p.horizon_ms / 1000.0)).max(0.0)
        })
        .collect();
    let index = |e: &EndpointId| targets.iter().position(|(t, _)| t == e);
    let mut load = vec![0.0; targets.len()];
    let mut at: Vec<Option<usize>> = miners.iter().map(|m| m.at.as_ref().and_then(index)).collect();
    for (m, a) in miners.iter().zip(&at) {
        if let Some(i) = a {
            load[*i] += m.rate;
        }
    }
    let mut moves = Vec::new();
    // Miners with no place among the targets must move: to the endpoint furthest below its aim.
    for (k, m) in miners.iter().enumerate() {
        if at[k].is_none() {
            let i = argmax(&aim, &load);
            load[i] += m.rate;
            at[k] = Some(i);
            moves.push((m.id, targets[i].0.clone()));
        }
    }
    // Then improve while a single move brings the loads closer to the aim.
    for _ in 0..p.moves_max {
        let over =
            (0..targets.len()).max_by(|&a, &b| (load[a] - aim[a]).total_cmp(&(load[b] - aim[b]))).expect("targets");
        let under = argmax(&aim, &load);
        if over == under {
            break;
        }
        let o = load[over] - aim[over];
        let u = aim[under] - load[under];
        // The miner on `over` whose move gains most.
        let gain = |r: f64| o.abs() + u.abs() - (o - r).abs() - (u - r).abs();
        let best = (0..miners.len())
            .filter(|&k| at[k] == Some(over))
            .max_by(|&a, &b| gain(miners[a].rate).total_cmp(&gain(miners[b].rate)));
        let Some(k) = best else { break };
        if gain(miners[k].rate) <= 1e-9 * rate.max(1e-9) {
            break;
        }
        load[over] -= miners[k].rate;
        load[under] += miners[k].rate;
        at[k] = Some(under);
        moves.retain(|(id, _)| *id != miners[k].id);
        if miners[k].at.as_ref() != Some(&targets[under].0) {
            moves.push((miners[k].id, targets[under].0.clone()));
        }
    }
    moves
}

fn argmax(aim: &[f64], load: &[f64]) -> usize {
    (0..aim.len()).max_by(|&a, &b| (aim[a] - load[a]).total_cmp(&(aim[b] - load[b]))).expect("non-empty")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(s: &str) -> EndpointId {
        s.parse().unwrap()
    }

    /// Simulate `miners` of equal rate for `secs` seconds, rebalancing every second, and return
    /// each endpoint's share of the accepted difficulty.
    fn simulate(n: usize, weights: &[(&str, f64)], secs: u32) -> Vec<f64> {
        let targets: Vec<(EndpointId, f64)> = weights.iter().map(|(n, w)| (e(n), *w)).collect();
        let mut miners: Vec<SplitMiner> = (0..n as u64).map(|id| SplitMiner { id, at: None, rate: 1.0 }).collect();
        let mut accepted = BTreeMap::new();
        for _ in 0..secs {
            for (id, to) in rebalance(&targets, &accepted, &miners, SplitParams::default()) {
                miners[usize::try_from(id).unwrap()].at = Some(to);
            }
            for m in &miners {
                *accepted.entry(m.at.clone().unwrap()).or_insert(0.0) += m.rate;
            }
        }
        let total: f64 = accepted.values().sum();
        targets.iter().map(|(t, _)| accepted.get(t).copied().unwrap_or(0.0) / total).collect()
    }

    #[test]
    fn many_miners_are_placed_by_weight() {
        let s = simulate(100, &[("pool-a/ep-1", 7000.0), ("pool-a/ep-2", 3000.0)], 60);
        assert!((s[0] - 0.7).abs() < 0.01, "{s:?}");
    }

    #[test]
    fn one_miner_is_time_shared_by_weight() {
        let s = simulate(1, &[("pool-a/ep-1", 7000.0), ("pool-a/ep-2", 3000.0)], 300);
        assert!((s[0] - 0.7).abs() < 0.05, "{s:?}");
        let s = simulate(3, &[("pool-a/ep-1", 5000.0), ("pool-b/ep-2", 2500.0), ("pool-c/ep-1", 2500.0)], 300);
        assert!(s.iter().zip([0.5, 0.25, 0.25]).all(|(a, b)| (a - b).abs() < 0.05), "{s:?}");
    }

    #[test]
    fn a_miner_outside_the_targets_always_moves_and_settled_miners_stay() {
        let targets = vec![(e("pool-a/ep-1"), 1.0), (e("pool-a/ep-2"), 1.0)];
        let miners = vec![
            SplitMiner { id: 1, at: Some(e("pool-a/ep-1")), rate: 1.0 },
            SplitMiner { id: 2, at: Some(e("pool-a/ep-2")), rate: 1.0 },
            SplitMiner { id: 3, at: Some(e("pool-z/ep-9")), rate: 1.0 },
            SplitMiner { id: 4, at: Some(e("pool-a/ep-1")), rate: 1.0 },
        ];
        let moves = rebalance(&targets, &BTreeMap::new(), &miners, SplitParams::default());
        assert_eq!(moves, vec![(3, e("pool-a/ep-2"))], "only the stray miner moves");
        assert!(rebalance(&[], &BTreeMap::new(), &miners, SplitParams::default()).is_empty());
    }
}
