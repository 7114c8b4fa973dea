//! `hashmesh audit …`: directives (signatures checked locally), loans (re-derived from the
//! signed reports) and `verify` (headers, blocks, results and state proven from a trusted root).

use anyhow::Result;
use clap::Subcommand;
use hashmesh_node::audit::{self, AuditFilter};
use hashmesh_node::audit_loans::{self, LoanAuditFilter};
use hashmesh_node::output::print_json;
use hashmesh_node::rpc::Rpc;
use hashmesh_node::verify::{self, Trust, VerifyOptions};

use super::{Conn, DirectiveFilter};

#[derive(Subcommand)]
pub(super) enum AuditCmd {
    /// List committed directives and verify every signature locally (exit 1 if any fails).
    #[command(
        after_help = "Examples:\n  hashmesh audit directives --rpc http://127.0.0.1:26667\n  hashmesh audit directives --group pool-a/g-1 --from-height 10 --json --check-blocks"
    )]
    Directives {
        #[command(flatten)]
        conn: Conn,
        #[command(flatten)]
        filter: DirectiveFilter,
        /// Also confirm each directive's block through CometBFT /tx (slower).
        #[arg(long)]
        check_blocks: bool,
        /// Verify without trusting the node: walk the headers from --trust to the rows'
        /// highest height (light-client rules), check every block's transactions and results,
        /// and prove each directive's record against the app hash (as `audit verify`).
        #[arg(long, requires = "trust")]
        verify: bool,
        /// The trusted root for --verify: a genesis.json, or HEIGHT:HEADER_HASH.
        #[arg(long, value_name = "GENESIS_OR_HEIGHT:HASH")]
        trust: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Prove what a node serves, trusting only a root you give: every header from it (signed by
    /// more than 2/3 of the voting power, validator changes followed), every block's
    /// transactions and results against the headers, and the state after the last block —
    /// assignments, endpoints, telemetry, offers, loans, ledgers and every applied directive's
    /// record — with Merkle proofs against the app hash. Exit 1 naming the block and field
    /// that fail.
    #[command(
        after_help = "Examples:\n  hashmesh audit verify --rpc http://127.0.0.1:26667 --trust ~/.hashmesh/cometbft/config/genesis.json\n  hashmesh audit verify --rpc http://NODE:26657 --trust 1200:3F5A…(64 hex, from `curl NODE/commit?height=1200` on a node you trust)\n  hashmesh audit verify --trust genesis.json --to-height 500 --json\n\nTrust model and failures: docs/audit.md"
    )]
    Verify {
        #[command(flatten)]
        conn: Conn,
        /// The trusted root: a CometBFT genesis.json (its validators, time and app state), or
        /// HEIGHT:HEADER_HASH of a header obtained out of band.
        #[arg(long, value_name = "GENESIS_OR_HEIGHT:HASH")]
        trust: String,
        /// The last block to check (default: the node's latest height minus one).
        #[arg(long)]
        to_height: Option<u64>,
        /// Check headers, transactions and results only; no state proofs.
        #[arg(long)]
        no_state: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every loan re-derived from the signed reports: signatures checked locally, each settled
    /// and disputed epoch replayed with the chain's rule and compared with the node's events
    /// and state (exit 1 if any check fails).
    #[command(
        after_help = "Examples:\n  hashmesh audit loans --rpc http://127.0.0.1:26667\n  hashmesh audit loans --pool pool-a --json"
    )]
    Loans {
        #[command(flatten)]
        conn: Conn,
        /// Only loans this pool borrows or lends (its name, or its id or a prefix of it).
        #[arg(long)]
        pool: Option<String>,
        /// Only transactions from this height (checked, but the settlement is not replayed).
        #[arg(long)]
        from_height: Option<u64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Run an audit; exit status 1 when any check failed.
pub(super) fn run(cmd: AuditCmd) -> Result<i32> {
    match cmd {
        AuditCmd::Directives { conn, filter, check_blocks, verify, trust, json } => {
            let DirectiveFilter { pool, group, from_height, to_height } = filter;
            if let Some(p) = &pool {
                audit::parse_pool(p)?;
            }
            let trust: Option<Trust> = trust.filter(|_| verify).map(|t| t.parse()).transpose()?;
            let rpc = Rpc::new(&conn.url()?);
            let mut report = audit::run(&rpc, &AuditFilter { pool, group, from_height, to_height, check_blocks })?;
            if let Some(trust) = trust {
                audit::verify_rows(&rpc, &trust, &mut report, !json)?;
            }
            if json {
                print_json(&serde_json::to_value(&report)?);
            } else {
                print!("{}", audit::render(&report));
            }
            Ok(i32::from(report.failures > 0))
        }
        AuditCmd::Verify { conn, trust, to_height, no_state, json } => {
            let trust: Trust = trust.parse()?;
            let report =
                verify::run(&Rpc::new(&conn.url()?), &trust, &VerifyOptions { to_height, no_state, progress: !json })?;
            if json {
                print_json(&serde_json::to_value(&report)?);
            } else {
                print!("{}", verify::render(&report));
            }
            Ok(i32::from(!report.ok()))
        }
        AuditCmd::Loans { conn, pool, from_height, json } => {
            let report = audit_loans::run(&Rpc::new(&conn.url()?), &LoanAuditFilter { pool, from_height }, !json)?;
            if json {
                print_json(&serde_json::to_value(&report)?);
            } else {
                print!("{}", audit_loans::render(&report));
            }
            Ok(i32::from(report.failures > 0))
        }
    }
}
