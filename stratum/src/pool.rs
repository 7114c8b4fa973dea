//! One upstream session — the proxy as a miner towards a pool endpoint — as a sans-IO state
//! machine. It says hello (configure, subscribe, authorize), keeps the pool's extranonce,
//! difficulty, version mask and jobs, forwards shares with its own request ids and maps each
//! verdict back to the share it answers. Lines from the pool go in
//! ([`PoolSession::handle_line`]); lines for the pool and [`PoolEvent`]s come out.
//!
//! A pool that sends garbage, an impossible difficulty or a malformed job is a fault: the proxy
//! treats the endpoint as dead ([`PoolEvent::Fault`]) and moves its work elsewhere.

use std::collections::{BTreeMap, VecDeque};

use serde_json::{json, Value};

use crate::message::{ClientMessage, Id, Notify, ServerMessage, Submit};

/// Shares forwarded and not yet answered on one upstream session.
pub const SHARES_IN_FLIGHT_MAX: usize = 4096;

/// What the proxy must act on.
#[derive(Debug, Clone, PartialEq)]
pub enum PoolEvent {
    /// Subscribed and authorized: the session can carry work.
    Ready {
        /// The pool's extranonce1.
        extranonce1: Vec<u8>,
        /// The pool's extranonce2 size.
        extranonce2_size: usize,
    },
    /// A new job.
    Job(Notify),
    /// A new share difficulty.
    Difficulty(f64),
    /// The pool's version-rolling mask.
    VersionMask(u32),
    /// The verdict on a forwarded share: `token` is what the proxy gave [`PoolSession::submit`].
    Verdict {
        /// The proxy's token for the share.
        token: u64,
        /// `None`: accepted; else the pool's error.
        error: Option<(i64, String)>,
    },
    /// The pool asks us to reconnect elsewhere (or later).
    Reconnect {
        /// Host, if given.
        host: Option<String>,
        /// Port, if given.
        port: Option<u16>,
    },
    /// The pool broke the protocol or refused us: the endpoint is unusable.
    Fault {
        /// Why.
        reason: String,
    },
}

/// How the session logs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolLogin {
    /// Worker name (for a cross-pool route, the lender's credentials).
    pub user: String,
    /// Password (never logged).
    pub password: String,
    /// The proxy's user agent.
    pub user_agent: String,
    /// Version-rolling mask to ask for.
    pub version_mask: u32,
}

const ID_CONFIGURE: u64 = 1;
const ID_SUBSCRIBE: u64 = 2;
const ID_AUTHORIZE: u64 = 3;
/// Share request ids start here.
const ID_SHARES: u64 = 100;

/// One upstream session.
#[derive(Debug, Clone)]
pub struct PoolSession {
    login: PoolLogin,
    subscribed: Option<(Vec<u8>, usize)>,
    authorized: bool,
    next_id: u64,
    in_flight: BTreeMap<u64, u64>,
    out: VecDeque<String>,
    events: VecDeque<PoolEvent>,
    faulted: bool,
}

impl PoolSession {
    /// A session that logs in with `login`; the hello lines are ready to transmit.
    #[must_use]
    pub fn new(login: PoolLogin) -> Self {
        let mut s = Self {
            login,
            subscribed: None,
            authorized: false,
            next_id: ID_SHARES,
            in_flight: BTreeMap::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            faulted: false,
        };
        let hello = [
            ClientMessage::Configure {
                id: Id::Num(ID_CONFIGURE),
                extensions: vec!["version-rolling".into()],
                version_rolling_mask: Some(s.login.version_mask),
                version_rolling_min_bit_count: Some(2),
                minimum_difficulty: None,
            },
            ClientMessage::Subscribe { id: Id::Num(ID_SUBSCRIBE), user_agent: Some(s.login.user_agent.clone()) },
            ClientMessage::Authorize {
                id: Id::Num(ID_AUTHORIZE),
                user: s.login.user.clone(),
                password: s.login.password.clone(),
            },
        ];
        s.out.extend(hello.iter().map(ClientMessage::to_line));
        s
    }

    /// Whether the session is subscribed and authorized.
    #[must_use]
    pub fn ready(&self) -> bool {
        self.subscribed.is_some() && self.authorized && !self.faulted
    }

    /// Shares forwarded and not answered yet (their tokens), oldest first: if the upstream dies,
    /// the proxy answers each of them itself.
    #[must_use]
    pub fn in_flight(&self) -> Vec<u64> {
        self.in_flight.values().copied().collect()
    }

    fn fault(&mut self, reason: String) {
        if !self.faulted {
            self.faulted = true;
            self.events.push_back(PoolEvent::Fault { reason });
        }
    }

