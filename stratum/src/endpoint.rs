//! A pool endpoint's side of Stratum, for the testnet: jobs on a synthetic chain, real share
//! validation (each connection is a [`MinerSession`]: coinbase, merkle root, header, SHA-256d
//! against the endpoint's difficulty), per-worker books, and the chaos a test or
//! `testnet/chaos` puts on it (an error rate, refusing work). Sans-IO like the rest: the
//! testnet's server moves the bytes and adds the latency.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::message::{code, Notify};
use crate::miner::{MinerConfig, MinerEvent, MinerSession, VERSION_MASK_DEFAULT};
use crate::share::sha256d;

/// Extranonce2 bytes the endpoint gives each connection (ckpool's default).
pub const EXTRANONCE2_SIZE: usize = 8;

/// Jobs of a synthetic chain: a new block every so often (clean jobs), refreshed jobs between.
#[derive(Debug, Clone)]
pub struct JobChain {
    tag: Vec<u8>,
    height: u64,
    seq: u64,
}

impl JobChain {
    /// A chain whose coinbase carries `tag` (the endpoint's name), so endpoints' work differs.
    #[must_use]
    pub fn new(tag: &str) -> Self {
        Self { tag: tag.as_bytes().iter().copied().take(64).collect(), height: 1, seq: 0 }
    }

    /// The next job at `now_secs`; `new_block` makes it clean (earlier jobs stale).
    pub fn next(&mut self, now_secs: u32, new_block: bool) -> Notify {
        if new_block {
            self.height += 1;
        }
        self.seq += 1;
        let prevhash = sha256d(&self.height.to_le_bytes());
        // A coinbase shaped like a real one: version, one input with the height and our tag in
        // its script, the extranonces, and one output.
        let mut coinb1 =
            hex::decode("01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff")
                .expect("constant");
        let height = self.height.to_le_bytes();
        let script_len = 1 + 4 + 1 + self.tag.len() + 4 + EXTRANONCE2_SIZE;
        coinb1.push(u8::try_from(script_len).unwrap_or(u8::MAX));
        coinb1.push(4);
        coinb1.extend_from_slice(&height[..4]);
        coinb1.push(u8::try_from(self.tag.len()).unwrap_or(u8::MAX));
        coinb1.extend_from_slice(&self.tag);
        let coinb2 =
            hex::decode("ffffffff0100f2052a010000001976a914000000000000000000000000000000000000000088ac00000000")
                .expect("constant");
        let branch = vec![sha256d(&self.seq.to_le_bytes()), sha256d(&self.height.to_be_bytes())];
        Notify {
            job_id: format!("{:x}", self.seq),
            prevhash,
            coinb1,
            coinb2,
            merkle_branch: branch,
            version: 0x2000_0000,
            nbits: 0x1d00_ffff,
            ntime: now_secs,
            clean_jobs: new_block,
        }
    }
}

/// What `testnet/chaos` does to an endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chaos {
    /// Added before every answer, ms.
    #[serde(default)]
    pub latency_ms: u64,
    /// Shares refused with code 20, basis points.
    #[serde(default)]
    pub error_bp: u16,
    /// Refuse new work: authorizations are refused and shares answered with code 20.
    #[serde(default)]
    pub refuse: bool,
    /// Down: the server closes every connection and accepts none.
    #[serde(default)]
    pub down: bool,
}

/// One worker's books at the endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerBook {
    /// Shares accepted.
    pub accepted: u64,
    /// Shares refused.
    pub rejected: u64,
    /// Shares for replaced jobs.
    pub stale: u64,
    /// Sum of the difficulty of accepted shares.
    pub accepted_difficulty: f64,
}

/// Books per worker.
pub type Books = BTreeMap<String, WorkerBook>;

/// One connection to the endpoint.
pub struct EndpointConn {
    session: MinerSession,
    error_acc: u32,
}

impl EndpointConn {
    /// Connection number `index` (its extranonce1), at `difficulty`, with the current `job`.
    #[must_use]
    pub fn new(index: u32, difficulty: f64, job: Option<Notify>) -> Self {
        Self::with_extranonce2_size(index, EXTRANONCE2_SIZE, difficulty, job)
    }

