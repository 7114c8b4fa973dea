//! `hashmesh audit directives`: list committed directives from any node and verify each one
//! locally — id = SHA-256 of the signed bytes, the bytes decode canonically, the chain id
//! matches, the signer is a registered pool, and the strict ed25519 signature holds.
//! With `--check-blocks`, also confirm through `/tx` that each directive sits in the block
//! the node claims.

use std::collections::BTreeMap;

use anyhow::Result;
use hashmesh_protocol::signing::{self, PoolKey};
use hashmesh_protocol::{DirectiveId, PoolId, SignedTx};
use serde::Serialize;
use serde_json::{json, Value};

use crate::output::{short, table};
use crate::rpc::Rpc;

/// Which directives to audit.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this signer.
    pub pool: Option<String>,
    /// Only this group.
    pub group: Option<String>,
    /// First height.
    pub from_height: Option<u64>,
    /// Last height.
    pub to_height: Option<u64>,
    /// Confirm block inclusion through `/tx` (one RPC call per directive).
    pub check_blocks: bool,
}

/// One audited directive.
#[derive(Debug, Clone, Serialize)]
pub struct Audited {
    /// Directive id.
    pub id: String,
    /// Commit height.
    pub height: u64,
    /// Index among the block's applied transactions.
    pub index: u64,
    /// Kind.
    pub kind: String,
    /// Lifecycle status.
    pub status: String,
    /// Signer pool id.
    pub signer: String,
    /// Signer's name from genesis.
    pub signer_name: String,
    /// Miner group, for routes.
    pub group: Option<String>,
    /// Block proposer's validator address.
    pub proposer: String,
    /// The pool whose validator proposed the block (empty if not in genesis).
    pub proposer_name: String,
    /// Body as JSON.
    pub body: Value,
    /// Agents that applied it (committed receipts): agent id, reporting pool, applied-at ms,
    /// receipt height.
    pub receipts: Vec<Value>,
    /// Whether every check passed.
    pub verified: bool,
    /// With `--verify`: its transaction is in a header-verified block with a verified result
    /// code 0, and its record is proven in the state against the app hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proven: Option<bool>,
    /// What failed, if anything.
    pub problems: Vec<String>,
}

/// The audit result.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    /// Node audited.
    pub node: String,
    /// Its chain id.
    pub chain_id: String,
    /// Its height when the audit started.
    pub height: u64,
    /// Every matching directive.
    pub directives: Vec<Audited>,
    /// How many failed a check.
    pub failures: usize,
    /// With `--verify`: what the proof walk verified (see `hashmesh audit verify`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proof: Option<crate::verify::VerifyReport>,
}

/// `--verify`: walk the headers from `trust` up to the rows' highest height (waiting up to
/// 10 s for the header above it), then mark each row proven or not. A row that is not proven
/// counts as a failure.
///
/// # Errors
/// If the node cannot be reached or the trust root cannot be read.
pub fn verify_rows(rpc: &Rpc, trust: &crate::verify::Trust, r: &mut AuditReport, progress: bool) -> Result<()> {
    let top = r.directives.iter().map(|d| d.height).max().unwrap_or(0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while rpc.status()?.1 <= top.max(1) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let opts = crate::verify::VerifyOptions { to_height: (top > 0).then_some(top), no_state: false, progress };
    let v = crate::verify::run(rpc, trust, &opts)?;
    let proven = v.state.as_ref().map(|s| &s.proven_records);
    for d in &mut r.directives {
        let id: Option<DirectiveId> = d.id.parse().ok();
        let ok = v.ok()
            && id
                .is_some_and(|id| v.applied_ids.get(&id) == Some(&d.height) && proven.is_some_and(|p| p.contains(&id)));
        d.proven = Some(ok);
        if !ok {
            d.problems.push(match v.failures.first() {
                Some(f) => format!("not proven: {f}"),
                None => "not proven: not among the applied transactions of the verified blocks".into(),
            });
            d.verified = false;
        }
    }
    r.failures = r.directives.iter().filter(|d| !d.verified).count() + usize::from(!v.ok() && r.directives.is_empty());
    r.proof = Some(v);
    Ok(())
}

/// Run the audit.
///
/// # Errors
/// If the node cannot be reached or answers nonsense.
pub fn run(rpc: &Rpc, f: &AuditFilter) -> Result<AuditReport> {
    let (chain_id, height, _) = rpc.status()?;
    let pool_list = rpc.abci_query("/pools", b"")?;
    let field = |p: &Value, k: &str| p[k].as_str().unwrap_or("").to_owned();
    let pools: BTreeMap<String, String> =
        pool_list.as_array().into_iter().flatten().map(|p| (field(p, "id"), field(p, "name"))).collect();
    // Block proposers are validator addresses; genesis ties each to a pool.
    let validators: BTreeMap<String, String> = pool_list
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| (field(p, "validator_address").to_uppercase(), field(p, "name")))
        .collect();
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let filter = json!({
            "pool": f.pool, "group": f.group, "from_height": f.from_height, "to_height": f.to_height,
            "after": after, "limit": 500,
        });
        let page = rpc.abci_query("/history", filter.to_string().as_bytes())?;
        for d in page["directives"].as_array().into_iter().flatten() {
            let mut audited = check_one(rpc, d, &chain_id, &pools, f.check_blocks);
            audited.proposer_name = validators.get(&audited.proposer).cloned().unwrap_or_default();
            out.push(audited);
        }
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
    }
    let failures = out.iter().filter(|d| !d.verified).count();
    Ok(AuditReport { node: rpc.url().to_owned(), chain_id, height, directives: out, failures, proof: None })
}

