//! hashmesh protocol: the wire and domain types every process agrees on.
//!
//! This crate is pure: no IO, no clock, no randomness. It owns
//! - identifiers ([`PoolId`], [`EndpointId`], [`GroupId`], [`DirectiveId`]),
//! - the transaction envelope ([`SignedTx`]) and its bodies ([`Body`]),
//! - the one canonical encoding ([`codec`], bincode 2.0.1 behind a single module),
//! - signing over domain-separated bytes and strict verification ([`signing`]),
//! - the named limits ([`limits`]) and the stable rejection codes ([`RejectCode`]),
//! - the integer rules the chain enforces and the planner plans with ([`rules`]),
//! - measured telemetry on chain and on the plane ([`telemetry`]),
//! - the integer settlement of loans and the decayed reward weights ([`settle`]).
#![deny(clippy::float_arithmetic)]

pub mod body;
pub mod codec;
pub mod codes;
pub mod ids;
pub mod limits;
pub mod plane;
pub mod rules;
pub mod settle;
pub mod signing;
pub mod telemetry;
pub mod tx;

pub use body::{Body, LoanWork, Receipt, RouteTarget, TelemetryReport, BASIS_POINTS_TOTAL, RECEIPTS_PER_TX_MAX};
pub use codec::DecodeError;
pub use codes::RejectCode;
pub use ids::{AgentId, DirectiveId, EndpointId, GroupId, IdError, PoolId};
pub use signing::{PoolKey, SigningKey, VerifyError};
pub use telemetry::{EndpointWindow, LatencyBuckets, LatencyPercentiles, Measurement, TelemetryEntry};
pub use tx::{SignedTx, UnsignedTx};
