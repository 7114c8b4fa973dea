//! `hashmesh tx …`: build, sign, broadcast and wait for a transaction.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hashmesh_protocol::{Body, DirectiveId, EndpointId, RouteTarget, SignedTx, UnsignedTx};
use serde_json::{json, Value};

use crate::home::Home;
use crate::rpc::Rpc;

/// Options shared by every `tx` subcommand.
#[derive(Debug, Clone)]
pub struct TxOptions {
    /// CometBFT RPC URL.
    pub rpc: String,
    /// Chain id override.
    pub chain_id: Option<String>,
    /// Nonce override (default: microseconds since the Unix epoch).
    pub nonce: Option<u64>,
    /// Print the signed transaction instead of sending it.
    pub dry_run: bool,
    /// How long to wait for the commit.
    pub timeout: Duration,
}

/// Parse `ENDPOINT=WEIGHT_BP` targets.
///
/// # Errors
/// On a missing `=`, a bad endpoint id or a weight that is not 0..=65535.
pub fn parse_targets(items: &[String]) -> Result<Vec<RouteTarget>> {
    items
        .iter()
        .map(|s| {
            let (e, w) = s
                .split_once('=')
                .with_context(|| format!("target {s:?} must look like ENDPOINT=WEIGHT_BP, e.g. pool-a/ep-1=6000"))?;
            let endpoint: EndpointId = e.parse().with_context(|| format!("endpoint {e:?}"))?;
            let weight_bp: u16 = w.parse().with_context(|| format!("weight {w:?} must be basis points (0..=10000)"))?;
            Ok(RouteTarget { endpoint, weight_bp })
        })
        .collect()
}

pub use crate::signer::fresh_nonce;

/// Resolve the chain id: flag, then config, then CometBFT `/status`.
///
/// # Errors
/// If none is available.
pub fn chain_id(home: &Home, opts: &TxOptions) -> Result<String> {
    if let Some(c) = &opts.chain_id {
        return Ok(c.clone());
    }
    if !home.config.chain_id.is_empty() {
        return Ok(home.config.chain_id.clone());
    }
    let (chain, _, _) = Rpc::new(&opts.rpc).status().context("no --chain-id given and none in config.toml")?;
    Ok(chain)
}

/// Sign `body` with the home's pool key and send it (or print it with `--dry-run`).
/// Returns the JSON report and whether the transaction was applied.
///
/// # Errors
/// If the key cannot be loaded or the node cannot be reached.
pub fn sign_and_send(home_dir: &Path, body: Body, opts: &TxOptions) -> Result<(Value, bool)> {
    let home = Home::load(home_dir)?;
    let key = home.signing_key()?;
    let chain_id = chain_id(&home, opts)?;
    let nonce = opts.nonce.unwrap_or_else(|| fresh_nonce(0));
    let kind = body.kind();
    let (_, bytes) = key.sign(UnsignedTx { chain_id: chain_id.clone(), signer: key.pool_id(), nonce, body });
    if opts.dry_run {
        let v = json!({
            "tx_hex": hex::encode(&bytes),
            "directive_id": DirectiveId::of_tx_bytes(&bytes).to_hex(),
            "chain_id": chain_id,
            "signer": key.pool_id().to_hex(),
            "nonce": nonce,
            "kind": kind,
            "bytes": bytes.len(),
        });
        return Ok((v, true));
    }
    send(&opts.rpc, &bytes, opts.timeout)
}

/// Broadcast raw bytes, wait for the commit, and report.
///
/// # Errors
/// If the node cannot be reached, refuses the bytes at the RPC layer, or the commit times out.
pub fn send(rpc_url: &str, bytes: &[u8], timeout: Duration) -> Result<(Value, bool)> {
    let rpc = Rpc::new(rpc_url);
    let id = DirectiveId::of_tx_bytes(bytes);
    let kind = SignedTx::decode(bytes).map(|t| t.body.kind().to_owned()).unwrap_or_else(|_| "unknown".into());
    let b = rpc.broadcast_sync(bytes)?;
    if b.code != 0 {
        let mut v = json!({
            "hash": b.hash, "height": 0, "code": b.code, "log": b.log, "stage": "check_tx",
            "directive_id": id.to_hex(), "kind": kind, "status": "refused",
        });
        if b.code == hashmesh_protocol::RejectCode::UnknownSigner as u32 {
            v["fix"] = json!(
                "this node's pool is not in the chain's genesis: every pool must be in genesis.json before the chain starts (`hashmesh genesis add-pool`, then `hashmesh genesis validate --home NODE_HOME`)"
            );
        }
        return Ok((v, false));
    }
    let c = rpc.wait_tx(&b.hash, timeout)?;
    let status = c
        .events
        .iter()
        .find(|(t, attrs)| t == "directive" && attrs.iter().any(|(k, v)| k == "id" && *v == id.to_hex()))
        .and_then(|(_, attrs)| attrs.iter().find(|(k, _)| k == "status").map(|(_, v)| v.clone()))
        .unwrap_or_else(|| if c.code == 0 { "applied".into() } else { "refused".into() });
    let mut v = json!({
        "hash": b.hash, "height": c.height, "code": c.code, "log": c.log, "stage": "finalize_block",
        "directive_id": id.to_hex(), "kind": kind, "status": status,
    });
    // A vote also reports what became of the directive it voted on.
    if let Some((_, attrs)) =
        c.events.iter().find(|(t, attrs)| t == "directive" && attrs.iter().any(|(k, v)| k == "id" && *v != id.to_hex()))
    {
        let get = |key: &str| attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        v["decided"] = json!({"directive_id": get("id"), "status": get("status")});
    }
    Ok((v, c.code == 0))
}

/// Decode `--hex` input for `tx raw`.
///
/// # Errors
/// If the text is not hex.
pub fn parse_hex(text: &str) -> Result<Vec<u8>> {
    let t = text.trim().trim_start_matches("0x");
    if t.is_empty() {
        bail!("--hex is empty");
    }
    hex::decode(t).context("--hex must be hexadecimal bytes")
}
