//! The state store's memory and disk over many blocks, archive (every tree version kept)
//! beside pruned (`keep_heights`, ADR 0015), each in its own child process so that resident
//! memory is its own.
//!
//! Each block writes what a busy block does: 30 overwrites among 500 keys and 5 new keys, 300
//! bytes each, through `commitment::update` and `Store::commit` (tree nodes, values, the stale
//! index and the pruning in one batch, flushed). Every `--every` blocks each store reports its
//! tree entries (nodes + values), its files on disk and the process's resident memory.
//!
//! Run: `cargo bench -p hashmesh-abci --bench store_history -- [--blocks 6000] [--every 1000]
//! [--keep 1000] [--cache-mib 128]`
#![allow(missing_docs)]

use std::process::Command;

use hashmesh_abci::core::commitment;
use hashmesh_abci::core::keys;
use hashmesh_abci::core::writes::WriteSet;
use hashmesh_abci::store::{Store, StoreOptions};

const CHILD: &str = "HASHMESH_STORE_HISTORY_CHILD";

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("{name} takes a number, got {v}")))
}

fn rss_mib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = s
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kib / 1024
}

fn disk_mib(p: &std::path::Path) -> u64 {
    fn walk(p: &std::path::Path) -> u64 {
        std::fs::read_dir(p)
            .map(|d| {
                d.flatten()
                    .map(|e| match e.metadata() {
                        Ok(m) if m.is_dir() => walk(&e.path()),
                        Ok(m) => std::os::unix::fs::MetadataExt::blocks(&m) * 512,
                        Err(_) => 0,
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(p) >> 20
}

/// One store: print `blocks tree_entries disk_mib rss_mib` every `every` blocks.
fn child(keep: u64, cache_mib: u64, blocks: u64, every: u64) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open_with(dir.path(), StoreOptions { cache_bytes: cache_mib << 20, keep_heights: keep })
        .expect("opening the store");
    let mut x: u64 = 7;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for h in 0..=blocks {
        let mut w = WriteSet::default();
        for _ in 0..30 {
            w.put(format!("t:key-{}", next() % 500).into_bytes(), vec![u8::try_from(h % 251).unwrap() + 1; 300]);
        }
        for i in 0..5 {
            w.put(format!("d:{h}-{i}").into_bytes(), vec![7u8; 300]);
        }
        let (root, tree) = commitment::update(&store, h, &w);
        store.commit(&w, &tree, h, &root).expect("commit");
        if h > 0 && h % every == 0 {
            let entries = store.try_scan_prefix(keys::TREE_NODE).expect("scan").len()
                + store.try_scan_prefix(keys::TREE_VALUE).expect("scan").len();
            println!("{h} {entries} {} {}", disk_mib(dir.path()), rss_mib());
        }
    }
}

fn run(keep: u64, cache_mib: u64, blocks: u64, every: u64) -> Vec<Vec<u64>> {
    let out = Command::new(std::env::current_exe().expect("this bench"))
        .args(["--blocks", &blocks.to_string(), "--every", &every.to_string()])
        .env(CHILD, format!("{keep},{cache_mib}"))
        .output()
        .expect("running a child store");
    assert!(out.status.success(), "child failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let v: Vec<u64> = l.split_whitespace().filter_map(|x| x.parse().ok()).collect();
            (v.len() == 4).then_some(v)
        })
        .collect()
}

fn main() {
    let (blocks, every) = (arg("--blocks", 6_000), arg("--every", 1_000).max(1));
    if let Ok(spec) = std::env::var(CHILD) {
        let (keep, cache) = spec.split_once(',').expect("keep,cache");
        child(keep.parse().expect("keep"), cache.parse().expect("cache"), blocks, every);
        return;
    }
    // `cargo bench` passes `--bench`; nothing else is ours to refuse.
    let (keep, cache_mib) = (arg("--keep", 1_000), arg("--cache-mib", 128));
    eprintln!("store_history: {blocks} blocks, archive then keep_heights = {keep}, cache {cache_mib} MiB each");
    let archive = run(0, cache_mib, blocks, every);
    let pruned = run(keep, cache_mib, blocks, every);
    println!("| blocks | archive: tree entries | disk | resident | keep {keep}: tree entries | disk | resident |");
    println!("|---|---|---|---|---|---|---|");
    for (a, p) in archive.iter().zip(&pruned) {
        println!("| {} | {} | {} MiB | {} MiB | {} | {} MiB | {} MiB |", a[0], a[1], a[2], a[3], p[1], p[2], p[3]);
    }
}
