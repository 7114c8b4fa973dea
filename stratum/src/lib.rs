//! Stratum V1 as miners and pools speak it — pure and sans-IO (no async runtime, no sockets, no clock):
//! the agent's proxy and the testnet's endpoint server and miner fleet will drive it.
//!
//! - [`codec`]: `\n`-terminated lines, bounded by `STRATUM_LINE_BYTES_MAX`.
//! - [`message`]: typed miner and pool messages, checked at the edge (hex sizes, list bounds),
//!   errors with the pools' codes 20–25.
//! - [`share`]: coinbase → merkle root → header → SHA-256d → difficulty, as a pool checks a share.
//! - [`extranonce`]: per-miner prefixes carved from an upstream's extranonce2.
//! - [`miner`]: one downstream miner's session — every submit answered exactly once.
//! - [`pool`]: one upstream session to a pool endpoint — login, jobs, verdicts mapped back.
//! - [`endpoint`]: a pool endpoint's side for the testnet — synthetic jobs, books, chaos.
//! - [`client`]: a virtual miner doing real SHA-256d work (the testnet's fleet).

pub mod client;
pub mod codec;
pub mod endpoint;
pub mod extranonce;
pub mod message;
pub mod miner;
pub mod pool;
pub mod share;
