//! Typed Stratum V1 messages, in the dialect ASIC firmware (cgminer/bmminer), ckpool and SRI
//! speak: JSON-RPC 1.0-ish lines with `id`, `method`, `params`; responses with `result` and an
//! `error` that is `null` or `[code, message, null]`. Untrusted JSON is checked into these types
//! at the edge (hex sizes, list bounds, credential lengths), so nothing malformed travels on.

use hashmesh_protocol::limits::{STRATUM_CREDENTIAL_BYTES_MAX, STRATUM_MERKLE_BRANCH_MAX};
use serde_json::{json, Value};

/// A request id: miners use numbers, some pools strings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Id {
    /// A number.
    Num(u64),
    /// A string.
    Str(String),
}

impl Id {
    fn to_json(&self) -> Value {
        match self {
            Self::Num(n) => json!(n),
            Self::Str(s) => json!(s),
        }
    }
}

/// The error codes pools send (ckpool, slush): an array `[code, message, null]`.
pub mod code {
    /// Anything else.
    pub const OTHER: i64 = 20;
    /// The job is unknown (or stale).
    pub const JOB_NOT_FOUND: i64 = 21;
    /// The share was submitted before.
    pub const DUPLICATE: i64 = 22;
    /// The share is above the target.
    pub const LOW_DIFFICULTY: i64 = 23;
    /// The worker is not authorized.
    pub const UNAUTHORIZED: i64 = 24;
    /// The connection did not subscribe.
    pub const NOT_SUBSCRIBED: i64 = 25;
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StratumError {
    /// One of [`code`].
    pub code: i64,
    /// Readable message.
    pub message: String,
}

impl StratumError {
    /// An error with `code` and `message`.
    #[must_use]
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// A share submission: `[worker, job_id, extranonce2, ntime, nonce(, version_bits)]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submit {
    /// Worker name.
    pub worker: String,
    /// Job id (hex text, as the pool sent it).
    pub job_id: String,
    /// Extranonce2 bytes.
    pub extranonce2: Vec<u8>,
    /// Block time the miner used.
    pub ntime: u32,
    /// The nonce.
    pub nonce: u32,
    /// Rolled version bits (BIP310), when the miner rolls versions.
    pub version_bits: Option<u32>,
}

/// A job: `mining.notify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// Job id (hex text).
    pub job_id: String,
    /// Previous block hash, as Stratum sends it (32 bytes).
    pub prevhash: [u8; 32],
    /// Coinbase before the extranonces.
    pub coinb1: Vec<u8>,
    /// Coinbase after the extranonces.
    pub coinb2: Vec<u8>,
    /// Merkle branch (at most [`STRATUM_MERKLE_BRANCH_MAX`]).
    pub merkle_branch: Vec<[u8; 32]>,
    /// Block version.
    pub version: u32,
    /// Compact target.
    pub nbits: u32,
    /// Block time.
    pub ntime: u32,
    /// Whether earlier jobs are void.
    pub clean_jobs: bool,
}

/// What a miner sends.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    /// `mining.configure` (BIP310): extensions and their parameters.
    Configure {
        /// Request id.
        id: Id,
        /// Extension names (`version-rolling`, `minimum-difficulty`, `subscribe-extranonce`).
        extensions: Vec<String>,
        /// `version-rolling.mask`.
        version_rolling_mask: Option<u32>,
        /// `version-rolling.min-bit-count`.
        version_rolling_min_bit_count: Option<u32>,
        /// `minimum-difficulty.value`.
        minimum_difficulty: Option<f64>,
    },
    /// `mining.subscribe`.
    Subscribe {
        /// Request id.
        id: Id,
        /// The miner's user agent.
        user_agent: Option<String>,
    },
    /// `mining.authorize`.
    Authorize {
        /// Request id.
        id: Id,
        /// Worker name.
        user: String,
        /// Password (never logged).
        password: String,
    },
    /// `mining.extranonce.subscribe`.
    ExtranonceSubscribe {
        /// Request id.
        id: Id,
    },
    /// `mining.submit`.
    Submit {
        /// Request id.
        id: Id,
        /// The share.
        submit: Submit,
    },
    /// `mining.suggest_difficulty`.
    SuggestDifficulty {
        /// Request id (some miners send none).
        id: Option<Id>,
        /// The difficulty.
        difficulty: f64,
    },
    /// A response to a pool's request (`client.get_version`, `mining.ping`).
    Response {
        /// The pool's request id.
        id: Id,
        /// The result.
        result: Value,
    },
}