    /// Forward a share under the proxy's `token`. Returns `false` (and sends nothing) when the
    /// session cannot take it (not ready, or too many in flight): answer the miner locally.
    pub fn submit(&mut self, token: u64, share: &Submit) -> bool {
        if !self.ready() || self.in_flight.len() >= SHARES_IN_FLIGHT_MAX {
            return false;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.in_flight.insert(id, token);
        let upstream = Submit { worker: self.login.user.clone(), ..share.clone() };
        self.out.push_back(ClientMessage::Submit { id: Id::Num(id), submit: upstream }.to_line());
        true
    }

    /// A line from the pool.
    pub fn handle_line(&mut self, line: &str) {
        if self.faulted {
            return;
        }
        let msg = match ServerMessage::parse(line) {
            Ok(m) => m,
            Err(e) => return self.fault(format!("pool sent an unusable line: {e}")),
        };
        match msg {
            ServerMessage::Notify(n) => self.events.push_back(PoolEvent::Job(n)),
            ServerMessage::SetDifficulty(d) => self.events.push_back(PoolEvent::Difficulty(d)),
            ServerMessage::SetVersionMask(m) => self.events.push_back(PoolEvent::VersionMask(m)),
            ServerMessage::SetExtranonce { extranonce1, extranonce2_size } => {
                self.subscribed = Some((extranonce1.clone(), extranonce2_size as usize));
                if self.ready() {
                    self.events
                        .push_back(PoolEvent::Ready { extranonce1, extranonce2_size: extranonce2_size as usize });
                }
            }
            ServerMessage::Reconnect { host, port, .. } => self.events.push_back(PoolEvent::Reconnect { host, port }),
            ServerMessage::GetVersion { id } => {
                let v = json!(self.login.user_agent);
                self.out.push_back(ClientMessage::Response { id, result: v }.to_line());
            }
            ServerMessage::Ping { id } => {
                self.out.push_back(ClientMessage::Response { id, result: json!("pong") }.to_line());
            }
            ServerMessage::Response { id, result, error } => self.response(id, &result, error),
        }
    }

    fn response(&mut self, id: Id, result: &Value, error: Option<crate::message::StratumError>) {
        let Id::Num(n) = id else { return self.fault("pool answered a request we never sent".into()) };
        match n {
            ID_CONFIGURE => {
                if let Some(mask) = result.get("version-rolling.mask").and_then(Value::as_str) {
                    match u32::from_str_radix(mask, 16) {
                        Ok(m) => self.events.push_back(PoolEvent::VersionMask(m)),
                        Err(_) => self.fault(format!("pool sent an unreadable version mask {mask:?}")),
                    }
                }
            }
            ID_SUBSCRIBE => {
                if let Some(e) = error {
                    return self.fault(format!("pool refused the subscription: {}", e.message));
                }
                let en1 =
                    result.get(1).and_then(Value::as_str).and_then(|h| hex::decode(h).ok()).filter(|b| b.len() <= 32);
                let size = result.get(2).and_then(Value::as_u64).filter(|n| (1..=32).contains(n));
                match (en1, size) {
                    (Some(en1), Some(size)) => {
                        let size = usize::try_from(size).expect("at most 32");
                        self.subscribed = Some((en1.clone(), size));
                        if self.ready() {
                            self.events.push_back(PoolEvent::Ready { extranonce1: en1, extranonce2_size: size });
                        }
                    }
                    _ => self.fault("pool's subscribe answer has no usable extranonce".into()),
                }
            }
            ID_AUTHORIZE => {
                if error.is_some() || result != &json!(true) {
                    return self.fault("pool refused the worker's credentials".into());
                }
                self.authorized = true;
                if let Some((en1, size)) = self.subscribed.clone().filter(|_| self.ready()) {
                    self.events.push_back(PoolEvent::Ready { extranonce1: en1, extranonce2_size: size });
                }
            }
            n => match self.in_flight.remove(&n) {
                Some(token) => {
                    let error = match (error, result) {
                        (None, Value::Bool(true)) => None,
                        (Some(e), _) => Some((e.code, e.message)),
                        (None, other) => Some((crate::message::code::OTHER, format!("pool answered {other}"))),
                    };
                    self.events.push_back(PoolEvent::Verdict { token, error });
                }
                None => self.fault(format!("pool answered share {n}, which is not in flight")),
            },
        }
    }

    /// The next line to write to the pool.
    pub fn poll_transmit(&mut self) -> Option<String> {
        self.out.pop_front()
    }

    /// The next event for the proxy.
    pub fn poll_event(&mut self) -> Option<PoolEvent> {
        self.events.pop_front()
    }
}