    /// The same, giving the connection `extranonce2_size` bytes (pools differ: 4 to 8).
    #[must_use]
    pub fn with_extranonce2_size(index: u32, extranonce2_size: usize, difficulty: f64, job: Option<Notify>) -> Self {
        let cfg = MinerConfig {
            extranonce1: index.to_be_bytes().to_vec(),
            extranonce2_size,
            pool_version_mask: VERSION_MASK_DEFAULT,
        };
        let mut session = MinerSession::new(cfg, difficulty);
        if let Some(j) = job {
            session.handle_job(j);
        }
        Self { session, error_acc: 0 }
    }

    /// A line from the connection; `false` when it must be closed.
    pub fn handle_line(&mut self, line: &str, chaos: &Chaos, books: &mut Books) -> bool {
        self.session.handle_line(line);
        let mut open = true;
        while let Some(ev) = self.session.poll_event() {
            match ev {
                MinerEvent::Authorize { id, worker } => {
                    if chaos.refuse {
                        self.session.refuse_authorize(id, "this endpoint refuses new work now");
                    } else {
                        self.session.accept_authorize(id, worker);
                    }
                }
                MinerEvent::Share { id, submit, difficulty, .. } => {
                    let book = books.entry(submit.worker.clone()).or_default();
                    self.error_acc += u32::from(chaos.error_bp.min(10_000));
                    if chaos.refuse {
                        book.rejected += 1;
                        self.session.answer_share(id, Some((code::OTHER, "not accepting work".into())));
                    } else if self.error_acc >= 10_000 {
                        self.error_acc -= 10_000;
                        book.rejected += 1;
                        self.session.answer_share(id, Some((code::OTHER, "internal error (chaos)".into())));
                    } else {
                        book.accepted += 1;
                        book.accepted_difficulty += difficulty;
                        self.session.answer_share(id, None);
                    }
                }
                MinerEvent::Refused { code: c, .. } => {
                    // Refused by the session's checks: books under the connection's worker.
                    let worker = self.session.worker().unwrap_or("-").to_owned();
                    let book = books.entry(worker).or_default();
                    if c == code::JOB_NOT_FOUND {
                        book.stale += 1;
                    } else {
                        book.rejected += 1;
                    }
                }
                MinerEvent::Close { .. } => open = false,
            }
        }
        open
    }

    /// A new job for this connection.
    pub fn handle_job(&mut self, job: Notify) {
        self.session.handle_job(job);
    }

    /// The next line to write.
    pub fn poll_transmit(&mut self) -> Option<String> {
        self.session.poll_transmit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{ClientConfig, MinerClient};

    /// A virtual miner and an endpoint connection talking directly: shares found by real
    /// SHA-256d are accepted, an error rate refuses its share exactly, a new block voids work.
    #[test]
    fn a_virtual_miner_mines_on_a_synthetic_chain() {
        let mut chain = JobChain::new("pool-a/ep-1");
        let difficulty = 1.0 / 65_536.0;
        let mut conn = EndpointConn::new(7, difficulty, Some(chain.next(1_700_000_000, true)));
        let mut miner = MinerClient::new(ClientConfig {
            worker: "pool-a.agent".into(),
            version_mask: 0xffff_ffff,
            extranonce_subscribe: true,
            user_agent: "test".into(),
        });
        let mut books = Books::new();
        let pump = |conn: &mut EndpointConn, miner: &mut MinerClient, chaos: &Chaos, books: &mut Books| {
            for _ in 0..4 {
                while let Some(l) = miner.poll_transmit() {
                    assert!(conn.handle_line(&l, chaos, books));
                }
                while let Some(l) = conn.poll_transmit() {
                    miner.handle_line(&l);
                }
            }
        };
        pump(&mut conn, &mut miner, &Chaos::default(), &mut books);
        assert!(miner.has_work());
        miner.work(2_000_000);
        pump(&mut conn, &mut miner, &Chaos::default(), &mut books);
        let c = miner.counts();
        assert!(c.submitted > 5, "{c:?}");
        assert_eq!((c.accepted, c.rejected, c.unexpected), (c.submitted, 0, 0));
        assert_eq!(books["pool-a.agent"].accepted, c.submitted);

        let chaos = Chaos { error_bp: 5000, ..Chaos::default() };
        miner.work(2_000_000);
        pump(&mut conn, &mut miner, &chaos, &mut books);
        let d = miner.counts();
        assert_eq!(d.rejected, (d.submitted - c.submitted) / 2, "every second share refused: {d:?}");
        assert_eq!(miner.unanswered(), 0);

        conn.handle_job(chain.next(1_700_000_030, true));
        pump(&mut conn, &mut miner, &Chaos::default(), &mut books);
        assert_eq!(miner.counts().jobs, 2);
    }
}
