//! Loans: opened and closed by committed routes, reported by both parties, settled on the
//! smaller total within the tolerance, disputed beyond it, with fees and a decayed per-pair
//! ledger; every refusal changes nothing.

mod common;

use common::*;
use hashmesh_protocol::limits::LOAN_REPORT_GRACE_BLOCKS;
use hashmesh_protocol::{Body, LoanWork, RejectCode};

const GH: u64 = 1_000_000_000;

fn work(group: &str, ep: &str, opened_height: u64, at_ms: u64, hashes: u128) -> LoanWork {
    LoanWork {
        group: group.parse().unwrap(),
        endpoint: ep.parse().unwrap(),
        opened_height,
        at_ms,
        accepted_hashes: hashes,
    }
}

fn report(chain: &mut Chain, who: char, entries: Vec<LoanWork>) -> (u32, String, Vec<String>) {
    let tx = chain.sign(who, Body::ReportLoanWork { entries });
    let out = chain.block(vec![tx]);
    let t = &out.txs[0];
    let statuses = t
        .events
        .iter()
        .filter(|e| e.kind == "loan")
        .filter_map(|e| e.attr("status"))
        .filter(|s| *s != "reported")
        .map(str::to_owned);
    (t.code, t.log.clone(), statuses.collect())
}

/// pool-b offers its ep-1 at 200 bp; pool-a routes g-1 there: a loan opened at the returned height.
fn lend(chain: &mut Chain) -> u64 {
    let h = chain.state.height();
    let offer = chain.sign(
        'b',
        Body::Offer {
            endpoint: "pool-b/ep-1".parse().unwrap(),
            max_hs: 500 * GH,
            fee_bp: 200,
            expires_height: h + 1000,
        },
    );
    assert_eq!(chain.block(vec![offer]).txs[0].code, 0);
    let tx = chain.sign('a', route("pool-a/g-1", &[("pool-b/ep-1", 10_000)]));
    let out = chain.block(vec![tx]);
    let opened: Vec<_> = out.txs[0].events.iter().filter(|e| e.kind == "loan").collect();
    assert_eq!(opened.len(), 1, "{:?}", out.txs[0]);
    assert_eq!((opened[0].attr("status"), opened[0].attr("fee_bp")), (Some("opened"), Some("200")));
    chain.state.height()
}

#[test]
fn routes_open_and_close_loans() {
    let mut chain = Chain::new();
    let opened = lend(&mut chain);
    let loan = chain.state.loan(&"pool-a/g-1".parse().unwrap(), &"pool-b/ep-1".parse().unwrap()).unwrap().clone();
    assert_eq!((loan.opened_height, loan.closed_height, loan.fee_bp), (opened, None, 200));
    // A re-route that keeps the endpoint keeps the loan; one that leaves it closes it.
    let tx = chain.sign('a', route("pool-a/g-1", &[("pool-b/ep-1", 5000), ("pool-a/ep-1", 5000)]));
    assert!(chain.block(vec![tx]).txs[0].events.iter().all(|e| e.kind != "loan"));
    let tx = chain.sign('a', route("pool-a/g-1", &[("pool-a/ep-1", 10_000)]));
    let out = chain.block(vec![tx]);
    assert!(out.txs[0].events.iter().any(|e| e.kind == "loan" && e.attr("status") == Some("closed")));
    let loan = chain.state.loan(&"pool-a/g-1".parse().unwrap(), &"pool-b/ep-1".parse().unwrap()).unwrap();
    assert_eq!(loan.closed_height, Some(chain.state.height()));
    // A route voted in outside an offer opens a loan without a fee.
    let tx = chain.sign('c', route("pool-c/g-1", &[("pool-a/ep-1", 10_000)]));
    let out = chain.block(vec![tx]);
    let directive = out.txs[0].events[0].attr("id").unwrap().to_owned();
    let vote = chain.sign('a', Body::Vote { directive: directive.parse().unwrap(), approve: true });
    let out = chain.block(vec![vote]);
    assert!(
        out.txs[0]
            .events
            .iter()
            .any(|e| e.kind == "loan" && e.attr("status") == Some("opened") && e.attr("fee_bp") == Some("0")),
        "{:?}",
        out.txs[0].events
    );
    chain.state.check_invariants();
}

