//! Peers' PoSpace shares checked against the chain, on the private test network
//! (`tests/chia_testnet`: chia-blockchain 2.7.5's full node and Timelord making real signage
//! points, a block from chia's own farmer first):
//!
//! ```text
//! chia full node ──► node A (link)  ◄── chia_harvester (real proofs → shares)
//!        └─────────► node B (link, --chia-sp-grace-secs 5) ◄── share network ── A
//! ```
//!
//! - a share A makes from the real harvester's proof, on a signage point the full node sent, is
//!   taken by B (its own link knows the signage point) and verified there;
//! - a share on a signage point the chain never had (made with the project's share-making code
//!   from a real k18 plot's proof, `sharechain`'s testkit, and published by A) is held by B, then
//!   dropped after the grace period: A penalised (disconnected), the reason counted on B.
//!
//! Needs `~/.cache/p2pool-rs/venv-chia` (`P2POOL_TEST_DEPS=1 scripts/setup.sh`), else
//! "skipped: …".

#![allow(clippy::print_stdout)] // reason: a test without its tools says it skipped

mod chia_net;

use chia_net::{http_get as get, wait_status};

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use p2pool::chia::node::{ChiaNode, ChiaNodeOptions, ChiaRunArgs};
use sharechain::pospace_share::testkit::ProofBook;
use sharechain::pospace_share::ChiaNetwork;

const TXCH: &str = "txch1qurswpc8qurswpc8qurswpc8qurswpc8qurswpc8qurswpc8qurskhc8nk";
/// The farmer keys of the test network's plots (`tests/chia_testnet/chia_testnet.py`).
const MNEMONIC: &str =
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";
const PROOFS: &str = include_str!("../sharechain/tests/vectors/chia/pospace_share_proofs_k18.csv");
/// Bound on each wait of the test.
const PATIENCE: Duration = Duration::from_secs(240);
/// Node B's grace period for unknown signage points.
const GRACE_SECS: u64 = 5;

