//! A pool's side of its loans, each epoch: the running totals it reports (`ReportLoanWork`),
//! pure. As **borrower**, the accepted work its agents saw at the lender's endpoint, summed
//! epoch after epoch from the plane's per-group work, complete up to the group's agents' latest
//! window. As **lender**, what its endpoint counted under the loan's worker name
//! ([`loan_worker`]) at the scrape, with counter resets (an endpoint restart) carried over. A
//! node that restarts resumes from its last committed reading, so totals never go backwards.

use std::collections::BTreeMap;

use hashmesh_protocol::limits::{LOAN_REPORT_GRACE_BLOCKS, LOAN_WORK_ENTRIES_MAX};
use hashmesh_protocol::settle::Reading;
use hashmesh_protocol::{Body, EndpointId, GroupId, LoanWork, PoolId};

/// A loan in committed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewLoan {
    /// The borrowing group.
    pub group: GroupId,
    /// The lending endpoint.
    pub endpoint: EndpointId,
    /// The group's owner.
    pub borrower: PoolId,
    /// The endpoint's owner.
    pub lender: PoolId,
    /// Height it opened at.
    pub opened_height: u64,
    /// Height it closed at, if closed.
    pub closed_height: Option<u64>,
    /// The borrower's last committed reading.
    pub borrower_last: Option<Reading>,
    /// The lender's last committed reading.
    pub lender_last: Option<Reading>,
}

/// The Stratum worker name a lender issues for a loan: the borrower's pool id (12 hex digits),
/// the group and the loan's opening height. A new loan of the same pair gets a new name (and a
/// new password), so work under a former loan's credentials is never counted for a new one.
#[must_use]
pub fn loan_worker(borrower: &PoolId, group: &GroupId, opened_height: u64) -> String {
    format!("{}.{group}.{opened_height}", &borrower.to_hex()[..12])
}

/// One scrape of a lending endpoint's per-worker counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LenderScrape {
    /// When it was read (the node's clock), ms.
    pub at_ms: u64,
    /// Accepted work per worker name since the endpoint started, hashes.
    pub workers: BTreeMap<String, u128>,
}

/// What one agent had accepted at one endpoint since the last epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentWork {
    /// The groups the agent serves.
    pub groups: Vec<GroupId>,
    /// The endpoint.
    pub endpoint: EndpointId,
    /// Accepted hashes.
    pub hashes: u128,
    /// Complete up to this moment (the agent's latest window), ms.
    pub through_ms: u64,
}

/// This epoch's inputs.
#[derive(Debug, Clone, Default)]
pub struct LoanInputs {
    /// The pool's agents' accepted work per endpoint since the last epoch.
    pub work: Vec<AgentWork>,
    /// Scrapes of the pool's own endpoints.
    pub scrapes: BTreeMap<EndpointId, LenderScrape>,
}

/// Attribute agents' work to loans: an agent's work at an endpoint belongs to the loan there
/// of one of the groups it serves — an open one first, else one closed within the report
/// window — split equally when several groups of the agent borrow the same endpoint (the
/// planner avoids that: one loan per borrower and endpoint). Work with no loan is left out.
/// Returns per loan the work, and per group the moment its work is complete up to.
fn attribute(
    me: &PoolId,
    loans: &[&ViewLoan],
    work: &[AgentWork],
) -> (BTreeMap<LoanKey, u128>, BTreeMap<GroupId, u64>) {
    let mut per_loan: BTreeMap<LoanKey, u128> = BTreeMap::new();
    let mut through: BTreeMap<GroupId, u64> = BTreeMap::new();
    for w in work {
        for g in &w.groups {
            let t = through.entry(g.clone()).or_insert(0);
            *t = (*t).max(w.through_ms);
        }
        let here: Vec<&&ViewLoan> = loans
            .iter()
            .filter(|l| l.borrower == *me && l.endpoint == w.endpoint && w.groups.contains(&l.group))
            .collect();
        let open: Vec<&&ViewLoan> = here.iter().copied().filter(|l| l.closed_height.is_none()).collect();
        let takers = if open.is_empty() { here } else { open };
        let n = takers.len() as u128;
        for (i, l) in takers.iter().enumerate() {
            // Equal shares; the first takes the remainder.
            let share = w.hashes / n + if i == 0 { w.hashes % n } else { 0 };
            *per_loan.entry((l.group.clone(), l.endpoint.clone(), l.opened_height)).or_insert(0) += share;
        }
    }
    (per_loan, through)
}

type LoanKey = (GroupId, EndpointId, u64);

/// What the pool remembers of its loans between epochs (bounded by the loans in state).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoanMemory {
    /// Borrower: the running total, and the last reading reported.
    borrowed: BTreeMap<LoanKey, (u128, Option<Reading>)>,
    /// Lender: the last raw counter value, the offset carried over resets, the last reading
    /// reported.
    lent: BTreeMap<LoanKey, (u128, u128, Option<Reading>)>,
}

