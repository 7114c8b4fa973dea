//! `hashmesh audit loans`: every loan's history from any node, re-derived from the signed
//! transactions — each report's bytes, chain id, signer and strict ed25519 signature checked
//! locally, the signer checked to be the loan's borrower or lender, and the settlement replayed
//! with the chain's own rule (`hashmesh_protocol::settle::LoanBook`): every settled and disputed
//! epoch the node's events claim must follow from the two sides' signed totals, and the node's
//! settled work must equal the replay's.
//!
//! The transactions come from CometBFT's `tx_search` on `loan` events. What this trusts the node
//! for: that the list is complete and in block order, and which pool owns each group and
//! endpoint (genesis). Proving those is the verifiable-audit work (light client, proofs).

use std::collections::BTreeMap;

use anyhow::Result;
use hashmesh_protocol::settle::{LoanBook, Outcome, Reading};
use hashmesh_protocol::signing::{self, PoolKey};
use hashmesh_protocol::{Body, SignedTx};
use serde::Serialize;

use crate::output::{short, table};
use crate::rpc::{CommittedTx, Rpc};

/// Which loans to audit.
#[derive(Debug, Clone, Default)]
pub struct LoanAuditFilter {
    /// Only loans this pool borrows or lends (its name, or its id or a prefix of it).
    pub pool: Option<String>,
    /// Only transactions from this height (a partial range is checked but not replayed).
    pub from_height: Option<u64>,
}

/// One side's signed report, as audited.
#[derive(Debug, Clone, Serialize)]
pub struct AuditedReport {
    /// Block height.
    pub height: u64,
    /// `borrower` or `lender`.
    pub side: &'static str,
    /// When the reporter read its total, ms.
    pub at_ms: u64,
    /// The total, hashes (decimal).
    pub accepted_hashes: String,
}

/// A settled or disputed epoch, as replayed.
#[derive(Debug, Clone, Serialize)]
pub struct Epoch {
    /// Height of the report that settled or disputed it.
    pub height: u64,
    /// `settled` or `disputed`.
    pub outcome: &'static str,
    /// Settled work, hashes (decimal; settled epochs).
    pub work_hashes: Option<String>,
    /// The moment compared and both totals then (disputed epochs).
    pub at_ms: Option<u64>,
    /// The borrower's total then.
    pub borrower_hashes: Option<String>,
    /// The lender's total then.
    pub lender_hashes: Option<String>,
}

/// One loan, audited.
#[derive(Debug, Clone, Serialize)]
pub struct AuditedLoan {
    /// Borrowing group.
    pub group: String,
    /// Lending endpoint.
    pub endpoint: String,
    /// Borrowing pool id.
    pub borrower: String,
    /// Lending pool id.
    pub lender: String,
    /// Height it opened at.
    pub opened_height: u64,
    /// Height it closed at, if it did.
    pub closed_height: Option<u64>,
    /// Every signed report, in block order.
    pub reports: Vec<AuditedReport>,
    /// Every settled and disputed epoch.
    pub epochs: Vec<Epoch>,
    /// Settled work from the replay, hashes (decimal; `None` for a partial range).
    pub settled_hashes: Option<String>,
    /// Settled work as the node's state says, hashes (decimal).
    pub node_settled_hashes: Option<String>,
    /// Whether every check passed.
    pub verified: bool,
    /// What failed.
    pub problems: Vec<String>,
}

/// The audit result.
#[derive(Debug, Clone, Serialize)]
pub struct LoanAuditReport {
    /// Node audited.
    pub node: String,
    /// Its chain id.
    pub chain_id: String,
    /// Its height when the audit started.
    pub height: u64,
    /// Transactions read.
    pub transactions: usize,
    /// Every matching loan.
    pub loans: Vec<AuditedLoan>,
    /// Loans that failed a check.
    pub failures: usize,
}

type Key = (String, String, u64);

struct Replay {
    loan: AuditedLoan,
    book: LoanBook,
}

/// Attributes of the `loan` events of one transaction, per loan.
fn loan_events(t: &CommittedTx) -> Vec<(Key, BTreeMap<String, String>)> {
    t.events
        .iter()
        .filter(|(kind, _)| kind == "loan")
        .filter_map(|(_, attrs)| {
            let a: BTreeMap<String, String> = attrs.iter().cloned().collect();
            let key = (a.get("group")?.clone(), a.get("endpoint")?.clone(), a.get("opened_height")?.parse().ok()?);
            Some((key, a))
        })
        .collect()
}

