//! Share-network benchmarks on loopback, real sockets and real stores:
//!
//! - `sync_8640_ms`: a fresh node fetches and verifies a mainnet-shaped 8640-share chain from one
//!   peer (median of 3);
//! - `propagation_ms`: a share found at A is verified on C in an A–B–C line, on top of the full
//!   chain (median of 30);
//! - `sync_local_verify_ms`: the same 8640 shares loaded from a node's own store and verified
//!   with no network (the reference: what the sync would cost with a free transport).
//!
//! `cargo bench --no-default-features --bench p2p`; the last line is `RESULT …`.
#![allow(clippy::print_stdout)] // reason: a benchmark reports on stdout

use std::path::Path;
use std::time::{Duration, Instant};

use libp2p::Multiaddr;
use p2pool::p2p::{self, P2pConfig};
use p2pool::shares::ShareService;
use p2pool::store::ShareStore;
use sharechain::encode::Encode;
use sharechain::testkit::{build_chain, easy_params, next_share_on, p2wpkh};
use sharechain::{CheckedShare, NetworkParams};

struct Node {
    svc: ShareService,
    addr: Multiaddr,
}

fn seed_store(path: &Path, shares: &[CheckedShare]) -> ShareStore {
    let store = ShareStore::open(path).unwrap();
    let rows: Vec<_> = shares
        .iter()
        .map(|s| (s.hash(), s.share().to_bytes()))
        .collect();
    store.put(&rows).unwrap();
    store
}

async fn node(
    params: &'static NetworkParams,
    store: ShareStore,
    dir: &Path,
    bootstrap: Vec<Multiaddr>,
) -> Node {
    let mut cfg = P2pConfig::new(params);
    cfg.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    cfg.bootstrap = bootstrap;
    cfg.datadir = Some(dir.to_owned());
    // Keep the line a line: no kad-driven extra connections.
    cfg.target_peers = 1;
    let (h, rx) = p2p::spawn(cfg).await.unwrap();
    let addr = h.listen_addrs().await[0]
        .clone()
        .with_p2p(h.local_peer_id())
        .unwrap();
    let svc = ShareService::start(params, store, h, rx).await.unwrap();
    Node { svc, addr }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

async fn run() {
    let params = easy_params(&NetworkParams::MAINNET, 8640, 200);
    let scripts: Vec<_> = (0..200).map(p2wpkh).collect();
    let t = Instant::now();
    let (_, chain) = build_chain(params, 8640, &scripts);
    println!("built 8640 shares in {:?}", t.elapsed());
    let root = tempfile::tempdir().unwrap();

    // The serving node: loads the chain from its store (the reference figure).
    let dir_a = root.path().join("a");
    std::fs::create_dir_all(&dir_a).unwrap();
    let store = seed_store(&dir_a.join("shares.redb"), &chain);
    let t = Instant::now();
    let a = node(params, store, &dir_a, vec![]).await;
    let local_ms = t.elapsed().as_secs_f64() * 1e3;
    let best = a.svc.best_share_hash();
    assert_eq!(best, Some(chain.last().unwrap().hash()));
    println!("local load+verify: {local_ms:.0} ms");

    let mut syncs = Vec::new();
    for rep in 0..3 {
        let dir = root.path().join(format!("sync{rep}"));
        std::fs::create_dir_all(&dir).unwrap();
        let t = Instant::now();
        let store = ShareStore::open(&dir.join("shares.redb")).unwrap();
        let n = node(params, store, &dir, vec![a.addr.clone()]).await;
        let mut rx = n.svc.subscribe_best();
        while *rx.borrow_and_update() != best {
            tokio::time::timeout(Duration::from_secs(60), rx.changed())
                .await
                .expect("sync finishes")
                .unwrap();
        }
        let ms = t.elapsed().as_secs_f64() * 1e3;
        println!(
            "sync {rep}: {ms:.0} ms ({} shares)",
            n.svc.snapshot().shares
        );
        syncs.push(ms);
        n.svc.shutdown().await;
    }

    // A – B – C, all holding the full chain.
    let mk = |name: &str| {
        let dir = root.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let store = seed_store(&dir.join("shares.redb"), &chain);
        (dir, store)
    };
    let (dir_b, store_b) = mk("b");
    let b = node(params, store_b, &dir_b, vec![a.addr.clone()]).await;
    let (dir_c, store_c) = mk("c");
    let c = node(params, store_c, &dir_c, vec![b.addr.clone()]).await;
    // Let the gossip meshes form.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut props = Vec::new();
    let mut rx = c.svc.subscribe_best();
    for i in 0..31u32 {
        let view = a.svc.view();
        let ts = view.kind.best_share().unwrap().share().share_info.timestamp;
        let base = view.kind.work.as_ref().unwrap();
        let share =
            next_share_on(base, p2wpkh(1000 + i), ts + params.share_period, 9000 + i).unwrap();
        let hash = share.hash();
        let t = Instant::now();
        a.svc.submit_local_share(share).await.unwrap();
        while *rx.borrow_and_update() != Some(hash) {
            tokio::time::timeout(Duration::from_secs(10), rx.changed())
                .await
                .expect("share reaches C")
                .unwrap();
        }
        let ms = t.elapsed().as_secs_f64() * 1e3;
        if i > 0 {
            // The first share warms up the mesh.
            props.push(ms);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "propagation A→B→C: min {:.1} ms, max {:.1} ms over {} shares",
        props.iter().cloned().fold(f64::MAX, f64::min),
        props.iter().cloned().fold(0.0, f64::max),
        props.len()
    );
    println!(
        "RESULT sync_8640_ms={:.0} propagation_ms={:.1} sync_local_verify_ms={:.0}",
        median(syncs),
        median(props),
        local_ms
    );
}

fn main() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}