/// What a pool sends.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    /// `mining.notify`.
    Notify(Notify),
    /// `mining.set_difficulty`.
    SetDifficulty(f64),
    /// `mining.set_extranonce`: extranonce1 and extranonce2 size.
    SetExtranonce {
        /// New extranonce1.
        extranonce1: Vec<u8>,
        /// New extranonce2 size, bytes.
        extranonce2_size: u32,
    },
    /// `mining.set_version_mask`.
    SetVersionMask(u32),
    /// `client.reconnect`: host, port, wait seconds (all optional).
    Reconnect {
        /// Host to reconnect to.
        host: Option<String>,
        /// Port.
        port: Option<u16>,
        /// Seconds to wait first.
        wait_secs: Option<u32>,
    },
    /// `client.get_version` (expects a response).
    GetVersion {
        /// Request id.
        id: Id,
    },
    /// `mining.ping` (expects a response).
    Ping {
        /// Request id.
        id: Id,
    },
    /// A response to our request.
    Response {
        /// Our request id.
        id: Id,
        /// The result (`null` on error).
        result: Value,
        /// The error, if any.
        error: Option<StratumError>,
    },
}

/// Why a line is not a message we accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON, or not an object.
    #[error("not a JSON object: {0}")]
    NotJson(String),
    /// A method we do not speak.
    #[error("unknown method {0:?}")]
    UnknownMethod(String),
    /// A field is missing or has the wrong shape or size.
    #[error("{method}: {why}")]
    BadParams {
        /// The method.
        method: String,
        /// What is wrong.
        why: String,
    },
    /// A request without a usable id.
    #[error("missing or invalid id")]
    BadId,
}

fn bad(method: &str, why: impl Into<String>) -> ParseError {
    ParseError::BadParams { method: method.to_owned(), why: why.into() }
}

fn id_of(v: &Value) -> Option<Id> {
    match v {
        Value::Number(n) => n.as_u64().map(Id::Num),
        Value::String(s) if s.len() <= 64 => Some(Id::Str(s.clone())),
        _ => None,
    }
}

fn object(line: &str) -> Result<serde_json::Map<String, Value>, ParseError> {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(ParseError::NotJson("not an object".into())),
        Err(e) => Err(ParseError::NotJson(e.to_string())),
    }
}

fn hex_bytes(method: &str, what: &str, v: &Value, max: usize) -> Result<Vec<u8>, ParseError> {
    let s = v.as_str().ok_or_else(|| bad(method, format!("{what} must be a hex string")))?;
    if s.len() > 2 * max {
        return Err(bad(method, format!("{what} longer than {max} bytes")));
    }
    hex::decode(s).map_err(|_| bad(method, format!("{what} is not hex")))
}

fn hex_fixed<const N: usize>(method: &str, what: &str, v: &Value) -> Result<[u8; N], ParseError> {
    let b = hex_bytes(method, what, v, N)?;
    b.try_into().map_err(|_| bad(method, format!("{what} must be {N} bytes")))
}

fn hex_u32(method: &str, what: &str, v: &Value) -> Result<u32, ParseError> {
    Ok(u32::from_be_bytes(hex_fixed::<4>(method, what, v)?))
}

fn text(method: &str, what: &str, v: &Value) -> Result<String, ParseError> {
    let s = v.as_str().ok_or_else(|| bad(method, format!("{what} must be a string")))?;
    if s.len() > STRATUM_CREDENTIAL_BYTES_MAX {
        return Err(bad(method, format!("{what} longer than {STRATUM_CREDENTIAL_BYTES_MAX} bytes")));
    }
    Ok(s.to_owned())
}

fn job_id(method: &str, v: &Value) -> Result<String, ParseError> {
    let s = text(method, "job id", v)?;
    if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(method, "job id must be 1..=64 hex characters"));
    }
    Ok(s)
}

