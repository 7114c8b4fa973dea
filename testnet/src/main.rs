//! `hashmesh-testnet`: the local testnet behind the `testnet/` scripts (see the crate docs).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use hashmesh_node::home::Home;
use hashmesh_node::output::print_json;
use hashmesh_testnet::synthetic::SyntheticSource;
use hashmesh_testnet::{bench, commands};

/// A local N-pool hashmesh cluster on 127.0.0.1 with real CometBFT validators.
#[derive(Parser)]
#[command(
    name = "hashmesh-testnet",
    version,
    about,
    after_help = "Examples:\n  testnet/up                                   # builds, then: hashmesh-testnet up --cometbft …\n  hashmesh-testnet --dir testnet/.data status\n  hashmesh-testnet --dir testnet/.data chaos degrade pool-a/ep-1\n  hashmesh-testnet --dir testnet/.data down --wipe"
)]
struct Cli {
    /// Cluster directory.
    #[arg(long, global = true, default_value = "testnet/.data")]
    dir: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate (if needed) and start a cluster, wait for blocks, run the demo, print status and audit.
    Up {
        /// Number of validators (pools).
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// The cometbft binary.
        #[arg(long, env = "HASHMESH_COMETBFT")]
        cometbft: PathBuf,
        /// First port (each node takes 4); 0 picks free ports.
        #[arg(long, default_value_t = 26600)]
        base_port: u16,
        /// Skip the scripted demo.
        #[arg(long)]
        no_demo: bool,
        /// Virtual Stratum miners per miner group, mining through the agents (0: no Stratum
        /// traffic). Applies when the cluster is generated.
        #[arg(long, default_value_t = 25)]
        miners_per_group: usize,
        /// Hashes per second per virtual miner (real SHA-256d work).
        #[arg(long, default_value_t = 2000.0)]
        miner_hashrate: f64,
        /// Also start Prometheus (testnet/install-prometheus) scraping every node, agent and
        /// endpoint, with deploy/prometheus/alerts.yml loaded.
        #[arg(long)]
        observe: bool,
        /// Route the validators' p2p links through Toxiproxy (testnet/install-toxiproxy), so
        /// that `testnet/faults` can partition a validator. Applies when the cluster is generated.
        #[arg(long)]
        links: bool,
        /// Like --links, with the pools 50–150 ms apart (latency and jitter on every p2p link),
        /// as pools on different continents are. Applies when the cluster is generated.
        #[arg(long)]
        wan: bool,
    },
    /// Many virtual Stratum V1 miners doing real SHA-256d work, until stopped; prints totals
    /// as a JSON line every 5 s.
    #[command(
        after_help = "Example:\n  hashmesh-testnet fleet --target 127.0.0.1:3333 --miners 1000 --hashrate 2000 --worker-prefix pool-a/g-1.rig-"
    )]
    Fleet {
        /// Where the miners connect (an agent's Stratum port or an endpoint), HOST:PORT.
        #[arg(long)]
        target: std::net::SocketAddr,
        /// How many miners.
        #[arg(long, default_value_t = 100)]
        miners: usize,
        /// Hashes per second per miner.
        #[arg(long, default_value_t = 2000.0)]
        hashrate: f64,
        /// Worker names are PREFIX<n>.
        #[arg(long, default_value = "pool-a/g-1.rig-")]
        worker_prefix: String,
        /// Miners do not send mining.extranonce.subscribe (they are moved by client.reconnect).
        #[arg(long)]
        no_extranonce_subscribe: bool,
        /// Print totals every this many ms.
        #[arg(long, default_value_t = 5000)]
        report_ms: u64,
    },
    /// The data plane's targets on loopback, each beside its baseline: added submit latency,
    /// memory for 10 000 miners, failover over 20 kills, commit → first job, split accuracy.
    #[command(
        after_help = "Examples:\n  hashmesh-testnet bench-proxy                       # about 4 minutes\n  hashmesh-testnet bench-proxy --split-secs 300      # the issue's 5-minute split windows\n  hashmesh-testnet bench-proxy --only latency --latency-secs 30\n  hashmesh-testnet bench-proxy --only workers        # 10 000 workers, per-worker statistics on vs off\n  hashmesh-testnet bench-proxy --json"
    )]
    BenchProxy {
        /// Miners for the memory figure.
        #[arg(long, default_value_t = 10_000)]
        miners: usize,
        /// Endpoint deaths for the failover figure.
        #[arg(long, default_value_t = 20)]
        kills: usize,
        /// Seconds of each split window.
        #[arg(long, default_value_t = 60)]
        split_secs: u64,
        /// Seconds of each latency window.
        #[arg(long, default_value_t = 10)]
        latency_secs: u64,
        /// Run only these measurements: latency, memory, workers, failover, commit, split
        /// (repeatable).
        #[arg(long)]
        only: Vec<String>,
        /// For `--only memory`: every miner a worker finding shares, with per-worker statistics
        /// for at most this many (0: off). `--only workers` runs it both ways.
        #[arg(long)]
        workers_max: Option<usize>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Serve one pool's Stratum endpoints and run its miner fleet (started by `up`/`start`).
    Stratum {
        /// Node name or index.
        node: String,
    },
    /// Start one node (by name, e.g. pool-b, or index).
    Start {
        /// Node name or index.
        node: String,
    },
    /// Stop one node.
    Stop {
        /// Node name or index.
        node: String,
    },
    /// Show nodes, heights, app hashes and processes.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Degrade, kill or restore an endpoint's synthetic telemetry (the scheduling loop reacts).
    #[command(after_help = "Example:\n  testnet/chaos degrade pool-a/ep-1\n  testnet/chaos restore pool-a/ep-1")]
    Chaos {
        /// degrade, kill or restore.
        mode: String,
        /// The endpoint, e.g. pool-a/ep-1.
        endpoint: String,
    },
    /// Stop every node (and with --wipe delete the cluster).
    Down {
        /// Also delete the cluster directory.
        #[arg(long)]
        wipe: bool,
    },
    /// Run a testnet node (`hashmesh start` with the synthetic telemetry model when its config
    /// says `scheduler.source = "synthetic"`; the node says so loudly). The cluster runs this.
    Node {
        /// Node home.
        #[arg(long)]
        home: PathBuf,
    },
    /// The agent's commands (the cluster runs `agent start`).
    Agent {
        #[command(subcommand)]
        cmd: hashmesh_agent::cli::AgentCmd,
    },
    /// Committed tx/s of hashmesh vs CometBFT's kvstore on loopback clusters, in one run.
    #[command(
        after_help = "Examples:\n  hashmesh-testnet bench-cluster --cometbft ~/.cache/hashmesh/tools/bin/cometbft --duration-secs 20                 # saturation\n  hashmesh-testnet bench-cluster --cometbft ~/.cache/hashmesh/tools/bin/cometbft --concurrency 8 --rate 50         # latency at light load"
    )]
    BenchCluster {
        /// The cometbft binary.
        #[arg(long, env = "HASHMESH_COMETBFT")]
        cometbft: PathBuf,
        /// Validators per cluster.
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// Seconds of load per application.
        #[arg(long, default_value_t = 20)]
        duration_secs: u64,
        /// Concurrent broadcasters.
        #[arg(long, default_value_t = 128)]
        concurrency: usize,
        /// Offer this many tx/s in total (open loop, for latency); default: closed loop (saturation).
        #[arg(long)]
        rate: Option<f64>,
        /// Working directory for the two clusters.
        #[arg(long, default_value = "target/bench-cluster")]
        work_dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Lending on a real cluster: kill both of pool-a's endpoints and time the first share its
    /// miners get accepted at a lender (beside the local failover of one endpoint), restore,
    /// repeat; p50 and p99 over the runs.
    #[command(
        after_help = "Examples:\n  hashmesh-testnet bench-lending --cometbft ~/.cache/hashmesh/tools/bin/cometbft            # 10 runs, about 10 minutes\n  hashmesh-testnet bench-lending --cometbft ~/.cache/hashmesh/tools/bin/cometbft --runs 3 --json"
    )]
    BenchLending {
        /// The cometbft binary.
        #[arg(long, env = "HASHMESH_COMETBFT")]
        cometbft: PathBuf,
        /// Kill-both / restore cycles.
        #[arg(long, default_value_t = 10)]
        runs: usize,
        /// Working directory for the cluster (wiped first and at the end).
        #[arg(long, default_value = "target/bench-lending")]
        work_dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Perturb the running cluster under load — SIGKILL of nodes' processes, SIGSTOP/SIGCONT,
    /// aborts inside Commit (the store's crash window), SIGKILL of agents — and check after
    /// each that every node catches up to one state root and nothing committed is lost; at the
    /// end, no transaction twice and `audit verify` on every node. Prints a table and the seed.
    #[command(
        after_help = "Examples:\n  testnet/faults                                   # 20 kills, 3 pauses, 4 crashes, 3 agent kills, 3 partitions (with up --links/--wan), random seed\n  testnet/faults --seed 42 --kills 5 --pauses 1 --crashes 2 --json\n\nThe seed is printed: rerun with --seed to repeat the same choices."
    )]
    Faults {
        /// Seed for every random choice (default: from the clock; printed).
        #[arg(long)]
        seed: Option<u64>,
        /// SIGKILLs of a node's CometBFT, hashmesh or both.
        #[arg(long, default_value_t = 20)]
        kills: usize,
        /// SIGSTOP/SIGCONT of a validator for 1.5–4 s.
        #[arg(long, default_value_t = 3)]
        pauses: usize,
        /// Aborts inside Commit (before and after persisting, alternately).
        #[arg(long, default_value_t = 4)]
        crashes: usize,
        /// SIGKILLs of an agent.
        #[arg(long, default_value_t = 3)]
        agent_kills: usize,
        /// Partitions of a validator from every peer for 3–8 s (needs `up --links` or `--wan`).
        #[arg(long, default_value_t = 3)]
        partitions: usize,
        /// Generated directives per second.
        #[arg(long, default_value_t = 2.0)]
        load: f64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The fault suite at one perturbation a minute for --minutes, with every process's
    /// resident memory sampled every 10 s and checked against named bounds.
    #[command(
        after_help = "Examples:\n  testnet/up --links --no-demo && hashmesh-testnet --dir testnet/.data soak --minutes 30\n  hashmesh-testnet --dir testnet/.data soak --minutes 5 --seed 3 --json"
    )]
    Soak {
        /// How long, minutes (one perturbation each).
        #[arg(long, default_value_t = 30)]
        minutes: u64,
        /// Seed for every random choice (default: from the clock; printed).
        #[arg(long)]
        seed: Option<u64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Relay the cluster's plane links between nodes with their WAN delay (started by
    /// `up --wan`; QUIC is UDP, which Toxiproxy cannot carry). Runs until stopped.
    #[command(hide = true)]
    WanRelay,
    /// The cluster with its p2p links through Toxiproxy, on loopback and WAN-shaped (pools
    /// 50–150 ms apart): directive broadcast-to-commit latency and the scheduling loop's
    /// reaction to a dead endpoint, side by side.
    #[command(
        after_help = "Examples:\n  hashmesh-testnet bench-wan --cometbft ~/.cache/hashmesh/tools/bin/cometbft\n  hashmesh-testnet bench-wan --cometbft ~/.cache/hashmesh/tools/bin/cometbft --directives 10 --json"
    )]
    BenchWan {
        /// The cometbft binary.
        #[arg(long, env = "HASHMESH_COMETBFT")]
        cometbft: PathBuf,
        /// Directives timed per cluster.
        #[arg(long, default_value_t = 20)]
        directives: usize,
        /// Working directory for the clusters (wiped first and at the end).
        #[arg(long, default_value = "target/bench-wan")]
        work_dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// `hashmesh audit verify` over a long history beside fetching the same blocks only: a
    /// fresh cluster makes `--blocks` blocks (a route every blocks/20), then both reads run.
    #[command(
        after_help = "Examples:\n  hashmesh-testnet bench-audit --cometbft ~/.cache/hashmesh/tools/bin/cometbft                 # 10 000 blocks on 4 validators\n  hashmesh-testnet bench-audit --cometbft ~/.cache/hashmesh/tools/bin/cometbft --blocks 500 --json"
    )]
    BenchAudit {
        /// The cometbft binary.
        #[arg(long, env = "HASHMESH_COMETBFT")]
        cometbft: PathBuf,
        /// Validators.
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// Blocks of history.
        #[arg(long, default_value_t = 10_000)]
        blocks: u64,
        /// Working directory for the cluster (wiped first).
        #[arg(long, default_value = "target/bench-audit")]
        work_dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Chain load of telemetry at several pool counts: one transaction per endpoint (before)
    /// against one batch per pool (after), committed on one loopback cluster.
    #[command(
        after_help = "Examples:\n  hashmesh-testnet bench-telemetry --cometbft ~/.cache/hashmesh/tools/bin/cometbft                 # 4, 20 and 100 pools of 20 endpoints\n  hashmesh-testnet bench-telemetry --cometbft ~/.cache/hashmesh/tools/bin/cometbft --pools 4,20 --epochs 1 --json"
    )]
    BenchTelemetry {
        /// The cometbft binary.
        #[arg(long, env = "HASHMESH_COMETBFT")]
        cometbft: PathBuf,
        /// Pool counts, comma-separated (each at most 124).
        #[arg(long, value_delimiter = ',', default_values_t = [4usize, 20, 100])]
        pools: Vec<usize>,
        /// Endpoints per pool.
        #[arg(long, default_value_t = 20)]
        endpoints: usize,
        /// Epochs per pool count and form.
        #[arg(long, default_value_t = 2)]
        epochs: usize,
        /// The epoch length the per-second figures are for, seconds.
        #[arg(long, default_value_t = 10.0)]
        epoch_secs: f64,
        /// Concurrent broadcasters.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Working directory for the cluster.
        #[arg(long, default_value = "target/bench-telemetry")]
        work_dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() {
    let code = match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hashmesh-testnet: error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("HASHMESH_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn run(cli: Cli) -> Result<i32> {
    let dir = cli.dir;
    match cli.cmd {
        Cmd::Up { validators, cometbft, base_port, no_demo, miners_per_group, miner_hashrate, observe, links, wan } => {
            if !(miner_hashrate.is_finite() && miner_hashrate > 0.0) {
                bail!("--miner-hashrate must be a positive number of hashes per second");
            }
            let traffic =
                commands::Traffic { miners_per_group, hashrate_hs: miner_hashrate, ..commands::Traffic::default() };
            let prometheus = observe.then(hashmesh_testnet::observe::prometheus_binary).transpose()?;
            let toxiproxy = if links || wan { Some(hashmesh_testnet::links::toxiproxy()?) } else { None };
            let opts = commands::UpOptions {
                run_demo: !no_demo,
                traffic: &traffic,
                observe: prometheus.as_deref(),
                links: toxiproxy.as_deref().map(|t| (t, wan)),
            };
            commands::up(&dir, validators, &cometbft, base_port, &opts)
        }
        Cmd::Fleet { target, miners, hashrate, worker_prefix, no_extranonce_subscribe, report_ms } => {
            if !(hashrate.is_finite() && hashrate > 0.0) {
                bail!("--hashrate must be a positive number of hashes per second");
            }
            rlimit::increase_nofile_limit(u64::MAX).context("raising the open-file limit")?;
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            rt.block_on(async {
                let stats = hashmesh_testnet::fleet::start(&hashmesh_testnet::fleet::FleetSettings {
                    target,
                    miners,
                    hashrate_hs: hashrate,
                    worker_prefix,
                    version_rolling: true,
                    extranonce_subscribe: !no_extranonce_subscribe,
                    tick_ms: 250,
                });
                loop {
                    tokio::time::sleep(Duration::from_millis(report_ms.max(100))).await;
                    println!("{}", serde_json::to_string(&stats.totals()).unwrap_or_default());
                }
            })
        }
        Cmd::BenchProxy { miners, kills, split_secs, latency_secs, only, workers_max, json } => {
            let rows = hashmesh_testnet::bench_proxy::run(&hashmesh_testnet::bench_proxy::BenchOptions {
                miners,
                kills,
                split_secs,
                latency_secs,
                only,
                workers_max,
            })?;
            if json {
                print_json(&serde_json::to_value(&rows)?);
            } else {
                print!("{}", hashmesh_testnet::bench_proxy::render(&rows));
            }
            Ok(i32::from(rows.iter().any(|r| !r.ok)))
        }
        Cmd::Stratum { node } => {
            init_logging();
            let cluster = hashmesh_testnet::Cluster::load(&dir)?.context("no cluster here; run testnet/up")?;
            let i = cluster.node_index(&node)?;
            hashmesh_testnet::traffic::serve(&cluster, i)?;
            Ok(0)
        }
        Cmd::Start { node } => commands::start(&dir, &node),
        Cmd::Stop { node } => commands::stop(&dir, &node),
        Cmd::Status { json } => commands::status(&dir, json),
        Cmd::Down { wipe } => commands::down(&dir, wipe),
        Cmd::Chaos { mode, endpoint } => commands::chaos(&dir, &mode, &endpoint),
        Cmd::Node { home } => {
            init_logging();
            let home = Home::load(&home)?;
            let model = SyntheticSource::new(home.dir.clone(), home.config.scheduler.seed);
            hashmesh_node::daemon::run_with(&home, Some(Box::new(model)))?;
            Ok(0)
        }
        Cmd::Agent { cmd } => {
            if matches!(cmd, hashmesh_agent::cli::AgentCmd::Start { .. }) {
                init_logging();
            }
            hashmesh_agent::cli::run(cmd)
        }
        Cmd::BenchCluster { cometbft, validators, duration_secs, concurrency, rate, work_dir, json } => {
            if rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
                bail!("--rate must be a positive number of transactions per second");
            }
            let report = bench::run(&bench::BenchSpec {
                cometbft,
                hashmesh: std::env::current_exe()?,
                validators,
                duration: Duration::from_secs(duration_secs),
                concurrency,
                rate,
                work_dir,
            })?;
            if json {
                print_json(&serde_json::to_value(&report)?);
            } else {
                print!("{}", bench::render(&report));
            }
            Ok(0)
        }
        Cmd::Faults { seed, kills, pauses, crashes, agent_kills, partitions, load, json } => {
            if !(load.is_finite() && load > 0.0) {
                bail!("--load must be a positive number of directives per second");
            }
            let seed = seed.unwrap_or_else(|| {
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_secs())
            });
            let spec = hashmesh_testnet::faults::FaultSpec {
                seed,
                kills,
                pauses,
                crashes,
                agent_kills,
                partitions,
                load_per_sec: load,
                every: None,
            };
            let report = hashmesh_testnet::faults::run(&dir, &spec)?;
            if json {
                print_json(&serde_json::to_value(&report)?);
            } else {
                print!("{}", hashmesh_testnet::faults::render(&report));
            }
            Ok(i32::from(!report.ok))
        }
        Cmd::WanRelay => {
            let cluster = hashmesh_testnet::Cluster::load(&dir)?.context("no cluster here; run testnet/up --wan")?;
            let links = cluster.links.as_ref().context("this cluster has no links; run testnet/up --wan")?;
            let relays = hashmesh_testnet::links::relays(links)?;
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(hashmesh_testnet::udp_delay::serve_all(relays))?;
            Ok(0)
        }
        Cmd::Soak { minutes, seed, json } => {
            if minutes == 0 {
                bail!("--minutes must be at least 1");
            }
            let seed = seed.unwrap_or_else(|| {
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_secs())
            });
            let links = hashmesh_testnet::cluster::Cluster::load(&dir)?.is_some_and(|c| c.links.is_some());
            let report = hashmesh_testnet::soak::run(&dir, minutes, seed, links)?;
            if json {
                print_json(&serde_json::to_value(&report)?);
            } else {
                print!("{}", hashmesh_testnet::soak::render(&report));
            }
            Ok(i32::from(!report.ok))
        }
        Cmd::BenchWan { cometbft, directives, work_dir, json } => {
            if directives == 0 {
                bail!("--directives must be at least 1");
            }
            let toxiproxy = hashmesh_testnet::links::toxiproxy()?;
            let rows = hashmesh_testnet::bench_wan::run(&cometbft, &toxiproxy, &work_dir, directives)?;
            if json {
                print_json(&serde_json::to_value(&rows)?);
            } else {
                print!("{}", hashmesh_testnet::bench_wan::render(&rows));
            }
            Ok(0)
        }
        Cmd::BenchAudit { cometbft, validators, blocks, work_dir, json } => {
            if validators == 0 {
                bail!("--validators must be at least 1");
            }
            let b = hashmesh_testnet::bench_audit::run(&cometbft, &work_dir, validators, blocks)?;
            if json {
                print_json(&serde_json::to_value(&b)?);
            } else {
                print!("{}", hashmesh_testnet::bench_audit::render(&b));
            }
            Ok(0)
        }
        Cmd::BenchLending { cometbft, runs, work_dir, json } => {
            if runs == 0 {
                bail!("--runs must be at least 1");
            }
            let rows = hashmesh_testnet::bench_lending::run(&cometbft, &work_dir, runs)?;
            if json {
                print_json(&serde_json::to_value(&rows)?);
            } else {
                print!("{}", hashmesh_testnet::bench_lending::render(&rows));
            }
            Ok(0)
        }
        Cmd::BenchTelemetry { cometbft, pools, endpoints, epochs, epoch_secs, concurrency, work_dir, json } => {
            if !(epoch_secs.is_finite() && epoch_secs > 0.0) {
                bail!("--epoch-secs must be a positive number of seconds");
            }
            let rows =
                hashmesh_testnet::bench_telemetry::run(&hashmesh_testnet::bench_telemetry::TelemetryBenchSpec {
                    cometbft,
                    hashmesh: std::env::current_exe()?,
                    pools,
                    endpoints,
                    epochs,
                    epoch_secs,
                    concurrency,
                    work_dir,
                })?;
            if json {
                print_json(&serde_json::to_value(&rows)?);
            } else {
                print!("{}", hashmesh_testnet::bench_telemetry::render(&rows, epoch_secs));
            }
            Ok(0)
        }
    }
}
