//! The farmer endpoint on the worker port with chia-blockchain 2.7.5's REAL harvester
//! (`chia_harvester`, unmodified) on loopback: four k18 plots made for the node's farmer keys
//! (two OG plots, two plot-NFT plots of two pool contracts, whose proofs the harvester judges at
//! the `pool_difficulties` the node sends for each contract its plot sync reported), a
//! chia root made by `chia init` and `chia init -c` with the CA the node created, the harvester's
//! `farmer_peers` set to the worker port and its network to the node's regtest network (with
//! the regtest constants as `network_overrides`). Within 60 s PoSpace shares from all four plots
//! are in the node's share service (stored, on the share network) and each passes
//! `check_share`; a second node, joined to the first over the share network on loopback and
//! running the same signage clock, holds them too, each verified by its own verifier. A harvester with a certificate from
//! another CA, or on another network, is refused with the reason; junk after a 0x16 first byte
//! does not disturb a stratum client on the same port. Needs chia-blockchain in
//! `~/.cache/p2pool-rs/venv-chia` (`P2POOL_TEST_DEPS=1 scripts/setup.sh`), else "skipped: …".

#![allow(clippy::print_stdout)] // reason: a test without its tools says it skipped

mod chia_common;
mod worker_common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use p2pool::chia::farmer::{Farmer, FarmerConfig, FarmerKeys, ServiceSink};
use p2pool::harvester::client::{CertSource, FarmConfig, Harvester, SessionError};
use p2pool::harvester::plots::Consensus;
use p2pool::p2p::P2pConfig;
use p2pool::shares::PoSpaceService;
use p2pool::store::ShareStore;
use sharechain::pospace_share::PoSpaceShare;
use sharechain::pospace_share::{check_share, KnownSignagePoints};
use sharechain::NetworkParams;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use worker_common::{start, test_config, Client, TestProvider, ADDR};

use chia_common::{farmer_plots, venv, ChiaHarvester, MNEMONIC, NETWORK};

/// A PoSpace share service on loopback (store in `dir`), bootstrapped to `peers`; its address.
async fn share_node(
    dir: &Path,
    peers: Vec<libp2p::Multiaddr>,
) -> (PoSpaceService, libp2p::Multiaddr) {
    let mut config = P2pConfig::new(&NetworkParams::REGTEST);
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    config.bootstrap = peers;
    config.target_peers = 1;
    std::fs::create_dir_all(dir).unwrap();
    let store = ShareStore::open(&dir.join("shares.redb")).unwrap();
    let service = PoSpaceService::open_with(dir, store, config, NETWORK)
        .await
        .expect("share service starts");
    let addr = service.p2p().listen_addrs().await[0]
        .clone()
        .with_p2p(service.p2p().local_peer_id())
        .unwrap();
    (service, addr)
}

/// The best chain `service` holds, newest first, and how many of its shares are verified.
fn best_chain(
    runtime: &tokio::runtime::Runtime,
    service: &PoSpaceService,
) -> (Vec<PoSpaceShare>, usize) {
    let query = service.query(|t| {
        let Some(best) = t.best() else {
            return (Vec::new(), 0);
        };
        let shares: Vec<PoSpaceShare> = t
            .chain()
            .ancestors(&best)
            .map(|s| PoSpaceShare::clone(s))
            .collect();
        let verified = shares
            .iter()
            .filter(|s| t.chain().is_verified(&s.hash()))
            .count();
        (shares, verified)
    });
    runtime.block_on(query).expect("the share service runs")
}

/// Frames of each message type kept when recording, and written.
const FRAMES_PER_TYPE: usize = 32;
const FRAMES_WRITTEN: usize = 2;

