//! The local testnet: generate an N-pool cluster of real CometBFT validators, each beside a
//! `hashmesh start`, on 127.0.0.1; start and stop its processes; run a scripted demo.
//! The `testnet/` shell scripts and the end-to-end tests both drive this module.

pub mod cluster;
pub mod commands;
pub mod demo;
pub mod layout;
pub mod procs;

pub use cluster::{Cluster, NodeInfo};
pub use layout::{generate, ClusterSpec};
