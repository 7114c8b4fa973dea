//! A virtual miner — the testnet fleet's unit — as a sans-IO state machine: it says hello as
//! ASIC firmware does (configure with version rolling, subscribe, authorize, extranonce
//! subscribe), follows jobs, difficulty, extranonce and version-mask changes, and does real
//! SHA-256d work: [`MinerClient::work`] tries a budget of nonces and queues a submit for each
//! hash that meets the difficulty. It counts every answer, so a test can check that each share
//! it sent was answered exactly once.

use std::collections::{BTreeMap, VecDeque};

use serde_json::Value;

use crate::message::{ClientMessage, Id, Notify, ServerMessage, Submit};
use crate::share::{coinbase, hash_difficulty, header, merkle_root, sha256d};

/// How the virtual miner identifies itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Worker name (`<group>.<name>` for a hashmesh agent).
    pub worker: String,
    /// Version-rolling mask it asks for (0: no version rolling).
    pub version_mask: u32,
    /// Whether it sends `mining.extranonce.subscribe`.
    pub extranonce_subscribe: bool,
    /// Its user agent.
    pub user_agent: String,
}

/// What the driver must act on besides writing lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The pool asked it to reconnect (`client.reconnect`): close and connect again.
    Reconnect,
    /// The pool refused the worker.
    Unauthorized(String),
}

/// Answers the miner received, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientCounts {
    /// Shares submitted.
    pub submitted: u64,
    /// Answered `true`.
    pub accepted: u64,
    /// Answered with an error (other than stale).
    pub rejected: u64,
    /// Answered "job not found" (code 21): stale work.
    pub stale: u64,
    /// Answers to requests it never sent, or a second answer to one share.
    pub unexpected: u64,
    /// Jobs received.
    pub jobs: u64,
}

/// Latencies kept until the driver polls them.
pub const LATENCIES_KEPT_MAX: usize = 4096;

const ID_CONFIGURE: u64 = 1;
const ID_SUBSCRIBE: u64 = 2;
const ID_AUTHORIZE: u64 = 3;
const ID_EXTRANONCE: u64 = 4;
const ID_SHARES: u64 = 10;

/// Header fields fixed for one (job, extranonce2): the 76 bytes before the nonce.
struct Work {
    job_id: String,
    extranonce2: Vec<u8>,
    ntime: u32,
    version_bits: Option<u32>,
    prefix: [u8; 76],
    next_nonce: u64,
}

/// One virtual miner.
pub struct MinerClient {
    cfg: ClientConfig,
    extranonce1: Vec<u8>,
    extranonce2_size: usize,
    difficulty: f64,
    version_mask: u32,
    job: Option<Notify>,
    work: Option<Work>,
    extranonce2_counter: u64,
    authorized: bool,
    /// Shares sent and not answered: request id → when sent.
    pending: BTreeMap<u64, u64>,
    now: u64,
    latencies: VecDeque<u64>,
    last_job_at: u64,
    next_id: u64,
    out: VecDeque<String>,
    events: VecDeque<ClientEvent>,
    counts: ClientCounts,
}

impl MinerClient {
    /// A miner whose hello lines are ready to send.
    #[must_use]
    pub fn new(cfg: ClientConfig) -> Self {
        let mut c = Self {
            extranonce1: Vec::new(),
            extranonce2_size: 0,
            difficulty: 1.0,
            version_mask: 0,
            job: None,
            work: None,
            extranonce2_counter: 0,
            authorized: false,
            pending: BTreeMap::new(),
            now: 0,
            latencies: VecDeque::new(),
            last_job_at: 0,
            next_id: ID_SHARES,
            out: VecDeque::new(),
            events: VecDeque::new(),
            counts: ClientCounts::default(),
            cfg,
        };
        if c.cfg.version_mask != 0 {
            c.out.push_back(
                ClientMessage::Configure {
                    id: Id::Num(ID_CONFIGURE),
                    extensions: vec!["version-rolling".into()],
                    version_rolling_mask: Some(c.cfg.version_mask),
                    version_rolling_min_bit_count: Some(2),
                    minimum_difficulty: None,
                }
                .to_line(),
            );
        }
        c.out.push_back(
            ClientMessage::Subscribe { id: Id::Num(ID_SUBSCRIBE), user_agent: Some(c.cfg.user_agent.clone()) }
                .to_line(),
        );
        c.out.push_back(
            ClientMessage::Authorize { id: Id::Num(ID_AUTHORIZE), user: c.cfg.worker.clone(), password: "x".into() }
                .to_line(),
        );
        if c.cfg.extranonce_subscribe {
            c.out.push_back(ClientMessage::ExtranonceSubscribe { id: Id::Num(ID_EXTRANONCE) }.to_line());
        }
        c
    }

