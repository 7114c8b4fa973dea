//! One downstream miner as the proxy sees it — a sans-IO state machine. Lines from the miner go
//! in ([`MinerSession::handle_line`]), jobs and difficulty from the proxy go in
//! ([`MinerSession::handle_job`], [`MinerSession::handle_difficulty`]); lines for the miner and
//! events for the proxy come out ([`MinerSession::poll_transmit`], [`MinerSession::poll_event`]).
//!
//! Every submit gets exactly one answer: invalid shares (unknown job, duplicate, low difficulty,
//! wrong extranonce2 size, version bits outside the mask, not subscribed or authorized) are
//! answered here and never forwarded; a valid one becomes [`MinerEvent::Share`] and is answered
//! when the proxy calls [`MinerSession::answer_share`] with the upstream's verdict.

use std::collections::{BTreeSet, VecDeque};

use serde_json::{json, Value};

use crate::message::{code, ClientMessage, Id, Notify, ServerMessage, Submit};
use crate::share::{check, CheckedShare, ShareInput};

/// Jobs a miner may still submit to (older ones are stale).
pub const JOBS_KEPT_MAX: usize = 8;
/// Shares remembered per job to refuse duplicates.
pub const SHARES_REMEMBERED_PER_JOB_MAX: usize = 4096;
/// `mining.subscribe` calls allowed on one connection (a flood closes it).
pub const SUBSCRIBES_PER_CONNECTION_MAX: u32 = 4;
/// Lines waiting to be written to one miner.
pub const OUTBOUND_LINES_MAX: usize = 256;
/// The default version-rolling mask (ckpool's).
pub const VERSION_MASK_DEFAULT: u32 = 0x1fff_e000;

/// What the proxy must act on.
#[derive(Debug, Clone, PartialEq)]
pub enum MinerEvent {
    /// The miner asks to authorize as `worker`: answer with [`MinerSession::accept_authorize`]
    /// or [`MinerSession::refuse_authorize`] (the proxy maps the worker to its miner group).
    Authorize {
        /// The request id to answer.
        id: Id,
        /// Its worker name.
        worker: String,
    },
    /// A share that passed every local check: forward it upstream, then call
    /// [`MinerSession::answer_share`] with the verdict.
    Share {
        /// The miner's request id.
        id: Id,
        /// The submission as the miner sent it.
        submit: Submit,
        /// Its hash and the difficulty it meets.
        checked: CheckedShare,
        /// The difficulty it was checked against.
        difficulty: f64,
    },
    /// A share refused locally (counted, answered, not forwarded).
    Refused {
        /// The error code sent.
        code: i64,
        /// Why.
        reason: String,
    },
    /// Close the connection: the miner broke the protocol beyond an error answer.
    Close {
        /// Why (for the log).
        reason: String,
    },
}

/// What makes two shares of one job the same: extranonce2, ntime, nonce, version bits.
type ShareKey = (Vec<u8>, u32, u32, Option<u32>);

/// The proxy's settings for one miner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinerConfig {
    /// Extranonce1 the miner is given (upstream's, plus its prefix).
    pub extranonce1: Vec<u8>,
    /// Extranonce2 bytes left to the miner.
    pub extranonce2_size: usize,
    /// The version-rolling mask the upstream allows.
    pub pool_version_mask: u32,
}

/// One downstream miner.
#[derive(Debug, Clone)]
pub struct MinerSession {
    cfg: MinerConfig,
    version_mask: u32,
    subscribes: u32,
    subscribed: bool,
    extranonce_subscribed: bool,
    worker: Option<String>,
    difficulty: f64,
    /// Open jobs, oldest first, each with the shares already seen for it.
    jobs: VecDeque<(Notify, BTreeSet<ShareKey>)>,
    out: VecDeque<String>,
    events: VecDeque<MinerEvent>,
    closed: bool,
}

fn answer(id: Id, result: Value) -> String {
    ServerMessage::ok(id, result).to_line()
}

fn refuse(id: Id, code: i64, message: &str) -> String {
    ServerMessage::error(id, code, message).to_line()
}

impl MinerSession {
    /// A session for a newly connected miner.
    #[must_use]
    pub fn new(cfg: MinerConfig, difficulty: f64) -> Self {
        Self {
            cfg,
            version_mask: 0,
            subscribes: 0,
            subscribed: false,
            extranonce_subscribed: false,
            worker: None,
            difficulty,
            jobs: VecDeque::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            closed: false,
        }
    }

    /// The worker it authorized as.
    #[must_use]
    pub fn worker(&self) -> Option<&str> {
        self.worker.as_deref()
    }

    /// Whether it asked for `mining.set_extranonce` (else moving it takes `client.reconnect`).
    #[must_use]
    pub fn extranonce_subscribed(&self) -> bool {
        self.extranonce_subscribed
    }

