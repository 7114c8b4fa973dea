//! `hashmesh audit …`: directives (signatures checked locally) and loans (re-derived from the
//! signed reports).

use anyhow::Result;
use clap::Subcommand;
use hashmesh_node::audit::{self, AuditFilter};
use hashmesh_node::audit_loans::{self, LoanAuditFilter};
use hashmesh_node::output::print_json;
use hashmesh_node::rpc::Rpc;

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
        AuditCmd::Directives { conn, filter, check_blocks, json } => {
            let DirectiveFilter { pool, group, from_height, to_height } = filter;
            if let Some(p) = &pool {
                audit::parse_pool(p)?;
            }
            let report = audit::run(
                &Rpc::new(&conn.url()?),
                &AuditFilter { pool, group, from_height, to_height, check_blocks },
            )?;
            if json {
                print_json(&serde_json::to_value(&report)?);
            } else {
                print!("{}", audit::render(&report));
            }
            Ok(i32::from(report.failures > 0))
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
