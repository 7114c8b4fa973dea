//! The one wall clock of the node and agent processes. Everything else takes `now_ms` (or
//! `now_us`) as an argument, so it can be driven by a test.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is set before 1970).
#[must_use]
pub fn now_ms() -> u64 {
    now_us() / 1000
}

/// Microseconds since the Unix epoch (0 if the clock is set before 1970).
#[must_use]
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}