/// Table: every refusal names its reason and changes nothing.
#[test]
fn bad_loan_reports_are_refused_whole() {
    let mut chain = Chain::new();
    let h = lend(&mut chain);
    assert_eq!(report(&mut chain, 'a', vec![work("pool-a/g-1", "pool-b/ep-1", h, 1_000, 10)]).0, 0);
    let before = chain.state.loan(&"pool-a/g-1".parse().unwrap(), &"pool-b/ep-1".parse().unwrap()).unwrap().clone();
    let cases: Vec<(char, Vec<LoanWork>, RejectCode)> = vec![
        ('a', vec![], RejectCode::LoanWorkInvalid),
        ('a', vec![work("pool-a/g-1", "pool-b/ep-1", h + 1, 2_000, 20)], RejectCode::LoanUnknown),
        ('a', vec![work("pool-a/g-2", "pool-b/ep-1", h, 2_000, 20)], RejectCode::LoanUnknown),
        ('c', vec![work("pool-a/g-1", "pool-b/ep-1", h, 2_000, 20)], RejectCode::NotLoanParty),
        ('a', vec![work("pool-a/g-1", "pool-b/ep-1", h, 1_000, 20)], RejectCode::LoanWorkInvalid), // not later
        ('a', vec![work("pool-a/g-1", "pool-b/ep-1", h, 2_000, 9)], RejectCode::LoanWorkInvalid),  // decreasing
        (
            'a',
            vec![work("pool-a/g-1", "pool-b/ep-1", h, 2_000, 20), work("pool-a/g-1", "pool-b/ep-1", h, 3_000, 30)],
            RejectCode::LoanWorkInvalid, // not strictly increasing by (group, endpoint)
        ),
        (
            'a',
            vec![work("pool-a/g-1", "pool-b/ep-1", h, 2_000, 20), work("pool-a/g-2", "pool-b/ep-1", h, 2_000, 1)],
            RejectCode::LoanUnknown, // the second entry fails: nothing of the first is kept
        ),
        (
            'a',
            (0..49).map(|i| work("pool-a/g-1", &format!("pool-b/ep-{i}"), h, 2_000, 20)).collect(),
            RejectCode::LoanWorkInvalid,
        ),
    ];
    for (who, entries, code) in cases {
        let (c, log, _) = report(&mut chain, who, entries.clone());
        assert_eq!(c, code.code(), "{entries:?}: {log}");
        assert!(!log.is_empty());
    }
    let after = chain.state.loan(&"pool-a/g-1".parse().unwrap(), &"pool-b/ep-1".parse().unwrap()).unwrap();
    assert_eq!(&before, after, "refusals changed nothing");
}