fn options(
    dir: &Path,
    name: &str,
    net: &chia_net::ChiaTestnet,
    bootstrap: Vec<libp2p::Multiaddr>,
) -> ChiaNodeOptions {
    let mut p2p = p2pool::p2p::P2pConfig::new(&sharechain::NetworkParams::REGTEST);
    p2p.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    p2p.bootstrap = bootstrap;
    let mnemonic = dir.join("mnemonic.txt");
    std::fs::write(&mnemonic, MNEMONIC).unwrap();
    ChiaNodeOptions {
        network: "regtest".into(),
        datadir: Some(dir.join(name)),
        address: Some(TXCH.to_owned()),
        worker_addr: ("127.0.0.1".parse().unwrap(), Some(0)),
        worker: p2pool::worker::WorkerConfig::default(),
        chia: ChiaRunArgs {
            chia_root: Some(net.root.clone()),
            chia_full_node: Some(format!("127.0.0.1:{}", net.full_node_peer_port)),
            chia_mnemonic_file: Some(mnemonic),
            chia_sp_grace_secs: Some(GRACE_SECS),
            ..ChiaRunArgs::default()
        },
        p2p,
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peers_share_is_taken_on_a_real_signage_point_and_refused_on_one_the_chain_never_had() {
    let Some(venv) = chia_net::venv() else { return };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    // A block from chia's own farmer first: a chain with a peak.
    let net = chia_net::ChiaTestnet::start_with_peak(&venv, dir.path(), 300);

    let a = ChiaNode::start(options(dir.path(), "node-a", &net, vec![]))
        .await
        .unwrap();
    let a_id = a.sink.service().p2p().local_peer_id();
    let a_addr = a.sink.service().p2p().listen_addrs().await[0]
        .clone()
        .with_p2p(a_id)
        .unwrap();
    let b = ChiaNode::start(options(dir.path(), "node-b", &net, vec![a_addr]))
        .await
        .unwrap();
    for node in [&a, &b] {
        wait_status(PATIENCE, node.worker_addr, "link up, proofs taken", |s| {
            s["link"] == "connected" && s["full_node_peers"] == 0 && s["sync_mode"] == false
        })
        .await;
    }
    let deadline = Instant::now() + PATIENCE;
    while b.sink.service().snapshot().peers == 0 && a.sink.service().snapshot().peers == 0 {
        assert!(Instant::now() < deadline, "B never met A");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A real share: chia's harvester farming through A.
    let started = Instant::now();
    let harvester = Killed(net.start_harvester(
        &venv,
        a.worker_addr.port(),
        &dir.path().join("harvester.log"),
    ));
    let taken = loop {
        let on_b = b
            .sink
            .service()
            .query(|t| {
                t.verified_heads()
                    .into_iter()
                    .find(|h| t.chain().is_verified(h))
            })
            .await
            .expect("B's share service");
        if let Some(hash) = on_b {
            break hash;
        }
        assert!(
            Instant::now() < deadline + PATIENCE,
            "no share of A verified on B: A {}\nB {}\nharvester log:\n{}",
            get(a.worker_addr, "/chia/full_node").await,
            get(b.worker_addr, "/chia/full_node").await,
            std::fs::read_to_string(dir.path().join("harvester.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!(
        "RESULT chia_peers_first_share_on_b_ms={}",
        started.elapsed().as_millis()
    );
    drop(harvester);
    assert!(
        a.sink
            .service()
            .query(move |t| t.chain().contains(&taken))
            .await
            .expect("A's share service"),
        "B's share is A's"
    );
    let counts = b.sink.service().context_counts();
    assert_eq!((counts.expired, counts.refused), (0, 0), "{counts:?}");
    assert_eq!(b.sink.service().snapshot().invalid, 0);
    let status_b = get(b.worker_addr, "/chia/full_node").await;
    assert!(
        status_b["signage_oracle"]["from_link"]
            .as_u64()
            .unwrap_or(0)
            >= 1,
        "{status_b}"
    );

    // A share on a signage point the chain never had: proof 0 of a real k18 plot, on the
    // testkit's made-up signage point, published by A (its verifier holds it as pending).
    let book = ProofBook::parse(PROOFS);
    let regtest = &ChiaNetwork::REGTEST;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let content = book.content(0, None, regtest.initial_difficulty, now, [7; 32]);
    let fake = book.share(&content, regtest);
    let sent = Instant::now();
    a.sink
        .service()
        .submit_local_share(fake.clone())
        .await
        .expect("A takes its own share");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let counts = b.sink.service().context_counts();
        if counts.expired >= 1 {
            break;
        }
        assert!(
            counts.held_total == 0 || sent.elapsed() < Duration::from_secs(GRACE_SECS * 6),
            "held past its grace: {counts:?}"
        );
        assert!(Instant::now() < deadline, "never dropped: {counts:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "RESULT chia_peers_unknown_sp_dropped_ms={}",
        sent.elapsed().as_millis()
    );
    assert!(
        sent.elapsed() >= Duration::from_secs(GRACE_SECS),
        "held for the grace"
    );
    let fake_hash = fake.hash();
    assert!(!b
        .sink
        .service()
        .query(move |t| t.chain().contains(&fake_hash))
        .await
        .expect("B's share service"));
    assert!(b.sink.service().snapshot().invalid >= 1);
    let status_b = get(b.worker_addr, "/chia/full_node").await;
    assert_eq!(
        status_b["held_shares"]["reasons"]["signage point unknown to the chia full node"], 1,
        "{status_b}"
    );
    // A penalised: B drops it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while b
        .sink
        .service()
        .p2p()
        .peers()
        .await
        .iter()
        .any(|p| p.peer == a_id)
    {
        assert!(Instant::now() < deadline, "A still connected to B");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The real share stays.
    assert!(b
        .sink
        .service()
        .query(move |t| t.chain().is_verified(&taken))
        .await
        .expect("B's share service"));
    a.shutdown().await;
    b.shutdown().await;
    drop(net);
}