fn check_one(rpc: &Rpc, d: &Value, chain_id: &str, pools: &BTreeMap<String, String>, check_blocks: bool) -> Audited {
    let s = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
    let mut problems = Vec::new();
    let bytes = hex::decode(s("tx_hex")).unwrap_or_default();
    let id = DirectiveId::of_tx_bytes(&bytes).to_hex();
    if id != s("id") {
        problems.push(format!("id {} is not the SHA-256 of the signed bytes ({id})", s("id")));
    }
    match SignedTx::decode(&bytes) {
        Err(e) => problems.push(format!("signed bytes do not decode: {e}")),
        Ok(tx) => {
            if tx.chain_id != chain_id {
                problems.push(format!("signed for chain {:?}, node runs {chain_id:?}", tx.chain_id));
            }
            if tx.signer.to_hex() != s("signer") {
                problems.push("signer in bytes differs from the record".into());
            }
            if !pools.contains_key(&tx.signer.to_hex()) {
                problems.push("signer is not a registered pool".into());
            }
            if serde_json::to_value(&tx.body).ok().as_ref() != Some(&d["body"]) {
                problems.push("body in bytes differs from the record".into());
            }
            match PoolKey::from_pool_id(&tx.signer).map(|k| signing::verify(&k, &bytes)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) | Err(e) => problems.push(format!("signature: {e}")),
            }
        }
    }
    let height = d["height"].as_u64().unwrap_or(0);
    if check_blocks {
        match rpc.tx(&id.to_uppercase()) {
            Ok(Some(c)) if c.height == height && c.tx == bytes && c.code == 0 => {}
            Ok(Some(c)) => {
                problems.push(format!("block {} holds it with code {} (record says height {height})", c.height, c.code))
            }
            Ok(None) => problems.push("not found in any block through /tx".into()),
            Err(e) => problems.push(format!("could not check the block: {e}")),
        }
    }
    let signer = s("signer");
    Audited {
        id: s("id"),
        height,
        index: d["index"].as_u64().unwrap_or(0),
        kind: s("kind"),
        status: s("status"),
        signer_name: pools.get(&signer).cloned().unwrap_or_else(|| "?".into()),
        signer,
        group: d["body"]["group"].as_str().map(str::to_owned),
        proposer: s("proposer"),
        proposer_name: String::new(),
        body: d["body"].clone(),
        receipts: d["receipts"].as_array().cloned().unwrap_or_default(),
        verified: problems.is_empty(),
        proven: None,
        problems,
    }
}