/// The `ReportLoanWork` bodies for `me` this epoch at `height` (one per
/// [`LOAN_WORK_ENTRIES_MAX`] loans; none when nothing is new).
#[must_use]
pub fn loan_reports(
    me: &PoolId,
    height: u64,
    loans: &[ViewLoan],
    inputs: &LoanInputs,
    memory: &mut LoanMemory,
) -> Vec<Body> {
    // Reports must land before the grace ends: stop a few blocks early.
    let reportable = |l: &&ViewLoan| l.closed_height.is_none_or(|c| height + 2 < c + LOAN_REPORT_GRACE_BLOCKS);
    let live: Vec<&ViewLoan> = loans.iter().filter(reportable).collect();
    let (work, through) = attribute(me, &live, &inputs.work);
    let mut entries = Vec::new();
    for l in live {
        let key = (l.group.clone(), l.endpoint.clone(), l.opened_height);
        if l.borrower == *me {
            let (total, reported) =
                memory.borrowed.entry(key.clone()).or_insert_with(|| (l.borrower_last.map_or(0, |r| r.hashes), None));
            *total = total.saturating_add(work.get(&key).copied().unwrap_or(0));
            let last_at = reported.map_or(0, |r| r.at_ms).max(l.borrower_last.map_or(0, |r| r.at_ms));
            if let Some(&at_ms) = through.get(&l.group).filter(|t| **t > last_at) {
                let r = Reading { at_ms, hashes: *total };
                *reported = Some(r);
                entries.push(entry(l, r));
            }
        }
        if l.lender == *me {
            let Some(scrape) = inputs.scrapes.get(&l.endpoint) else { continue };
            let raw = scrape.workers.get(&loan_worker(&l.borrower, &l.group, l.opened_height)).copied().unwrap_or(0);
            let committed = l.lender_last.map_or(0, |r| r.hashes);
            let (last_raw, offset, reported) =
                memory.lent.entry(key).or_insert_with(|| (raw, committed.saturating_sub(raw), None));
            if raw < *last_raw {
                // The endpoint's counter restarted: what it had counted before stays counted.
                *offset = offset.saturating_add(*last_raw);
            }
            *last_raw = raw;
            let floor = reported.map_or(committed, |r| r.hashes.max(committed));
            let last_at = reported.map_or(0, |r| r.at_ms).max(l.lender_last.map_or(0, |r| r.at_ms));
            if scrape.at_ms > last_at {
                let r = Reading { at_ms: scrape.at_ms, hashes: offset.saturating_add(raw).max(floor) };
                *reported = Some(r);
                entries.push(entry(l, r));
            }
        }
    }
    let live: std::collections::BTreeSet<LoanKey> =
        loans.iter().map(|l| (l.group.clone(), l.endpoint.clone(), l.opened_height)).collect();
    memory.borrowed.retain(|k, _| live.contains(k));
    memory.lent.retain(|k, _| live.contains(k));
    entries.sort_by(|a: &LoanWork, b| (&a.group, &a.endpoint).cmp(&(&b.group, &b.endpoint)));
    entries.chunks(LOAN_WORK_ENTRIES_MAX).map(|c| Body::ReportLoanWork { entries: c.to_vec() }).collect()
}