    /// The negotiated version-rolling mask (0: none).
    #[must_use]
    pub fn version_mask(&self) -> u32 {
        self.version_mask
    }

    fn send(&mut self, line: String) {
        if self.out.len() >= OUTBOUND_LINES_MAX {
            self.close("the miner does not read what it is sent");
            return;
        }
        self.out.push_back(line);
    }

    fn close(&mut self, reason: &str) {
        if !self.closed {
            self.closed = true;
            self.events.push_back(MinerEvent::Close { reason: reason.to_owned() });
        }
    }

    fn refuse_share(&mut self, id: Id, code: i64, reason: &str) {
        self.send(refuse(id, code, reason));
        self.events.push_back(MinerEvent::Refused { code, reason: reason.to_owned() });
    }

    /// A line from the miner (the codec already bounded it).
    pub fn handle_line(&mut self, line: &str) {
        if self.closed {
            return;
        }
        let msg = match ClientMessage::parse(line) {
            Ok(m) => m,
            Err(e) => {
                // Answer when the request has an id we can read; else the stream is unusable.
                match serde_json::from_str::<Value>(line).ok().and_then(|v| v.get("id").cloned()) {
                    Some(Value::Number(n)) if n.as_u64().is_some() => {
                        let id = Id::Num(n.as_u64().expect("checked"));
                        self.send(refuse(id, code::OTHER, &e.to_string()));
                    }
                    _ => self.close(&format!("unreadable line: {e}")),
                }
                return;
            }
        };
        match msg {
            ClientMessage::Configure { id, extensions, version_rolling_mask, .. } => {
                let mut result = serde_json::Map::new();
                if extensions.iter().any(|e| e == "version-rolling") {
                    self.version_mask = self.cfg.pool_version_mask & version_rolling_mask.unwrap_or(u32::MAX);
                    result.insert("version-rolling".into(), json!(true));
                    result.insert("version-rolling.mask".into(), json!(format!("{:08x}", self.version_mask)));
                }
                for e in extensions.iter().filter(|e| *e != "version-rolling") {
                    result.insert(e.clone(), json!(false));
                }
                self.send(answer(id, Value::Object(result)));
            }
            ClientMessage::Subscribe { id, .. } => {
                self.subscribes += 1;
                if self.subscribes > SUBSCRIBES_PER_CONNECTION_MAX {
                    self.close("too many mining.subscribe on one connection");
                    return;
                }
                self.subscribed = true;
                let session = hex::encode(&self.cfg.extranonce1);
                let result = json!([
                    [["mining.set_difficulty", session], ["mining.notify", session]],
                    hex::encode(&self.cfg.extranonce1),
                    self.cfg.extranonce2_size,
                ]);
                self.send(answer(id, result));
                self.send(ServerMessage::SetDifficulty(self.difficulty).to_line());
                if let Some((job, _)) = self.jobs.back() {
                    let job = Notify { clean_jobs: true, ..job.clone() };
                    self.send(ServerMessage::Notify(job).to_line());
                }
            }
            ClientMessage::Authorize { id, user, .. } => {
                if user.trim().is_empty() {
                    self.send(refuse(id, code::UNAUTHORIZED, "empty worker name"));
                    return;
                }
                self.events.push_back(MinerEvent::Authorize { id, worker: user });
            }
            ClientMessage::ExtranonceSubscribe { id } => {
                self.extranonce_subscribed = true;
                self.send(answer(id, json!(true)));
            }
            ClientMessage::SuggestDifficulty { id, .. } => {
                // The proxy sets difficulty from the upstream and the miner's rate.
                if let Some(id) = id {
                    self.send(answer(id, json!(true)));
                }
            }
            ClientMessage::Submit { id, submit } => self.submit(id, submit),
            ClientMessage::Response { .. } => {}
        }
    }

    fn submit(&mut self, id: Id, submit: Submit) {
        if !self.subscribed {
            return self.refuse_share(id, code::NOT_SUBSCRIBED, "Not subscribed");
        }
        if self.worker.is_none() {
            return self.refuse_share(id, code::UNAUTHORIZED, "Unauthorized worker");
        }
        let Some(pos) = self.jobs.iter().position(|(j, _)| j.job_id == submit.job_id) else {
            return self.refuse_share(id, code::JOB_NOT_FOUND, "Job not found");
        };
        let key = (submit.extranonce2.clone(), submit.ntime, submit.nonce, submit.version_bits);
        if self.jobs[pos].1.contains(&key) {
            return self.refuse_share(id, code::DUPLICATE, "Duplicate share");
        }
        let input = ShareInput {
            extranonce1: &self.cfg.extranonce1,
            extranonce2: &submit.extranonce2,
            extranonce2_size: self.cfg.extranonce2_size,
            ntime: submit.ntime,
            nonce: submit.nonce,
            version_bits: submit.version_bits,
            version_mask: self.version_mask,
        };
        match check(&self.jobs[pos].0, &input, self.difficulty) {
            Ok(checked) => {
                let seen = &mut self.jobs[pos].1;
                if seen.len() < SHARES_REMEMBERED_PER_JOB_MAX {
                    seen.insert(key);
                }
                let difficulty = self.difficulty;
                self.events.push_back(MinerEvent::Share { id, submit, checked, difficulty });
            }
            Err(crate::share::ShareFault::LowDifficulty { .. }) => {
                self.refuse_share(id, code::LOW_DIFFICULTY, "Low difficulty share");
            }
            Err(e) => self.refuse_share(id, code::OTHER, &e.to_string()),
        }
    }