/// Run the audit.
///
/// # Errors
/// If the node cannot be reached or answers nonsense.
pub fn run(rpc: &Rpc, f: &LoanAuditFilter, progress: bool) -> Result<LoanAuditReport> {
    let (chain_id, height, _) = rpc.status()?;
    let pool_list = rpc.abci_query("/pools", b"")?;
    let pools: Vec<String> =
        pool_list.as_array().into_iter().flatten().filter_map(|p| p["id"].as_str().map(str::to_owned)).collect();
    let only = crate::query_cmd::pool_id(rpc, f.pool.as_deref())?;
    let node_loans = rpc.abci_query("/loans", b"")?;
    let mut query = "loan.status EXISTS".to_owned();
    if let Some(h) = f.from_height {
        query.push_str(&format!(" AND tx.height >= {h}"));
    }
    let mut txs = Vec::new();
    for page in 1u32.. {
        let (batch, total) = rpc.tx_search(&query, page, 100)?;
        let done = batch.len() < 100;
        txs.extend(batch);
        if progress && total > 100 {
            eprintln!("audit: {} of {total} loan transactions read", txs.len());
        }
        if done || txs.len() >= total as usize {
            break;
        }
    }
    let replay_all = f.from_height.is_none_or(|h| h <= 1);
    let mut loans: BTreeMap<Key, Replay> = BTreeMap::new();
    for t in &txs {
        let events = loan_events(t);
        let tx = SignedTx::decode(&t.tx);
        let mut tx_problems = Vec::new();
        match &tx {
            Err(e) => tx_problems.push(format!("height {}: signed bytes do not decode: {e}", t.height)),
            Ok(tx) => {
                if tx.chain_id != chain_id {
                    tx_problems.push(format!("height {}: signed for chain {:?}", t.height, tx.chain_id));
                }
                if !pools.contains(&tx.signer.to_hex()) {
                    tx_problems.push(format!("height {}: signer is not a registered pool", t.height));
                }
                match PoolKey::from_pool_id(&tx.signer).map(|k| signing::verify(&k, &t.tx)) {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) | Err(e) => tx_problems.push(format!("height {}: signature: {e}", t.height)),
                }
            }
        }
        // Loans this transaction opened: known from here on.
        for (key, a) in events.iter().filter(|(_, a)| a.get("status").map(String::as_str) == Some("opened")) {
            loans.entry(key.clone()).or_insert_with(|| Replay {
                loan: AuditedLoan {
                    group: key.0.clone(),
                    endpoint: key.1.clone(),
                    borrower: a.get("borrower").cloned().unwrap_or_default(),
                    lender: a.get("lender").cloned().unwrap_or_default(),
                    opened_height: key.2,
                    closed_height: None,
                    reports: Vec::new(),
                    epochs: Vec::new(),
                    settled_hashes: None,
                    node_settled_hashes: None,
                    verified: true,
                    problems: Vec::new(),
                },
                book: LoanBook::default(),
            });
        }
        for (key, a) in &events {
            let Some(r) = loans.get_mut(key) else { continue };
            r.loan.problems.extend(tx_problems.iter().cloned());
            if a.get("status").map(String::as_str) == Some("closed") {
                r.loan.closed_height = Some(t.height);
            }
        }
        let Ok(SignedTx { body: Body::ReportLoanWork { entries }, signer, .. }) = &tx else { continue };
        for w in entries {
            let key = (w.group.to_string(), w.endpoint.to_string(), w.opened_height);
            let Some(r) = loans.get_mut(&key) else { continue };
            let side = if signer.to_hex() == r.loan.borrower {
                "borrower"
            } else if signer.to_hex() == r.loan.lender {
                "lender"
            } else {
                r.loan.problems.push(format!("height {}: a report signed by neither party", t.height));
                continue;
            };
            r.loan.reports.push(AuditedReport {
                height: t.height,
                side,
                at_ms: w.at_ms,
                accepted_hashes: w.accepted_hashes.to_string(),
            });
            let claimed: Vec<&BTreeMap<String, String>> = events
                .iter()
                .filter(|(k, a)| {
                    *k == key && matches!(a.get("status").map(String::as_str), Some("settled" | "disputed"))
                })
                .map(|(_, a)| a)
                .collect();
            if !replay_all {
                continue;
            }
            let outcome = r.book.record(side == "borrower", Reading { at_ms: w.at_ms, hashes: w.accepted_hashes });
            let (epoch, expected) = match outcome {
                Outcome::Nothing => (None, None),
                Outcome::Settled(work) => (
                    Some(Epoch {
                        height: t.height,
                        outcome: "settled",
                        work_hashes: Some(work.to_string()),
                        at_ms: None,
                        borrower_hashes: None,
                        lender_hashes: None,
                    }),
                    Some(("settled", "work_hashes", work.to_string())),
                ),
                Outcome::Disputed { at_ms, borrower, lender } => (
                    Some(Epoch {
                        height: t.height,
                        outcome: "disputed",
                        work_hashes: None,
                        at_ms: Some(at_ms),
                        borrower_hashes: Some(borrower.to_string()),
                        lender_hashes: Some(lender.to_string()),
                    }),
                    Some(("disputed", "borrower_hashes", borrower.to_string())),
                ),
            };
            let agrees = match (&expected, claimed.as_slice()) {
                (None, []) => true,
                (Some((status, field, value)), [a]) => {
                    a.get("status").map(String::as_str) == Some(*status) && a.get(*field) == Some(value)
                }
                _ => false,
            };
            if !agrees {
                r.loan.problems.push(format!(
                    "height {}: the node's events say {:?}, the signed totals give {:?}",
                    t.height,
                    claimed.iter().map(|a| a.get("status").cloned().unwrap_or_default()).collect::<Vec<_>>(),
                    expected.map(|e| e.0)
                ));
            }
            r.loan.epochs.extend(epoch);
        }
    }
    let mut out = Vec::new();
    for (key, mut r) in loans {
        let node = node_loans
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["group"] == key.0 && l["endpoint"] == key.1 && l["opened_height"] == key.2);
        r.loan.node_settled_hashes = node.and_then(|l| l["settled_hashes"].as_str().map(str::to_owned));
        if replay_all {
            let replayed = r.book.settled_hashes.to_string();
            if let Some(n) = &r.loan.node_settled_hashes {
                if *n != replayed {
                    r.loan.problems.push(format!("the node says {n} hashes settled, the replay {replayed}"));
                }
            }
            r.loan.settled_hashes = Some(replayed);
        }
        if let Some(p) = &only {
            if !r.loan.borrower.starts_with(p.as_str()) && !r.loan.lender.starts_with(p.as_str()) {
                continue;
            }
        }
        r.loan.verified = r.loan.problems.is_empty();
        out.push(r.loan);
    }
    let failures = out.iter().filter(|l| !l.verified).count();
    Ok(LoanAuditReport { node: rpc.url().to_owned(), chain_id, height, transactions: txs.len(), loans: out, failures })
}