    /// The driver's clock, for latencies and job times (any unit and epoch, e.g. µs since the
    /// fleet started; latencies come back in it).
    pub fn set_time(&mut self, now: u64) {
        self.now = now;
    }

    /// The next measured submit → answer time, in [`MinerClient::set_time`]'s unit (the last
    /// [`LATENCIES_KEPT_MAX`] are kept).
    pub fn poll_latency(&mut self) -> Option<u64> {
        self.latencies.pop_front()
    }

    /// When the last job arrived, by [`MinerClient::set_time`]'s clock (0: none yet).
    #[must_use]
    pub fn last_job_at(&self) -> u64 {
        self.last_job_at
    }

    /// Answers so far.
    #[must_use]
    pub fn counts(&self) -> ClientCounts {
        self.counts
    }

    /// Shares sent and not answered yet.
    #[must_use]
    pub fn unanswered(&self) -> usize {
        self.pending.len()
    }

    /// The difficulty it mines at.
    #[must_use]
    pub fn difficulty(&self) -> f64 {
        self.difficulty
    }

    /// Whether it has a job to work on.
    #[must_use]
    pub fn has_work(&self) -> bool {
        self.authorized && self.job.is_some() && self.extranonce2_size > 0
    }

    /// A line from the pool (or proxy). Unreadable lines are ignored: a real miner would log
    /// them.
    pub fn handle_line(&mut self, line: &str) {
        let Ok(msg) = ServerMessage::parse(line) else { return };
        match msg {
            ServerMessage::Notify(n) => {
                self.counts.jobs += 1;
                self.last_job_at = self.now;
                self.job = Some(n);
                self.work = None;
            }
            ServerMessage::SetDifficulty(d) => self.difficulty = d,
            ServerMessage::SetExtranonce { extranonce1, extranonce2_size } => {
                self.extranonce1 = extranonce1;
                self.extranonce2_size = extranonce2_size as usize;
                self.job = None;
                self.work = None;
            }
            ServerMessage::SetVersionMask(m) => {
                self.version_mask &= m;
                self.work = None;
            }
            ServerMessage::Reconnect { .. } => self.events.push_back(ClientEvent::Reconnect),
            ServerMessage::GetVersion { id } => self
                .out
                .push_back(ClientMessage::Response { id, result: Value::from(self.cfg.user_agent.clone()) }.to_line()),
            ServerMessage::Ping { id } => {
                self.out.push_back(ClientMessage::Response { id, result: Value::from("pong") }.to_line());
            }
            ServerMessage::Response { id, result, error } => self.response(&id, &result, error.map(|e| e.code)),
        }
    }

