//! The hashmesh agent: the edge process of a mining pool. It connects to its pool's node over
//! the instruction plane, applies committed routes idempotently into its routing table
//! (persisted before it acknowledges), and — with a `stratum.json` — is the Stratum V1 proxy that
//! moves its miners' work by that table, sending what it measures in its heartbeats.
//!
//! Depends on `hashmesh-protocol`, `hashmesh-plane`, `hashmesh-scheduler` and `hashmesh-stratum`:
//! never on the ABCI application, tendermint or sled (`plane/tests/tidy.rs`).
//!
//! - [`home`]: key, routing table, measurements file.
//! - [`session`]: the tokio driver around `hashmesh_plane::core::agent::AgentPlane`.
//! - [`proxy`]: the Stratum proxy (sans-IO core, tokio driver, config, measurements).
//! - [`cli`]: the `hashmesh-agent` commands (also `hashmesh agent …`).

pub mod cli;
pub mod home;
pub mod proxy;
pub mod session;