/// The audit as tables (loans, then their settled and disputed epochs), with a summary.
#[must_use]
pub fn render(r: &LoanAuditReport) -> String {
    let rows: Vec<Vec<String>> = r
        .loans
        .iter()
        .map(|l| {
            let count = |side| l.reports.iter().filter(|x| x.side == side).count();
            vec![
                l.group.clone(),
                l.endpoint.clone(),
                short(&l.borrower, 12),
                short(&l.lender, 12),
                l.opened_height.to_string(),
                l.closed_height.map_or_else(|| "open".into(), |h| h.to_string()),
                format!("{}/{}", count("borrower"), count("lender")),
                l.settled_hashes.clone().unwrap_or_else(|| "-".into()),
                l.epochs.iter().filter(|e| e.outcome == "disputed").count().to_string(),
                if l.verified { "ok".into() } else { format!("FAILED: {}", l.problems.join("; ")) },
            ]
        })
        .collect();
    let mut s = table(
        &[
            "GROUP",
            "ENDPOINT",
            "BORROWER",
            "LENDER",
            "OPENED",
            "CLOSED",
            "REPORTS B/L",
            "SETTLED HASHES",
            "DISPUTES",
            "CHECK",
        ],
        &rows,
    );
    let epochs: Vec<Vec<String>> = r
        .loans
        .iter()
        .flat_map(|l| {
            l.epochs.iter().map(move |e| {
                vec![
                    e.height.to_string(),
                    l.group.clone(),
                    l.endpoint.clone(),
                    e.outcome.to_owned(),
                    e.work_hashes.clone().unwrap_or_else(|| "-".into()),
                    e.borrower_hashes.clone().unwrap_or_else(|| "-".into()),
                    e.lender_hashes.clone().unwrap_or_else(|| "-".into()),
                ]
            })
        })
        .collect();
    if !epochs.is_empty() {
        s.push('\n');
        s.push_str(&table(
            &["HEIGHT", "GROUP", "ENDPOINT", "EPOCH", "WORK HASHES", "BORROWER SAID", "LENDER SAID"],
            &epochs,
        ));
    }
    s.push_str(&format!(
        "{} loan(s) from {} transaction(s) at {} (chain {}, height {}); {} failed verification{}\n",
        r.loans.len(),
        r.transactions,
        r.node,
        r.chain_id,
        r.height,
        r.failures,
        if r.loans.iter().any(|l| l.settled_hashes.is_none()) {
            "; partial range: settlement not replayed"
        } else {
            ""
        }
    ));
    s
}