/// Writes the frames the real harvester sent (`P2POOL_RECORD_CHIA_FRAMES=FILE`): the test
/// vectors `tests/vectors/chia/harvester_frames.txt` are made this way.
fn write_recorded_frames(path: &Path, farmer: &Farmer) {
    use p2pool::chia::protocol::msg;
    let names = [
        (msg::HANDSHAKE, "handshake"),
        (msg::PLOT_SYNC_START, "plot_sync_start"),
        (msg::PLOT_SYNC_LOADED2, "plot_sync_loaded2"),
        (msg::PLOT_SYNC_REMOVED, "plot_sync_removed"),
        (msg::PLOT_SYNC_INVALID, "plot_sync_invalid"),
        (msg::PLOT_SYNC_KEYS_MISSING, "plot_sync_keys_missing"),
        (msg::PLOT_SYNC_DUPLICATES, "plot_sync_duplicates"),
        (msg::PLOT_SYNC_DONE, "plot_sync_done"),
        (msg::NEW_PROOF_OF_SPACE, "new_proof_of_space"),
        (msg::RESPOND_SIGNATURES, "respond_signatures"),
        (msg::FARMING_INFO, "farming_info"),
    ];
    let frames = farmer.recorded_frames();
    let mut out = String::from(
        "# Frames chia-blockchain 2.7.5's chia_harvester sent to the node's farmer endpoint,\n\
         # byte for byte: `P2POOL_RECORD_CHIA_FRAMES=THIS_FILE cargo test --no-default-features\n\
         # --test chia_farmer`. A line: message type, name, the frame in hex.\n",
    );
    for (msg_type, name) in names {
        let mut kept = frames.get(&msg_type).cloned().unwrap_or_default();
        assert!(!kept.is_empty(), "no {name} frame recorded");
        if msg_type == msg::NEW_PROOF_OF_SPACE {
            // The first proof of an OG plot and the first of a plot-NFT plot.
            let contract = |bytes: &Vec<u8>| {
                let frame = p2pool::chia::protocol::Frame::decode(bytes).unwrap();
                let proof: p2pool::chia::protocol::NewProofOfSpace =
                    frame.payload("new_proof_of_space").unwrap();
                proof.proof.pool_contract_puzzle_hash.is_some()
            };
            let og = kept.iter().find(|f| !contract(f)).cloned();
            let nft = kept.iter().find(|f| contract(f)).cloned();
            kept = og.into_iter().chain(nft).collect();
        }
        for frame in kept.into_iter().take(FRAMES_WRITTEN) {
            out.push_str(&format!("{msg_type} {name} {}\n", hex::encode(frame)));
        }
    }
    std::fs::write(path, out).unwrap();
    println!("recorded harvester frames to {}", path.display());
}

