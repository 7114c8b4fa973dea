//! Command-line interface: argument parsing and dispatch to the library modules.

mod agents;
mod audit_cmd;
mod bench_cmd;
mod genesis_cmd;
mod report;
mod sim;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use hashmesh_node::daemon;
use hashmesh_node::home::{Config, Home};
use hashmesh_node::output::print_json;
use hashmesh_node::query_cmd::{self, Target};
use hashmesh_node::rpc::Rpc;
use hashmesh_node::tx_cmd::{self, TxOptions};
use hashmesh_protocol::Body;
use serde_json::json;

use agents::AgentsCmd;
use audit_cmd::AuditCmd;
use bench_cmd::BenchCmd;
use genesis_cmd::{GenesisCmd, GENESIS_HELP};
use hashmesh_agent::cli::AgentCmd;
use report::ReportArgs;
use sim::{SimArgs, SIM_HELP};

const DEFAULT_RPC: &str = "http://127.0.0.1:26657";

#[derive(Parser)]
#[command(
    name = "hashmesh",
    version,
    about = "Coordinate hashrate across mining pools with BFT-agreed, signed scheduling directives",
    after_help = "Examples:\n  hashmesh init --home ~/.hashmesh --moniker pool-a\n  hashmesh start --home ~/.hashmesh\n  hashmesh tx route --home ~/.hashmesh --group pool-a/g-1 --to pool-a/ep-1=6000,pool-a/ep-2=4000\n  hashmesh audit directives --rpc http://127.0.0.1:26657\n  testnet/up    # a local 4-pool cluster"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// A listen address flag: `HOST:PORT`, or `none`.
#[derive(Debug, Clone, Copy)]
struct OptionalAddr(Option<std::net::SocketAddr>);

impl std::str::FromStr for OptionalAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "none" || s.is_empty() {
            return Ok(Self(None));
        }
        s.parse()
            .map(|a| Self(Some(a)))
            .map_err(|_| format!("{s:?} is not HOST:PORT with a numeric host (or \"none\")"))
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a node home: config.toml and a new pool key (0600).
    #[command(
        after_help = "Examples:\n  hashmesh init --home ~/.hashmesh --moniker pool-a --rpc http://127.0.0.1:26657\n  # a second node on the same host:\n  hashmesh init --home ~/.hashmesh-b --moniker pool-b --abci-listen 127.0.0.1:36658 \\\n    --plane-listen 127.0.0.1:36658 --metrics-listen 127.0.0.1:36660 --rpc http://127.0.0.1:36657"
    )]
    Init {
        /// Home directory to create.
        #[arg(long)]
        home: PathBuf,
        /// Readable name of this pool's node.
        #[arg(long)]
        moniker: String,
        /// Chain id to sign for (default: ask CometBFT).
        #[arg(long, default_value = "")]
        chain_id: String,
        /// ABCI listen address (CometBFT proxy_app), HOST:PORT.
        #[arg(long, default_value = "127.0.0.1:26658")]
        abci_listen: std::net::SocketAddr,
        /// Instruction plane (QUIC, UDP) listen address, HOST:PORT; "none" disables the plane.
        #[arg(long, default_value = "127.0.0.1:26658")]
        plane_listen: OptionalAddr,
        /// Prometheus /metrics listen address, HOST:PORT; "none" disables it.
        #[arg(long, default_value = "127.0.0.1:26660")]
        metrics_listen: OptionalAddr,
        /// CometBFT RPC URL.
        #[arg(long, default_value = DEFAULT_RPC)]
        rpc: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show this pool's identity.
    Keys {
        #[command(subcommand)]
        cmd: KeysCmd,
    },
    /// Run the node: ABCI server for CometBFT and Prometheus /metrics.
    #[command(
        after_help = "Example:\n  hashmesh start --home ~/.hashmesh\n  # then in CometBFT's config.toml: proxy_app = \"tcp://127.0.0.1:26658\""
    )]
    Start {
        /// Node home.
        #[arg(long)]
        home: PathBuf,
    },
    /// Sign and broadcast a transaction, wait for its commit, print JSON.
    Tx(TxArgs),
    /// Read committed state from a node.
    Query(QueryArgs),
    /// Chain height, app hash and directive counts of a node.
    Status {
        #[command(flatten)]
        conn: Conn,
        /// Print JSON (default: a summary).
        #[arg(long)]
        json: bool,
    },
    /// Verify committed history from any node.
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
    },
    /// Benchmarks that need running processes (see also `cargo bench`).
    Bench {
        #[command(subcommand)]
        cmd: BenchCmd,
    },
    /// Run an agent: the edge process that applies the node's instructions.
    Agent {
        #[command(subcommand)]
        cmd: AgentCmd,
    },
    /// Register and list this node's agents.
    Agents {
        #[command(subcommand)]
        cmd: AgentsCmd,
    },
    /// Check this node's home and surroundings and say what to fix.
    #[command(
        after_help = "Checks: config, pool key file mode, CometBFT reachable on the same chain id, this pool in the\ngenesis, the clock against the last block, listen ports, [plane.peers] reachable, agents.\nExit status 1 when a check fails.\n\nExample:\n  hashmesh doctor --home /var/lib/hashmesh\n  hashmesh doctor --home /var/lib/hashmesh --json"
    )]
    Doctor {
        /// Node home.
        #[arg(long)]
        home: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Build and check the consortium's shared genesis.json.
    #[command(after_help = GENESIS_HELP)]
    Genesis {
        #[command(subcommand)]
        cmd: GenesisCmd,
    },
    /// Compare every scheduling strategy on a seeded, simulated workload.
    #[command(after_help = SIM_HELP)]
    Sim(SimArgs),
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Print the pool id (ed25519 public key).
    Show {
        /// Node home.
        #[arg(long)]
        home: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Clone)]
