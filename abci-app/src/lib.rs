//! hashmesh ABCI application.
//!
//! - [`core`]: the deterministic state machine. Pure: no IO, no clock, no randomness, no floats.
//!   `State::apply_block` maps (committed state and tree, block) to (tx results, events, writes,
//!   the state tree's new version, app hash = its root; ADR 0014).
//! - [`store`]: the only module that names sled. Persists a block's writes and tree nodes with
//!   `(height, app_hash)` in one atomic batch; proves any key at any committed height.
//! - [`query`]: read-only JSON queries over committed state, and proved raw-key queries.
//! - [`shell`]: the `tendermint_abci::Application` that CometBFT talks to; it owns the state
//!   behind one lock and moves bytes between CometBFT, the core and the store.
#![deny(clippy::float_arithmetic)]

pub mod core;
pub mod query;
pub mod server;
pub mod shell;
pub mod store;
pub mod verified;

pub use shell::{AppHandle, AppMetrics, CommitHook, CommitNotice, CrashPoint};
pub use store::Store;
