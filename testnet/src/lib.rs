//! The hashmesh local testnet: generate an N-pool cluster of real CometBFT validators, each
//! beside a hashmesh node, on 127.0.0.1; start and stop its processes by pid; run a scripted
//! demo; steer the synthetic telemetry model (`chaos`); benchmark hashmesh against CometBFT's
//! kvstore. The `testnet/` scripts drive the `hashmesh-testnet` binary; the node daemon never
//! imports this crate.
//!
//! - [`layout`]: `generate` a cluster (homes, genesis, configs, agents); [`cluster`]: `cluster.json`.
//! - [`procs`]: start and stop processes by pid; [`commands`]: `up`, `start`, `stop`, `status`,
//!   `chaos`, `down`; [`demo`]: the scripted demo and status rows.
//! - [`endpoint`]: a real Stratum V1 pool endpoint with status, metrics and chaos over HTTP;
//!   [`fleet`]: many virtual miners doing real SHA-256d work.
//! - [`traffic`]: a pool's endpoints and fleet as one process; chaos and status over HTTP.
//! - [`synthetic`]: the modelled endpoint telemetry a testnet node runs with.
//! - [`install`]: where tests find `cometbft`.
//! - [`bench`](mod@bench): `bench-cluster` (hashmesh vs kvstore, one run); [`bench_proxy`]:
//!   `bench-proxy` (the data plane's targets beside their baselines).

pub mod bench;
pub mod bench_audit;
pub mod bench_lending;
pub mod bench_proxy;
pub mod bench_telemetry;
pub mod bench_wan;
pub mod cluster;
pub mod commands;
pub mod demo;
pub mod endpoint;
pub mod faults;
pub mod fleet;
pub mod install;
pub mod layout;
pub mod links;
pub mod observe;
pub mod procs;
pub mod rng;
pub mod soak;
pub mod synthetic;
pub mod traffic;
pub mod udp_delay;

pub use cluster::{Cluster, NodeInfo};
pub use layout::{generate, ClusterSpec};