fn difficulty(method: &str, v: &Value) -> Result<f64, ParseError> {
    let d = v.as_f64().ok_or_else(|| bad(method, "difficulty must be a number"))?;
    if !d.is_finite() || d <= 0.0 {
        return Err(bad(method, "difficulty must be a positive number"));
    }
    Ok(d)
}

fn params<'a>(o: &'a serde_json::Map<String, Value>, method: &str) -> Result<&'a [Value], ParseError> {
    match o.get("params") {
        Some(Value::Array(a)) => Ok(a),
        None | Some(Value::Null) => Ok(&[]),
        Some(_) => Err(bad(method, "params must be an array")),
    }
}

impl Submit {
    fn parse(p: &[Value]) -> Result<Self, ParseError> {
        const M: &str = "mining.submit";
        if !(5..=6).contains(&p.len()) {
            return Err(bad(M, format!("takes 5 or 6 parameters, got {}", p.len())));
        }
        Ok(Self {
            worker: text(M, "worker", &p[0])?,
            job_id: job_id(M, &p[1])?,
            extranonce2: hex_bytes(M, "extranonce2", &p[2], 32)?,
            ntime: hex_u32(M, "ntime", &p[3])?,
            nonce: hex_u32(M, "nonce", &p[4])?,
            version_bits: p.get(5).map(|v| hex_u32(M, "version bits", v)).transpose()?,
        })
    }

    fn params(&self) -> Value {
        let mut p = vec![
            json!(self.worker),
            json!(self.job_id),
            json!(hex::encode(&self.extranonce2)),
            json!(format!("{:08x}", self.ntime)),
            json!(format!("{:08x}", self.nonce)),
        ];
        if let Some(v) = self.version_bits {
            p.push(json!(format!("{v:08x}")));
        }
        Value::Array(p)
    }
}

impl Notify {
    fn parse(p: &[Value]) -> Result<Self, ParseError> {
        const M: &str = "mining.notify";
        if p.len() != 9 {
            return Err(bad(M, format!("takes 9 parameters, got {}", p.len())));
        }
        let branch = p[4].as_array().ok_or_else(|| bad(M, "merkle branch must be an array"))?;
        if branch.len() > STRATUM_MERKLE_BRANCH_MAX {
            return Err(bad(M, format!("merkle branch longer than {STRATUM_MERKLE_BRANCH_MAX}")));
        }
        Ok(Self {
            job_id: job_id(M, &p[0])?,
            prevhash: hex_fixed::<32>(M, "prevhash", &p[1])?,
            coinb1: hex_bytes(M, "coinb1", &p[2], 4096)?,
            coinb2: hex_bytes(M, "coinb2", &p[3], 4096)?,
            merkle_branch: branch.iter().map(|h| hex_fixed::<32>(M, "merkle hash", h)).collect::<Result<_, _>>()?,
            version: hex_u32(M, "version", &p[5])?,
            nbits: hex_u32(M, "nbits", &p[6])?,
            ntime: hex_u32(M, "ntime", &p[7])?,
            clean_jobs: p[8].as_bool().ok_or_else(|| bad(M, "clean_jobs must be a boolean"))?,
        })
    }

    fn params(&self) -> Value {
        json!([
            self.job_id,
            hex::encode(self.prevhash),
            hex::encode(&self.coinb1),
            hex::encode(&self.coinb2),
            self.merkle_branch.iter().map(hex::encode).collect::<Vec<_>>(),
            format!("{:08x}", self.version),
            format!("{:08x}", self.nbits),
            format!("{:08x}", self.ntime),
            self.clean_jobs,
        ])
    }
}

fn line(v: &Value) -> String {
    let mut s = v.to_string();
    s.push('\n');
    s
}

