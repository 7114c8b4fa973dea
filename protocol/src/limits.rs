//! Named limits. Every collection on the wire or in state has one; nothing is unbounded.

/// Largest accepted transaction, in bytes (envelope, body and signature).
pub const TX_BYTES_MAX: usize = 2048;
/// Longest chain id, in bytes (CometBFT allows 50).
pub const CHAIN_ID_BYTES_MAX: usize = 50;
/// Longest endpoint or miner-group id, in bytes.
pub const ID_BYTES_MAX: usize = 64;
/// Most endpoints one route may split a miner group across.
pub const ROUTES_PER_GROUP_MAX: usize = 16;
/// Most recent nonces remembered per mining pool for replay protection.
/// A nonce at or below the smallest remembered one is refused once the window is full.
pub const NONCES_RETAINED_PER_POOL: usize = 1024;
/// Most directives that may wait for votes at once, chain-wide.
pub const PENDING_DIRECTIVES_MAX: usize = 4096;
/// Most mining pools in one network.
pub const POOLS_MAX: usize = 128;
/// Most endpoints per mining pool.
pub const ENDPOINTS_PER_POOL_MAX: usize = 256;
/// Most miner groups per mining pool.
pub const GROUPS_PER_POOL_MAX: usize = 1024;
/// Longest vote window a genesis may set, in blocks.
pub const VOTE_WINDOW_BLOCKS_MAX: u64 = 100_000;
/// Most directives one history query returns.
pub const HISTORY_PAGE_MAX: u32 = 1000;
