//! The CometBFT RPC client: typed requests and responses from the `tendermint-rpc` crate
//! (v0.38 compatibility mode), behind a small blocking facade for the CLI and the node's
//! sender threads. Our application's own query answers (`abci_query`) are JSON views; callers
//! decode them into their types with [`Rpc::abci_query_as`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tendermint_rpc::client::CompatMode;
use tendermint_rpc::{Client, HttpClient};

/// How long one RPC call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// A CometBFT RPC endpoint. Clones share one small runtime (and so the HTTP connections it
/// keeps open), so a client used for many calls does not reconnect for each.
#[derive(Debug, Clone)]
pub struct Rpc {
    base: String,
    client: Option<HttpClient>,
    rt: Option<Arc<tokio::runtime::Runtime>>,
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

/// A committed block, as the benchmarks and tests read it.
#[derive(Debug, Clone)]
pub struct BlockSummary {
    /// Its height.
    pub height: u64,
    /// Header time, seconds since the Unix epoch (with fraction).
    pub time_secs: f64,
    /// The app hash in its header (the state after the previous block), upper-case hex.
    pub app_hash: String,
    /// Its transactions.
    pub txs: Vec<Vec<u8>>,
}

/// Events as (type, [(key, value)]).
fn events_of(events: &[tendermint::abci::Event]) -> Vec<(String, Vec<(String, String)>)> {
    events
        .iter()
        .map(|e| {
            let attrs = e
                .attributes
                .iter()
                .map(|a| (a.key_str().unwrap_or_default().to_owned(), a.value_str().unwrap_or_default().to_owned()))
                .collect();
            (e.kind.clone(), attrs)
        })
        .collect()
}

impl Rpc {
    /// A client for `url` (e.g. `http://127.0.0.1:26657`). A malformed URL fails on first use,
    /// with a message that names it.
    #[must_use]
    pub fn new(url: &str) -> Self {
        let base = url.trim_end_matches('/').to_owned();
        let client = base
            .parse()
            .ok()
            .and_then(|u| HttpClient::builder(u).compat_mode(CompatMode::V0_38).timeout(CALL_TIMEOUT).build().ok());
        // One worker drives the connections; callers (plain threads) block on their own call.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("rpc")
            .enable_all()
            .build()
            .ok()
            .map(Arc::new);
        Self { base, client, rt }
    }

    /// Run `f` to completion on this client's runtime.
    fn block_on<T>(&self, f: impl std::future::Future<Output = T>) -> Result<T> {
        let rt = self.rt.as_ref().context("the RPC client's runtime could not start")?;
        Ok(rt.block_on(f))
    }

    /// The URL this client talks to.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.base
    }

