//! Share checking against real Bitcoin headers (the genesis block and block 1), the version
//! rolling mask, the difficulty bound and the extranonce2 size.

use hashmesh_stratum::message::Notify;
use hashmesh_stratum::share::{check, hash_difficulty, header, merkle_root, sha256d, ShareFault, ShareInput};

const GENESIS_COINBASE: &str = "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04ffff001d0104455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f66207365636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac00000000";

fn display(hash: &[u8; 32]) -> String {
    let mut h = *hash;
    h.reverse();
    hex::encode(h)
}

/// The genesis block as a Stratum job: its coinbase cut around 4 + 4 bytes that play the
/// extranonces (the pool's extranonce1 and the miner's extranonce2).
fn genesis_job() -> (Notify, Vec<u8>, Vec<u8>) {
    let cb = hex::decode(GENESIS_COINBASE).unwrap();
    let (cut, len) = (50, 4);
    let job = Notify {
        job_id: "1".into(),
        prevhash: [0; 32],
        coinb1: cb[..cut].to_vec(),
        coinb2: cb[cut + 2 * len..].to_vec(),
        merkle_branch: Vec::new(),
        version: 1,
        nbits: 0x1d00_ffff,
        ntime: 1_231_006_505,
        clean_jobs: true,
    };
    (job, cb[cut..cut + len].to_vec(), cb[cut + len..cut + 2 * len].to_vec())
}

#[test]
fn the_genesis_block_checks_out() {
    let (job, en1, en2) = genesis_job();
    let root = merkle_root(&[job.coinb1.clone(), en1.clone(), en2.clone(), job.coinb2.clone()].concat(), &[]);
    assert_eq!(display(&root), "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b");
    let share = ShareInput {
        extranonce1: &en1,
        extranonce2: &en2,
        extranonce2_size: 4,
        ntime: job.ntime,
        nonce: 2_083_236_893,
        version_bits: None,
        version_mask: 0,
    };
    let ok = check(&job, &share, 1.0).unwrap();
    assert_eq!(display(&ok.hash), "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f");
    assert!((ok.difficulty - 2_536.426_298).abs() < 1e-3, "{}", ok.difficulty);
    // The same share at a higher difficulty than it meets is low.
    assert!(matches!(check(&job, &share, 3000.0), Err(ShareFault::LowDifficulty { .. })));
    // Another nonce is (overwhelmingly likely) low at difficulty 1.
    assert!(matches!(
        check(&job, &ShareInput { nonce: 1, ..share.clone() }, 1.0),
        Err(ShareFault::LowDifficulty { .. })
    ));
    // The miner's extranonce2 must have the size it was given.
    assert_eq!(
        check(&job, &ShareInput { extranonce2_size: 8, ..share }, 1.0),
        Err(ShareFault::Extranonce2Size { got: 4, want: 8 })
    );
}

#[test]
fn block_one_with_the_prevhash_as_stratum_sends_it() {
    // Stratum's prevhash for block 1: eight byte-swapped words of the previous block's hash.
    let prev: [u8; 32] =
        hex::decode("0a8ce26f72b3f1b646a2a6c14ff763ae65831e939c085ae10019d66800000000").unwrap().try_into().unwrap();
    let mut root: [u8; 32] =
        hex::decode("0e3e2357e806b6cdb1f70b54c3a3a17b6714ee1f0e68bebb44a74b1efd512098").unwrap().try_into().unwrap();
    root.reverse();
    let h = header(1, &prev, &root, 1_231_469_665, 0x1d00_ffff, 2_573_394_689);
    assert_eq!(display(&sha256d(&h)), "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048");
    assert!(hash_difficulty(&sha256d(&h)) >= 1.0);
}

#[test]
fn version_bits_only_inside_the_mask() {
    let (job, en1, en2) = genesis_job();
    let base = ShareInput {
        extranonce1: &en1,
        extranonce2: &en2,
        extranonce2_size: 4,
        ntime: job.ntime,
        nonce: 2_083_236_893,
        version_bits: Some(0x0000_2000),
        version_mask: 0x1fff_e000,
    };
    // Inside the mask: accepted as a share (the rolled header no longer meets difficulty 1000).
    assert!(matches!(check(&job, &base, 1000.0), Err(ShareFault::LowDifficulty { .. })));
    // Rolling to the job's own version bits reproduces the genesis hash.
    assert!(check(&job, &ShareInput { version_bits: Some(0), ..base.clone() }, 1.0).is_ok());
    // Outside the mask: refused before hashing.
    assert_eq!(
        check(&job, &ShareInput { version_bits: Some(0x8000_0000), ..base.clone() }, 1.0),
        Err(ShareFault::VersionBits { bits: 0x8000_0000, mask: 0x1fff_e000 })
    );
    assert!(matches!(check(&job, &ShareInput { version_mask: 0, ..base }, 1.0), Err(ShareFault::VersionBits { .. })));
}