pub(super) struct Conn {
    /// CometBFT RPC URL (default: the home's config, else http://127.0.0.1:26657).
    #[arg(long, global = true, env = "HASHMESH_RPC")]
    rpc: Option<String>,
    /// Node home (for its RPC URL).
    #[arg(long, global = true)]
    home: Option<PathBuf>,
}

impl Conn {
    pub(super) fn url(&self) -> Result<String> {
        if let Some(r) = &self.rpc {
            return Ok(r.clone());
        }
        if let Some(h) = &self.home {
            return Ok(Home::load(h)?.config.rpc);
        }
        Ok(DEFAULT_RPC.into())
    }
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  hashmesh tx route --home H --group pool-a/g-1 --to pool-a/ep-1=6000,pool-b/ep-1=4000\n  hashmesh tx vote --home H --directive 3fa1... --approve\n  hashmesh tx drain --home H --endpoint pool-a/ep-2 --dry-run --nonce 7\n  hashmesh tx raw --rpc http://127.0.0.1:26657 --hex 0d00...\nExit status: 0 applied, 1 refused or failed."
)]
struct TxArgs {
    #[command(subcommand)]
    cmd: TxCmd,
    /// Node home holding the pool key.
    #[arg(long, global = true)]
    home: Option<PathBuf>,
    /// CometBFT RPC URL (default: the home's config).
    #[arg(long, global = true, env = "HASHMESH_RPC")]
    rpc: Option<String>,
    /// Chain id (default: config, else CometBFT /status).
    #[arg(long, global = true)]
    chain_id: Option<String>,
    /// Nonce (default: microseconds since the Unix epoch).
    #[arg(long, global = true)]
    nonce: Option<u64>,
    /// Print the signed transaction (hex) instead of sending it.
    #[arg(long, global = true)]
    dry_run: bool,
    /// Seconds to wait for the commit.
    #[arg(long, global = true, default_value_t = 30)]
    timeout_secs: u64,
}

