//! Loans and their settlement. A loan opens when a committed route puts a group on another
//! pool's endpoint and closes when a committed route takes it off; both parties report running
//! totals of the work done under it (`ReportLoanWork`), and each new comparable pair of totals
//! is judged by [`hashmesh_protocol::settle`]: agreed work is settled into the loan and into the
//! lender → borrower ledger (fees, decayed reward weight), a difference beyond the tolerance is
//! recorded as a dispute and settles nothing.

use std::collections::BTreeSet;

use hashmesh_protocol::limits::{LOAN_REPORT_GRACE_BLOCKS, LOAN_WORK_ENTRIES_MAX};
use hashmesh_protocol::settle::{self, Outcome, Reading};
use hashmesh_protocol::{codec, EndpointId, GroupId, LoanWork, PoolId, RejectCode, RouteTarget};

use super::apply::{reject, Rejection};
use super::events::Event;
use super::keys;
use super::model::{Dispute, LoanRecord, PairLedger};
use super::state::State;
use super::writes::WriteSet;

/// Which party of a loan reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Borrower,
    Lender,
}

impl State {
    /// Open and close loans for `group`'s route changing from `old` to `new` (at `height`).
    pub(crate) fn update_loans(
        &mut self,
        group: &GroupId,
        old: &[RouteTarget],
        new: &[RouteTarget],
        height: u64,
        writes: &mut WriteSet,
    ) -> Vec<Event> {
        let Some(borrower) = self.groups.get(group).map(|g| g.owner) else { return Vec::new() };
        let foreign = |targets: &[RouteTarget]| -> BTreeSet<EndpointId> {
            targets
                .iter()
                .filter(|t| self.endpoints.get(&t.endpoint).is_some_and(|e| e.owner != borrower))
                .map(|t| t.endpoint.clone())
                .collect()
        };
        let (before, after) = (foreign(old), foreign(new));
        let mut events = Vec::new();
        for e in before.difference(&after) {
            let key = (group.clone(), e.clone());
            if let Some(loan) = self.loans.get_mut(&key).filter(|l| l.open()) {
                loan.closed_height = Some(height);
                writes.put(keys::loan(group, e), codec::encode(&*loan));
                events.push(loan_event(loan, "closed"));
            }
        }
        for e in after.difference(&before) {
            let lender = self.endpoints[e].owner;
            let loan = LoanRecord {
                group: group.clone(),
                endpoint: e.clone(),
                borrower,
                lender,
                opened_height: height,
                closed_height: None,
                fee_bp: self.open_offer(e).map_or(0, |o| o.fee_bp),
                book: settle::LoanBook::default(),
                fee_hashes: 0,
                settlements: 0,
                disputes: 0,
                last_dispute: None,
            };
            writes.put(keys::loan(group, e), codec::encode(&loan));
            events.push(loan_event(&loan, "opened").with("fee_bp", loan.fee_bp.to_string()));
            self.loans.insert((group.clone(), e.clone()), loan);
        }
        events
    }

    /// Check a `ReportLoanWork` by `signer` against the next block's height: applied whole or
    /// refused whole, naming the first entry that fails.
    pub(crate) fn check_loan_work(&self, signer: PoolId, entries: &[LoanWork]) -> Result<(), Rejection> {
        if entries.is_empty() || entries.len() > LOAN_WORK_ENTRIES_MAX {
            return reject(
                RejectCode::LoanWorkInvalid,
                format!("a loan report holds 1..={LOAN_WORK_ENTRIES_MAX} entries, not {}", entries.len()),
            );
        }
        if entries.windows(2).any(|w| (&w[0].group, &w[0].endpoint) >= (&w[1].group, &w[1].endpoint)) {
            return reject(RejectCode::LoanWorkInvalid, "entries must be strictly increasing by (group, endpoint)");
        }
        let next = self.height + 1;
        for w in entries {
            let name = format!("loan of {} to {} opened at height {}", w.endpoint, w.group, w.opened_height);
            let Some(loan) =
                self.loans.get(&(w.group.clone(), w.endpoint.clone())).filter(|l| l.opened_height == w.opened_height)
            else {
                return reject(RejectCode::LoanUnknown, format!("there is no {name}"));
            };
            if let Some(closed) = loan.closed_height.filter(|c| next > c + LOAN_REPORT_GRACE_BLOCKS) {
                return reject(
                    RejectCode::LoanUnknown,
                    format!(
                        "the {name} closed at height {closed}; reports were taken until height {}",
                        closed + LOAN_REPORT_GRACE_BLOCKS
                    ),
                );
            }
            let last = match side_of(loan, signer) {
                Some(side) => loan.book.last(side == Side::Borrower),
                None => {
                    return reject(
                        RejectCode::NotLoanParty,
                        format!("the signer is neither the borrower nor the lender of the {name}"),
                    )
                }
            };
            if let Some(last) = last {
                if w.at_ms <= last.at_ms || w.accepted_hashes < last.hashes {
                    return reject(
                        RejectCode::LoanWorkInvalid,
                        format!(
                            "{name}: a report must be later than the last (at {} ms) and not below its total ({} hashes); got {} hashes at {} ms",
                            last.at_ms, last.hashes, w.accepted_hashes, w.at_ms
                        ),
                    );
                }
            }
        }
        Ok(())
    }