#[test]
fn real_chia_harvester_makes_pospace_shares() {
    let Some(venv) = venv() else { return };
    let _ = tracing_subscriber::fmt()
        .with_env_filter("p2pool=info")
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let keys = FarmerKeys::from_mnemonic(MNEMONIC).unwrap();
    // Two OG plots and two plot-NFT plots of two pool contracts.
    let (plots, plot_ids) = farmer_plots(
        &venv,
        &keys,
        &[
            ("fa", "og"),
            ("fb", "og"),
            ("na", "contract:a"),
            ("nb", "contract:b"),
        ],
    );

    // The node's own CA, as a node without a chia root creates it.
    let ca_dir = dir.path().join("node/chia-ca");
    let (origin, created) =
        p2pool::chia::farmer::tls::resolve_ca(None, &ca_dir).unwrap_or_else(|e| panic!("{e}"));
    let ca_dir = origin.dir();
    assert!(created || ca_dir != dir.path().join("node/chia-ca"));

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _guard = runtime.enter();
    // Node A serves the harvester; node B only follows the share network and its own clock.
    let (service_a, addr_a) = runtime.block_on(share_node(&dir.path().join("a"), vec![]));
    let (service_b, _) = runtime.block_on(share_node(&dir.path().join("b"), vec![addr_a]));
    let sink = ServiceSink::new(service_a.clone());
    let follower = Farmer::new(
        FarmerConfig {
            network: NETWORK,
            network_id: "regtest".into(),
            ca_dir: ca_dir.clone(),
            keys: keys.clone(),
            payout_puzzle_hash: [8; 32],
            clock_interval: p2pool::chia::farmer::clock::REGTEST_INTERVAL,
            server_port: 0,
        },
        Arc::new(ServiceSink::new(service_b.clone())),
    )
    .unwrap();
    runtime.spawn(follower.run_clock());
    let farmer = Farmer::new(
        FarmerConfig {
            network: NETWORK,
            network_id: "regtest".into(),
            ca_dir: ca_dir.clone(),
            keys: keys.clone(),
            payout_puzzle_hash: [7; 32],
            clock_interval: p2pool::chia::farmer::clock::REGTEST_INTERVAL,
            server_port: 0,
        },
        Arc::new(sink.clone()),
    )
    .unwrap();
    let record = std::env::var_os("P2POOL_RECORD_CHIA_FRAMES").map(PathBuf::from);
    if record.is_some() {
        farmer.record_frames(FRAMES_PER_TYPE);
    }
    let server = runtime.block_on(start(TestProvider::new(1e-6, 4e-6), test_config()));
    server.port.set_chia_farmer(farmer.clone());
    runtime.spawn(farmer.clone().run_clock());
    let port = server.addr.port();

    // A chia root whose CA is the node's (`chia init -c`), farming the plots for the node.
    let harvester = ChiaHarvester::start(&venv, dir.path(), &ca_dir, port, &plots);
    let harvester_log = || harvester.log();

    // Junk after a TLS first byte, and a stratum miner on the same port, while farming.
    runtime.block_on(async {
        let mut junk = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        junk.write_all(&[0x16, 0xff, 0xff, 0x00, 0x05, 1, 2, 3, 4, 5])
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let closed = tokio::time::timeout(Duration::from_secs(10), junk.read(&mut buf)).await;
        assert!(closed.is_ok(), "junk connection not closed");
        let mut miner = Client::connect(server.addr).await;
        miner.handshake(&format!("{ADDR}+0.000000001")).await;
    });
    assert!(
        farmer.counter("refused_not_tls") >= 1,
        "{:?}",
        farmer.counters()
    );

    // Shares from all four plots within 60 s of the harvester's start: the plot-NFT plots'
    // proofs were judged by the harvester at the `pool_difficulties` entry of their contract.
    let started = Instant::now();
    let shares = loop {
        let (shares, _) = best_chain(&runtime, &service_a);
        let from: HashSet<[u8; 32]> = shares.iter().map(|s| *s.plot_id()).collect();
        if from == plot_ids && shares.len() >= 4 {
            break shares;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no shares from all plots: {} shares, counters {:?}, harvesters {:?}\nharvester log:\n{}",
            shares.len(),
            farmer.counters(),
            farmer.harvesters(),
            harvester_log()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let mut known = KnownSignagePoints::new();
    for (_, sp) in farmer.signage_points() {
        known.insert(sp);
    }
    for share in &shares {
        assert!(plot_ids.contains(share.plot_id()));
        if known
            .get(&share.content().challenge_hash, &share.content().sp_hash)
            .is_some()
        {
            check_share(share, NETWORK, &known).unwrap();
        }
        assert_eq!(share.content().payout_puzzle_hash, [7; 32]);
    }
    let contract_shares = shares
        .iter()
        .filter(|s| {
            s.content()
                .proof_of_space
                .pool_contract_puzzle_hash
                .is_some()
        })
        .count();
    assert!(contract_shares >= 2, "{contract_shares} plot-NFT shares");
    // Node B got them over the share network (gossip or sync) and verified each itself.
    let wanted: HashSet<_> = shares.iter().map(PoSpaceShare::hash).collect();
    let started_b = Instant::now();
    loop {
        let want = wanted.clone();
        let held = runtime
            .block_on(
                service_b.query(move |t| want.iter().filter(|h| t.chain().is_verified(h)).count()),
            )
            .expect("the share service runs");
        if held == wanted.len() {
            break;
        }
        assert!(
            started_b.elapsed() < Duration::from_secs(30),
            "node B verified {held} of node A's {} shares; B's best chain {:?}",
            wanted.len(),
            best_chain(&runtime, &service_b).1
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    println!(
        "node B verified node A's {} shares after {:?}",
        wanted.len(),
        started_b.elapsed()
    );
    let harvesters = farmer.harvesters();
    assert_eq!(harvesters.len(), 1, "{harvesters:?}");
    assert_eq!(harvesters[0].plots.len(), 4, "{harvesters:?}");
    let contracts: HashSet<_> = harvesters[0]
        .plots
        .iter()
        .filter_map(|p| p.pool_contract_puzzle_hash.clone())
        .collect();
    assert_eq!(contracts.len(), 2, "{harvesters:?}");
    assert!(harvesters[0].shares >= 4);
    assert!(!harvesters[0].lookup_times_us.is_empty());
    let mut ms: Vec<f64> = farmer
        .shares()
        .iter()
        .map(|r| r.proof_to_share_ms)
        .collect();
    ms.sort_unstable_by(f64::total_cmp);
    println!(
        "{} shares in {:?}; proof_to_share_ms median {:.3} max {:.3}; counters {:?}",
        shares.len(),
        started.elapsed(),
        ms[ms.len() / 2],
        ms[ms.len() - 1],
        farmer.counters()
    );

    if let Some(path) = &record {
        write_recorded_frames(path, &farmer);
    }

    // Refused: a certificate from another CA, and a harvester on another network.
    let other_ca = dir.path().join("other-ca");
    p2pool::chia::ssl::create_ca(&other_ca).unwrap();
    let ours = |certs: CertSource, network_id: &str| {
        Harvester::new(FarmConfig {
            farmer: server.addr.to_string(),
            plots: vec![plots.clone()],
            certs,
            network_id: network_id.into(),
            consensus: Consensus::default(),
        })
        .unwrap()
    };
    // Both sides refuse a foreign CA: the node is tested here with a client that trusts the
    // node's CA but presents a certificate from another.
    let other_crt = other_ca.join("private_ca.crt");
    let (cert, key) = p2pool::chia::ssl::issue_node_cert(
        &other_crt,
        &std::fs::read_to_string(other_ca.join("private_ca.key")).unwrap(),
        &p2pool::chia::ssl::read_cert(&other_crt).unwrap(),
    )
    .unwrap();
    let identity = p2pool::harvester::tls::Identity {
        ca: p2pool::chia::ssl::read_cert(&ca_dir.join("private_ca.crt")).unwrap(),
        cert,
        key,
    };
    let client = p2pool::harvester::tls::client_config(&identity).unwrap();
    let refused = runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("chia.net").unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect(name, tcp)
            .await?;
        // TLS 1.3: the server judges the client's certificate after the client's Finished.
        tls.write_all(b"GET /ws HTTP/1.1\r\n\r\n").await?;
        let mut buf = [0u8; 16];
        tls.read(&mut buf).await
    });
    assert!(refused.is_err(), "a foreign CA was accepted: {refused:?}");
    let wait_counter = |name: &str| {
        let start = Instant::now();
        while farmer.counter(name) == 0 && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
        }
        farmer.counter(name)
    };
    assert_eq!(
        wait_counter("refused_foreign_ca"),
        1,
        "{:?}",
        farmer.counters()
    );
    let foreign = ours(CertSource::CaDir(other_ca), "regtest");
    assert!(runtime.block_on(foreign.session()).is_err());
    assert_eq!(
        wait_counter("refused_peer_distrusts_ca"),
        1,
        "{:?}",
        farmer.counters()
    );
    let mainnet = ours(CertSource::CaDir(ca_dir.clone()), "mainnet");
    match runtime.block_on(mainnet.session()) {
        Err(SessionError::NetworkMismatch { ours, theirs }) => {
            assert_eq!((ours.as_str(), theirs.as_str()), ("mainnet", "regtest"));
        }
        other => panic!("another network was not refused: {other:?}"),
    }
    assert_eq!(
        wait_counter("refused_network_id"),
        1,
        "{:?}",
        farmer.counters()
    );

    // The real harvester carried on.
    let before = farmer.counter("shares");
    let start = Instant::now();
    while farmer.counter("shares") == before {
        assert!(start.elapsed() < Duration::from_secs(30), "farming stopped");
        std::thread::sleep(Duration::from_millis(200));
    }
}
