//! The `hashmesh` node: CLI commands, the node daemon (ABCI server, instruction plane, metrics,
//! scheduling loop), the CometBFT RPC client and auditing. IO lives here; rules live in
//! `hashmesh-protocol` and `hashmesh-abci::core`. The local testnet (generator, processes,
//! demo, synthetic telemetry, cluster benchmark) is `hashmesh-testnet`, which the daemon never
//! imports.

pub mod audit;
pub mod audit_loans;
pub mod daemon;
pub mod doctor;
pub mod genesis_file;
pub mod home;
pub mod live;
pub mod metrics;
pub mod output;
pub mod plane;
pub mod query_cmd;
pub mod rpc;
pub mod signer;
pub mod sim_cmd;
pub mod tx_cmd;
pub mod verify;
