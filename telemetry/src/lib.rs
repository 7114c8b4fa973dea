//! The numbers every hashmesh process measures the same way, so a figure means one thing
//! whether the agent, the node or the simulator printed it:
//!
//! - [`LatencyHistogram`]: submit latency as an HDR histogram (1 µs ..= 600 s, 2 significant
//!   digits), mergeable exactly, with a bounded wire form for the plane;
//! - [`HashrateWindow`] and [`hashes_of`]: hashrate from accepted difficulty (difficulty × 2³²
//!   hashes per share) over a named window;
//! - [`host_usage_bp`]: an endpoint host's CPU and memory from two scrapes of its exporter's
//!   counters (what the owner's node adds to its agents' measurements);
//! - [`EpochBook`]: the node's merge of its agents' report windows into one epoch's
//!   [`Measurement`](hashmesh_protocol::Measurement) per endpoint — sums of counts, merged
//!   histograms for percentiles, never an average of percentiles.
//!
//! Pure: no IO, no clock (times are passed in).

pub mod book;
pub mod hashrate;
pub mod histogram;
pub mod host;

pub use book::{AgentWork, BookError, EpochBook};
pub use hashrate::{hashes_of, hashrate_hs, HashrateWindow, HASHES_PER_DIFFICULTY, HASHRATE_WINDOW_MS};
pub use histogram::LatencyHistogram;
pub use host::{host_usage_bp, HostSample};