#[derive(Subcommand)]
enum TxCmd {
    /// Route a miner group across endpoints (weights in basis points, summing to 10000).
    Route {
        /// The miner group (yours).
        #[arg(long)]
        group: String,
        /// Targets ENDPOINT=WEIGHT_BP, comma-separated or repeated.
        #[arg(long, value_delimiter = ',', required = true)]
        to: Vec<String>,
    },
    /// Drain one of your endpoints (no new routes may target it).
    Drain {
        /// The endpoint.
        #[arg(long)]
        endpoint: String,
    },
    /// Restore a drained endpoint.
    Restore {
        /// The endpoint.
        #[arg(long)]
        endpoint: String,
    },
    /// Offer spare capacity of one of your endpoints to other pools: their routes within the
    /// offer are active at once, without your vote. Replaces the endpoint's previous offer.
    #[command(
        after_help = "Example:\n  hashmesh tx offer --home H --endpoint pool-b/ep-1 --max-hs 150000000000000 --fee-bp 100 --expires-in 3600"
    )]
    Offer {
        /// The endpoint (yours).
        #[arg(long)]
        endpoint: String,
        /// Most hashrate other pools may place there under the offer, H/s.
        #[arg(long)]
        max_hs: u64,
        /// Fee, basis points of the lent work.
        #[arg(long, default_value_t = 0)]
        fee_bp: u16,
        /// Open for this many blocks from the current height.
        #[arg(long, conflicts_with = "expires_height", required_unless_present = "expires_height")]
        expires_in: Option<u64>,
        /// Open until this height.
        #[arg(long)]
        expires_height: Option<u64>,
    },
    /// Withdraw your open offer on an endpoint (routes already in place stay).
    Withdraw {
        /// The endpoint.
        #[arg(long)]
        endpoint: String,
    },
    /// Vote on a pending directive that targets your endpoints.
    Vote {
        /// Directive id (hex).
        #[arg(long)]
        directive: String,
        /// Approve.
        #[arg(long, conflicts_with = "reject", required_unless_present = "reject")]
        approve: bool,
        /// Reject.
        #[arg(long)]
        reject: bool,
    },
    /// Report one epoch of telemetry for one of your endpoints (health feeds the routing rules).
    Report(ReportArgs),
    /// Broadcast arbitrary bytes (for testing how the network refuses them).
    Raw {
        /// The bytes, hex.
        #[arg(long)]
        hex: String,
    },
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  hashmesh query assignments --rpc http://127.0.0.1:26657\n  hashmesh query history --group pool-a/g-1 --json\n  hashmesh query pending --waiting-for pool-b   # routes waiting for pool-b's vote\n  hashmesh query directive 3fa1..."
)]
struct QueryArgs {
    #[command(subcommand)]
    cmd: QueryCmd,
    #[command(flatten)]
    conn: Conn,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum QueryCmd {
    /// Registered mining pools.
    Pools,
    /// Endpoints and whether they are drained.
    Endpoints,
    /// Miner groups.
    Groups,
    /// Current routes of each miner group.
    Assignments,
    /// Telemetry per endpoint: the owner's and observers' latest views, the floor rule's health, and
    /// whether the owner's claims are flagged against its observers' measurements.
    Telemetry,
    /// Standing offers of spare capacity (open or expired).
    Offers,
    /// Loans: each (borrowing group, lending endpoint) pair a committed route uses or used, with
    /// both sides' latest totals, what is settled and what is disputed.
    Loans {
        /// Only loans this pool borrows or lends (its name, or its id or a prefix of it).
        #[arg(long)]
        pool: Option<String>,
    },
    /// Settled lending per pair of pools: work, fees owed, reward weight (decayed 5 % an hour).
    Ledger {
        /// Only pairs this pool is part of (its name, or its id or a prefix of it).
        #[arg(long)]
        pool: Option<String>,
    },
    /// Routes waiting for votes (a route onto your endpoints outside your open offers waits for
    /// your vote until its `VOTE BY HEIGHT`; then it expires).
    Pending {
        /// Only the routes still waiting for this pool's vote (its name, or its id or a prefix).
        #[arg(long)]
        waiting_for: Option<String>,
    },
    /// One directive by id.
    Directive {
        /// Directive id (hex).
        id: String,
    },
    /// Committed directives, filtered and paged.
    History(HistoryArgs),
}

/// Which directives: shared by `query history` and `audit directives`.
#[derive(Args, Clone)]
pub(super) struct DirectiveFilter {
    /// Only this signer (pool id hex).
    #[arg(long)]
    pub(super) pool: Option<String>,
    /// Only this miner group.
    #[arg(long)]
    pub(super) group: Option<String>,
    /// From this height (inclusive).
    #[arg(long)]
    pub(super) from_height: Option<u64>,
    /// To this height (inclusive).
    #[arg(long)]
    pub(super) to_height: Option<u64>,
}

#[derive(Args, Clone)]
struct HistoryArgs {
    #[command(flatten)]
    filter: DirectiveFilter,
    /// Page size (max 1000).
    #[arg(long)]
    limit: Option<u32>,
    /// Cursor from a previous page's `next`.
    #[arg(long)]
    after: Option<String>,
}

pub fn main() -> Result<i32> {
    let cli = Cli::parse();
    // Long-running processes log (HASHMESH_LOG, default info); one-shot commands print results.
    if matches!(cli.cmd, Cmd::Start { .. } | Cmd::Agent { cmd: AgentCmd::Start { .. } }) {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("HASHMESH_LOG").unwrap_or_else(|_| "info".into()),
            )
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    } else if matches!(cli.cmd, Cmd::Bench { .. }) {
        // Benchmarks run a node's plane in process: show its warnings (a refused session).
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("HASHMESH_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
    match cli.cmd {
        Cmd::Init { home, moniker, chain_id, abci_listen, plane_listen, metrics_listen, rpc, json } => {
            let mut cfg = Config::new(&moniker);
            cfg.chain_id = chain_id;
            cfg.abci_listen = abci_listen;
            cfg.plane.listen = plane_listen.0;
            cfg.metrics_listen = metrics_listen.0;
            cfg.rpc = rpc;
            let (h, key) = Home::init(&home, cfg)?;
            let id = key.pool_id().to_hex();
            if json {
                print_json(&json!({"home": h.dir, "moniker": moniker, "pool_id": id}));
            } else {
                println!("pool id  {id}\nhome     {}", h.dir.display());
            }
            eprintln!(
                "next: add the pool to the consortium's genesis (`hashmesh genesis add-pool --home {0}`, docs/operations.md section 3), then `hashmesh start --home {0}`",
                home.display()
            );
            Ok(0)
        }
        Cmd::Keys { cmd: KeysCmd::Show { home, json } } => {
            let h = Home::load(&home)?;
            let id = h.signing_key()?.pool_id().to_hex();
            if json {
                print_json(&json!({"moniker": h.config.moniker, "pool_id": id}));
            } else {
                println!("{id}");
            }
            Ok(0)
        }
        Cmd::Start { home } => {
            daemon::run(&Home::load(&home)?)?;
            Ok(0)
        }
        Cmd::Tx(args) => run_tx(args),
        Cmd::Sim(a) => sim::run(a),
        Cmd::Agent { cmd } => hashmesh_agent::cli::run(cmd),
        Cmd::Agents { cmd } => agents::run_agents(cmd),
        Cmd::Genesis { cmd } => genesis_cmd::run(cmd),
        Cmd::Doctor { home, json } => {
            let checks = hashmesh_node::doctor::run(&home);
            if json {
                print_json(&json!({ "home": home, "checks": checks }));
            } else {
                print!("{}", hashmesh_node::doctor::render(&checks));
            }
            Ok(i32::from(checks.iter().any(|c| c.level == hashmesh_node::doctor::Level::Fail)))
        }
        Cmd::Query(q) => run_query(q),
        Cmd::Status { conn, json } => {
            let mut v = query_cmd::status(&Rpc::new(&conn.url()?))?;
            // With --home, the node's agents as its plane last published them.
            let agents = match &conn.home {
                Some(h) => Some(hashmesh_node::plane::registry::read_status(h)?),
                None => None,
            };
            if let Some(a) = &agents {
                v["agents"] = json!({
                    "registered": a.len(),
                    "connected": a.iter().filter(|s| s.connected).count(),
                    "lost": a.iter().filter(|s| s.lost).map(|s| s.id.clone()).collect::<Vec<_>>(),
                });
            }
            if json {
                print_json(&v);
            } else {
                let app = &v["app"];
                let d = &app["directives"];
                let (became_active, in_effect) =
                    (d["active"].as_u64().unwrap_or(0), app["routes_in_effect"].as_u64().unwrap_or(0));
                println!(
                    "chain {}  height {}  app hash {}\npools {}  endpoints {}  groups {}\ndirectives {} (routes in effect {}, superseded {}, pending {}, rejected {}, expired {}, applied {})",
                    v["chain_id"].as_str().unwrap_or(""), v["latest_block_height"], v["latest_app_hash"].as_str().unwrap_or(""), app["pools"], app["endpoints"], app["groups"],
                    d["directives"], in_effect, became_active.saturating_sub(in_effect), d["pending"],
                    d["rejected"], d["expired"], d["applied"]
                );
                if let Some(a) = v.get("agents") {
                    let lost: Vec<&str> =
                        a["lost"].as_array().into_iter().flatten().filter_map(|x| x.as_str()).collect();
                    println!(
                        "agents {} registered, {} connected, {} lost{}",
                        a["registered"],
                        a["connected"],
                        lost.len(),
                        if lost.is_empty() { String::new() } else { format!(": {}", lost.join(", ")) }
                    );
                }
            }
            Ok(0)
        }
        Cmd::Audit { cmd } => audit_cmd::run(cmd),
        Cmd::Bench { cmd } => bench_cmd::run(cmd),
    }
}

fn run_tx(args: TxArgs) -> Result<i32> {
    let opts_rpc = |home: Option<&Path>| -> Result<String> {
        match (&args.rpc, home) {
            (Some(r), _) => Ok(r.clone()),
            (None, Some(h)) => Ok(Home::load(h)?.config.rpc),
            (None, None) => Ok(DEFAULT_RPC.into()),
        }
    };
    let opts = TxOptions {
        rpc: opts_rpc(args.home.as_deref())?,
        chain_id: args.chain_id.clone(),
        nonce: args.nonce,
        dry_run: args.dry_run,
        timeout: Duration::from_secs(args.timeout_secs),
    };
    let body = match &args.cmd {
        TxCmd::Raw { hex } => {
            let bytes = tx_cmd::parse_hex(hex)?;
            let (v, ok) = tx_cmd::send(&opts.rpc, &bytes, opts.timeout)?;
            print_json(&v);
            return Ok(i32::from(!ok));
        }
        TxCmd::Route { group, to } => Body::Route {
            group: group.parse().with_context(|| format!("--group {group:?}"))?,
            targets: tx_cmd::parse_targets(to)?,
        },
        TxCmd::Drain { endpoint } => {
            Body::Drain { endpoint: endpoint.parse().with_context(|| format!("--endpoint {endpoint:?}"))? }
        }
        TxCmd::Restore { endpoint } => {
            Body::Restore { endpoint: endpoint.parse().with_context(|| format!("--endpoint {endpoint:?}"))? }
        }
        TxCmd::Offer { endpoint, max_hs, fee_bp, expires_in, expires_height } => {
            let expires_height = match (expires_height, expires_in) {
                (Some(h), _) => *h,
                (None, Some(n)) => {
                    let height = Rpc::new(&opts.rpc).status().context("reading the current height for --expires-in")?.1;
                    height + n
                }
                (None, None) => bail!("give --expires-in BLOCKS or --expires-height HEIGHT"),
            };
            Body::Offer {
                endpoint: endpoint.parse().with_context(|| format!("--endpoint {endpoint:?}"))?,
                max_hs: *max_hs,
                fee_bp: *fee_bp,
                expires_height,
            }
        }
        TxCmd::Withdraw { endpoint } => {
            Body::Withdraw { endpoint: endpoint.parse().with_context(|| format!("--endpoint {endpoint:?}"))? }
        }
        TxCmd::Vote { directive, approve, reject: _ } => Body::Vote {
            directive: directive.parse().with_context(|| format!("--directive {directive:?}"))?,
            approve: *approve,
        },
        TxCmd::Report(r) => r.body()?,
    };
    let Some(home) = &args.home else { bail!("--home is required to sign (it holds the pool key)") };
    let (v, ok) = tx_cmd::sign_and_send(home, body, &opts)?;
    print_json(&v);
    Ok(i32::from(!ok))
}

fn run_query(q: QueryArgs) -> Result<i32> {
    let rpc = Rpc::new(&q.conn.url()?);
    let target = match q.cmd {
        QueryCmd::Pools => Target::Pools,
        QueryCmd::Endpoints => Target::Endpoints,
        QueryCmd::Groups => Target::Groups,
        QueryCmd::Assignments => Target::Assignments,
        QueryCmd::Pending { waiting_for } => Target::Pending(waiting_for),
        QueryCmd::Telemetry => Target::Telemetry,
        QueryCmd::Offers => Target::Offers,
        QueryCmd::Loans { pool } => Target::Loans(pool),
        QueryCmd::Ledger { pool } => Target::Ledger(pool),
        QueryCmd::Directive { id } => Target::Directive(id),
        QueryCmd::History(h) => Target::History(json!({
            "pool": h.filter.pool, "group": h.filter.group,
            "from_height": h.filter.from_height, "to_height": h.filter.to_height,
            "limit": h.limit, "after": h.after,
        })),
    };
    let v = query_cmd::run(&rpc, &target)?;
    match (q.json, query_cmd::render(&target, &v)) {
        (false, Some(t)) => print!("{t}"),
        _ => print_json(&v),
    }
    Ok(0)
}
