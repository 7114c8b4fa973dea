//! The auditor's checks, pure: a header chain verified with CometBFT's light-client rules, and
//! each block's transactions, results and state answers checked against the verified headers.
//! Nothing here talks to a node; [`super::run`] fetches and feeds.
//!
//! What each check proves (docs/audit.md has the trust model):
//! - [`HeaderChain::advance`]: header `h` is signed by more than 2/3 of the voting power of the
//!   validator set that header `h-1` (verified) named as next, and its own validator hashes match
//!   the sets given (sequential verification, as CometBFT's light-client spec gives for adjacent
//!   headers).
//! - [`check_txs`]: the transactions are exactly those under the header's `data_hash`.
//! - [`check_results`]: the result codes (and data, gas) are exactly those under the next
//!   header's `last_results_hash`.
//! - [`check_answer`]: a state value (or its absence) is under the next header's `app_hash`.

use hashmesh_abci::core::commitment;
use sha2::{Digest, Sha256};
use tendermint::block::signed_header::SignedHeader;
use tendermint::block::Header;
use tendermint::validator::Set as ValidatorSet;
use tendermint::{Hash, Time};
use tendermint_light_client_verifier::options::Options;
use tendermint_light_client_verifier::types::{TrustThreshold, TrustedBlockState, UntrustedBlockState};
use tendermint_light_client_verifier::{ProdVerifier, Verdict, Verifier};

/// A check that failed: the block and the field, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    /// The block height the failure is about.
    pub height: u64,
    /// What was checked (`header`, `commit`, `data_hash`, `last_results_hash`, `app_hash`, …).
    pub field: String,
    /// What did not hold.
    pub detail: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "block {}: {}: {}", self.height, self.field, self.detail)
    }
}

impl std::error::Error for Failure {}

fn fail<T>(height: u64, field: &str, detail: impl Into<String>) -> Result<T, Failure> {
    Err(Failure { height, field: field.to_owned(), detail: detail.into() })
}

/// Light-client options for an audit: the default trust threshold (1/3, used only when a
/// validator set changes), a clock drift of 10 s, and a trusting period long enough for any
/// history — an audit re-checks the past from a root the auditor chose to trust, it does not
/// follow a live chain (docs/audit.md: long-range forks are outside what it proves).
fn options() -> Options {
    Options {
        trust_threshold: TrustThreshold::ONE_THIRD,
        trusting_period: std::time::Duration::from_secs(100 * 365 * 24 * 3600),
        clock_drift: std::time::Duration::from_secs(10),
    }
}

fn verdict(height: u64, v: Verdict) -> Result<(), Failure> {
    match v {
        Verdict::Success => Ok(()),
        Verdict::NotEnoughTrust(t) => fail(height, "commit", format!("not enough voting power signed it: {t}")),
        Verdict::Invalid(e) => {
            let detail = e.to_string();
            let lower = detail.to_lowercase();
            if lower.contains("signers overlap") || lower.contains("votingpower") {
                fail(height, "commit", format!("not enough voting power signed it: {detail}"))
            } else if lower.contains("signature") {
                fail(height, "commit", detail)
            } else if lower.contains("validator") {
                fail(height, "validators_hash", detail)
            } else {
                fail(height, "header", detail)
            }
        }
    }
}

/// The last verified header and the validator set it names as next.
#[derive(Debug, Clone)]
struct Trusted {
    header: SignedHeader,
    next_validators: ValidatorSet,
}

/// A chain of verified headers, from a trusted root, one height at a time.
#[derive(Debug)]
pub struct HeaderChain {
    chain_id: tendermint::chain::Id,
    /// Before the first header from genesis: the genesis validators and time.
    genesis: Option<(ValidatorSet, Time)>,
    trusted: Option<Trusted>,
}

impl HeaderChain {
    /// Trust a genesis: its chain id, validator set and time. The first header to verify is
    /// height 1 (its commit checked against the genesis validators).
    #[must_use]
    pub fn from_genesis(chain_id: tendermint::chain::Id, validators: ValidatorSet, time: Time) -> Self {
        Self { chain_id, genesis: Some((validators, time)), trusted: None }
    }