    fn response(&mut self, id: &Id, result: &Value, error: Option<i64>) {
        let ok = error.is_none();
        let Id::Num(n) = id else {
            self.counts.unexpected += 1;
            return;
        };
        match *n {
            ID_CONFIGURE => {
                let mask = result.get("version-rolling.mask").and_then(Value::as_str);
                self.version_mask = mask.and_then(|m| u32::from_str_radix(m, 16).ok()).unwrap_or(0);
            }
            ID_SUBSCRIBE => {
                self.extranonce1 =
                    result.get(1).and_then(Value::as_str).and_then(|h| hex::decode(h).ok()).unwrap_or_default();
                self.extranonce2_size =
                    result.get(2).and_then(Value::as_u64).and_then(|n| usize::try_from(n).ok()).unwrap_or(0);
            }
            ID_AUTHORIZE => {
                self.authorized = ok && result == &Value::Bool(true);
                if !self.authorized {
                    self.events.push_back(ClientEvent::Unauthorized(result.to_string()));
                }
            }
            ID_EXTRANONCE => {}
            n => {
                let Some(sent) = self.pending.remove(&n) else {
                    self.counts.unexpected += 1;
                    return;
                };
                if self.latencies.len() >= LATENCIES_KEPT_MAX {
                    self.latencies.pop_front();
                }
                self.latencies.push_back(self.now.saturating_sub(sent));
                if ok && result == &Value::Bool(true) {
                    self.counts.accepted += 1;
                } else if error == Some(crate::message::code::JOB_NOT_FOUND) {
                    self.counts.stale += 1;
                } else {
                    self.counts.rejected += 1;
                }
            }
        }
    }

    fn fresh_work(&mut self) -> Option<Work> {
        let job = self.job.as_ref()?;
        self.extranonce2_counter += 1;
        let bytes = self.extranonce2_counter.to_le_bytes();
        let mut en2 = vec![0u8; self.extranonce2_size];
        for (i, b) in en2.iter_mut().enumerate().take(8) {
            *b = bytes[i];
        }
        // Roll one version bit pattern per extranonce2 when allowed, as ASICs do.
        let version_bits = (self.version_mask != 0)
            .then(|| (u32::try_from(self.extranonce2_counter & 0xffff).unwrap_or(0) << 13) & self.version_mask);
        let version = match version_bits {
            Some(bits) => (job.version & !self.version_mask) | bits,
            None => job.version,
        };
        let cb = coinbase(&job.coinb1, &self.extranonce1, &en2, &job.coinb2);
        let root = merkle_root(&cb, &job.merkle_branch);
        let h = header(version, &job.prevhash, &root, job.ntime, job.nbits, 0);
        let mut prefix = [0u8; 76];
        prefix.copy_from_slice(&h[..76]);
        Some(Work {
            job_id: job.job_id.clone(),
            extranonce2: en2,
            ntime: job.ntime,
            version_bits,
            prefix,
            next_nonce: 0,
        })
    }

    /// Try `hashes` nonces on the current job; each hash meeting the difficulty becomes a
    /// submit. Returns the hashes actually tried (0 without work).
    pub fn work(&mut self, hashes: u64) -> u64 {
        if !self.has_work() {
            return 0;
        }
        let mut tried = 0;
        let mut header = [0u8; 80];
        while tried < hashes {
            if self.work.as_ref().is_none_or(|w| w.next_nonce > u64::from(u32::MAX)) {
                self.work = self.fresh_work();
            }
            let Some(w) = self.work.as_mut() else { return tried };
            header[..76].copy_from_slice(&w.prefix);
            let nonce = u32::try_from(w.next_nonce).expect("bounded above");
            w.next_nonce += 1;
            header[76..].copy_from_slice(&nonce.to_le_bytes());
            tried += 1;
            if hash_difficulty(&sha256d(&header)) >= self.difficulty {
                let submit = Submit {
                    worker: self.cfg.worker.clone(),
                    job_id: w.job_id.clone(),
                    extranonce2: w.extranonce2.clone(),
                    ntime: w.ntime,
                    nonce,
                    version_bits: w.version_bits,
                };
                let id = self.next_id;
                self.next_id += 1;
                self.pending.insert(id, self.now);
                self.counts.submitted += 1;
                self.out.push_back(ClientMessage::Submit { id: Id::Num(id), submit }.to_line());
            }
        }
        tried
    }

    /// The connection was lost: unanswered shares will never be answered on it (the driver
    /// counts them as lost; a proxy that drops shares shows up here).
    pub fn disconnected(&mut self) -> usize {
        let lost = self.pending.len();
        self.pending.clear();
        lost
    }

    /// The next line to write.
    pub fn poll_transmit(&mut self) -> Option<String> {
        self.out.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }
}
