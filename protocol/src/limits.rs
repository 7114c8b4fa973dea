//! Named limits. Every collection on the wire or in state has one; nothing is unbounded.

/// Largest accepted transaction, in bytes (envelope, body and signature): a telemetry batch of
/// `TELEMETRY_ENTRIES_PER_TX_MAX` entries with the longest ids fits.
pub const TX_BYTES_MAX: usize = 8192;
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
/// Longest term of an offer, in blocks (about 11 days at 1 s blocks).
pub const OFFER_TERM_BLOCKS_MAX: u64 = 1_000_000;
/// Most entries one `ReportLoanWork` may carry.
pub const LOAN_WORK_ENTRIES_MAX: usize = 48;
/// A loan's parties may still report this many blocks after it closed (its last totals).
pub const LOAN_REPORT_GRACE_BLOCKS: u64 = 200;
/// A loan report may be timed at most this far after the block's time, ms (clock skew).
pub const LOAN_REPORT_AHEAD_MS_MAX: u64 = 60_000;
/// Most hours of settled work a pool pair's ledger keeps for reward weights (the source
/// article's 24 h window).
pub const REWARD_WINDOW_HOURS: u64 = 24;
/// Most directives one history query returns.
pub const HISTORY_PAGE_MAX: u32 = 1000;

/// Most instructions queued and not yet acknowledged for one agent; beyond it the node
/// compacts the agent's queue to the latest route of each of its groups.
pub const INSTRUCTIONS_OUTSTANDING_PER_AGENT_MAX: usize = 1024;
/// Most instructions in one write to an agent (a long-disconnected agent catches up in
/// bounded chunks; QUIC flow control bounds what is in flight).
pub const WRITE_BATCH_INSTRUCTIONS_MAX: usize = 512;
/// Most receipts recorded on chain for one directive (agents of its group); beyond it a
/// `Receipt` is refused with `ReceiptsFull`.
pub const RECEIPTS_PER_DIRECTIVE_MAX: usize = 256;
/// Most receipts a node keeps waiting to go on chain.
pub const RECEIPTS_PENDING_MAX: usize = 65_536;
/// Most endpoints whose latest agent report a node keeps.
pub const REPORTS_KEPT_MAX: usize = 4096;
/// Most commit notices waiting for the plane (a slower plane makes commits wait, never drops them).
pub const COMMIT_NOTICES_QUEUED_MAX: usize = 1024;
/// Most miner groups one agent serves (so a resynchronised queue — one route per group —
/// always fits under [`INSTRUCTIONS_OUTSTANDING_PER_AGENT_MAX`]).
pub const GROUPS_PER_AGENT_MAX: usize = 256;
/// Longest Stratum V1 line (one JSON message and its newline), bytes. A `mining.notify` with a
/// full merkle branch is about 1.5 KiB; lines over this bound close the connection.
pub const STRATUM_LINE_BYTES_MAX: usize = 16 * 1024;
/// Most merkle branch hashes in one `mining.notify` (2^16 transactions in a block).
pub const STRATUM_MERKLE_BRANCH_MAX: usize = 16;
/// Longest Stratum worker name or password, bytes.
pub const STRATUM_CREDENTIAL_BYTES_MAX: usize = 256;
/// Workers an agent keeps per-worker totals for (more are counted per endpoint only).
pub const STRATUM_WORKERS_TRACKED_MAX: usize = 100_000;
/// Miners one agent serves: its per-miner extranonce prefixes (2 bytes) address this many.
pub const STRATUM_MINERS_PER_AGENT_MAX: usize = 65_536;
/// Failover events an agent remembers for its status.
pub const STRATUM_FAILOVERS_KEPT_MAX: usize = 64;