impl ClientMessage {
    /// Parse one line a miner sent.
    ///
    /// # Errors
    /// A [`ParseError`] naming what is wrong; answer with error 20 (or close the connection).
    pub fn parse(line: &str) -> Result<Self, ParseError> {
        let o = object(line)?;
        let id = o.get("id").and_then(id_of);
        let Some(method) = o.get("method").and_then(Value::as_str) else {
            // A response to one of our requests (`client.get_version`, `mining.ping`).
            let id = id.ok_or(ParseError::BadId)?;
            return Ok(Self::Response { id, result: o.get("result").cloned().unwrap_or(Value::Null) });
        };
        let p = params(&o, method)?;
        let need_id = || id.clone().ok_or(ParseError::BadId);
        match method {
            "mining.configure" => {
                let exts = p
                    .first()
                    .and_then(Value::as_array)
                    .ok_or_else(|| bad(method, "first parameter must list extensions"))?;
                let extensions =
                    exts.iter().take(8).map(|e| text(method, "extension", e)).collect::<Result<Vec<_>, _>>()?;
                let opts = p.get(1).and_then(Value::as_object);
                let opt = |k: &str| opts.and_then(|o| o.get(k));
                Ok(Self::Configure {
                    id: need_id()?,
                    extensions,
                    version_rolling_mask: opt("version-rolling.mask")
                        .map(|v| hex_u32(method, "mask", v))
                        .transpose()?,
                    version_rolling_min_bit_count: opt("version-rolling.min-bit-count")
                        .map(|v| {
                            v.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| bad(method, "min-bit-count"))
                        })
                        .transpose()?,
                    minimum_difficulty: opt("minimum-difficulty.value").map(|v| difficulty(method, v)).transpose()?,
                })
            }
            "mining.subscribe" => Ok(Self::Subscribe {
                id: need_id()?,
                user_agent: p.first().filter(|v| !v.is_null()).map(|v| text(method, "user agent", v)).transpose()?,
            }),
            "mining.authorize" => Ok(Self::Authorize {
                id: need_id()?,
                user: text(method, "worker", p.first().ok_or_else(|| bad(method, "needs a worker name"))?)?,
                password: p
                    .get(1)
                    .filter(|v| !v.is_null())
                    .map(|v| text(method, "password", v))
                    .transpose()?
                    .unwrap_or_default(),
            }),
            "mining.extranonce.subscribe" => Ok(Self::ExtranonceSubscribe { id: need_id()? }),
            "mining.submit" => Ok(Self::Submit { id: need_id()?, submit: Submit::parse(p)? }),
            "mining.suggest_difficulty" => Ok(Self::SuggestDifficulty {
                id,
                difficulty: difficulty(method, p.first().ok_or_else(|| bad(method, "needs a difficulty"))?)?,
            }),
            other => Err(ParseError::UnknownMethod(other.chars().take(64).collect())),
        }
    }

    /// The line to send (with its newline).
    #[must_use]
    pub fn to_line(&self) -> String {
        let req =
            |id: &Id, method: &str, params: Value| json!({"id": id.to_json(), "method": method, "params": params});
        line(&match self {
            Self::Configure {
                id,
                extensions,
                version_rolling_mask,
                version_rolling_min_bit_count,
                minimum_difficulty,
            } => {
                let mut opts = serde_json::Map::new();
                if let Some(m) = version_rolling_mask {
                    opts.insert("version-rolling.mask".into(), json!(format!("{m:08x}")));
                }
                if let Some(b) = version_rolling_min_bit_count {
                    opts.insert("version-rolling.min-bit-count".into(), json!(b));
                }
                if let Some(d) = minimum_difficulty {
                    opts.insert("minimum-difficulty.value".into(), json!(d));
                }
                req(id, "mining.configure", json!([extensions, opts]))
            }
            Self::Subscribe { id, user_agent } => {
                req(id, "mining.subscribe", user_agent.as_ref().map_or(json!([]), |u| json!([u])))
            }
            Self::Authorize { id, user, password } => req(id, "mining.authorize", json!([user, password])),
            Self::ExtranonceSubscribe { id } => req(id, "mining.extranonce.subscribe", json!([])),
            Self::Submit { id, submit } => req(id, "mining.submit", submit.params()),
            Self::SuggestDifficulty { id, difficulty } => json!({
                "id": id.as_ref().map_or(Value::Null, Id::to_json),
                "method": "mining.suggest_difficulty",
                "params": [difficulty],
            }),
            Self::Response { id, result } => json!({"id": id.to_json(), "result": result, "error": null}),
        })
    }
}

