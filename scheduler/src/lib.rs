//! hashmesh scheduling: everything the node decides about routing, as pure functions and
//! state machines. No IO, no clock (`now_ms` is passed in), randomness only from a seeded
//! [`rng::Rng`]. Floats are fine here: this runs off chain; on-chain forms are integers
//! (`hashmesh_protocol::rules`), and plans use the committed integer health.
//!
//! - [`telemetry`]: what is measured per endpoint.
//! - [`health`]: the source article's health score, with configurable weights.
//! - [`forecast`]: EWMA throughput forecasts and the article's tiers.
//! - [`ramp`]: cold start (the article's linear ramp, Envoy's slow start).
//! - [`outlier`]: Envoy-style outlier ejection.
//! - [`phi`]: phi-accrual failure detection and backoff with full jitter.
//! - [`balancer`]: per-request endpoint choice (round robin … power of two choices).
//! - [`planner`]: the hashmesh planner — group routes with hysteresis.
//! - [`decide`]: one scheduling epoch as a pure function of committed state and measurements.
//! - [`weights`]: exact basis-point weights.
//! - [`sim`]: the simulator that compares every strategy on the same seeded workload.

pub mod balancer;
pub mod decide;
pub mod forecast;
pub mod health;
pub mod loans;
pub mod outlier;
pub mod phi;
pub mod planner;
pub mod ramp;
pub mod rng;
pub mod sim;
pub mod telemetry;
pub mod weights;