    fn client(&self) -> Result<&HttpClient> {
        self.client
            .as_ref()
            .ok_or_else(|| anyhow!("{:?} is not a CometBFT RPC URL (e.g. http://127.0.0.1:26657)", self.base))
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> anyhow::Error {
        anyhow!("CometBFT RPC at {}: {e}; is the node running? (--rpc URL)", self.base)
    }

    /// `/status`: (chain id, latest height, latest app hash).
    ///
    /// # Errors
    /// If the node cannot be reached.
    pub fn status(&self) -> Result<(String, u64, String)> {
        let c = self.client()?;
        let s = self.block_on(c.status())?.map_err(|e| self.unreachable(e))?;
        Ok((
            s.node_info.network.to_string(),
            s.sync_info.latest_block_height.value(),
            s.sync_info.latest_app_hash.to_string(),
        ))
    }

    /// `broadcast_tx_sync`.
    ///
    /// # Errors
    /// If the node cannot be reached or refuses the call (e.g. "tx already exists in cache").
    pub fn broadcast_sync(&self, tx: &[u8]) -> Result<Broadcast> {
        let c = self.client()?;
        let r = self.block_on(c.broadcast_tx_sync(tx.to_vec()))?.map_err(|e| self.unreachable(e))?;
        Ok(Broadcast { code: r.code.value(), log: r.log, hash: r.hash.to_string() })
    }

    /// `/tx?hash=`: the committed transaction, or `None` if not (yet) indexed.
    ///
    /// # Errors
    /// If the node cannot be reached or `hash_hex` is not a transaction hash.
    pub fn tx(&self, hash_hex: &str) -> Result<Option<CommittedTx>> {
        let c = self.client()?;
        let hash: tendermint::Hash =
            hash_hex.parse().map_err(|e| anyhow!("{hash_hex:?} is not a 64-hex transaction hash: {e}"))?;
        let r = match self.block_on(c.tx(hash, false))? {
            Ok(r) => r,
            Err(e) if e.to_string().contains("not found") => return Ok(None),
            Err(e) => return Err(self.unreachable(e)),
        };
        Ok(Some(CommittedTx {
            height: r.height.value(),
            code: r.tx_result.code.value(),
            events: events_of(&r.tx_result.events),
            log: r.tx_result.log,
            tx: r.tx,
        }))
    }

    /// `/tx_search`: one page (1-based, at most 100 per page) of the committed transactions
    /// whose events match `query` (CometBFT's query language, e.g. `loan.status EXISTS`), in
    /// height order; and the total number of matches.
    ///
    /// # Errors
    /// If the query does not parse or the node cannot be reached.
    pub fn tx_search(&self, query: &str, page: u32, per_page: u8) -> Result<(Vec<CommittedTx>, u32)> {
        let c = self.client()?;
        let q: tendermint_rpc::query::Query =
            query.parse().map_err(|e| anyhow!("{query:?} is not a CometBFT event query: {e}"))?;
        let r = self
            .block_on(c.tx_search(q, false, page, per_page, tendermint_rpc::Order::Ascending))?
            .map_err(|e| self.unreachable(e))?;
        let txs = r
            .txs
            .into_iter()
            .map(|t| CommittedTx {
                height: t.height.value(),
                code: t.tx_result.code.value(),
                events: events_of(&t.tx_result.events),
                log: t.tx_result.log,
                tx: t.tx,
            })
            .collect();
        Ok((txs, r.total_count))
    }

    /// Poll `/tx` until the transaction is committed or `timeout` passes.
    ///
    /// # Errors
    /// On timeout, or as [`Rpc::tx`].
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

    /// `/block?height=`.
    ///
    /// # Errors
    /// If the node cannot be reached or has no such block (yet).
    pub fn block(&self, height: u64) -> Result<BlockSummary> {
        let c = self.client()?;
        let h = tendermint::block::Height::try_from(height).context("height out of range")?;
        let b = self.block_on(c.block(h))?.map_err(|e| self.unreachable(e))?.block;
        let nanos = b.header.time.unix_timestamp_nanos();
        Ok(BlockSummary {
            height,
            time_secs: nanos as f64 / 1e9,
            app_hash: hex::encode_upper(b.header.app_hash.as_bytes()),
            txs: b.data,
        })
    }

    /// `abci_query` on `path` with `data`: the bytes our application answered.
    ///
    /// # Errors
    /// If the application answers with a non-zero code, or the node cannot be reached.
    pub fn abci_query_bytes(&self, path: &str, data: &[u8]) -> Result<Vec<u8>> {
        let c = self.client()?;
        let r = self
            .block_on(c.abci_query(Some(path.to_owned()), data.to_vec(), None, false))?
            .map_err(|e| self.unreachable(e))?;
        if r.code.is_err() {
            bail!("query {path} failed (code {}): {}", r.code.value(), r.log);
        }
        Ok(r.value)
    }

    /// `abci_query`, its JSON answer decoded into `T`.
    ///
    /// # Errors
    /// As [`Rpc::abci_query_bytes`], or if the answer is not a `T`.
    pub fn abci_query_as<T: DeserializeOwned>(&self, path: &str, data: &[u8]) -> Result<T> {
        let bytes = self.abci_query_bytes(path, data)?;
        serde_json::from_slice(&bytes).with_context(|| format!("query {path}: unexpected answer"))
    }

    /// `abci_query`, its JSON answer as a value (for printing it as it is).
    ///
    /// # Errors
    /// As [`Rpc::abci_query_as`].
    pub fn abci_query(&self, path: &str, data: &[u8]) -> Result<Value> {
        self.abci_query_as(path, data)
    }

    /// `/block?height=`, as CometBFT serves it (for verification).
    ///
    /// # Errors
    /// If the node cannot be reached or has no such block (yet).
    pub fn raw_block(&self, height: u64) -> Result<tendermint::Block> {
        let c = self.client()?;
        let h = tendermint::block::Height::try_from(height).context("height out of range")?;
        Ok(self.block_on(c.block(h))?.map_err(|e| self.unreachable(e))?.block)
    }

    /// `/commit?height=`: the signed header.
    ///
    /// # Errors
    /// If the node cannot be reached or has no such header (yet).
    pub fn signed_header(&self, height: u64) -> Result<tendermint::block::signed_header::SignedHeader> {
        let c = self.client()?;
        let h = tendermint::block::Height::try_from(height).context("height out of range")?;
        Ok(self.block_on(c.commit(h))?.map_err(|e| self.unreachable(e))?.signed_header)
    }

    /// `/validators?height=`, every page: the validator set of block `height`.
    ///
    /// # Errors
    /// If the node cannot be reached or has no such height.
    pub fn validator_set(&self, height: u64) -> Result<tendermint::validator::Set> {
        let c = self.client()?;
        let h = tendermint::block::Height::try_from(height).context("height out of range")?;
        let r = self.block_on(c.validators(h, tendermint_rpc::Paging::All))?.map_err(|e| self.unreachable(e))?;
        Ok(tendermint::validator::Set::without_proposer(r.validators))
    }

    /// `/block_results?height=`: each transaction's committed result fields.
    ///
    /// # Errors
    /// If the node cannot be reached or has no results for `height`.
    pub fn committed_results(&self, height: u64) -> Result<Vec<crate::verify::CommittedResult>> {
        let c = self.client()?;
        let h = tendermint::block::Height::try_from(height).context("height out of range")?;
        let r = self.block_on(c.block_results(h))?.map_err(|e| self.unreachable(e))?;
        Ok(r.txs_results
            .unwrap_or_default()
            .into_iter()
            .map(|t| crate::verify::CommittedResult {
                code: t.code.value(),
                data: t.data.to_vec(),
                gas_wanted: t.gas_wanted,
                gas_used: t.gas_used,
            })
            .collect())
    }

    /// `/genesis`: the chain's genesis app state, as the node serves it.
    ///
    /// # Errors
    /// If the node cannot be reached.
    pub fn genesis_app_state(&self) -> Result<Value> {
        let c = self.client()?;
        Ok(self.block_on(c.genesis::<Value>())?.map_err(|e| self.unreachable(e))?.app_state)
    }

    /// `abci_query` of the raw state key `key` at `height` with `prove`: the answer as served
    /// (verify it with [`crate::verify::check_answer`]).
    ///
    /// # Errors
    /// If the node cannot be reached.
    pub fn proved_key(&self, key: &[u8], height: u64) -> Result<ProvedAnswer> {
        let c = self.client()?;
        let h = tendermint::block::Height::try_from(height).context("height out of range")?;
        let r = self
            .block_on(c.abci_query(Some(hashmesh_abci::query::STORE_PATH.to_owned()), key.to_vec(), Some(h), true))?
            .map_err(|e| self.unreachable(e))?;
        let proof = r.proof.map(|p| p.ops.into_iter().map(|op| (op.field_type, op.data)).collect()).unwrap_or_default();
        Ok(ProvedAnswer { code: r.code.value(), log: r.log, value: r.value, height: r.height.value(), proof })
    }
}

/// A `/store` answer as a node served it: nothing in it is trusted until checked.
#[derive(Debug, Clone)]
pub struct ProvedAnswer {
    /// 0: present; `NOT_FOUND`: absent; anything else: refused.
    pub code: u32,
    /// The node's message.
    pub log: String,
    /// The value (empty when absent).
    pub value: Vec<u8>,
    /// The height the node says it answered at.
    pub height: u64,
    /// Its proof operations: (type, bytes).
    pub proof: Vec<(String, Vec<u8>)>,
}