    /// Record checked loan work and settle what the two sides now agree on.
    pub(crate) fn record_loan_work(
        &mut self,
        signer: PoolId,
        entries: &[LoanWork],
        height: u64,
        time_ms: u64,
        writes: &mut WriteSet,
    ) -> (String, Vec<Event>) {
        let mut events = Vec::new();
        let (mut settled, mut disputed) = (0u32, 0u32);
        for w in entries {
            let key = (w.group.clone(), w.endpoint.clone());
            let loan = self.loans.get_mut(&key).expect("checked loan exists");
            let reading = Reading { at_ms: w.at_ms, hashes: w.accepted_hashes };
            let side = side_of(loan, signer).expect("checked party");
            events.push(
                loan_event(loan, "reported")
                    .with("side", if side == Side::Borrower { "borrower" } else { "lender" })
                    .with("at_ms", w.at_ms.to_string())
                    .with("accepted_hashes", w.accepted_hashes.to_string()),
            );
            let (mut work, mut dispute) = (0u128, false);
            match loan.book.record(side == Side::Borrower, reading) {
                Outcome::Nothing => {}
                Outcome::Settled(more) => {
                    work = more;
                    loan.fee_hashes += settle::fee_hashes(work, loan.fee_bp);
                    loan.settlements += 1;
                    settled += 1;
                    events.push(
                        loan_event(loan, "settled")
                            .with("work_hashes", work.to_string())
                            .with("settled_hashes", loan.book.settled_hashes.to_string()),
                    );
                }
                Outcome::Disputed { at_ms, borrower, lender } => {
                    dispute = true;
                    loan.disputes += 1;
                    loan.last_dispute =
                        Some(Dispute { height, at_ms, borrower_hashes: borrower, lender_hashes: lender });
                    disputed += 1;
                    events.push(
                        loan_event(loan, "disputed")
                            .with("at_ms", at_ms.to_string())
                            .with("borrower_hashes", borrower.to_string())
                            .with("lender_hashes", lender.to_string()),
                    );
                }
            }
            let loan = loan.clone();
            writes.put(keys::loan(&loan.group, &loan.endpoint), codec::encode(&loan));
            if work > 0 || dispute {
                self.post_to_ledger(&loan, work, dispute, time_ms, writes);
            }
        }
        let log = format!("loan work: {} report(s), {settled} settled, {disputed} disputed", entries.len());
        (log, events)
    }

    fn post_to_ledger(&mut self, loan: &LoanRecord, work: u128, dispute: bool, time_ms: u64, writes: &mut WriteSet) {
        let ledger = self.ledgers.entry((loan.lender, loan.borrower)).or_insert_with(|| PairLedger {
            lender: loan.lender,
            borrower: loan.borrower,
            settled_hashes: 0,
            fee_hashes: 0,
            settlements: 0,
            disputes: 0,
            hours: Vec::new(),
            as_of_hour: 0,
            reward_weight: 0,
        });
        if dispute {
            ledger.disputes += 1;
        }
        if work > 0 {
            let hour = settle::hour_of(time_ms).max(ledger.as_of_hour);
            ledger.settled_hashes += work;
            ledger.fee_hashes += settle::fee_hashes(work, loan.fee_bp);
            ledger.settlements += 1;
            settle::add_to_buckets(&mut ledger.hours, hour, work);
            ledger.as_of_hour = hour;
            ledger.reward_weight = settle::reward_weight(&ledger.hours, hour);
        }
        writes.put(keys::ledger(&loan.lender, &loan.borrower), codec::encode(&*ledger));
    }

    /// Every loan, open or closed.
    pub fn loans(&self) -> impl Iterator<Item = &LoanRecord> {
        self.loans.values()
    }

    /// The loan of `endpoint` to `group`, if any.
    #[must_use]
    pub fn loan(&self, group: &GroupId, endpoint: &EndpointId) -> Option<&LoanRecord> {
        self.loans.get(&(group.clone(), endpoint.clone()))
    }

    /// Every pool pair's ledger.
    pub fn ledgers(&self) -> impl Iterator<Item = &PairLedger> {
        self.ledgers.values()
    }
}

fn side_of(loan: &LoanRecord, pool: PoolId) -> Option<Side> {
    if pool == loan.borrower {
        Some(Side::Borrower)
    } else if pool == loan.lender {
        Some(Side::Lender)
    } else {
        None
    }
}

/// A `loan` event (`loan.status` is opened, closed, reported, settled or disputed).
fn loan_event(loan: &LoanRecord, status: &str) -> Event {
    Event::new("loan")
        .with("status", status)
        .with("group", loan.group.as_str())
        .with("endpoint", loan.endpoint.as_str())
        .with("borrower", loan.borrower.to_hex())
        .with("lender", loan.lender.to_hex())
        .with("opened_height", loan.opened_height.to_string())
}