    /// A new job for this miner (from its current upstream). A clean job voids the others.
    pub fn handle_job(&mut self, job: Notify) {
        if job.clean_jobs {
            self.jobs.clear();
        }
        if self.jobs.len() >= JOBS_KEPT_MAX {
            self.jobs.pop_front();
        }
        self.jobs.push_back((job.clone(), BTreeSet::new()));
        if self.subscribed {
            self.send(ServerMessage::Notify(job).to_line());
        }
    }

    /// A new share difficulty (applies to jobs sent after it).
    pub fn handle_difficulty(&mut self, difficulty: f64) {
        if difficulty.is_finite() && difficulty > 0.0 {
            self.difficulty = difficulty;
            if self.subscribed {
                self.send(ServerMessage::SetDifficulty(difficulty).to_line());
            }
        }
    }

    /// The upstream's verdict on a forwarded share (`None`: accepted), or the proxy's own when
    /// the upstream died with the share in flight: the miner gets exactly this one answer.
    pub fn answer_share(&mut self, id: Id, error: Option<(i64, String)>) {
        let line = match error {
            None => answer(id, json!(true)),
            Some((code, message)) => refuse(id, code, &message),
        };
        self.send(line);
    }

    /// Accept the miner's `mining.authorize` (`id`) as `worker`.
    pub fn accept_authorize(&mut self, id: Id, worker: String) {
        self.worker = Some(worker);
        self.send(answer(id, json!(true)));
    }

    /// Refuse the miner's `mining.authorize` (`id`) with code 24 and a message that says what
    /// to fix; the connection stays open for another try.
    pub fn refuse_authorize(&mut self, id: Id, message: &str) {
        self.send(refuse(id, code::UNAUTHORIZED, message));
    }

    /// The extranonce2 size the miner rolls.
    #[must_use]
    pub fn extranonce2_size(&self) -> usize {
        self.cfg.extranonce2_size
    }

    /// The extranonce1 the miner was given.
    #[must_use]
    pub fn extranonce1(&self) -> &[u8] {
        &self.cfg.extranonce1
    }

    /// Whether it subscribed (and so may be sent work).
    #[must_use]
    pub fn subscribed(&self) -> bool {
        self.subscribed
    }

    /// Give the miner a new extranonce (`mining.set_extranonce`; its open jobs are void): only
    /// to a miner that sent `mining.extranonce.subscribe`. Returns `false` (and sends nothing)
    /// otherwise — move it with [`MinerSession::reconnect`] instead.
    pub fn set_extranonce(&mut self, extranonce1: Vec<u8>, extranonce2_size: usize) -> bool {
        if !self.extranonce_subscribed {
            return false;
        }
        let size = u32::try_from(extranonce2_size).unwrap_or(u32::MAX);
        self.cfg.extranonce1 = extranonce1.clone();
        self.cfg.extranonce2_size = extranonce2_size;
        self.jobs.clear();
        self.send(ServerMessage::SetExtranonce { extranonce1, extranonce2_size: size }.to_line());
        true
    }

    /// Ask the miner to reconnect (`client.reconnect` to the same address) and close: how a
    /// miner that cannot take `mining.set_extranonce` is moved.
    pub fn reconnect(&mut self) {
        self.send(ServerMessage::Reconnect { host: None, port: None, wait_secs: None }.to_line());
        self.close("asked to reconnect");
    }

    /// Narrow the version-rolling mask (`mining.set_version_mask`) to what a new upstream
    /// allows; no-op when the miner does not roll versions or the mask is unchanged.
    pub fn set_version_mask(&mut self, pool_mask: u32) {
        self.cfg.pool_version_mask = pool_mask;
        if self.version_mask != 0 && self.version_mask & !pool_mask != 0 {
            self.version_mask &= pool_mask;
            self.send(ServerMessage::SetVersionMask(self.version_mask).to_line());
        }
    }

    /// The next line to write to the miner.
    pub fn poll_transmit(&mut self) -> Option<String> {
        self.out.pop_front()
    }

    /// The next event for the proxy.
    pub fn poll_event(&mut self) -> Option<MinerEvent> {
        self.events.pop_front()
    }
}