#[test]
fn agreement_settles_the_smaller_total_and_a_dispute_settles_nothing() {
    let mut chain = Chain::new();
    let h = chain_with_loan(&mut chain);
    let g = "pool-a/g-1";
    let e = "pool-b/ep-1";
    // Borrower at 1 s and 3 s; lender at 2 s: compared at 2 s (borrower interpolated to 2000).
    assert_eq!(report(&mut chain, 'a', vec![work(g, e, h, 1_000, 1_000)]).2, Vec::<String>::new());
    assert_eq!(report(&mut chain, 'a', vec![work(g, e, h, 3_000, 3_000)]).2, Vec::<String>::new());
    let (code, log, st) = report(&mut chain, 'b', vec![work(g, e, h, 2_000, 1_960)]);
    assert_eq!((code, st), (0, vec!["settled".to_owned()]), "{log}");
    let loan = chain.state.loan(&g.parse().unwrap(), &e.parse().unwrap()).unwrap().clone();
    assert_eq!(
        (loan.book.settled_hashes, loan.fee_hashes, loan.settlements),
        (1_960, 39, 1),
        "min of 2000 and 1960; 2 % fee floored"
    );
    // The lender claims 20 % more than the borrower saw by 3 s: disputed, nothing settled.
    let (_, _, st) = report(&mut chain, 'b', vec![work(g, e, h, 3_000, 3_600)]);
    assert_eq!(st, vec!["disputed".to_owned()]);
    let loan = chain.state.loan(&g.parse().unwrap(), &e.parse().unwrap()).unwrap().clone();
    assert_eq!((loan.book.settled_hashes, loan.disputes), (1_960, 1));
    let d = loan.last_dispute.unwrap();
    assert_eq!((d.at_ms, d.borrower_hashes, d.lender_hashes), (3_000, 3_000, 3_600));
    // Both agree later: everything agreed up to then settles (settled work only grows).
    report(&mut chain, 'a', vec![work(g, e, h, 5_000, 5_000)]);
    let (_, _, st) = report(&mut chain, 'b', vec![work(g, e, h, 5_000, 5_100)]);
    assert_eq!(st, vec!["settled".to_owned()]);
    let loan = chain.state.loan(&g.parse().unwrap(), &e.parse().unwrap()).unwrap().clone();
    assert_eq!((loan.book.settled_hashes, loan.settlements, loan.disputes), (5_000, 2, 1));
    let ledger = chain.state.ledgers().next().unwrap();
    assert_eq!((ledger.settled_hashes, ledger.fee_hashes, ledger.settlements, ledger.disputes), (5_000, 39 + 60, 2, 1));
    assert_eq!(ledger.reward_weight, 5_000, "settled within the hour: no decay yet");
    chain.state.check_invariants();
}

#[test]
fn a_closed_loan_takes_its_last_totals_for_the_grace_period() {
    let mut chain = Chain::new();
    let h = chain_with_loan(&mut chain);
    let (g, e) = ("pool-a/g-1", "pool-b/ep-1");
    report(&mut chain, 'a', vec![work(g, e, h, 1_000, 100)]);
    report(&mut chain, 'b', vec![work(g, e, h, 1_000, 100)]);
    let tx = chain.sign('a', route(g, &[("pool-a/ep-1", 10_000)]));
    chain.block(vec![tx]);
    let closed = chain.state.height();
    report(&mut chain, 'a', vec![work(g, e, h, 9_000, 900)]);
    assert_eq!(report(&mut chain, 'b', vec![work(g, e, h, 9_000, 890)]).2, vec!["settled".to_owned()]);
    while chain.state.height() < closed + LOAN_REPORT_GRACE_BLOCKS {
        chain.block(vec![]);
    }
    let (code, log, _) = report(&mut chain, 'a', vec![work(g, e, h, 10_000, 1000)]);
    assert_eq!(code, RejectCode::LoanUnknown.code(), "{log}");
    assert!(log.contains(&format!("closed at height {closed}")), "{log}");
}

/// The ledger's reward weight decays 5 % per hour of block time.
#[test]
fn the_ledger_decays_by_block_time() {
    let mut chain = Chain::new();
    let h = chain_with_loan(&mut chain);
    let (g, e) = ("pool-a/g-1", "pool-b/ep-1");
    report(&mut chain, 'a', vec![work(g, e, h, 1_000, 10_000)]);
    report(&mut chain, 'b', vec![work(g, e, h, 1_000, 10_000)]);
    // One block per second: 3600 empty blocks is an hour of block time.
    for _ in 0..3600 {
        chain.block(vec![]);
    }
    report(&mut chain, 'a', vec![work(g, e, h, 2_000, 20_000)]);
    report(&mut chain, 'b', vec![work(g, e, h, 2_000, 20_000)]);
    let ledger = chain.state.ledgers().next().unwrap();
    assert_eq!(ledger.hours.len(), 2, "{:?}", ledger.hours);
    assert_eq!(ledger.reward_weight, 10_000 * 95 / 100 + 10_000);
}

fn chain_with_loan(chain: &mut Chain) -> u64 {
    lend(chain)
}
