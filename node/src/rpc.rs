//! A small blocking client for CometBFT's JSON-RPC over HTTP (URI form).

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use serde_json::Value;

/// A CometBFT RPC endpoint.
#[derive(Debug, Clone)]
pub struct Rpc {
    base: String,
    agent: ureq::Agent,
}

/// What `broadcast_tx_sync` said (the `CheckTx` result).
#[derive(Debug, Clone)]
pub struct Broadcast {
    /// `CheckTx` code (0 = admitted to the mempool).
    pub code: u32,
    /// `CheckTx` log.
    pub log: String,
    /// Upper-case hex tx hash.
    pub hash: String,
}

/// A committed transaction from `/tx`.
#[derive(Debug, Clone)]
pub struct CommittedTx {
    /// Block height.
    pub height: u64,
    /// `FinalizeBlock` code.
    pub code: u32,
    /// `FinalizeBlock` log.
    pub log: String,
    /// Events: (type, [(key, value)]).
    pub events: Vec<(String, Vec<(String, String)>)>,
    /// The raw tx bytes.
    pub tx: Vec<u8>,
}

impl Rpc {
    /// A client for `url` (e.g. `http://127.0.0.1:26657`).
    #[must_use]
    pub fn new(url: &str) -> Self {
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(15)).build();
        Self { base: url.trim_end_matches('/').to_owned(), agent }
    }

    /// The URL this client talks to.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Call `method` with URI query `params`; returns the `result` object.
    ///
    /// # Errors
    /// If the node is unreachable or answers with a JSON-RPC error.
    pub fn call(&self, method: &str, params: &[(&str, String)]) -> Result<Value> {
        let url = format!("{}/{method}", self.base);
        let mut req = self.agent.get(&url);
        for (k, v) in params {
            req = req.query(k, v);
        }
        let body: Value = match req.call() {
            Ok(resp) => resp.into_json().with_context(|| format!("{url}: response is not JSON"))?,
            Err(ureq::Error::Status(_, resp)) => {
                resp.into_json().with_context(|| format!("{url}: error response is not JSON"))?
            }
            Err(e) => {
                return Err(anyhow!(
                    "cannot reach CometBFT RPC at {}: {e}; is the node running? (--rpc URL)",
                    self.base
                ))
            }
        };
        if let Some(err) = body.get("error") {
            let data = err.get("data").and_then(Value::as_str).unwrap_or("");
            let msg = err.get("message").and_then(Value::as_str).unwrap_or("error");
            bail!("CometBFT RPC {method}: {msg}: {data}");
        }
        body.get("result").cloned().ok_or_else(|| anyhow!("{url}: response has no result"))
    }

    /// `/status`: (chain id, latest height, latest app hash).
    ///
    /// # Errors
    /// As [`Rpc::call`].
    pub fn status(&self) -> Result<(String, u64, String)> {
        let r = self.call("status", &[])?;
        let chain = r["node_info"]["network"].as_str().unwrap_or_default().to_owned();
        let height = r["sync_info"]["latest_block_height"].as_str().unwrap_or("0").parse().unwrap_or(0);
        let hash = r["sync_info"]["latest_app_hash"].as_str().unwrap_or_default().to_owned();
        Ok((chain, height, hash))
    }

    /// `broadcast_tx_sync`.
    ///
    /// # Errors
    /// As [`Rpc::call`] (e.g. "tx already exists in cache").
    pub fn broadcast_sync(&self, tx: &[u8]) -> Result<Broadcast> {
        let r = self.call("broadcast_tx_sync", &[("tx", format!("0x{}", hex::encode(tx)))])?;
        Ok(Broadcast {
            code: r["code"].as_u64().unwrap_or(0) as u32,
            log: r["log"].as_str().unwrap_or_default().to_owned(),
            hash: r["hash"].as_str().unwrap_or_default().to_owned(),
        })
    }

    /// `/tx?hash=`: the committed transaction, or `None` if not (yet) indexed.
    ///
    /// # Errors
    /// As [`Rpc::call`], except "not found" which is `Ok(None)`.
    pub fn tx(&self, hash_hex: &str) -> Result<Option<CommittedTx>> {
        let r = match self.call("tx", &[("hash", format!("0x{hash_hex}"))]) {
            Ok(r) => r,
            Err(e) if e.to_string().contains("not found") => return Ok(None),
            Err(e) => return Err(e),
        };
        let res = &r["tx_result"];
        let events = res["events"]
            .as_array()
            .map(|evs| {
                evs.iter()
                    .map(|e| {
                        let attrs = e["attributes"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .map(|kv| {
                                        (
                                            kv["key"].as_str().unwrap_or_default().to_owned(),
                                            kv["value"].as_str().unwrap_or_default().to_owned(),
                                        )
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        (e["type"].as_str().unwrap_or_default().to_owned(), attrs)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let tx =
            base64::engine::general_purpose::STANDARD.decode(r["tx"].as_str().unwrap_or_default()).unwrap_or_default();
        Ok(Some(CommittedTx {
            height: r["height"].as_str().unwrap_or("0").parse().unwrap_or(0),
            code: res["code"].as_u64().unwrap_or(0) as u32,
            log: res["log"].as_str().unwrap_or_default().to_owned(),
            events,
            tx,
        }))
    }

    /// Poll `/tx` until the transaction is committed or `timeout` passes.
    ///
    /// # Errors
    /// On timeout, or as [`Rpc::call`].
    pub fn wait_tx(&self, hash_hex: &str, timeout: Duration) -> Result<CommittedTx> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(t) = self.tx(hash_hex)? {
                return Ok(t);
            }
            if Instant::now() > deadline {
                bail!("transaction {hash_hex} was not committed within {timeout:?}; it may still commit (check `hashmesh query directive`)");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `abci_query` on `path` with `data`; returns the JSON value the app answered.
    ///
    /// # Errors
    /// If the app answers with a non-zero code, or as [`Rpc::call`].
    pub fn abci_query(&self, path: &str, data: &[u8]) -> Result<Value> {
        let r =
            self.call("abci_query", &[("path", format!("\"{path}\"")), ("data", format!("0x{}", hex::encode(data)))])?;
        let resp = &r["response"];
        let code = resp["code"].as_u64().unwrap_or(0);
        if code != 0 {
            bail!("query {path} failed (code {code}): {}", resp["log"].as_str().unwrap_or_default());
        }
        let value = base64::engine::general_purpose::STANDARD
            .decode(resp["value"].as_str().unwrap_or_default())
            .context("query value is not base64")?;
        serde_json::from_slice(&value).context("query value is not JSON")
    }
}
