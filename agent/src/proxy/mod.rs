//! The Stratum V1 proxy: miners connect to the agent, which sends their work to the endpoints of
//! their group's committed route, in the committed weights, and fails over on its own.
//!
//! - [`core`] — the sans-IO proxy (miners, upstreams, split, failover, books).
//! - [`split`] — the pure placement of a group's miners over its live targets.
//! - [`meter`] — measurements and the reports heartbeats carry.
//! - [`metrics`] — `/metrics` from the status.
//! - [`config`] — `stratum.json`.
//! - [`driver`] — the tokio driver (listeners, connection tasks, the actor).

pub mod config;
pub mod core;
pub mod driver;
pub mod meter;
pub mod metrics;
pub mod split;