    /// Trust the header whose hash is `trusted_hash`: `signed` must be that header (with a
    /// commit signed by more than 2/3 of `validators`), and `validators` / `next_validators`
    /// the sets its hashes name.
    ///
    /// # Errors
    /// A [`Failure`] naming what does not match.
    pub fn from_header(
        trusted_hash: Hash,
        signed: SignedHeader,
        validators: &ValidatorSet,
        next_validators: ValidatorSet,
    ) -> Result<Self, Failure> {
        let h = signed.header.height.value();
        if signed.header.hash() != trusted_hash {
            return fail(
                h,
                "header",
                format!("its hash {} is not the trusted hash {trusted_hash}", signed.header.hash()),
            );
        }
        let untrusted =
            UntrustedBlockState { signed_header: &signed, validators, next_validators: Some(&next_validators) };
        let v = ProdVerifier::default();
        verdict(h, v.verify_validator_sets(&untrusted))?;
        verdict(h, v.verify_commit(&untrusted))?;
        Ok(Self {
            chain_id: signed.header.chain_id.clone(),
            genesis: None,
            trusted: Some(Trusted { header: signed, next_validators }),
        })
    }

    /// The next height to verify.
    #[must_use]
    pub fn next_height(&self) -> u64 {
        self.trusted.as_ref().map_or(1, |t| t.header.header.height.value() + 1)
    }

    /// The last verified header.
    #[must_use]
    pub fn last(&self) -> Option<&Header> {
        self.trusted.as_ref().map(|t| &t.header.header)
    }

    /// The validator set the last verified header names as next (the signers of the next
    /// header), or the genesis set before height 1.
    #[must_use]
    pub fn next_validators(&self) -> &ValidatorSet {
        match (&self.trusted, &self.genesis) {
            (Some(t), _) => &t.next_validators,
            (None, Some((v, _))) => v,
            (None, None) => unreachable!("a header chain starts from genesis or a trusted header"),
        }
    }

    /// Verify the next header. `next_validators` is the set `signed` names as next (the same
    /// as its own set unless the validators change).
    ///
    /// # Errors
    /// A [`Failure`] naming the height and the field.
    pub fn advance(&mut self, signed: SignedHeader, next_validators: ValidatorSet, now: Time) -> Result<(), Failure> {
        let h = signed.header.height.value();
        if h != self.next_height() {
            return fail(h, "header", format!("expected height {}", self.next_height()));
        }
        let v = ProdVerifier::default();
        let untrusted = UntrustedBlockState {
            signed_header: &signed,
            validators: self.next_validators(),
            next_validators: Some(&next_validators),
        };
        match &self.trusted {
            Some(t) => {
                if signed.header.last_block_id.map(|b| b.hash) != Some(t.header.header.hash()) {
                    return fail(h, "last_block_id", "does not point at the verified header below it");
                }
                let trusted = TrustedBlockState {
                    chain_id: &self.chain_id,
                    header_time: t.header.header.time,
                    height: t.header.header.height,
                    next_validators: &t.next_validators,
                    next_validators_hash: t.header.header.next_validators_hash,
                };
                verdict(h, v.verify_update_header(untrusted, trusted, &options(), now))?;
            }
            None => {
                let Some((genesis_validators, genesis_time)) = &self.genesis else {
                    unreachable!("a header chain starts from genesis or a trusted header")
                };
                if signed.header.chain_id != self.chain_id {
                    return fail(
                        h,
                        "chain_id",
                        format!("{} is not the genesis chain id {}", signed.header.chain_id, self.chain_id),
                    );
                }
                if signed.header.validators_hash != genesis_validators.hash() {
                    return fail(h, "validators_hash", "is not the hash of the genesis validator set");
                }
                if signed.header.time < *genesis_time {
                    return fail(h, "time", "is before the genesis time");
                }
                verdict(h, v.verify_validator_sets(&untrusted))?;
                verdict(h, v.verify_commit(&untrusted))?;
            }
        }
        self.trusted = Some(Trusted { header: signed, next_validators });
        Ok(())
    }
}

/// CometBFT's `data_hash`: the Merkle root of the transactions' SHA-256 hashes.
#[must_use]
pub fn data_hash(txs: &[Vec<u8>]) -> [u8; 32] {
    let leaves: Vec<[u8; 32]> = txs.iter().map(|t| Sha256::digest(t).into()).collect();
    tendermint::merkle::simple_hash_from_byte_vectors::<Sha256>(&leaves)
}

/// A transaction's result as the header commits to it: CometBFT hashes only these fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedResult {
    /// The result code.
    pub code: u32,
    /// The result data.
    pub data: Vec<u8>,
    /// Gas wanted.
    pub gas_wanted: i64,
    /// Gas used.
    pub gas_used: i64,
}

