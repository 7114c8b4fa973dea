//! The `hashmesh` node: CLI commands, the node daemon (ABCI server and metrics), the CometBFT
//! RPC client, auditing, and the local testnet tooling. IO lives here; rules live in
//! `hashmesh-protocol` and `hashmesh-abci::core`.

pub mod audit;
pub mod bench;
pub mod daemon;
pub mod home;
pub mod live;
pub mod metrics;
pub mod output;
pub mod plane;
pub mod query_cmd;
pub mod rpc;
pub mod signer;
pub mod sim_cmd;
pub mod testnet;
pub mod tx_cmd;
