//! Shared fixtures for abci-app tests: a three-pool genesis, signing helpers and a
//! map-backed "store" that applies each block's writes like `Commit` does.
#![allow(dead_code, missing_docs)]

use hashmesh_abci::core::genesis::{GenesisEndpoint, GenesisGroup, GenesisPool};
use hashmesh_abci::core::{BlockInput, BlockOutcome, GenesisAppState, Memory, Params, State};
use hashmesh_protocol::{Body, DirectiveId, RouteTarget, SigningKey, UnsignedTx};

pub const CHAIN: &str = "hashmesh-test";

pub fn key(name: char) -> SigningKey {
    SigningKey::from_seed(&[name as u8; 32])
}

pub fn genesis() -> GenesisAppState {
    let pools = ['a', 'b', 'c']
        .iter()
        .map(|&n| GenesisPool {
            id: key(n).pool_id(),
            name: format!("pool-{n}"),
            validator_address: String::new(),
            endpoints: (1..=2)
                .map(|i| GenesisEndpoint {
                    id: format!("pool-{n}/ep-{i}").parse().unwrap(),
                    stratum_url: format!("stratum+tcp://127.0.0.1:{}", 3333 + i),
                    capacity_hs: 1_000_000_000_000,
                    region: "local".into(),
                })
                .collect(),
            groups: (1..=2)
                .map(|i| GenesisGroup { id: format!("pool-{n}/g-{i}").parse().unwrap(), hashrate_hs: 100_000_000_000 })
                .collect(),
        })
        .collect();
    GenesisAppState { params: Params { vote_window_blocks: 3, ..Params::default() }, pools }
}

/// A state plus its committed records and state tree, advanced block by block.
pub struct Chain {
    pub state: State,
    pub kv: Memory,
    pub nonce: u64,
}

impl Chain {
    pub fn new() -> Self {
        Self::with_genesis(&genesis())
    }

    pub fn with_genesis(g: &GenesisAppState) -> Self {
        let (state, writes, tree) = State::genesis(CHAIN, g);
        let mut kv = Memory::default();
        kv.apply(&writes, &tree);
        kv.kv.insert(b"m:last".to_vec(), hashmesh_protocol::codec::encode(&(0u64, state.app_hash())));
        Self { state, kv, nonce: 0 }
    }

    pub fn block(&mut self, txs: Vec<Vec<u8>>) -> BlockOutcome {
        let height = self.state.height() + 1;
        let input = BlockInput {
            height,
            time_ms: 1_700_000_000_000 + height * 1000,
            proposer: vec![7; 20],
            txs: &txs,
            preverified: &[],
        };
        let out = self.state.apply_block(&input, &self.kv);
        self.kv.apply(&out.writes, &out.tree);
        self.kv.kv.insert(b"m:last".to_vec(), hashmesh_protocol::codec::encode(&(height, out.app_hash)));
        self.state.check_invariants();
        out
    }

    pub fn sign(&mut self, who: char, body: Body) -> Vec<u8> {
        self.nonce += 1;
        sign_with(who, self.nonce, CHAIN, body)
    }
}

pub fn sign_with(who: char, nonce: u64, chain: &str, body: Body) -> Vec<u8> {
    let k = key(who);
    k.sign(UnsignedTx { chain_id: chain.into(), signer: k.pool_id(), nonce, body }).1
}

pub fn route(group: &str, targets: &[(&str, u16)]) -> Body {
    Body::Route {
        group: group.parse().unwrap(),
        targets: targets.iter().map(|(e, w)| RouteTarget { endpoint: e.parse().unwrap(), weight_bp: *w }).collect(),
    }
}

pub fn drain(ep: &str) -> Body {
    Body::Drain { endpoint: ep.parse().unwrap() }
}

pub fn restore(ep: &str) -> Body {
    Body::Restore { endpoint: ep.parse().unwrap() }
}

/// A fixed script touching every kind of transaction.
pub fn scripted_blocks() -> Vec<Vec<Vec<u8>>> {
    let mut n = 0u64;
    let mut s = |who: char, body: Body| {
        n += 1;
        sign_with(who, n, CHAIN, body)
    };
    let cross = s('a', route("pool-a/g-1", &[("pool-b/ep-1", 6000), ("pool-a/ep-1", 4000)]));
    let id = DirectiveId::of_tx_bytes(&cross);
    vec![
        vec![s('a', route("pool-a/g-2", &[("pool-a/ep-1", 5000), ("pool-a/ep-2", 5000)])), cross],
        vec![s('b', Body::Vote { directive: id, approve: true }), s('c', drain("pool-c/ep-1"))],
        vec![s('c', route("pool-c/g-1", &[("pool-a/ep-2", 10_000)])), b"junk".to_vec()],
        vec![],
        vec![s('c', restore("pool-c/ep-1"))],
    ]
}

/// A small seeded generator (splitmix64): the same inputs on every run.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