/// CometBFT's `last_results_hash`: the Merkle root of each result's deterministic protobuf
/// encoding (code, data, gas wanted, gas used).
#[must_use]
pub fn results_hash(results: &[CommittedResult]) -> [u8; 32] {
    let leaves: Vec<Vec<u8>> = results
        .iter()
        .map(|r| {
            prost::Message::encode_to_vec(&tendermint_proto::v0_38::abci::ExecTxResult {
                code: r.code,
                data: r.data.clone().into(),
                gas_wanted: r.gas_wanted,
                gas_used: r.gas_used,
                ..Default::default()
            })
        })
        .collect();
    tendermint::merkle::simple_hash_from_byte_vectors::<Sha256>(&leaves)
}

fn hash_bytes(h: &Hash) -> &[u8] {
    h.as_bytes()
}

/// Check that `txs` are block `header`'s transactions.
///
/// # Errors
/// A [`Failure`] on `data_hash`.
pub fn check_txs(header: &Header, txs: &[Vec<u8>]) -> Result<(), Failure> {
    let h = header.height.value();
    let want = header.data_hash.map_or_else(|| data_hash(&[]).to_vec(), |d| hash_bytes(&d).to_vec());
    if data_hash(txs).as_slice() != want.as_slice() {
        return fail(
            h,
            "data_hash",
            format!(
                "the {} transactions served are not the block's (a transaction dropped, added or altered)",
                txs.len()
            ),
        );
    }
    Ok(())
}

/// Check that `results` are block `height`'s results, against the next header.
///
/// # Errors
/// A [`Failure`] on `last_results_hash`.
pub fn check_results(height: u64, next: &Header, results: &[CommittedResult]) -> Result<(), Failure> {
    let want = next.last_results_hash.map_or_else(|| results_hash(&[]).to_vec(), |d| hash_bytes(&d).to_vec());
    if results_hash(results).as_slice() != want.as_slice() {
        return fail(
            height,
            "last_results_hash",
            format!(
                "the {} results served are not under header {}'s last_results_hash (a code, data or gas altered)",
                results.len(),
                next.height
            ),
        );
    }
    Ok(())
}

/// Check that `key` holds `value` (or nothing, for `None`) in the state after block `height`,
/// whose root is the next header's app hash.
///
/// # Errors
/// A [`Failure`] on `app_hash`.
pub fn check_answer(height: u64, next: &Header, key: &[u8], value: Option<&[u8]>, proof: &[u8]) -> Result<(), Failure> {
    let Ok(root) = <[u8; 32]>::try_from(next.app_hash.as_bytes()) else {
        return fail(height, "app_hash", format!("header {} carries an app hash that is not 32 bytes", next.height));
    };
    commitment::verify(&root, key, value, proof)
        .or_else(|e| fail(height, "app_hash", format!("key {}: {e} (header {})", printable(key), next.height)))
}

/// A state key for people: its prefix and id as text, the rest hex.
#[must_use]
pub fn printable(key: &[u8]) -> String {
    match key.iter().position(|b| *b == b':') {
        Some(i) if key[..=i].iter().all(u8::is_ascii_graphic) => {
            let rest = &key[i + 1..];
            if rest.iter().all(|b| b.is_ascii_graphic() || *b == 0) {
                format!("{}{}", String::from_utf8_lossy(&key[..=i]), String::from_utf8_lossy(rest).replace('\0', "|"))
            } else {
                format!("{}{}", String::from_utf8_lossy(&key[..=i]), hex::encode(rest))
            }
        }
        _ => hex::encode(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_block_hashes_like_cometbft() {
        // CometBFT: the Merkle root of no leaves is SHA-256 of nothing.
        assert_eq!(hex::encode(data_hash(&[])), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(results_hash(&[]), data_hash(&[]));
    }

    #[test]
    fn results_hash_covers_code_and_data_only() {
        let r = CommittedResult { code: 0, data: Vec::new(), gas_wanted: 1, gas_used: 0 };
        let mut other = r.clone();
        other.code = 3;
        assert_ne!(results_hash(std::slice::from_ref(&r)), results_hash(&[other]));
        assert_ne!(results_hash(std::slice::from_ref(&r)), results_hash(&[r.clone(), r]));
    }

    #[test]
    fn keys_print_readably() {
        assert_eq!(printable(b"a:pool-a/g-1"), "a:pool-a/g-1");
        assert_eq!(printable(b"l:pool-a/g-1\0pool-b/ep-1"), "l:pool-a/g-1|pool-b/ep-1");
        assert_eq!(printable(&[b'd', b':', 0xff, 0x01]), "d:ff01");
    }
}