/// The audit as a table, with a summary line.
#[must_use]
pub fn render(r: &AuditReport) -> String {
    let rows: Vec<Vec<String>> = r
        .directives
        .iter()
        .map(|d| {
            let what = match d.kind.as_str() {
                "route" => d.group.clone().unwrap_or_default(),
                "vote" => format!(
                    "{} {}",
                    if d.body["approve"].as_bool() == Some(true) { "approve" } else { "reject" },
                    short(d.body["directive"].as_str().unwrap_or_default(), 10)
                ),
                _ => d.body["endpoint"].as_str().unwrap_or_default().to_owned(),
            };
            vec![
                d.height.to_string(),
                d.kind.clone(),
                what,
                d.status.clone(),
                d.signer_name.clone(),
                if d.proposer_name.is_empty() { short(&d.proposer, 10) } else { d.proposer_name.clone() },
                match (d.verified, d.proven) {
                    (true, Some(true)) => "ok, proven".into(),
                    (true, _) => "ok".into(),
                    (false, _) => format!("FAIL: {}", d.problems.join("; ")),
                },
                if d.kind == "route" { d.receipts.len().to_string() } else { "-".into() },
                short(&d.id, 12),
            ]
        })
        .collect();
    let mut s =
        table(&["HEIGHT", "KIND", "TARGET", "STATUS", "SIGNER", "PROPOSER", "VERIFIED", "RECEIPTS", "ID"], &rows);
    s.push_str(&format!(
        "{} directive(s) from {} (chain {}, height {}); {} failed verification\n",
        r.directives.len(),
        r.node,
        r.chain_id,
        r.height,
        r.failures
    ));
    if let Some(v) = &r.proof {
        s.push_str(&crate::verify::render(v));
    }
    s
}

/// Parse a pool filter given as hex.
///
/// # Errors
/// If it is not a 64-hex-character pool id.
pub fn parse_pool(s: &str) -> Result<PoolId> {
    s.parse().map_err(|e| anyhow::anyhow!("--pool: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hashmesh_protocol::{Body, SigningKey, UnsignedTx};

    fn record(key: &SigningKey, chain: &str) -> (Value, BTreeMap<String, String>) {
        let body = Body::Drain { endpoint: "pool-a/ep-1".parse().unwrap() };
        let (tx, bytes) = key.sign(UnsignedTx { chain_id: chain.into(), signer: key.pool_id(), nonce: 1, body });
        let view = json!({
            "id": DirectiveId::of_tx_bytes(&bytes).to_hex(), "height": 3, "index": 0, "kind": "drain",
            "status": "applied", "signer": key.pool_id().to_hex(), "proposer": "AB",
            "body": serde_json::to_value(&tx.body).unwrap(), "tx_hex": hex::encode(&bytes),
        });
        let pools = BTreeMap::from([(key.pool_id().to_hex(), "pool-a".to_owned())]);
        (view, pools)
    }

    fn audit(d: &Value, pools: &BTreeMap<String, String>) -> Audited {
        // No RPC call happens without --check-blocks; the URL is never dialled.
        check_one(&Rpc::new("http://127.0.0.1:9"), d, "chain-x", pools, false)
    }

    #[test]
    fn an_honest_record_verifies() {
        let (d, pools) = record(&SigningKey::from_seed(&[1; 32]), "chain-x");
        let a = audit(&d, &pools);
        assert!(a.verified, "{:?}", a.problems);
        assert_eq!(a.signer_name, "pool-a");
    }

    #[test]
    fn every_kind_of_tampering_is_caught() {
        let key = SigningKey::from_seed(&[1; 32]);
        let (good, pools) = record(&key, "chain-x");
        let flip_sig = {
            let mut b = hex::decode(good["tx_hex"].as_str().unwrap()).unwrap();
            let last = b.len() - 1;
            b[last] ^= 1;
            let mut d = good.clone();
            d["tx_hex"] = json!(hex::encode(&b));
            d["id"] = json!(DirectiveId::of_tx_bytes(&b).to_hex());
            d
        };
        let wrong_id = {
            let mut d = good.clone();
            d["id"] = json!("00".repeat(32));
            d
        };
        let wrong_body = {
            let mut d = good.clone();
            d["body"] = json!({"kind": "drain", "endpoint": "pool-a/ep-2"});
            d
        };
        let (other_chain, _) = record(&key, "chain-y");
        let stranger = {
            let (d, _) = record(&SigningKey::from_seed(&[2; 32]), "chain-x");
            d
        };
        for (name, d, needle) in [
            ("flipped signature", flip_sig, "signature"),
            ("wrong id", wrong_id, "SHA-256"),
            ("edited body", wrong_body, "body"),
            ("other chain", other_chain, "chain"),
            ("unregistered signer", stranger, "registered"),
        ] {
            let a = audit(&d, &pools);
            assert!(!a.verified, "{name} passed the audit");
            assert!(a.problems.iter().any(|p| p.contains(needle)), "{name}: {:?}", a.problems);
        }
    }
}