fn entry(l: &ViewLoan, r: Reading) -> LoanWork {
    LoanWork {
        group: l.group.clone(),
        endpoint: l.endpoint.clone(),
        opened_height: l.opened_height,
        at_ms: r.at_ms,
        accepted_hashes: r.hashes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: u8) -> PoolId {
        PoolId([n; 32])
    }

    fn loan() -> ViewLoan {
        ViewLoan {
            group: "pool-a/g-1".parse().unwrap(),
            endpoint: "pool-b/ep-1".parse().unwrap(),
            borrower: pool(1),
            lender: pool(2),
            opened_height: 7,
            closed_height: None,
            borrower_last: None,
            lender_last: None,
        }
    }

    fn totals(bodies: &[Body]) -> Vec<(u64, u128)> {
        bodies
            .iter()
            .flat_map(|b| match b {
                Body::ReportLoanWork { entries } => entries.iter().map(|e| (e.at_ms, e.accepted_hashes)).collect(),
                _ => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn the_borrower_sums_its_groups_work_up_to_the_latest_window() {
        let l = loan();
        let other: GroupId = "pool-a/g-2".parse().unwrap();
        let at = |endpoint: &str, hashes, through_ms| AgentWork {
            groups: vec![l.group.clone(), other.clone()],
            endpoint: endpoint.parse().unwrap(),
            hashes,
            through_ms,
        };
        let mut m = LoanMemory::default();
        let mut inputs = LoanInputs::default();
        assert!(
            loan_reports(&pool(1), 10, std::slice::from_ref(&l), &inputs, &mut m).is_empty(),
            "no window, no report"
        );
        // The agent serves both groups; only g-1 borrows pool-b/ep-1: its work there is g-1's.
        inputs.work = vec![at("pool-b/ep-1", 100, 2_000), at("pool-a/ep-2", 999, 2_000)];
        assert_eq!(totals(&loan_reports(&pool(1), 10, std::slice::from_ref(&l), &inputs, &mut m)), vec![(2_000, 100)]);
        // Complete up to the agent's latest window at any endpoint (none at the lender now).
        inputs.work = vec![at("pool-b/ep-1", 50, 3_000), at("pool-a/ep-2", 1, 4_000)];
        assert_eq!(totals(&loan_reports(&pool(1), 11, std::slice::from_ref(&l), &inputs, &mut m)), vec![(4_000, 150)]);
        // A third pool reports nothing; a restarted borrower resumes from the chain's reading.
        assert!(loan_reports(&pool(3), 11, std::slice::from_ref(&l), &inputs, &mut LoanMemory::default()).is_empty());
        let resumed = ViewLoan { borrower_last: Some(Reading { at_ms: 4_000, hashes: 150 }), ..l.clone() };
        inputs.work = vec![at("pool-b/ep-1", 50, 6_000)];
        let got = loan_reports(&pool(1), 12, &[resumed], &inputs, &mut LoanMemory::default());
        assert_eq!(totals(&got), vec![(6_000, 200)]);
        // A closed loan still takes the tail of its work; an open one of the pair comes first.
        let closed = ViewLoan { closed_height: Some(11), ..l.clone() };
        let g2 = ViewLoan { group: other.clone(), opened_height: 12, ..l.clone() };
        inputs.work = vec![at("pool-b/ep-1", 30, 8_000)];
        let got = loan_reports(&pool(1), 13, &[closed.clone(), g2], &inputs, &mut LoanMemory::default());
        assert_eq!(totals(&got), vec![(8_000, 0), (8_000, 30)], "the open loan (g-2) takes it");
        let got = loan_reports(&pool(1), 13, &[closed], &inputs, &mut LoanMemory::default());
        assert_eq!(totals(&got), vec![(8_000, 30)], "only the closed one: its tail");
    }

    #[test]
    fn the_lender_reads_the_loans_worker_and_carries_counter_resets() {
        let l = loan();
        let worker = loan_worker(&l.borrower, &l.group, 7);
        assert_eq!(worker, format!("{}.pool-a/g-1.7", &pool(1).to_hex()[..12]));
        let scrape = |at_ms, n| {
            let mut s = LenderScrape { at_ms, workers: BTreeMap::new() };
            s.workers.insert(worker.clone(), n);
            s.workers.insert(loan_worker(&l.borrower, &l.group, 3), 1_000_000); // a former loan: not counted
            LoanInputs { scrapes: [(l.endpoint.clone(), s)].into(), ..LoanInputs::default() }
        };
        let mut m = LoanMemory::default();
        let mut got = Vec::new();
        for (at, n) in [(1_000, 10), (2_000, 30), (3_000, 5), (4_000, 25)] {
            got.extend(totals(&loan_reports(&pool(2), 10, std::slice::from_ref(&l), &scrape(at, n), &mut m)));
        }
        assert_eq!(got, vec![(1_000, 10), (2_000, 30), (3_000, 35), (4_000, 55)], "the restart at 3000 keeps the 30");
        // Not again for the same scrape time.
        assert!(loan_reports(&pool(2), 10, std::slice::from_ref(&l), &scrape(4_000, 25), &mut m).is_empty());
    }

    #[test]
    fn closed_loans_report_until_shortly_before_the_grace_ends_and_then_are_forgotten() {
        let l = ViewLoan { closed_height: Some(100), ..loan() };
        let work = |through_ms| AgentWork {
            groups: vec![l.group.clone()],
            endpoint: "pool-a/ep-1".parse().unwrap(),
            hashes: 0,
            through_ms,
        };
        let mut inputs = LoanInputs { work: vec![work(1_000)], ..LoanInputs::default() };
        let mut m = LoanMemory::default();
        let h = 100 + LOAN_REPORT_GRACE_BLOCKS;
        assert_eq!(loan_reports(&pool(1), h - 3, std::slice::from_ref(&l), &inputs, &mut m).len(), 1);
        inputs.work = vec![work(2_000)];
        assert!(loan_reports(&pool(1), 100 + LOAN_REPORT_GRACE_BLOCKS - 2, std::slice::from_ref(&l), &inputs, &mut m)
            .is_empty());
        let _ = loan_reports(&pool(1), 500, &[], &inputs, &mut m);
        assert_eq!(m, LoanMemory::default(), "bounded by the loans in state");
    }
}