impl ServerMessage {
    /// Parse one line a pool sent.
    ///
    /// # Errors
    /// A [`ParseError`] naming what is wrong (an impossible difficulty, a short prevhash, …).
    pub fn parse(line: &str) -> Result<Self, ParseError> {
        let o = object(line)?;
        let id = o.get("id").and_then(id_of);
        let Some(method) = o.get("method").and_then(Value::as_str) else {
            let id = id.ok_or(ParseError::BadId)?;
            let error = match o.get("error") {
                None | Some(Value::Null) => None,
                Some(Value::Array(e)) => Some(StratumError {
                    code: e.first().and_then(Value::as_i64).unwrap_or(code::OTHER),
                    message: e.get(1).and_then(Value::as_str).unwrap_or_default().chars().take(256).collect(),
                }),
                Some(other) => {
                    Some(StratumError::new(code::OTHER, other.to_string().chars().take(256).collect::<String>()))
                }
            };
            return Ok(Self::Response { id, result: o.get("result").cloned().unwrap_or(Value::Null), error });
        };
        let p = params(&o, method)?;
        match method {
            "mining.notify" => Ok(Self::Notify(Notify::parse(p)?)),
            "mining.set_difficulty" => Ok(Self::SetDifficulty(difficulty(
                method,
                p.first().ok_or_else(|| bad(method, "needs a difficulty"))?,
            )?)),
            "mining.set_extranonce" => Ok(Self::SetExtranonce {
                extranonce1: hex_bytes(
                    method,
                    "extranonce1",
                    p.first().ok_or_else(|| bad(method, "needs extranonce1"))?,
                    32,
                )?,
                extranonce2_size: p
                    .get(1)
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| (1..=32).contains(n))
                    .ok_or_else(|| bad(method, "extranonce2 size must be 1..=32"))?,
            }),
            "mining.set_version_mask" => Ok(Self::SetVersionMask(hex_u32(
                method,
                "mask",
                p.first().ok_or_else(|| bad(method, "needs a mask"))?,
            )?)),
            "client.reconnect" => Ok(Self::Reconnect {
                host: p.first().and_then(Value::as_str).map(|h| h.chars().take(255).collect()),
                port: p
                    .get(1)
                    .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
                    .and_then(|n| u16::try_from(n).ok()),
                wait_secs: p.get(2).and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok()),
            }),
            "client.get_version" => Ok(Self::GetVersion { id: id.ok_or(ParseError::BadId)? }),
            "mining.ping" => Ok(Self::Ping { id: id.ok_or(ParseError::BadId)? }),
            other => Err(ParseError::UnknownMethod(other.chars().take(64).collect())),
        }
    }

    /// The line to send (with its newline).
    #[must_use]
    pub fn to_line(&self) -> String {
        let note = |method: &str, params: Value| json!({"id": null, "method": method, "params": params});
        line(&match self {
            Self::Notify(n) => note("mining.notify", n.params()),
            Self::SetDifficulty(d) => note("mining.set_difficulty", json!([d])),
            Self::SetExtranonce { extranonce1, extranonce2_size } => {
                note("mining.set_extranonce", json!([hex::encode(extranonce1), extranonce2_size]))
            }
            Self::SetVersionMask(m) => note("mining.set_version_mask", json!([format!("{m:08x}")])),
            Self::Reconnect { host, port, wait_secs } => {
                let mut p = Vec::new();
                if let Some(h) = host {
                    p.push(json!(h));
                    if let Some(port) = port {
                        p.push(json!(port));
                        if let Some(w) = wait_secs {
                            p.push(json!(w));
                        }
                    }
                }
                note("client.reconnect", Value::Array(p))
            }
            Self::GetVersion { id } => json!({"id": id.to_json(), "method": "client.get_version", "params": []}),
            Self::Ping { id } => json!({"id": id.to_json(), "method": "mining.ping", "params": []}),
            Self::Response { id, result, error } => json!({
                "id": id.to_json(),
                "result": if error.is_some() { Value::Null } else { result.clone() },
                "error": error.as_ref().map_or(Value::Null, |e| json!([e.code, e.message, null])),
            }),
        })
    }

    /// A successful answer to request `id`.
    #[must_use]
    pub fn ok(id: Id, result: Value) -> Self {
        Self::Response { id, result, error: None }
    }

    /// An error answer to request `id`.
    #[must_use]
    pub fn error(id: Id, code: i64, message: impl Into<String>) -> Self {
        Self::Response { id, result: Value::Null, error: Some(StratumError::new(code, message)) }
    }
}
